"""Absolute links put in mails, built from the current request (or PUBLIC_URL in the CLI)."""

from flask import url_for


class WebLinks:
    def activation(self, token: str) -> str:
        return url_for("auth.activate", token=token, _external=True)

    def reset(self, token: str) -> str:
        return url_for("auth.reset_password", token=token, _external=True)

    def login(self) -> str:
        return url_for("auth.login", _external=True)

    def demande(self, number: int) -> str:
        return url_for("demandes.show", number=number, _external=True)


def safe_next(target: str | None, default: str) -> str:
    """Only local paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default

"""Absolute links put in mails, built from the current request (or PUBLIC_URL in the CLI)."""

import re

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


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters and backslashes: browsers read "/\t/x" as "//x"


def safe_next(target: str | None, default: str) -> str:
    """Only a local path (a form's hidden "next", a link's ?next=): never an open redirect, never a
    header werkzeug refuses (a newline made a 500)."""
    if (isinstance(target, str) and target.startswith("/") and not target.startswith("//")
            and len(target) <= 2000 and not _UNSAFE.search(target)):
        return target
    return default

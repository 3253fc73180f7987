"""The request class of the app."""

from __future__ import annotations

from flask import Request


def _without_nul(values):
    if not any("\x00" in k or "\x00" in v for k, v in values.items(multi=True)):
        return values
    return type(values)((k.replace("\x00", ""), v.replace("\x00", "")) for k, v in values.items(multi=True))


class PortailRequest(Request):
    """Text as PostgreSQL can store it: the NUL character (no keyboard types it, only a forged request
    sends it; PostgreSQL refuses it in a text column, a 500) is dropped from the query string and the form."""

    @property
    def args(self):
        if "_clean_args" not in self.__dict__:
            self.__dict__["_clean_args"] = _without_nul(super().args)
        return self.__dict__["_clean_args"]

    def _load_form_data(self) -> None:
        super()._load_form_data()
        self.__dict__["form"] = _without_nul(self.__dict__["form"])

"""htmx on the server side: one URL answers the full page or its fragment (`Vary: HX-Request` is
set on every response by app.py)."""

from flask import request


def is_htmx() -> bool:
    """The request comes from htmx (it wants the fragment, not the page)."""
    return request.headers.get("HX-Request") == "true"

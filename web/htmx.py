"""htmx on the server side: one URL answers the full page or its fragment (`Vary: HX-Request` is
set on every response)."""

from flask import Flask, request


def is_htmx() -> bool:
    """The request comes from htmx (it wants the fragment, not the page)."""
    return request.headers.get("HX-Request") == "true"


def init_app(app: Flask) -> None:
    @app.after_request
    def vary(response):
        if "Vary" not in response.headers:  # the usual case: written at once, not parsed and rewritten twice
            response.headers["Vary"] = "Cookie, HX-Request"
        else:
            response.vary.update(("Cookie", "HX-Request"))
        return response

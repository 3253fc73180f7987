"""The transaction boundary outside the views: a view reads input, calls one service, renders;
``@committing`` commits when it returns, rolls back when it raises or asked for it."""

from __future__ import annotations

from functools import wraps

from flask import g

from extensions import db


def rollback_only() -> None:
    """This request must not write anything (a form with errors after a service refused it)."""
    g.rollback_only = True


def committing(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise
        if g.pop("rollback_only", False):
            db.session.rollback()
        else:
            db.session.commit()
        return response

    return wrapped

"""Helpers shared by the agent pages: who acts (an agent, or support acting as one), audit notes."""

from __future__ import annotations

from flask import g, request
from flask_login import current_user

from core.bounds import as_id
from tenants.web import support_in


def in_support_mode() -> bool:
    return support_in(getattr(g, "tenant", None))


def actor_name() -> str:
    """The name written in the demandes' history: the agent, or the support member marked as such."""
    if in_support_mode():
        return f"{current_user.display_name} (support)"
    return current_user.display_name


def audit(what: str) -> None:
    """Describe the change this request made; in support mode it goes to the audit log."""
    g.audit_what = what


def no_change() -> None:
    """This POST changed nothing (a form with errors): nothing to audit."""
    g.audit_skip = True


def int_arg(name: str, default=None):
    """A positive whole number of the query string (an id, a page) that the database can take, else `default`."""
    value = as_id(request.args.get(name))
    return default if value is None else value

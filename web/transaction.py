"""The transaction boundary, outside the views (indico's ``RH.process``, pretix's unit of work).

Every view of the app runs inside ``committing`` (``init_app`` wraps them all once the blueprints
are registered): a view reads its input, calls one service and renders; the boundary then

- commits what the service did when the view answered (a redirect raised with ``abort`` too);
- rolls back when the view raised, or when it asked for it (``rollback_only()``: a form with
  errors after a service refused; ``roll_back()``: undo at once what the refused service did,
  to read the state as it was);
- turns ``Busy`` (a row lock not taken in time, core/locking.py) and PostgreSQL's lock errors
  into "Réessayez dans un instant": what the view declared with ``on_busy()`` (back to a page,
  or an answer of its own), else the htmx message in place, a redirect back with the message
  (a form posted without JavaScript), or a 503 page.

A request that only read ends with COMMIT rather than ROLLBACK: same outcome for the data, but
psycopg forgets a connection's prepared statements on every ROLLBACK (parsing and planning every
statement of the next page again).  Mails and jobs are queued after commit by their own hook
(jobs/dispatch.py), never by a view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from flask import Flask, current_app, flash, g, make_response, redirect, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from core.locking import Busy
from extensions import db
from web.htmx import is_htmx
from web.links import safe_next

log = logging.getLogger(__name__)

RETRY = _l("Réessayez dans un instant.")

# PostgreSQL: lock_not_available (lock_timeout), deadlock_detected, serialization_failure
LOCK_SQLSTATES = {"55P03", "40P01", "40001"}

try:  # PostgreSQL's driver, whose errors reach the fast path's callers as they are
    from psycopg import OperationalError as _PsycopgOperationalError

    _DRIVER_OPERATIONAL: tuple = (_PsycopgOperationalError,)
except ImportError:  # pragma: no cover (SQLite alone)
    _DRIVER_OPERATIONAL = ()


@event.listens_for(Engine, "begin")
def _begun(conn) -> None:
    conn.info["wrote"] = False


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(conn, _cursor, statement, *_args) -> None:
    if not statement.lstrip()[:6].upper().startswith("SELECT"):
        conn.info["wrote"] = True


# ---------------------------------------------------------------- what a view may say

def rollback_only() -> None:
    """Nothing of this request is committed (a form with errors after a service refused it)."""
    g.rollback_only = True


def roll_back() -> None:
    """Undo now what a service did before it refused (the page then reads the state as it was);
    what the view writes afterwards (a read logged) is committed as usual."""
    db.session.rollback()


def on_busy(answer: str | Callable, message=None) -> None:
    """What "Réessayez dans un instant" answers for this view: a URL (back there, the message
    flashed) or a function returning the answer (called after the rollback)."""
    g.on_busy = (answer, message)


def on_rollback(undo: Callable) -> None:
    """``undo()`` runs if this request commits nothing (a file stored before the service wrote
    the row that names it is removed again)."""
    g.setdefault("on_rollback", []).append(undo)


def after_commit(then: Callable) -> None:
    """``then()`` runs once this request's transaction is committed (what must not happen before:
    letting the next family of the waiting room in, whose own transaction runs apart)."""
    g.setdefault("after_commit", []).append(then)


def before_commit(hook: Callable) -> Callable:
    """``hook(response)`` runs in the transaction of every view that commits, with its answer (the
    support mode's audit line is written with the change it records)."""
    _BEFORE_COMMIT.append(hook)
    return hook


_BEFORE_COMMIT: list[Callable] = []


# ---------------------------------------------------------------- the boundary

def _only_read() -> bool:
    """The transaction under way wrote nothing: no ORM change and no statement but SELECT."""
    session = db.session()
    if session.new or session.dirty or session.deleted:
        return False
    transaction = session.get_transaction()
    connections = getattr(transaction, "_connections", None)
    if not connections:
        return True
    return not any(value[0].info.get("wrote", True) for value in connections.values())


def end(*, commit: bool) -> None:
    """Commit, or undo what was written (a transaction that only read is committed all the same)."""
    session = db.session()
    if session.get_transaction() is not None:
        if not commit and not _only_read():
            _undo()
            return
        try:
            session.commit()
        except Exception:
            _undo()
            if commit:
                raise
    if commit:
        g.pop("on_rollback", None)
        for then in g.pop("after_commit", []):
            try:
                then()
            except Exception:  # noqa: BLE001 (committed: the answer stands)
                log.exception("after commit: %r failed", then)
    else:
        _undo()


def _undo() -> None:
    """Roll back, and undo what the request did beside the database (``on_rollback``)."""
    db.session.rollback()
    g.pop("after_commit", None)
    for undo in reversed(g.pop("on_rollback", [])):
        undo()


def is_lock_failure(exc: BaseException) -> bool:
    """Busy, or PostgreSQL's lock timeout / deadlock / serialization failure (SQLAlchemy's or the
    driver's own error)."""
    if isinstance(exc, Busy):
        return True
    if isinstance(exc, OperationalError):
        exc = exc.orig
    if isinstance(exc, _DRIVER_OPERATIONAL):
        return getattr(exc, "sqlstate", None) in LOCK_SQLSTATES
    return False


def _is_answer(exc: HTTPException) -> bool:
    """``abort(redirect(...))``: the view answered (what it did stands); ``abort(404)`` did not."""
    response = exc.response
    if response is not None:
        return response.status_code < 400
    return exc.code is not None and exc.code < 400


def committing(view):
    """The boundary around one view (``init_app`` puts it around every view)."""
    if getattr(view, "_committing", False):
        return view

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            response = view(*args, **kwargs)
            commit = not g.pop("rollback_only", False)
            if commit and _BEFORE_COMMIT:
                response = current_app.make_response(response)
                for hook in _BEFORE_COMMIT:
                    hook(response)
            end(commit=commit)
        except HTTPException as exc:
            commit = _is_answer(exc) and not g.pop("rollback_only", False)
            if commit:
                for hook in _BEFORE_COMMIT:
                    hook(exc.get_response())
            end(commit=commit)
            raise
        except Exception as exc:
            if not is_lock_failure(exc):
                end(commit=False)
                raise
            _undo()
            return busy_answer()
        except BaseException:
            _undo()
            raise
        return response

    wrapped._committing = True
    return wrapped


# ---------------------------------------------------------------- "Réessayez dans un instant"

def generic_busy_answer():
    """htmx: the page stays as it is and the message shows where the page says things; a form posted
    without JavaScript: back to the page it came from, which says it; else a 503 page."""
    message = _("Réessayez dans un instant.")
    if is_htmx():
        response = make_response(render_template("web/_retry.html", message=message), 200)
        response.headers["HX-Reswap"] = "none"
        return response
    if request.method == "POST":
        back = safe_next(_local_referrer(), "")
        if back:
            flash(message, "error")
            return redirect(back, code=303)
    response = make_response(render_template(
        "error.html", status=503, title=_("Un instant…"),
        message=_("Beaucoup de familles réservent en ce moment.") + " " + message), 503)
    response.headers["Retry-After"] = "2"
    return response


def _local_referrer() -> str | None:
    """The path of the page the form was posted from, when it is this site's."""
    from urllib.parse import urlsplit

    referrer = request.referrer
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.netloc and parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def busy_answer():
    """After the rollback: what the view declared (``on_busy``), else the generic answer.  A
    declared answer that is itself busy (it reads a locked row) gives the generic one."""
    declared = g.pop("on_busy", None)
    if declared is not None:
        answer, message = declared
        if isinstance(answer, str):
            flash(str(message or RETRY), "error")
            return redirect(answer, code=303)
        try:
            response = answer()
            end(commit=False)
            return response
        except HTTPException as exc:  # the answer is a redirect (what it did stands) or a 404
            end(commit=_is_answer(exc))
            raise
        except Exception as exc:
            if not is_lock_failure(exc):
                db.session.rollback()
                raise
            db.session.rollback()
    return generic_busy_answer()


def init_app(app: Flask) -> None:
    """Every view runs inside the boundary (call once the blueprints are registered); a lock
    failure outside a view (a request hook) answers the same."""
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = committing(view)

    @app.errorhandler(Busy)
    def busy(exc):
        _undo()
        return busy_answer()

    @app.errorhandler(OperationalError)
    def lock_failure(exc):
        if is_lock_failure(exc):
            _undo()
            return busy_answer()
        raise exc

    @app.after_request
    def _commit_reads(response):
        """What ran outside a view (an error page, a request hook) and only read ends with COMMIT."""
        session = db.session()
        if session.get_transaction() is not None and _only_read():
            try:
                session.commit()
            except Exception:  # noqa: BLE001 (the answer is ready: a failed COMMIT of reads changes nothing)
                session.rollback()
        return response

"""Row locks for what makes a place less available: lock, check, write, commit.

Rows are locked in a fixed order (by primary key) so that two transactions never
wait on each other in a cycle; PostgreSQL waits at most LOCK_TIMEOUT for a lock
and then raises, which the web layer turns into "Réessayez dans un instant".
SQLite (the newcomer's default) serialises writers on its own.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from extensions import db

LOCK_TIMEOUT = "5s"


class Busy(Exception):
    """A lock could not be taken in time: ask the user to retry in a moment."""


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def set_lock_timeout() -> None:
    """Once per transaction (SET LOCAL lasts until its end): one round trip, not one per lock."""
    if not is_postgres():
        return
    session = db.session()
    transaction = session.get_transaction()
    if transaction is not None and session.info.get("lock_timeout_set") is transaction:
        return
    db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    session.info["lock_timeout_set"] = session.get_transaction()


def lock(model, ids) -> dict:
    """SELECT ... FOR UPDATE the rows of `model` with these ids, in id order."""
    ids = sorted({int(i) for i in ids})
    if not ids:
        return {}
    set_lock_timeout()
    stmt = select(model).where(model.id.in_(ids)).order_by(model.id)
    if is_postgres():
        stmt = stmt.with_for_update()
    try:
        rows = db.session.scalars(stmt.execution_options(populate_existing=True)).all()
    except OperationalError as exc:
        if "lock" in str(exc).lower():
            db.session.rollback()
            raise Busy() from exc
        raise
    return {row.id: row for row in rows}


def lock_one(model, ident):
    return lock(model, [ident]).get(int(ident))

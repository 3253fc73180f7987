"""Row locks for what makes a place less available: lock, check, write, commit.

Rows are locked in a fixed order (by primary key) so that two transactions never
wait on each other in a cycle; PostgreSQL waits at most LOCK_TIMEOUT for a lock
and then raises, which the web layer turns into "Réessayez dans un instant".
SQLite (the newcomer's default) serialises writers on its own.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import Pool

from extensions import db

LOCK_TIMEOUT = "5s"

try:  # PostgreSQL's driver, whose errors reach callers of a bare cursor (core.billing.bulk) as they are
    from psycopg import OperationalError as _PsycopgOperationalError

    _DRIVER_OPERATIONAL: tuple = (_PsycopgOperationalError,)
except ImportError:  # pragma: no cover (SQLite alone)
    _DRIVER_OPERATIONAL = ()


class Busy(Exception):
    """A lock could not be taken in time: ask the user to retry in a moment."""


def is_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


@event.listens_for(Engine, "connect")
def _default_lock_timeout(dbapi_connection, connection_record) -> None:
    """Every PostgreSQL connection starts with LOCK_TIMEOUT: a lock never costs a round trip of its own."""
    if type(dbapi_connection).__module__.split(".")[0] not in ("psycopg", "psycopg2"):
        return
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    finally:
        dbapi_connection.autocommit = autocommit
    connection_record.info["lock_timeout"] = LOCK_TIMEOUT


IDLE_PING_SECONDS = 10


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, connection_record, _proxy) -> None:
    """A connection back from the pool after IDLE_PING_SECONDS is asked "SELECT 1" first; a dead
    one (the database restarted) is replaced before the request uses it.  Busy connections are
    not pinged: that was a round trip on every request."""
    if type(dbapi_connection).__module__.split(".")[0] not in ("psycopg", "psycopg2"):
        return  # SQLite: a file, nothing to lose
    now = time.monotonic()
    last = connection_record.info.get("checked_out_at")
    connection_record.info["checked_out_at"] = now
    if last is None or now - last < IDLE_PING_SECONDS:
        return
    try:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # no transaction to end (a ROLLBACK drops prepared statements)
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            dbapi_connection.autocommit = autocommit
    except Exception as exc:  # noqa: BLE001 (any failure: this connection is not to be used)
        raise DisconnectionError() from exc


def set_lock_timeout() -> None:
    """Connections start with LOCK_TIMEOUT; a different value (tests shorten it) is set once per
    transaction (SET LOCAL lasts until its end)."""
    if not is_postgres():
        return
    session = db.session()
    if session.connection().connection.info.get("lock_timeout") == LOCK_TIMEOUT:
        return
    transaction = session.get_transaction()
    if transaction is not None and session.info.get("lock_timeout_set") is transaction:
        return
    db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    session.info["lock_timeout_set"] = session.get_transaction()


def _held() -> set:
    """(model, id) of the rows this transaction already holds locked.

    Kept per innermost transaction: a savepoint rolled back releases what it locked (PostgreSQL),
    so a savepoint starts a memo of its own (rows locked outside it are merely locked again)."""
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:  # nothing begun: nothing locked
        return set()
    memo = session.info.get("row_locks")
    if memo is None or memo[0] is not transaction:
        memo = session.info["row_locks"] = (transaction, set())
    return memo[1]


@contextmanager
def busy_on_lock_timeout():
    """A lock not taken in time (or a deadlock) ends the transaction and raises Busy: "Réessayez
    dans un instant".  SQLAlchemy's error or the driver's own (a bare cursor)."""
    try:
        yield
    except (OperationalError, *_DRIVER_OPERATIONAL) as exc:
        if "lock" in str(exc).lower():
            db.session.rollback()
            raise Busy() from exc
        raise


def lock(model, ids, *options) -> dict:
    """SELECT ... FOR UPDATE the rows of `model` with these ids, in id order.

    Rows this transaction already locked are not read again: nobody else can have changed them.
    `options` (e.g. joinedload of a many-to-one) load along; only `model`'s rows are locked."""
    ids = sorted({int(i) for i in ids})
    if not ids:
        return {}
    held = _held()
    if all((model, i) in held for i in ids):
        rows = [db.session.identity_map.get(db.session.identity_key(model, i)) for i in ids]
        if all(row is not None for row in rows):
            return {row.id: row for row in rows}
    set_lock_timeout()
    stmt = select(model).where(model.id.in_(ids)).order_by(model.id).options(*options)
    if is_postgres():
        stmt = stmt.with_for_update(of=model)
    with busy_on_lock_timeout():
        rows = db.session.scalars(stmt.execution_options(populate_existing=True)).unique().all()
    mark_locked(model, [row.id for row in rows])  # the transaction may have begun with this read
    return {row.id: row for row in rows}


def lock_one(model, ident):
    return lock(model, [ident]).get(int(ident))


def is_locked(model, ident) -> bool:
    """Whether this transaction already holds the row of `model` with this id locked."""
    return (model, int(ident)) in _held()


def mark_locked(model, ids) -> None:
    """Rows of `model` this transaction locked along with another table's (one statement)."""
    _held().update((model, int(i)) for i in ids)

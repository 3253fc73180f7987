"""Row-level security: PostgreSQL itself keeps the communes apart, below the ORM guard.

Migration 0012_rls enables and forces row-level security on every table with a ``tenant_id``, with one
policy, for reading and writing alike::

    tenant_id = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::integer)

(a scalar subquery since 0013_rls_once: PostgreSQL reads the setting once per statement, an InitPlan,
instead of once per row it scans)

This module keeps that setting equal to the current commune (tenants/context.py):

* at the start of every transaction begun inside a commune's scope — a request, an RQ job, a CLI
  command — ``SET LOCAL app.tenant_id = '<id>'``: it ends with the transaction, so a pooled
  connection carries nothing to its next user.  It is an Engine "begin"
  event: the Session's transactions, the reservation core's fast path (core.fastsql runs on the
  session's connection) and the plain connections (waiting room, mail dispatch) alike.  It travels
  with the transaction's BEGIN (``BEGIN; SET LOCAL app.tenant_id = '<id>'``, one round trip instead of two:
  psycopg then finds the transaction begun and sends no BEGIN of its own). A request's first statement
  (the logged-in user, ``core.fastsql.rows_with_begin``) can travel in that round trip as well:
  ``EXECUTE`` of a statement prepared on the connection (``PREPARE`` sent with it the first time, and
  again after a ROLLBACK, on which psycopg deallocates every prepared statement);
* when the commune changes inside a transaction already begun (a request reads its commune by slug,
  then sets it; ``tenant_scope`` in a loop over communes), on the session's connection at once
  (``SELECT set_config('app.tenant_id', <id>, true)``, the same as ``SET LOCAL``, with a parameter).

Outside every commune nothing is set: a tenant table shows no row and refuses every write (fail
closed).  Code that works across communes loops over them in ``tenant_scope``.  The one opt-out is
``maintenance_session``: the owner's connection (``MIGRATION_DATABASE_URI``), explicit, logged.

The application's role must be neither a superuser nor BYPASSRLS (PostgreSQL lets those through
every policy); production refuses to start on such a role (``check_role``).  SQLite has no
row-level security: there the ORM guard (tenants/scoping.py) stands alone.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar

import psycopg
from flask import current_app, has_app_context
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from extensions import db
from tenants.context import on_change, unscoped

log = logging.getLogger(__name__)

SETTING = "app.tenant_id"
POLICY = "tenant_isolation"
# The policy's expression: '' (the setting once a transaction of this connection set it) is "none"
# read once per statement (a scalar subquery is an InitPlan), not once per row: migration 0013_rls_once
CURRENT = f"(SELECT NULLIF(current_setting('{SETTING}', true), '')::integer)"
_SET = f"SELECT set_config('{SETTING}', %s, true)"
_SET_LOCAL = f"SET LOCAL {SETTING} = "  # + the quoted id, with BEGIN: a utility statement, nothing to plan, no row back
_KEY = "portail_rls_tenant"      # connection.info: the commune this connection's transaction is set to
_STALE = object()                # a savepoint rolled back: the setting may have gone back


def _apply(conn, tenant_id) -> None:
    """Set the commune on this connection's transaction (straight through the driver, not a statement
    of the application's — the statement counts stay the application's own).

    A transaction not begun yet on the server begins with the setting in the same round trip
    (`BEGIN; SET LOCAL app.tenant_id = '<id>'` through psycopg's libpq connection, `Connection.pgconn`;
    the id is an integer, written by `int()`): psycopg
    then sees a transaction in progress and sends no BEGIN of its own, and commits it as usual."""
    driver = conn.connection.driver_connection
    status = driver.info.transaction_status
    if status == 3:  # INERROR: the transaction is lost anyway, nothing runs
        conn.info[_KEY] = _STALE
        return
    value = "" if tenant_id is None else str(int(tenant_id))
    if status == 0 and not driver.autocommit:  # IDLE: psycopg's BEGIN would have come first, on its own
        begin = _begin(driver) + f"'{value}'".encode()
        first = _with_begin.get()
        if first is not None and tenant_id is not None:
            _begin_with(conn, driver, begin, first)
        else:
            result = driver.pgconn.exec_(begin)
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise psycopg.OperationalError(driver.pgconn.get_error_message().decode(errors="replace"))
    else:
        driver.execute(_SET, (value,))
    conn.info[_KEY] = tenant_id


class WithBegin:
    """A statement sent in the round trip of the transaction's BEGIN (`core.fastsql.rows_with_begin`): the
    name of its server-side prepared statement, its `PREPARE` and `EXECUTE` texts (integers written by
    `int()`); `result` receives its libpq result."""

    __slots__ = ("name", "prepare", "execute", "result")

    def __init__(self, name: bytes, prepare: bytes, execute: bytes):
        self.name, self.prepare, self.execute, self.result = name, prepare, execute, None


_with_begin: ContextVar[WithBegin | None] = ContextVar("portail_with_begin", default=None)
_PREPARED = "portail_prepared"  # the DBAPI connection's info: names of our statements prepared on it
_GONE, _THERE = b"26000", b"42P05"  # invalid_sql_statement_name, duplicate_prepared_statement


@contextmanager
def sent_with_begin(first: WithBegin):
    """Inside: a transaction begun on a connection that is idle sends `first` in its BEGIN's round trip
    (one round trip instead of two); its result lands in `first.result` (None: the transaction had begun)."""
    token = _with_begin.set(first)
    try:
        yield first
    finally:
        _with_begin.reset(token)


def _begin_with(conn, driver, begin: bytes, first: WithBegin) -> None:
    """`BEGIN; SET LOCAL …; [PREPARE name AS …;] EXECUTE name(…)` in one message.  The prepared statement
    is the connection's (kept across transactions); a ROLLBACK makes psycopg deallocate every prepared
    statement, so one found gone (or found there when we thought it gone) is rolled back and sent again."""
    prepared = conn.info.setdefault(_PREPARED, set())  # the DBAPI connection's, across its checkouts
    for attempt in (1, 2):
        known = first.name in prepared
        result = driver.pgconn.exec_(begin + b"; " + (b"" if known else first.prepare + b"; ") + first.execute)
        if result.status == psycopg.pq.ExecStatus.TUPLES_OK:
            prepared.add(first.name)
            first.result = result
            return
        state = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
        if attempt == 1 and state in (_GONE, _THERE):
            driver.pgconn.exec_(b"ROLLBACK")
            (prepared.discard if state == _GONE else prepared.add)(first.name)
            continue
        raise psycopg.OperationalError(driver.pgconn.get_error_message().decode(errors="replace"))


@event.listens_for(Engine, "rollback")
def _on_rollback(conn) -> None:
    """psycopg deallocates every prepared statement of a connection it rolls back: ours are sent again."""
    if conn.dialect.name == "postgresql":
        conn.info.pop(_PREPARED, None)


_begins: dict[tuple, bytes] = {}  # (isolation level, read only, deferrable) -> its BEGIN; SET LOCAL …


def _begin(driver) -> bytes:
    """The BEGIN psycopg would send for this connection (its isolation level, read only, deferrable),
    followed by `SET LOCAL app.tenant_id = ` (the quoted id to add); kept per kind of transaction."""
    how = (driver.isolation_level, driver.read_only, driver.deferrable)
    text = _begins.get(how)
    if text is None:
        text = _begins[how] = f"{_begin_text(driver)}; {_SET_LOCAL}".encode()
    return text


def _begin_text(driver) -> str:
    parts = ["BEGIN"]
    if driver.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + psycopg.IsolationLevel(driver.isolation_level).name.replace("_", " "))
    if driver.read_only is not None:
        parts.append("READ ONLY" if driver.read_only else "READ WRITE")
    if driver.deferrable is not None:
        parts.append("DEFERRABLE" if driver.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


@event.listens_for(Engine, "begin")
def _on_begin(conn) -> None:
    if conn.dialect.name != "postgresql":
        return
    from tenants.context import current_tenant_id

    tenant_id = current_tenant_id()
    conn.info[_KEY] = None  # a new transaction: nothing set yet
    if tenant_id is not None:
        _apply(conn, tenant_id)


@event.listens_for(Engine, "rollback_savepoint")
def _on_rollback_savepoint(conn, name, context) -> None:
    if conn.dialect.name == "postgresql":
        conn.info[_KEY] = _STALE  # a set_config inside the savepoint is undone with it


def _session_connections(session):
    transaction = session.get_transaction()
    if transaction is None:
        return []
    return [entry[0] for entry in getattr(transaction, "_connections", {}).values()]


def _follow(session, tenant_id) -> None:
    for conn in _session_connections(session):
        if conn.dialect.name == "postgresql" and not conn.closed and conn.in_transaction() \
                and conn.info.get(_KEY, _STALE) != tenant_id:
            _apply(conn, tenant_id)


@on_change
def _commune_changed(tenant_id) -> None:
    """The commune changed: the transaction the session has begun (if any) follows at once."""
    if not has_app_context():
        return
    registry = db.session.registry
    if registry.has():
        _follow(registry(), tenant_id)


@event.listens_for(Session, "after_transaction_end")
def _after_savepoint(session, transaction) -> None:
    if not transaction.nested:
        return
    from tenants.context import current_tenant_id

    for conn in _session_connections(session):
        if conn.info.get(_KEY) is _STALE:
            _apply(conn, current_tenant_id())


# ---------------------------------------------------------------------------- the owner's connection

def maintenance_engine(app=None):
    """The engine on MIGRATION_DATABASE_URI (the tables' owner: migrations), or the application's
    own when none is configured (SQLite, development)."""
    app = app or current_app._get_current_object()
    url = app.config.get("MIGRATION_DATABASE_URI")
    if not url:
        return db.engine
    engine = app.extensions.get("portail_maintenance_engine")
    if engine is None:
        engine = app.extensions["portail_maintenance_engine"] = create_engine(url, pool_pre_ping=True)
    return engine


@contextmanager
def maintenance_session(reason: str):
    """The explicit, rare, audited opt-out: a Session on the owner's connection, the ORM guard lifted
    (``unscoped``), for work that must see every commune at once.  Row-level security is forced on
    the owner too: the owner sees every commune only when it may bypass it (the migrations' role:
    superuser or BYPASSRLS).  Every use is logged with its reason."""
    log.warning("session de maintenance (sécurité par ligne contournée) : %s", reason)
    with unscoped(), Session(maintenance_engine()) as session:
        yield session


def dispose(app) -> None:
    engine = app.extensions.pop("portail_maintenance_engine", None)
    if engine is not None:
        engine.dispose()


# ---------------------------------------------------------------------------- the application's role

class RoleBypassesRowSecurity(RuntimeError):
    """The application connects as a role that PostgreSQL lets through every policy."""


ROLE_CHECK = "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"


def check_role(dbapi_connection) -> None:
    """Refuse a role that bypasses row-level security (superuser, BYPASSRLS): the isolation would
    silently be the ORM guard's alone."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(ROLE_CHECK)
            user, bypass = cursor.fetchone()
    finally:
        dbapi_connection.autocommit = autocommit
    if bypass:
        raise RoleBypassesRowSecurity(
            f"Le rôle PostgreSQL « {user} » de l'application contourne la sécurité par ligne (superuser ou "
            "BYPASSRLS) : connectez l'application avec un rôle sans ces droits (DATABASE_URL) et gardez le "
            "propriétaire des tables pour les migrations (MIGRATION_DATABASE_URL)."
        )


def init_app(app) -> None:
    """With RLS_ROLE_CHECK (production; the PostgreSQL tests), every new connection of the application
    checks its role first: one that bypasses row-level security is never used (fail closed)."""
    if not app.config.get("RLS_ROLE_CHECK"):
        return
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _refuse_bypassing_role(dbapi_connection, _record) -> None:
        check_role(dbapi_connection)


# ---------------------------------------------------------------------------- setting the roles up

def ensure_app_role(admin_url, database_url, role: str, password: str) -> str:
    """The application's role (created if missing, idempotent: NOSUPERUSER NOBYPASSRLS), allowed to
    connect to the database of `database_url` (given as its owner) and to read and write the tables
    its owner creates (default privileges: before the migrations, or for tables created since; and
    the tables already there).  Returns the application's URL.  Used by the tests and `make bench`;
    production creates its roles once (README "Tenancy below the ORM")."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            try:
                conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            except (IntegrityError, ProgrammingError):  # already there (or created by a run beside this one)
                pass
            conn.exec_driver_sql(f"ALTER ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                                 f"PASSWORD '{password}'")
    finally:
        admin.dispose()
    url = make_url(database_url)
    owner = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with owner.connect() as conn:
            conn.exec_driver_sql(f'GRANT CONNECT, TEMPORARY ON DATABASE "{url.database}" TO {role}')
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {role}")
            conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
            conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
            conn.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                                 f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}")
            conn.exec_driver_sql(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}")
    finally:
        owner.dispose()
    return url.set(username=role, password=password).render_as_string(hide_password=False)

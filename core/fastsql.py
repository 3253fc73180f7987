"""The few statements every tick and every planning page send, through SQLAlchemy's public compiler.

A hot statement is written once, as a SQLAlchemy Core statement, and wrapped in `Hot`.  On
PostgreSQL it is compiled once per process (`ClauseElement.compile`), and once per number of values
of its `IN (…)` lists into the driver's SQL (`SQLCompiler.construct_expanded_state`: one
placeholder per value, as SQLAlchemy renders it, so PostgreSQL plans it as it always did).  Each
call then fills a dict of parameters and runs the text on the DBAPI cursor of the session's
connection (`Connection.connection`, SQLAlchemy's documented door to the driver), rows as
named tuples (read by column name: `row.slot_id`, `row._fields`).  What
`Connection.execute` and `exec_driver_sql` build around a statement each time — cache key,
parameter processing, an execution context and the result's metadata from the cursor's description,
~70 µs a statement, a tenth of a tick — is skipped; psycopg already returns dates, timestamps and
JSON as Python values, the rows are the same (tests/test_fastsql.py).

What the engine's users rely on stays: the engine's ``before_cursor_execute`` and
``after_cursor_execute`` listeners are told about each statement through the connection's event
dispatch (the tests count statements, web/transaction.py notes writes); a driver error is raised
as SQLAlchemy's (`DBAPIError.instance`: a lock timeout is an OperationalError, core/locking.py) and a
connection the driver lost is invalidated (`Connection.invalidate`), as `execute` would.

Elsewhere (SQLite) the statement runs through `Connection.execute` as any other.  Rows are read by
column name, never by position: every statement labels its columns.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial
from types import SimpleNamespace

import psycopg
from psycopg.adapt import Transformer
from sqlalchemy.dialects.postgresql import psycopg as _pg
from sqlalchemy.exc import DBAPIError

from extensions import db
from tenants import rls

_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_NUMERIC = _pg.dialect(paramstyle="numeric_dollar")
_names = iter(range(1, 1 << 62))


class Hot:
    """A module-level statement run by `rows` (never one built per call: its text is remembered)."""

    __slots__ = ("stmt", "_compiled", "_expanding", "_shapes", "_prepared")

    def __init__(self, stmt):
        self.stmt = stmt
        self._compiled = None
        self._expanding: dict[str, object] = {}  # compiled name of each IN (…) list: its bound value
        self._shapes: dict[tuple[int, ...], tuple] = {}
        self._prepared = None  # (name, PREPARE text, its parameters' names in order, the statement's text)

    def _server_side(self) -> tuple:
        """This statement as a server-side prepared statement of its own (`$1`, `$2`… placeholders,
        SQLAlchemy's numeric_dollar paramstyle), named once per process."""
        if self._prepared is None:
            compiled = self.stmt.compile(dialect=_NUMERIC)
            name = f"portail_{next(_names)}".encode()
            self._prepared = (name, b"PREPARE " + name + b" AS " + compiled.string.encode(),
                              tuple(compiled.positiontup), compiled.string)
        return self._prepared

    def _plan(self, dialect, params: dict) -> tuple:
        """(SQL text, {list name: its placeholders' names, in order}, default values, row factory) for these
        list lengths (a list given in the statement, e.g. `status.in_((…))`, keeps its values)."""
        if self._compiled is None:
            compiled = self.stmt.compile(dialect=dialect)
            self._expanding = {compiled.bind_names[bind]: bind.value for bind in compiled.binds.values()
                               if bind.expanding}
            self._compiled = compiled
        shape = tuple(len(params[name] if name in params else value) for name, value in self._expanding.items())
        plan = self._shapes.get(shape)
        if plan is None:
            state = self._compiled.construct_expanded_state(params)
            expansion = {name: list(state.parameter_expansion.get(name, ())) for name in self._expanding
                         if name in params}
            given = set(params).union(*expansion.values())
            defaults = {k: v for k, v in state.parameters.items() if k not in given}
            plan = self._shapes[shape] = (state.statement, expansion, defaults, _RowFactory())
        return plan


class _RowFactory:
    """psycopg's row factory for one statement text: its rows as named tuples, the class made from
    the first result's columns and kept (the same text, the same columns), where psycopg's
    `namedtuple_row` reads the cursor's description again for every execution."""

    __slots__ = ("make",)

    def __init__(self):
        self.make = None

    def __call__(self, cursor):
        if self.make is None:
            description = cursor.description
            if description is None:  # no rows (a write without RETURNING): nothing to keep
                return tuple
            self.make = _maker(tuple(column.name for column in description))
        return self.make


_makers: dict[tuple, object] = {}  # column names -> the maker of their named tuple


def _maker(names: tuple) -> object:
    make = _makers.get(names)
    if make is None:
        make = _makers[names] = partial(tuple.__new__, namedtuple("Row", names))
    return make


def _tell(listeners, conn, cursor, sql: str, args: dict, context) -> None:
    """The engine's cursor listeners (before or after) told about a statement run beside `execute`."""
    for listener in listeners:
        listener(conn, cursor, sql, args, context, False)


def rows(hot: Hot, params: dict) -> list:
    """The rows of a hot statement, in the session's transaction (attributes by column name)."""
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        result = conn.execute(hot.stmt, params)
        return result.all() if result.returns_rows else []
    sql, expansion, defaults, row_factory = hot._plan(conn.dialect, params)
    args = {**defaults, **params}
    for name, placeholders in expansion.items():
        for placeholder, value in zip(placeholders, args.pop(name), strict=True):
            args[placeholder] = value
    dispatch = conn.dispatch
    context = SimpleNamespace(statement=sql, parameters=args)  # for a listener keeping state on it
    driver = conn.connection.driver_connection
    with driver.cursor(row_factory=row_factory) as cursor:
        _tell(dispatch.before_cursor_execute, conn, cursor, sql, args, context)
        try:
            cursor.execute(sql, args)
            # rows only where the statement returned some (not `cursor.description`: it builds a Column
            # object per column on every read, 59 for a tick's lock)
            result = cursor.pgresult
            found = cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []
        except psycopg.Error as err:
            if driver.broken or driver.closed:
                conn.invalidate(err)
            raise DBAPIError.instance(sql, args, err, psycopg.Error, dialect=conn.dialect,
                                      connection_invalidated=driver.broken or driver.closed) from err
        _tell(dispatch.after_cursor_execute, conn, cursor, sql, args, context)
    return found


def rows_with_begin(hot: Hot, params: dict[str, int]) -> list:
    """`rows`, sent in the round trip of the transaction's BEGIN when the session's transaction has not
    begun on the server yet (a request's first statement: the logged-in user), as a server-side
    prepared statement (`PREPARE` once per connection, then `EXECUTE`; tenants/rls.py); otherwise, and
    on SQLite, `rows` itself.  Integer parameters only: they are written in the text by `int()`."""
    if db.session.get_bind().dialect.name != "postgresql":
        return rows(hot, params)
    name, prepare, order, sql = hot._server_side()
    args = {key: int(params[key]) for key in order}
    first = rls.WithBegin(name, prepare, b"EXECUTE " + name + b"(" + ", ".join(str(args[key]) for key in order).encode()
                          + b")")
    with rls.sent_with_begin(first):
        conn = db.session.connection()
    if first.result is None:  # the transaction had begun: as any other statement
        return rows(hot, params)
    dispatch = conn.dispatch  # the engine's listeners are told about it (the statement counts)
    context = SimpleNamespace(statement=sql, parameters=args)
    _tell(dispatch.before_cursor_execute, conn, None, sql, args, context)
    result = first.result
    loader = Transformer(conn.connection.driver_connection)
    loader.set_pgresult(result)
    found = loader.load_rows(0, result.ntuples, _maker(tuple(result.fname(i).decode() for i in range(result.nfields))))
    _tell(dispatch.after_cursor_execute, conn, None, sql, args, context)
    return found

"""The few statements every tick and every planning page send, run on PostgreSQL straight
through psycopg.

They are written once, as SQLAlchemy statements (the same text on SQLite, where SQLAlchemy runs
them); on PostgreSQL each is compiled once per process and per number of values of its `IN (…)`
lists into psycopg's own SQL (one placeholder per value, as SQLAlchemy renders it: PostgreSQL then
plans it as it did; an array parameter made it choose worse plans) and its rows are fetched as
tuples.  What
SQLAlchemy does around a statement (cache key, parameters, result metadata and row objects) cost
~170 µs of the ~230 µs the démarche's lock took (BENCHMARKS.md); psycopg already returns dates,
timestamps and JSON as Python values, the rows are the same.

The engine's cursor events are still told about each statement (the tests count statements, the
web layer notes writes), and a driver's OperationalError stays one (core/locking.py: lock timeouts).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

from extensions import db

_HOT: dict[int, object] = {}        # id(statement) -> statement: the registered, module-level ones
_COMPILED: dict[tuple, tuple[str, dict, tuple]] = {}
_IN = re.compile(r"IN \(__\[POSTCOMPILE_(\w+)\]\)")
_LITERAL = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
_EXPANDING: dict[int, tuple] = {}  # id(statement) -> (compiled, names of its IN (…) lists, their SQL types)


def hot(stmt):
    """Register a module-level statement for `rows` (compiled once: never a statement built per call)."""
    _HOT[id(stmt)] = stmt
    return stmt


def _compiled(stmt, dialect, params: dict) -> tuple[str, dict, tuple] | None:
    entry = _EXPANDING.get(id(stmt))
    if entry is None:
        compiled = stmt.compile(dialect=dialect)
        names = tuple(_IN.findall(str(compiled)))
        casts = {name: dialect.type_compiler_instance.process(compiled.binds[name].type) for name in names}
        entry = _EXPANDING[id(stmt)] = (compiled, names, casts)
    compiled, names, casts = entry
    values = {name: params[name] if name in params else compiled.params[name] for name in names}
    sizes = tuple(len(values[name]) for name in names)
    if 0 in sizes:  # an empty IN (…): as SQLAlchemy renders it
        return None
    key = (id(stmt), sizes)
    plan = _COMPILED.get(key)
    if plan is None:
        size = dict(zip(names, sizes, strict=True))
        sql = _IN.sub(lambda m: "IN (" + ", ".join(f"%({m[1]}__{k})s::{casts[m[1]]}" for k in range(size[m[1]]))
                      + ")", str(compiled))
        sql = _LITERAL.sub(r"%(\1)s", sql)
        defaults = {k: v for k, v in compiled.params.items() if v is not None and k not in size}
        plan = _COMPILED[key] = (sql, defaults, names)
    return plan


def rows(stmt, params: dict) -> list:
    """The rows of a registered statement (tuples), in the session's transaction."""
    conn = db.session.connection()
    plan = _compiled(stmt, conn.dialect, params) if conn.dialect.name == "postgresql" and id(stmt) in _HOT else None
    if plan is None:
        result = conn.execute(stmt, params)
        return result.all() if result.returns_rows else []
    sql, defaults, names = plan
    args = {**defaults, **params}
    for name in names:
        listed = args.pop(name) if name in args else _EXPANDING[id(stmt)][0].params[name]
        for k, value in enumerate(listed):
            args[f"{name}__{k}"] = value
    dispatch = conn.dispatch
    context = SimpleNamespace(statement=sql, parameters=args)  # for listeners that keep state on it
    for listener in dispatch.before_cursor_execute:
        listener(conn, None, sql, args, context, False)
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(sql, args)
        out = cursor.fetchall() if cursor.description is not None else []
    for listener in dispatch.after_cursor_execute:
        listener(conn, None, sql, args, context, False)
    return out

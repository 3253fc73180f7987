"""Writing many rows at once, in the session's transaction: a month's draft is ~70,000 lines.

On PostgreSQL the rows go in one statement, ``INSERT … SELECT * FROM unnest(<one array per column>)``
(psycopg adapts lists of Decimal, dates, booleans and None to arrays); elsewhere through one
executemany.  Not COPY: PostgreSQL refuses ``COPY FROM`` into a table under row-level security
(tenants/rls.py), whereas an INSERT goes through the policy's check like any other.  Rows are tuples
in the order of `columns` (no ORM object, no dict per row) and carry their tenant_id: like every Core
statement here, the commune is written explicitly.  One statement, seen by the statement counters
(tests/sql_count.py, the bench) like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Table, insert

from extensions import db


def insert_rows(table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        payload = [dict(zip(columns, row, strict=True)) for row in rows]
        if payload:
            conn.execute(insert(table), payload)
        return
    values = list(zip(*rows, strict=True))
    if not values:
        return
    arrays = ", ".join(f"%(c{k})s::{table.c[name].type.compile(dialect=conn.dialect)}[]"
                       for k, name in enumerate(columns))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
    conn.exec_driver_sql(sql, {f"c{k}": list(column) for k, column in enumerate(values)})

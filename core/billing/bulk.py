"""Writing many rows at once, in the session's transaction: a month's draft is ~70,000 lines.

On PostgreSQL the rows go through COPY (one statement, psycopg adapts Decimal, dates, booleans and
None); elsewhere through one executemany.  Rows are tuples in the order of `columns` (no ORM object,
no dict per row) and carry their tenant_id: like every Core statement here, the commune is written
explicitly.  The engine's cursor listeners are told about the COPY, so statement counters
(tests/sql_count.py, the bench) see it like any other statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import SimpleNamespace

from sqlalchemy import Table, insert

from extensions import db


def insert_rows(table: Table, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        payload = [dict(zip(columns, row, strict=True)) for row in rows]
        if payload:
            conn.execute(insert(table), payload)
        return
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    context = SimpleNamespace(statement=sql, parameters={})
    for listener in conn.dispatch.before_cursor_execute:
        listener(conn, None, sql, {}, context, False)
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
    for listener in conn.dispatch.after_cursor_execute:
        listener(conn, None, sql, {}, context, False)

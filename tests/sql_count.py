"""The SQL statements one request sends (performance guards: counts, never times)."""

from sqlalchemy import event

from extensions import db


def statements(app, fn) -> list[str]:
    """Run `fn` (a request expected to answer 200) and return the statements it sent."""
    seen = []

    def before(_conn, _cursor, statement, *_a, **_k):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        res = fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert res.status_code == 200
    return seen

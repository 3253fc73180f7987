"""What a tick costs the database: a constant, small number of statements (the opening morning's
hottest request; `make bench` measures its throughput, this keeps the count from creeping up)."""

import re
from datetime import timedelta

from extensions import db
from tests.conftest import days_from_today
from tests.sql_count import statements


def test_a_tick_costs_the_same_few_statements_however_full_the_family_planning(web, make_family, make_activity,
                                                                             inscribe, app, monkeypatch):
    act = make_activity("auray", starts_in=10, days=40)
    fam = make_family("auray", children=[("A", "2021-01-01"), ("B", "2021-02-01"), ("C", "2021-03-01")])
    inscribe(act, fam["child_ids"])
    web.login("auray", fam["email"])
    res = web.post(f"/auray/reservations/{act['id']}", {"enfants": [str(c) for c in fam["child_ids"]]})
    cart = int(re.search(r"/demarches/(\d+)/", res.headers["Location"]).group(1))
    kid = fam["child_ids"][0]

    def tick(slot, want=True):
        data = {"child": kid, "slot": slot, **({f"c-{kid}-{slot}": "1"} if want else {})}
        return lambda: web.post(f"/auray/demarches/{cart}/choix", data, headers={"HX-Request": "true"})

    # a Wednesday whose whole week lies inside the activity, whatever the day the tests run on
    start = days_from_today(10)
    monday = start + timedelta(days=(7 - start.weekday()) % 7)
    day = (monday + timedelta(days=2)).isoformat()
    # as in production, a worker sweeps abandoned holds (REDIS_URL set; nothing here reaches Redis):
    # without one, a tick also frees the expired holds of its slot (one statement more)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    web.get(f"/auray/demarches/{cart}/planning")  # the process now keeps the commune's activities
    first = statements(app, tick(act["slots"][("matin", day)]))
    # a busy démarche: every unit of the day and of two weeks around it already ticked for the three children
    for offset in range(-7, 14):
        d = (monday + timedelta(days=offset)).isoformat()
        for unit in ("matin", "repas", "apres_midi"):
            slot = act["slots"].get((unit, d))
            if slot is not None and (unit, d) != ("apres_midi", day):
                web.post(f"/auray/demarches/{cart}/planning", {
                    "shown": [f"{c}-{slot}" for c in fam["child_ids"]],
                    **{f"c-{c}-{slot}": "1" for c in fam["child_ids"]}})
    busy = statements(app, tick(act["slots"][("apres_midi", day)]))
    untick = statements(app, tick(act["slots"][("apres_midi", day)], want=False))
    week = web.get(f"/auray/demarches/{cart}/planning?vue=semaine&date={day}").get_data(as_text=True)
    assert week.count("cell--held") >= 3 * 3 * 4  # the busy setup took: three children, 3 units, most days
    # the commune (tests do not cache it), the user, then one statement locking the démarche (with its
    # items and the version of the commune's activities, kept by the process) and the slot (with the
    # child and its booking), then the writes: one statement on PostgreSQL, one per kind
    # (reservation, item, counter) on SQLite
    with app.app_context():
        limit = 4 if db.engine.dialect.name == "postgresql" else 6
    assert len(first) == len(busy) <= limit, busy
    assert len(untick) <= limit, untick  # whether anyone waits for the freed place came with the slot


def test_a_row_is_locked_once_per_transaction_and_again_after_a_savepoint(app, tenants, make_family):
    from sqlalchemy import event

    from core.locking import lock
    from core.models import Child
    from tenants.context import tenant_scope

    fam = make_family("auray", children=[("Lou", "2021-03-01")])
    kid = fam["child_ids"][0]
    reads = []

    def before(_conn, _cursor, statement, *_a, **_k):
        if "FROM child" in statement:
            reads.append(statement)

    with app.app_context(), tenant_scope(tenants["auray"]):
        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            first = lock(Child, [kid])[kid]
            assert lock(Child, [kid])[kid] is first  # same transaction: not read again
            assert len(reads) == 1
            with db.session.begin_nested():  # a savepoint may be rolled back: it locks again
                lock(Child, [kid])
            assert len(reads) == 2
            db.session.commit()
            lock(Child, [kid])  # a new transaction locks again
            assert len(reads) == 3
            db.session.rollback()
        finally:
            event.remove(engine, "before_cursor_execute", before)

"""Invoice numbers under 20 concurrent publications on a real PostgreSQL: gap-free and unique per
régie and year (the counter row is locked by each publishing transaction in turn)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from core import clock
from core.billing import runs
from core.billing.models import Invoice
from core.locking import Busy
from extensions import db
from tenants.context import tenant_scope
from tests.billing_helpers import TEST_BILLING, last_month
from tests.test_concurrency_pg import race_app  # noqa: F401  (fixture: a pool of real connections)

pytestmark = pytest.mark.postgres
RUNS = 20


def test_twenty_concurrent_publications_give_gap_free_unique_numbers(race_app, tenants, billing_settings,  # noqa: F811
                                                                     month_activity, make_family, inscribe, book):
    billing_settings("auray", dict(TEST_BILLING, tariffs=[dict(TEST_BILLING["tariffs"][0], activity=f"kids{n}")
                                                          for n in range(RUNS)]))
    first, _last = last_month()
    runs_ids = []
    for n in range(RUNS):  # twenty activities of the same régie, each with two families
        act = month_activity(code=f"kids{n}")
        families = [make_family("auray", children=[("Lou", "2022-01-01")]) for _ in range(2)]
        for fam in families:
            inscribe(act, fam["child_ids"])
            book(act, fam["child_ids"][0], [("matin", first)])
        with race_app.app_context(), tenant_scope(tenants["auray"]):
            run = runs.create_run(first, [act["id"]], actor="Agent")
            runs.compute(run.id, actor="Agent")
            runs_ids.append(run.id)
            db.session.commit()
            db.session.remove()
    barrier = threading.Barrier(RUNS)
    errors = []

    def publish(run_id):
        with race_app.app_context(), tenant_scope(tenants["auray"]):
            barrier.wait()
            for _attempt in range(50):
                try:
                    runs.publish(run_id, actor="Agent")
                    db.session.commit()
                    break
                except Busy:
                    db.session.rollback()
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
                    db.session.rollback()
                    break
            db.session.remove()

    threads = [threading.Thread(target=publish, args=(rid,)) for rid in runs_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with race_app.app_context(), tenant_scope(tenants["auray"]):
        numbers = sorted(db.session.scalars(select(Invoice.sequence)))
        names = set(db.session.scalars(select(Invoice.number)))
        db.session.remove()
    assert numbers == list(range(1, 2 * RUNS + 1))
    year = clock.today().year
    assert names == {f"F-{year}-{n:06d}" for n in range(1, 2 * RUNS + 1)}



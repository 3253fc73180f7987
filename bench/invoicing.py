"""`make bench`'s invoicing line (`BENCH_ONLY=invoicing make bench` runs it alone): an invoicing
run over one month of 2,000 families (the bench's communes, ~60,000 lines), in process on
PostgreSQL — time, statements (total and per family, which must not grow with the families),
peak resident memory — and the time of one invoice's PDF.

Data: bench/data.py's families and children, and one month of périscolaire booked every weekday
(one unit per child), written with COPY; tariffs for the bench's activity; the clock moved past
that month (time-machine) so the run bills a month that is over.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARIFFS = {"regie": {"code": "bench", "name": "Régie bench", "prefix": "B", "unjustified_absence_pct": 50},
           "tariffs": [{"activity": "periscolaire", "unit": u, "label": u.title(), "valid_from": "2000-01-01",
                        "sibling_reduction_pct": [0, 10], "brackets": [
                            {"min": 0, "max": 500, "price": "1.10"}, {"min": 500, "max": 1000, "price": "1.90"},
                            {"min": 1000, "price": "2.70"}]} for u in ("matin", "soir")]}


def say(msg: str) -> None:
    print(f"[bench invoicing {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    import time_machine
    from sqlalchemy import create_engine, event, select, text
    from sqlalchemy.engine import make_url

    name = f"portail_bench_inv_{secrets.token_hex(4)}"
    redis_url = ""
    admin = make_url(PG_ADMIN)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        from flask_migrate import upgrade

        from app import create_app
        from bench.data import build
        from extensions import db

        redis_url = f"{os.environ.get('BENCH_REDIS', 'redis://127.0.0.1:6379')}/{os.environ.get('BENCH_REDIS_DB', '14')}"
        # mails are queued on RQ after the publishing commit, as in production (never sent here)
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, REDIS_URL=redis_url)
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        t = time.monotonic()
        data = build(app)
        say(f"données : {data['counts']} en {time.monotonic() - t:.0f} s")
        with app.app_context():
            month = _fill_month(db, data)
            db.engine.dispose()
        # the month is over: the clock is moved to the 3rd of the next month
        with time_machine.travel(date(month.year + (month.month == 12), month.month % 12 + 1, 3), tick=True):
            _measure(app, db, data, month, event, select)
    finally:
        try:
            from redis import Redis

            Redis.from_url(redis_url).flushdb()
        except Exception:  # noqa: BLE001
            pass
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    return 0


def _fill_month(db, data) -> date:
    """Every child books its unit every weekday of the first full month of the season (COPY)."""
    from sqlalchemy import text

    from bench.data import _copy
    from tenants.context import tenant_scope
    from tenants.models import Tenant

    conn = db.session.connection()
    first_day = min(date.fromisoformat(d) for c in data["communes"].values() for d in c["periscolaire_days"])
    month = (first_day.replace(day=1) + timedelta(days=32)).replace(day=1)
    end = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    rows = conn.execute(text(
        "SELECT c.id, c.tenant_id, c.family_id, s.id, s.activity_id FROM child c "
        "JOIN activity a ON a.tenant_id = c.tenant_id AND a.code = 'periscolaire' "
        "JOIN slot s ON s.activity_id = a.id AND s.day BETWEEN :first AND :last "
        "AND s.time_slot = CASE WHEN c.id % 2 = 0 THEN 'matin' ELSE 'soir' END "
        "WHERE NOT EXISTS (SELECT 1 FROM reservation r WHERE r.child_id = c.id AND r.slot_id = s.id)"),
        {"first": month, "last": end}).all()
    start = conn.execute(text("SELECT coalesce(max(id), 0) FROM reservation")).scalar()
    _copy(conn, "reservation", ["id", "tenant_id", "child_id", "slot_id", "activity_id", "family_id", "status",
                                "created_at", "updated_at"],
          [(start + i + 1, t, c, s, a, f, "reserved", "2026-01-01", "2026-01-01")
           for i, (c, t, f, s, a) in enumerate(rows)])
    conn.execute(text("SELECT setval(pg_get_serial_sequence('reservation', 'id'), (SELECT max(id) FROM reservation))"))
    # a QF for two families in three
    conn.execute(text("INSERT INTO billing_quotient (tenant_id, family_id, value, source, valid_from, recorded_at, "
                      "recorded_by) SELECT tenant_id, id, (id * 37) % 1800, 'caf', :first, now(), 'bench' "
                      "FROM family WHERE id % 3 <> 0"), {"first": month})
    for tenant in db.session.scalars(text("SELECT id FROM tenant")).all():
        with tenant_scope(tenant):
            row = db.session.get(Tenant, tenant)
            row.settings = {**(row.settings or {}), "billing": TARIFFS}
    db.session.commit()
    db.session.connection().execute(text("ANALYZE"))
    db.session.commit()
    return month


class PeakRSS:
    """The process's resident memory sampled every 5 ms from /proc (no tracemalloc: it slows every
    allocation, and the times measured around it).  `growth` is the peak above the start."""

    def __init__(self):
        import threading

        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return self.peak - self.start


def _measure(app, db, data, month, event, select) -> None:
    from sqlalchemy import text

    from core.billing import runs
    from core.billing.models import Invoice
    from tenants.context import tenant_scope

    counted = []
    with app.app_context():
        engine = db.engine

        def count(*_a, **_k):
            counted.append(1)

        event.listen(engine, "before_cursor_execute", count)
        totals = {"families": 0, "lines": 0, "draft_s": 0.0, "publish_s": 0.0, "draft_stmts": 0, "publish_stmts": 0,
                  "mails": 0}
        memory = PeakRSS()
        for slug, commune in sorted(data["communes"].items()):
            with tenant_scope(commune["tenant_id"]):
                activity = commune["activities"]["periscolaire"]
                counted.clear()
                t = time.perf_counter()
                run = runs.create_run(month, [activity], actor="bench")
                runs.compute(run.id, actor="bench")
                db.session.commit()
                totals["draft_s"] += time.perf_counter() - t
                totals["draft_stmts"] += len(counted)
                totals["families"] += run.families
                totals["lines"] += db.session.execute(
                    text("SELECT count(*) FROM billing_draft_line WHERE run_id = :r"),
                    {"r": run.id}).scalar()
                counted.clear()
                t = time.perf_counter()
                runs.publish(run.id, actor="bench")
                db.session.commit()   # (its mails handed to RQ after the commit: measured with it)
                totals["publish_s"] += time.perf_counter() - t
                totals["publish_stmts"] += len(counted)
                totals["mails"] += db.session.execute(text(
                    "SELECT count(*) FROM outbox_mail WHERE template = 'invoice_available' AND status = 'queued' "
                    "AND tenant_id = :t"), {"t": commune["tenant_id"]}).scalar()
                say(f"{slug}: {run.families} familles")
        growth = memory.stop()
        event.remove(engine, "before_cursor_execute", count)
        # one invoice's PDF (the biggest of the month)
        slug, commune = sorted(data["communes"].items())[0]
        with tenant_scope(commune["tenant_id"]), app.test_request_context(f"/{slug}/"):
            from flask import g

            from blueprints.billing.routes import invoice_document
            from tenants.models import Tenant

            g.tenant = db.session.get(Tenant, commune["tenant_id"])
            invoice = db.session.scalars(select(Invoice).order_by(Invoice.total.desc()).limit(1)).one()
            first_pdf = time.perf_counter()
            invoice_document(invoice)  # the first one of the process (fonts loaded)
            first_pdf = time.perf_counter() - first_pdf
            times = []
            for _ in range(3):
                t = time.perf_counter()
                pdf = invoice_document(invoice)
                times.append(time.perf_counter() - t)
            pdf_s = sorted(times)[1]
            pdf_lines = len(invoice.lines)
    fams = max(1, totals["families"])
    print()
    print(f"INVOICING families {totals['families']} lines {totals['lines']}")
    print(f"INVOICING draft {totals['draft_s']:.2f} s ({totals['draft_stmts']} statements, "
          f"{totals['draft_stmts'] / fams:.3f} per family, {1e6 * totals['draft_s'] / max(1, totals['lines']):.0f} µs "
          f"per line)")
    print(f"INVOICING publish {totals['publish_s']:.2f} s ({totals['publish_stmts']} statements, "
          f"{totals['publish_stmts'] / fams:.3f} per family; {totals['mails']} mails queued on RQ)")
    print(f"INVOICING peak memory +{growth / 1e6:.0f} MB (resident, above the process before the runs)")
    print(f"INVOICING pdf {pdf_s * 1000:.0f} ms ({pdf_lines} lines, {len(pdf) // 1024} KiB; median of 3; the "
          f"process's first {first_pdf * 1000:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())

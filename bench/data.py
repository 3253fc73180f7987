"""Demo-scale data for `make bench`, fast: the three communes, ~2,000 families, ~2,600
parents, 3,000 children and a full season of bookings, written with COPY.

Activities go through core.activity_config.upsert_activity (dates relative to today, so
the bench books real future places whatever the day it runs):
* "periscolaire" (units Matin / Soir, a school year of weekdays, ~240k existing bookings)
* "klub" (sessions over the holidays)
* "rush" (the opening morning: 5 sessions x 20 places per commune = 300 places in all)

Parents' passwords use a cheaper scrypt (n=2^10) than production (werkzeug's n=2^15,
~0.27 s of CPU here): 2,500 logins at production cost would need ~11 CPU-minutes on this
2-core machine.  BENCHMARKS.md says so; the bench also measures a production-cost login.
"""

from __future__ import annotations

import io
import random
from datetime import date, timedelta

from sqlalchemy import select, text

BENCH_PASSWORD = "Bench-Portail-2026"
CHEAP_HASH_METHOD = "scrypt:1024:8:1"
FAMILIES = 2000
CHILDREN = 3000
SECOND_PARENT_SHARE = 0.34
RUSH_SESSIONS = 5
RUSH_PLACES = 20


def activity_specs(today: date) -> list[dict]:
    start = today + timedelta(days=7)
    season_end = start + timedelta(days=300)
    rush_day = today + timedelta(days=21)
    deadline = {"kind": "days_before", "days": 2, "time": "12:00"}
    return [
        {"code": "periscolaire", "name": "Accueil périscolaire", "kind": "units", "season": "bench",
         "starts_on": start, "ends_on": season_end, "validation": "immediate", "booking_deadline": deadline,
         "calendar": {"weekdays": [0, 1, 2, 3, 4], "public_holidays": "closed"},
         "units": [{"code": "matin", "label": "Matin", "capacity": 600},
                   {"code": "soir", "label": "Soir", "capacity": 600}], "position": 1},
        {"code": "klub", "name": "Activités Klub", "kind": "sessions", "season": "bench", "ages": [3, 12],
         "starts_on": start, "ends_on": season_end, "validation": "commune", "online_quota_pct": 50,
         "one_per_time_slot": True, "booking_deadline": deadline, "position": 2,
         "sessions": [{"date": start + timedelta(days=d), "title": title, "time_slot": slot, "places": places}
                      for d in range(0, 120, 7)
                      for title, slot, places in (("Multisports", "matin", 16), ("Danse", "matin", 10),
                                                  ("Grands jeux", "apres_midi", 40))]},
        {"code": "rush", "name": "Stages des vacances", "kind": "sessions", "season": "bench", "ages": [3, 12],
         "starts_on": rush_day, "ends_on": rush_day + timedelta(days=6), "validation": "commune",
         "booking_deadline": deadline, "position": 0,
         "sessions": [{"date": rush_day + timedelta(days=i), "title": f"Stage {i + 1}", "time_slot": "journee",
                       "places": RUSH_PLACES} for i in range(RUSH_SESSIONS)]},
    ]


def _copy(conn, table: str, columns: list[str], rows) -> None:
    """COPY rows into table (psycopg 3, through SQLAlchemy's raw connection)."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def build(app, seed: int = 2026) -> dict:
    """Fill the (migrated, empty) database of `app`.  Returns what the load needs."""
    from werkzeug.security import generate_password_hash

    from cli import sync_tenants
    from core.activity_config import upsert_activity
    from core.clock import utcnow
    from core.models import Activity, Slot
    from extensions import db
    from tenants.context import tenant_scope
    from tenants.models import Tenant

    rnd = random.Random(seed)
    today = date.today()
    pw_hash = generate_password_hash(BENCH_PASSWORD, method=CHEAP_HASH_METHOD)
    now = utcnow()
    out: dict = {"communes": {}}
    with app.app_context():
        sync_tenants()
        tenants = db.session.scalars(select(Tenant).order_by(Tenant.slug)).all()
        for tenant in tenants:
            with tenant_scope(tenant.id):
                acts = {spec["code"]: upsert_activity(spec, zone=tenant.setting("zone_vacances", default="A"))
                        for spec in activity_specs(today)}
                db.session.commit()
                out["communes"][tenant.slug] = {"tenant_id": tenant.id,
                                                "activities": {code: a.id for code, a in acts.items()}}
        conn = db.session.connection()
        fam_rows, child_rows, user_rows, ins_rows = [], [], [], []
        fam_id = child_id = user_id = ins_id = 0
        per_tenant = FAMILIES // len(tenants)
        children_left = CHILDREN
        for t_index, tenant in enumerate(tenants):
            acts = out["communes"][tenant.slug]["activities"]
            out["communes"][tenant.slug]["parents"] = []
            n_fam = per_tenant if t_index < len(tenants) - 1 else FAMILIES - per_tenant * (len(tenants) - 1)
            for _f in range(n_fam):
                fam_id += 1
                name = f"FAMILLE{fam_id:05d}"
                fam_rows.append((fam_id, tenant.id, name, f"B{fam_id:07d}", now))
                remaining_fams = FAMILIES - fam_id + 1
                n_kids = 1 if children_left <= remaining_fams else (2 if rnd.random() < 0.5 else 1)
                n_kids = min(n_kids, max(1, children_left - (remaining_fams - 1)))
                kids = []
                for _k in range(n_kids):
                    child_id += 1
                    children_left -= 1
                    born = today - timedelta(days=rnd.randint(4 * 365, 11 * 365))
                    child_rows.append((child_id, tenant.id, fam_id, f"Enfant{child_id}", name.title(), born))
                    kids.append(child_id)
                    for act_id in acts.values():
                        ins_id += 1
                        ins_rows.append((ins_id, tenant.id, child_id, act_id, "accepted", now, now))
                for _p in range(2 if rnd.random() < SECOND_PARENT_SHARE else 1):
                    user_id += 1
                    email = f"parent{user_id}@{tenant.slug}.test"
                    user_rows.append((user_id, tenant.id, email, "Parent", name.title(), pw_hash, "parent", fam_id,
                                      now, False, now, "fr", now))
                    out["communes"][tenant.slug]["parents"].append({"email": email, "children": kids})
        _copy(conn, "family", ["id", "tenant_id", "name", "code", "created_at"], fam_rows)
        _copy(conn, "child", ["id", "tenant_id", "family_id", "first_name", "last_name", "birth_date"], child_rows)
        _copy(conn, "user_account", ["id", "tenant_id", "email", "first_name", "last_name", "password_hash", "role",
                                     "family_id", "activated_at", "must_change_password", "cgu_accepted_at", "locale",
                                     "created_at"], user_rows)
        _copy(conn, "inscription", ["id", "tenant_id", "child_id", "activity_id", "status", "created_at",
                                    "decided_at"], ins_rows)
        # A season of périscolaire already booked: each child two weekdays a week, one unit.
        res_rows, taken = [], {}
        res_id = 0
        child_tenant = {c[0]: c[1] for c in child_rows}
        child_family = {c[0]: c[2] for c in child_rows}
        for tenant in tenants:
            peri = out["communes"][tenant.slug]["activities"]["periscolaire"]
            with tenant_scope(tenant.id):
                slots = db.session.execute(select(Slot.id, Slot.day, Slot.time_slot)
                                           .where(Slot.activity_id == peri)).all()
            by_key = {(s.day, s.time_slot): s.id for s in slots}
            out["communes"][tenant.slug]["periscolaire_days"] = sorted({s.day.isoformat() for s in slots})
            kids = [c for c, t in child_tenant.items() if t == tenant.id]
            for kid in kids:
                weekdays = rnd.sample(range(5), 2)
                unit = rnd.choice(("matin", "soir"))
                for day in {s.day for s in slots}:
                    if day.weekday() in weekdays and (day, unit) in by_key:
                        slot_id = by_key[(day, unit)]
                        res_id += 1
                        res_rows.append((res_id, tenant.id, kid, slot_id, peri, child_family[kid], "reserved", now, now))
                        taken[slot_id] = taken.get(slot_id, 0) + 1
        _copy(conn, "reservation", ["id", "tenant_id", "child_id", "slot_id", "activity_id", "family_id", "status",
                                    "created_at", "updated_at"], res_rows)
        buf = io.StringIO()
        for slot_id, n in taken.items():
            buf.write(f"{slot_id}\t{n}\n")
        conn.execute(text("CREATE TEMP TABLE bench_taken (slot_id int, n int)"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy("COPY bench_taken (slot_id, n) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        conn.execute(text("UPDATE slot SET taken = bench_taken.n FROM bench_taken WHERE slot.id = bench_taken.slot_id"))
        for table in ("family", "child", "user_account", "inscription", "reservation"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        db.session.commit()
        conn = db.session.connection()
        conn.execute(text("ANALYZE"))
        db.session.commit()
        with tenant_scope(tenants[0].id):
            assert db.session.scalar(select(Activity.id).where(Activity.code == "rush"))
        out["counts"] = {"families": len(fam_rows), "parents": len(user_rows), "children": len(child_rows),
                         "reservations": len(res_rows)}
    return out

"""In-process cost of the two measured requests (`python bench/inprocess.py`).

Builds the bench's data in a PostgreSQL database of its own (dropped at the end), logs one parent in through Flask's test client, then times N
plannings, N ticks and N empty authenticated answers (the floor) in this process, and counts
the SQL statements of each, with the median and the minimum of batches of 50 (the least noisy
figures).  With PROFILE_CPROFILE=planning|toggle it prints the cProfile top (PROFILE_CPU=1: CPU time,
PROFILE_DUMP=file: the stats kept), PROFILE_RENDER=1 the CPU of render_template, PROFILE_SQL=1 each
statement's time, PROFILE_OWNER=1 runs as the database's owner (no row-level security),
PROFILE_DOWNGRADE=<revision> takes the schema back to that migration first (e.g. 0012_rls: the
policies as they were before 0013_rls_once).

Not part of `make bench` (which measures throughput against the baseline): a developer's lens
on where the milliseconds of one request go.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import secrets
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
N = int(os.environ.get("PROFILE_N", "300"))


def main() -> int:
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN)
    name = f"portail_prof_{secrets.token_hex(3)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    os.environ.update({"PORTAIL_CONFIG": "production", "DATABASE_URL": url,
                       "REDIS_URL": os.environ.get("PROFILE_REDIS", "redis://127.0.0.1:6379/13"),
                       "SECRET_KEY": "profile", "SESSION_COOKIE_SECURE": "0", "MAIL_BACKEND": "file"})
    from flask_migrate import upgrade

    from app import create_app
    from bench.data import BENCH_PASSWORD, build
    from extensions import db
    from tenants.rls import ensure_app_role

    app_url = ensure_app_role(admin, url, "portail_app", "portail-app-bench")
    app = create_app("production", RLS_ROLE_CHECK=False)  # the owner: migrates and COPYs the data
    try:
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            if os.environ.get("PROFILE_DOWNGRADE"):  # e.g. 0012_rls: the schema as it was at that revision
                from flask_migrate import downgrade

                downgrade(directory=str(ROOT / "migrations"), revision=os.environ["PROFILE_DOWNGRADE"])
        data = build(app)
        with app.app_context():
            db.engine.dispose()
        # the portal's role, under row-level security (PROFILE_OWNER=1: the owner, whom no policy stops:
        # what row-level security costs PostgreSQL)
        owner = bool(os.environ.get("PROFILE_OWNER"))
        app = create_app("production", SQLALCHEMY_DATABASE_URI=url if owner else app_url, RLS_ROLE_CHECK=not owner)
        from core.models import ROLE_PARENT
        from tenants.web import role_required

        @role_required(ROLE_PARENT)
        def floor_view(**_kwargs):  # the floor of bench/floor.py, in this process
            return "<span>ok</span>"

        app.add_url_rule("/<tenant>/bench-floor", "bench_floor", floor_view, methods=["GET", "POST"])
        slug, info = next(iter(data["communes"].items()))
        parent = info["parents"][-1]
        app.config["PREFERRED_URL_SCHEME"] = "http"  # the test client's scheme: plain HTTP as under gunicorn here
        client = app.test_client()
        page = client.get(f"/{slug}/connexion")
        assert page.status_code == 200, (page.status_code, page.text[-2000:])
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        res = client.post(f"/{slug}/connexion", data={"csrf_token": token, "email": parent["email"],
                                                       "password": BENCH_PASSWORD})
        assert res.status_code == 302, (res.status_code, res.text[:3000])
        act = info["activities"]["periscolaire"]
        page = client.get(f"/{slug}/reservations/{act}")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        res = client.post(f"/{slug}/reservations/{act}", data={"csrf_token": token,
                                                               "enfants": [parent["children"][0]]})
        cart_path = res.location.split("/planning")[0]
        anchor = (date.today() + timedelta(days=21)).isoformat()
        planning = f"{cart_path}/planning?activite={act}&vue=mois&date={anchor}"
        page = client.get(planning)
        free = [(c, s) for c, s, rest in re.findall(r'<input type="checkbox" id="c-(\d+)-(\d+)"([^>]*)>', page.text)
                if "disabled" not in rest and "checked" not in rest]
        child, slot = free[0]
        print(f"planning page: {len(page.data)} bytes")
        if os.environ.get("PROFILE_PAGE"):
            Path(os.environ["PROFILE_PAGE"]).write_bytes(page.data)
        csrf = re.search(r'"X-CSRFToken": *"([^"]+)"', page.text) or re.search(
            r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        headers = {"X-CSRFToken": csrf.group(1), "HX-Request": "true"}
        on = {"child": child, "slot": slot, f"c-{child}-{slot}": "1"}
        off = {"child": child, "slot": slot}

        statements = [0]

        with app.app_context():
            portal_engine = db.engine

        timings: dict[str, list] = {}

        @event.listens_for(portal_engine, "before_cursor_execute")
        def count(conn, cursor, statement, *_a):
            statements[0] += 1
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(portal_engine, "after_cursor_execute")
        def timed(conn, cursor, statement, *_a):
            key = " ".join(statement.split())[:70]
            timings.setdefault(key, []).append(time.perf_counter() - conn.info.pop("t0", time.perf_counter()))

        render_cpu = [0.0]
        if os.environ.get("PROFILE_RENDER"):  # CPU spent in render_template (Jinja and what the template calls)
            import flask.templating as ft

            original = ft._render

            def timed_render(*args, **kwargs):
                t0 = time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    render_cpu[0] += time.process_time() - t0

            ft._render = timed_render

        flip = [0]

        def tick():
            flip[0] ^= 1
            r = client.post(f"{cart_path}/choix", data=on if flip[0] else off, headers=headers)
            assert r.status_code == 200, r.status_code

        def plan():
            r = client.get(planning)
            assert r.status_code == 200, r.status_code

        def floor_get():
            r = client.get(f"/{slug}/bench-floor")
            assert r.status_code == 200, r.status_code

        def floor_post():
            r = client.post(f"/{slug}/bench-floor", data={"x": "1"}, headers=headers)
            assert r.status_code == 200, r.status_code

        if os.environ.get("PROFILE_GC"):  # e.g. "freeze,10000": what the garbage collector's settings cost
            import gc

            for part in os.environ["PROFILE_GC"].split(","):
                if part == "freeze":
                    gc.freeze()
                elif part.isdigit():
                    gc.set_threshold(int(part), *gc.get_threshold()[1:])
        which = os.environ.get("PROFILE_CPROFILE")
        for label, fn in (("floor GET", floor_get), ("floor POST", floor_post), ("planning", plan),
                          ("toggle", tick)):
            for _ in range(30):
                fn()
            statements[0] = 0
            render_cpu[0] = 0.0
            timings.clear()
            from bench.run import cpu_by_group

            pg = cpu_by_group({})["postgres"]
            wall, cpu = time.perf_counter(), time.process_time()
            profiler = None
            if which and which == label:  # PROFILE_CPU=1: the process's CPU time, not the wall clock
                profiler = cProfile.Profile(time.process_time) if os.environ.get("PROFILE_CPU") else cProfile.Profile()
            if profiler:
                profiler.enable()
            batches = []  # CPU per request of each batch of 50 (their minimum: the least noisy figure)
            for i in range(N):
                if i % 50 == 0:
                    batch = time.process_time()
                fn()
                if i % 50 == 49:
                    batches.append((time.process_time() - batch) / 50)
            if profiler:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            pg = cpu_by_group({})["postgres"] - pg
            print(f"{label:<12} {1000 * wall / N:6.2f} ms wall  {1000 * cpu / N:6.2f} ms CPU  "
                  f"{1000 * pg / N:5.2f} ms PostgreSQL  {statements[0] / N:5.1f} statements"
                  + (f"  (batches of 50: min {1000 * min(batches):.2f}, median {1000 * sorted(batches)[len(batches) // 2]:.2f} ms CPU)"
                     if batches else ""))
            if os.environ.get("PROFILE_RENDER"):
                print(f"    render_template: {1000 * render_cpu[0] / N:5.2f} ms CPU")
            if os.environ.get("PROFILE_SQL"):  # wall time of each statement (the driver's send and wait)
                for key, times in sorted(timings.items(), key=lambda kv: -sum(kv[1])):
                    print(f"    {1000 * sum(times) / N:6.3f} ms/request  {len(times) / N:4.1f}×  {key}")
            timings.clear()
            if profiler:
                stats = pstats.Stats(profiler)
                if os.environ.get("PROFILE_DUMP"):
                    stats.dump_stats(os.environ["PROFILE_DUMP"])
                stats.sort_stats("cumulative").print_stats(45)
                stats.sort_stats("tottime").print_stats(25)
    finally:
        with app.app_context():
            db.engine.dispose()
        if os.environ.get("PROFILE_KEEP") == "1":  # to look at the data afterwards (psql), then drop it
            print(f"database kept: {name}")
        else:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

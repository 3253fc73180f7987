"""`make bench`: the portal against a bare-Flask baseline, then the opening morning.

One run, on this machine, loopback only, bounded in time, cleaned up at the end:
 1. a PostgreSQL database of its own (demo scale, bench/data.py) and Redis DB $BENCH_REDIS_DB;
 2. the portal under gunicorn (sync workers, PORTAIL_CONFIG=production) and the baseline
    (bench/baseline.py) beside it, same worker count;
 3. wrk (a separate process) on each endpoint for $BENCH_SECONDS s, ours and the baseline in turn,
    $BENCH_ROUNDS times (the load of a shared machine drifts), each connection with a
    logged-in parent of its own (sessions made beforehand by a Python client);
 4. the opening morning: $BENCH_PARENTS parents over 60 s for 300 places, waiting room on;
 5. a table and the lines RATIO toggle|planning, OVERBOOKED, ERRORS, FAIRNESS.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.client import Browser, csrf_of, login  # noqa: E402
from bench.data import BENCH_PASSWORD, build  # noqa: E402
from bench.scenario import Parent, run, spearman  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
REDIS_BASE = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))  # per wrk run; each pair is run ROUNDS times, interleaved
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "4"))
PARENTS = int(os.environ.get("BENCH_PARENTS", "2500"))
ARRIVAL_SECONDS = int(os.environ.get("BENCH_ARRIVAL_SECONDS", "60"))
SCENARIO_LIMIT = int(os.environ.get("BENCH_SCENARIO_LIMIT", "300"))
ROOM_SIZE = int(os.environ.get("BENCH_ROOM_SIZE", "20"))  # concurrent bookers per commune
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
FLOOR = os.environ.get("BENCH_FLOOR") == "1"  # also measure the stack alone (bench/floor.py)
ONLY = os.environ.get("BENCH_ONLY", "")  # "planning" or "toggle": that pair alone; "invoicing": the invoicing run alone
TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_group(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each process group (gunicorn's master and workers) and by all
    PostgreSQL processes, from /proc."""
    out = {name: 0.0 for name in (*groups, "postgres")}
    by_pgid = {pgid: name for name, pgid in groups.items()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        name = by_pgid.get(int(fields[2])) or ("postgres" if comm.startswith("postgres") else None)
        if name:
            out[name] += used
    return out
HOST = "127.0.0.1"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    say("wrk manquant : apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, stdout=subprocess.DEVNULL)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk introuvable et non installable (apt-get install wrk)")
    return path


def ensure_services() -> None:
    """PostgreSQL and Redis on this machine (started like .ci/run does when they are down)."""
    if subprocess.run(["pg_isready", "-h", HOST, "-p", "5432", "-q"], check=False).returncode != 0:
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        if versions:
            say("démarrage de PostgreSQL")
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "start"], check=False)
            for _ in range(30):
                if subprocess.run(["pg_isready", "-h", HOST, "-p", "5432", "-q"], check=False).returncode == 0:
                    break
                time.sleep(1)
    ping = subprocess.run(["redis-cli", "-h", HOST, "-p", "6379", "ping"], capture_output=True, check=False)
    if ping.returncode != 0 and shutil.which("redis-server"):
        say("démarrage de Redis")
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], check=False, stdout=subprocess.DEVNULL)
        time.sleep(1)


def wait_http(port: int, path: str, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/1."):
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"le serveur du port {port} ne répond pas")


class Bench:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="portail-bench-"))
        self.db_name = f"portail_bench_{secrets.token_hex(4)}"
        self.secret = "bench-" + secrets.token_hex(16)  # one for every server of the run (the floor reads the portal's sessions)
        self.results: list[tuple] = []
        self.used: set[str] = set()  # parents logged in before the opening morning

    # ------------------------------------------------------------ setup / cleanup
    def database(self) -> str:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = make_url(PG_ADMIN)
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.db_name}"'))
        engine.dispose()
        self.db_url = admin.set(database=self.db_name).render_as_string(hide_password=False)
        # the portal runs as production does: its own role, under row-level security (tenants/rls.py);
        # this script builds and inspects the data as the owner (self.db_url)
        from tenants.rls import ensure_app_role

        self.app_url = ensure_app_role(admin, self.db_url, "portail_app", "portail-app-bench")
        return self.db_url

    def env(self) -> dict:
        return {**os.environ, "PORTAIL_CONFIG": "production", "DATABASE_URL": self.app_url,
                "REDIS_URL": f"{REDIS_BASE}/{REDIS_DB}", "SECRET_KEY": self.secret,
                "SESSION_COOKIE_SECURE": "0", "MAIL_BACKEND": "file", "PORTAIL_INSTANCE_DIR": str(self.tmp),
                "BASELINE_DATABASE_URL": self.db_url, "PYTHONPATH": str(ROOT)}

    def gunicorn(self, target: str, port: int, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "sync", "-b", f"{HOST}:{port}",
               "--backlog", "4096", "--timeout", "120", "--log-level", "warning", *extra, target]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=open(self.tmp / f"{port}.log", "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def cleanup(self) -> None:
        for log in self.tmp.glob("*.log"):
            text_ = log.read_text(errors="replace")
            if "Traceback" in text_:
                say(f"erreurs du serveur ({log.name}), dernière trace :")
                print(text_[text_.rfind("Traceback"):][:3000])
        for proc in self.procs:
            try:
                self.stop(proc)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            from redis import Redis

            Redis.from_url(f"{REDIS_BASE}/{REDIS_DB}", socket_connect_timeout=2).flushdb()
        except Exception as exc:  # noqa: BLE001
            say(f"Redis non vidé : {exc}")
        if getattr(self, "db_url", None):
            from sqlalchemy import create_engine, text

            engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)
        say("nettoyé : serveurs arrêtés, base supprimée, Redis vidé")

    # ------------------------------------------------------------ wrk
    def pair(self, what: str, ours: tuple[int, list[str]], base: tuple[int, list[str]]) -> tuple[dict, dict]:
        """Ours and the baseline in turn, ROUNDS times (after one warm-up each): the machine's load
        drifts over minutes, so each round's two figures are taken seconds apart."""
        self.wrk(f"{what} (ours)", *ours, record=False, seconds=3)
        self.wrk(f"{what} (baseline)", *base, record=False, seconds=3)
        runs = [(self.wrk(f"{what} (ours)", *ours, record=False, profile=k == 0),
                 self.wrk(f"{what} (baseline)", *base, record=False)) for k in range(ROUNDS)]
        say(f"{what} : ratios par tour " + " ".join(f"{o['rps'] / b['rps']:.2f}" for o, b in runs))
        merged = []
        for k in (0, 1):
            rows = [r[k] for r in runs]
            p50s = sorted(r["p50"] for r in rows if r["p50"] is not None)
            p99s = [r["p99"] for r in rows if r["p99"] is not None]
            row = {"endpoint": rows[0]["endpoint"], "rps": sum(r["rps"] for r in rows) / len(rows),
                   "p50": p50s[len(p50s) // 2] if p50s else None, "p99": max(p99s) if p99s else None,
                   "errors": sum(r["errors"] for r in rows)}
            self.results.append(row)
            merged.append(row)
        return merged[0], merged[1]

    def wrk(self, name: str, port: int, lines: list[str], *, record: bool = True, seconds: int | None = None,
            profile: bool = False) -> dict:
        seconds = seconds or SECONDS
        spy = None
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if PROFILE and profile and Path(pyspy).exists():
            spy_out = self.tmp / f"profile-{name.split()[0]}.txt"
            spy = subprocess.Popen([pyspy, "record", "--subprocesses", "--nonblocking", "-r", "200", "-d",
                                    str(seconds), "-f", "raw", "-o", str(spy_out), "--pid", str(self.portal.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        users = self.tmp / f"{name.replace(' ', '_')}.tsv"
        users.write_text("\n".join(lines) + "\n")
        threads = min(WRK_THREADS, len(lines))
        cmd = [self.wrk_bin, "-t", str(threads), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
               "--latency", "-s", str(ROOT / "bench" / "wrk" / "users.lua"), f"http://{HOST}:{port}",
               "--", str(users), str(threads)]
        groups = {"portal": self.portal.pid, **({"baseline": self.baseline.pid}
                                                 if self.baseline.poll() is None else {})}
        if getattr(self, "floor_proc", None) is not None and self.floor_proc.poll() is None:
            groups["floor"] = self.floor_proc.pid
        before, children = cpu_by_group(groups), resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
        after, done = cpu_by_group(groups), resource.getrusage(resource.RUSAGE_CHILDREN)
        used = {k: after[k] - before[k] for k in after}
        used["wrk"] = (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
        (self.tmp / f"wrk-{name}.txt").write_text(out)
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        lat = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
        socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                                       (re.search(r"Socket errors:.*", out) or [""])[0]))
        bad = int((re.search(r"BADSTATUS (\d+)", out) or [0, 0])[1])
        row = {"endpoint": name, "rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "errors": bad + socket_errors}
        total = int(re.search(r"(\d+) requests in", out).group(1)) if re.search(r"(\d+) requests in", out) else 0
        cpu = " ".join(f"{k} {1000 * v / total:.2f}" for k, v in used.items() if v > 0.05) if total else ""
        say(f"{name}: {rps:.0f} req/s, p50 {row['p50']} ms, p99 {row['p99']} ms, erreurs {row['errors']}"
            f" ; CPU ms/requête : {cpu}")
        if record:
            self.results.append(row)
        if spy is not None:
            spy.wait(seconds + 30)
            print_profile(name, spy_out)
        return row

    # ------------------------------------------------------------ the run
    def main(self) -> int:
        if ONLY == "invoicing":  # the invoicing run alone (in process: no servers, no wrk)
            ensure_services()
            from bench.invoicing import main as invoicing

            return invoicing()
        self.wrk_bin = ensure_wrk()
        ensure_services()
        say("base PostgreSQL " + self.db_name)
        self.database()
        os.environ.update({k: v for k, v in self.env().items() if k not in os.environ or k.startswith(
            ("PORTAIL_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SESSION_COOKIE", "MAIL_BACKEND"))})
        from flask_migrate import upgrade

        from app import create_app
        from extensions import db

        # this process: the owner (it migrates, COPYs the data, reads every commune to check the results)
        self.app = create_app("production", SQLALCHEMY_DATABASE_URI=self.db_url, RLS_ROLE_CHECK=False)
        with self.app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        t = time.monotonic()
        self.data = build(self.app)
        say(f"données : {self.data['counts']} en {time.monotonic() - t:.0f} s")
        with self.app.app_context():
            db.engine.dispose()

        port, base_port = free_port(), free_port()
        self.portal = self.gunicorn("app:create_app()", port)
        self.baseline = self.gunicorn("bench.baseline:app", base_port, "--preload")
        wait_http(port, "/healthz")
        wait_http(base_port, "/grid?cells=1")
        say(f"portail sur :{port} ({WORKERS} workers sync), référence sur :{base_port}")

        sessions = asyncio.run(self.sessions(port))
        cells = sessions["cells"]
        say(f"{len(sessions['lines'])} parents connectés pour wrk ; planning de {cells} cases")
        self.login_cost(port)

        if ONLY:
            lines = sessions["lines"]
            if ONLY == "planning":
                self.pair("planning", (port, [f"GET\t{s['planning']}\t{s['cookie']}\t\t\t" for s in lines]),
                          (base_port, [f"GET\t/grid?cells={cells}\t\t\t\t"] * 16))
            else:
                self.pair("toggle", (port, [f"POST\t{s['choix']}\t{s['cookie']}\t{s['csrf']}\t{s['on']}\t{s['off']}"
                                            for s in lines]),
                          (base_port, [f"POST\t/toggle\t\t\tid={i}&want=1\tid={i}&want=0" for i in range(1, 65)]))
            return 0
        ours_planning, base_planning = self.pair(
            "planning", (port, [f"GET\t{s['planning']}\t{s['cookie']}\t\t\t" for s in sessions["lines"]]),
            (base_port, [f"GET\t/grid?cells={cells}\t\t\t\t"] * 16))
        ours_toggle, base_toggle = self.pair(
            "toggle", (port, [f"POST\t{s['choix']}\t{s['cookie']}\t{s['csrf']}\t{s['on']}\t{s['off']}"
                              for s in sessions["lines"]]),
            (base_port, [f"POST\t/toggle\t\t\tid={i}&want=1\tid={i}&want=0" for i in range(1, 65)]))
        floor = self.floor(sessions["lines"]) if FLOOR else None
        self.stop(self.baseline)

        fairness, scenario_errors = self.opening(port)
        overbooked = self.overbooked()
        errors = scenario_errors + sum(r["errors"] for r in self.results if "(ours)" in r["endpoint"])

        print()
        print(f"Machine : {os.cpu_count()} cœurs ; gunicorn -w {WORKERS} sync ; wrk -t{WRK_THREADS} -c{CONNECTIONS} "
              f"-d{SECONDS}s × {ROUNDS} tours alternés ; planning de {cells} cases")
        print(f"{'endpoint':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for r in self.results:
            p50 = f"{r['p50']:.0f}" if r["p50"] is not None else "-"
            p99 = f"{r['p99']:.0f}" if r["p99"] is not None else "-"
            print(f"{r['endpoint']:<34}{r['rps']:>10.1f}{p50:>10}{p99:>10}{r['errors']:>8}")
        print()
        print(f"RATIO toggle {ours_toggle['rps'] / base_toggle['rps']:.2f}")
        print(f"RATIO planning {ours_planning['rps'] / base_planning['rps']:.2f}")
        if floor:
            print(f"FLOOR planning {floor[0]['rps'] / base_planning['rps']:.2f}")
            print(f"FLOOR toggle {floor[1]['rps'] / base_toggle['rps']:.2f}")
        print(f"OVERBOOKED {overbooked}")
        print(f"ERRORS {errors}")
        print(f"FAIRNESS {fairness:.3f}")
        print(f"INCONSISTENT {self.inconsistent}")
        from bench.invoicing import main as invoicing  # the invoicing line (its own database)

        invoicing()
        return 0

    def floor(self, lines: list[dict]) -> tuple[dict, dict]:
        """The portal's stack with no work (bench/floor.py), same sessions, same wrk: the most a
        request of ours could reach; the ratio's share that is not the booking itself."""
        port = free_port()
        proc = self.floor_proc = self.gunicorn("bench.floor:app", port)
        wait_http(port, "/healthz")
        get = self.wrk("floor GET (stack only)", port, [
            f"GET\t/{s['planning'].split('/')[1]}/bench-floor\t{s['cookie']}\t\t\t" for s in lines])
        post = self.wrk("floor POST (stack only)", port, [
            f"POST\t/{s['planning'].split('/')[1]}/bench-floor\t{s['cookie']}\t{s['csrf']}\tx=1\tx=0" for s in lines])
        self.stop(proc)
        return get, post

    async def sessions(self, port: int) -> dict:
        """Log in CONNECTIONS parents (Python client), each with an open démarche on the périscolaire."""
        lines, cells = [], 0
        communes = list(self.data["communes"].items())
        today = date.today()
        anchor = (today + timedelta(days=21)).isoformat()

        async def one(i):
            nonlocal cells
            slug, info = communes[i % len(communes)]
            parent = info["parents"][-(i // len(communes)) - 1]  # the scenario takes them from the front
            self.used.add(parent["email"])
            b = Browser(HOST, port)
            assert await login(b, slug, parent["email"], BENCH_PASSWORD), parent["email"]
            act = info["activities"]["periscolaire"]
            page = await b.get(f"/{slug}/reservations/{act}")
            kid = parent["children"][0]
            res = await b.post(f"/{slug}/reservations/{act}", {"csrf_token": csrf_of(page.body), "enfants": [kid]})
            cart_path = res.location.split("/planning")[0]
            planning = f"{cart_path}/planning?activite={act}&vue=mois&date={anchor}"
            page = await b.get(planning)
            free = [(c, s) for c, s, rest in re.findall(r'<input type="checkbox" id="c-(\d+)-(\d+)"([^>]*)>',
                                                        page.body) if "disabled" not in rest and "checked" not in rest]
            cells = max(cells, page.body.count('class="cell '))
            child, slot = free[i % len(free)]
            cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
            lines.append({"planning": planning, "choix": f"{cart_path}/choix", "cookie": cookie,
                          "csrf": csrf_of(page.body), "on": f"child={child}&slot={slot}&c-{child}-{slot}=1",
                          "off": f"child={child}&slot={slot}"})

        for start in range(0, CONNECTIONS, 16):
            await asyncio.gather(*(one(i) for i in range(start, min(CONNECTIONS, start + 16))))
        return {"lines": lines, "cells": cells}

    def login_cost(self, port: int) -> None:
        """Logins at the production password cost (werkzeug scrypt n=2^15), for the table."""
        from werkzeug.security import generate_password_hash

        from extensions import db
        from tenants.context import unscoped

        slug, info = next(iter(self.data["communes"].items()))
        emails = [p["email"] for p in info["parents"][-CONNECTIONS - 40:-CONNECTIONS]]
        self.used.update(emails)
        with self.app.app_context(), unscoped():
            from sqlalchemy import update

            from core.models import User

            db.session.execute(update(User).where(User.email.in_(emails))
                               .values(password_hash=generate_password_hash(BENCH_PASSWORD)))
            db.session.commit()
            db.engine.dispose()

        async def go():
            t = time.monotonic()
            browsers = [Browser(HOST, port) for _ in emails]
            ok = await asyncio.gather(*(login(b, slug, e, BENCH_PASSWORD) for b, e in zip(browsers, emails, strict=True)))
            return time.monotonic() - t, ok, [sec for b in browsers for _path, st, sec in b.log if st == 302]

        took, ok, lat = asyncio.run(go())
        lat = sorted(lat)
        row = {"endpoint": "login (production scrypt)", "rps": len(emails) / took,
               "p50": 1000 * lat[len(lat) // 2] if lat else None,
               "p99": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
               "errors": ok.count(False)}
        self.results.append(row)
        say(f"login au coût de production : {row['rps']:.1f}/s")

    def opening(self, port: int) -> tuple[float, int]:
        from core import waiting_room
        from core.clock import utcnow
        from core.models import Activity
        from extensions import db
        from tenants.context import tenant_scope

        opening = utcnow()
        with self.app.app_context():
            for info in self.data["communes"].values():
                with tenant_scope(info["tenant_id"]):
                    act = db.session.get(Activity, info["activities"]["rush"])
                    waiting_room.configure(act, opening_at=opening, concurrent=ROOM_SIZE, minutes=10)
                    db.session.commit()
            db.engine.dispose()
        # parents not used above, from the front of each commune's list, arriving uniformly over the minute
        pool = []
        lists = [(slug, info) for slug, info in self.data["communes"].items()]
        i = 0
        while len(pool) < PARENTS and any(i < len(info["parents"]) for _s, info in lists):
            for slug, info in lists:
                if i < len(info["parents"]) and info["parents"][i]["email"] not in self.used and len(pool) < PARENTS:
                    pool.append((slug, info["parents"][i]["email"], info["activities"]["rush"]))
            i += 1
        import random

        rnd = random.Random(11)
        starts = sorted(rnd.uniform(0, ARRIVAL_SECONDS) for _ in pool)
        rnd.shuffle(pool)
        parents = [Parent(k, slug, email, act, starts[k]) for k, (slug, email, act) in enumerate(pool)]
        say(f"matin d'ouverture : {len(parents)} parents sur {ARRIVAL_SECONDS} s, salle d'attente "
            f"{ROOM_SIZE} familles à la fois par commune, limite {SCENARIO_LIMIT} s")
        took = asyncio.run(run(parents, HOST, port, BENCH_PASSWORD, limit_seconds=SCENARIO_LIMIT))

        statuses = [st for p in parents if p.browser for _path, st, _s in p.browser.log]
        requests = len(statuses)
        five = sum(1 for s in statuses if s >= 500)
        failed = sum(1 for s in statuses if s == 0)
        outcomes = {k: sum(1 for p in parents if p.outcome == k) for k in ("booked", "full", "failed", "unfinished")}
        waited = sum(1 for p in parents if p.waited)
        lat = sorted(s for p in parents if p.browser for path, st, s in p.browser.log if st)
        self.results.append({"endpoint": "opening morning (all requests)", "rps": requests / took,
                             "p50": 1000 * lat[len(lat) // 2] if lat else None,
                             "p99": 1000 * lat[int(len(lat) * 0.99)] if lat else None, "errors": five + failed})
        say(f"matin d'ouverture en {took:.0f} s : {outcomes}, {waited} passés par la salle d'attente, "
            f"{requests} requêtes, {five} 5xx, {failed} sans réponse")
        for p in parents:
            if p.errors and p.outcome == "failed":
                say(f"  échec {p.email}: {p.errors[:2]}")
                break
        # fairness: per commune, rank of arrival (the parent's start) vs rank of admission (the room's log)
        correlations = []
        with self.app.app_context():
            from sqlalchemy import select

            from core.models import User
            from tenants.context import unscoped

            with unscoped():
                ids = dict(db.session.execute(select(User.email, User.id)).all())
            for slug, info in self.data["communes"].items():
                with tenant_scope(info["tenant_id"]):
                    order = waiting_room.admission_order(db.session.get(Activity, info["activities"]["rush"]))
                rank = {uid: k for k, uid in enumerate(order)}
                mine = [p for p in parents if p.slug == slug and ids.get(p.email) in rank]
                if len(mine) > 1:
                    correlations.append((len(mine), spearman([p.start for p in mine],
                                                             [rank[ids[p.email]] for p in mine])))
            db.engine.dispose()
        for n, rho in correlations:
            say(f"  équité : {n} admissions, Spearman {rho:.3f}")
        fairness = min((rho for _n, rho in correlations), default=0.0)
        return fairness, five + failed

    def overbooked(self) -> int:
        from sqlalchemy import text

        from extensions import db

        with self.app.app_context():
            with db.engine.connect() as conn:
                over = conn.execute(text("""
                    SELECT coalesce(sum(greatest(0, n - online)), 0), coalesce(sum(CASE WHEN n <> taken THEN 1 ELSE 0 END), 0)
                    FROM (SELECT s.id, s.taken, (s.capacity * a.online_quota_pct) / 100 AS online,
                                 count(r.id) FILTER (WHERE r.status IN ('held', 'pending', 'reserved', 'absent')) AS n
                          FROM slot s JOIN activity a ON a.id = s.activity_id
                          LEFT JOIN reservation r ON r.slot_id = s.id GROUP BY s.id, a.online_quota_pct) x
                """)).one()
            db.engine.dispose()
        say(f"places données au-delà de la capacité : {over[0]} ; compteurs Slot.taken incohérents : {over[1]}")
        self.inconsistent = int(over[1])
        return int(over[0])


def print_profile(name: str, path: Path, top: int = 25) -> None:
    """py-spy's collapsed stacks: the share of samples inside each function (inclusive) and on it (self)."""
    if not path.exists():
        say(f"pas de profil pour {name}")
        return
    inclusive: dict = {}
    own: dict = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _sp, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r" \((/[^)]*/)?([^/)]+:\d+)\)$", r" (\2)", f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        total += n
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] = inclusive.get(frame, 0) + n
        leaf = re.sub(r":\d+\)$", ")", frames[-1])
        own[leaf] = own.get(leaf, 0) + n
    print(f"\nProfil py-spy — {name} ({total} échantillons)")
    print("  inclusif (fonctions du projet et des bibliothèques clés) :")
    keys = ("app.py", "routes.py", "service.py", "store.py", "rules.py", "fastsql.py", "planning.py", "demandes.py",
            "locking.py", "web.py", "scoping.py", "waiting_room.py", "gate.py", "render_template", "dispatch_request", "do_orm_execute", "execute",
            "commit", "flush", "_load_user", "url_for", "format_date", "gettext", "open_session", "save_session",
            "validate_csrf", "load_tenant", "_connection_for_bind", "do_execute", "recv", "connect")
    rows = sorted(((v, k) for k, v in inclusive.items() if any(x in k for x in keys)), reverse=True)[:top]
    for v, k in rows:
        print(f"    {100 * v / total:5.1f}%  {k}")
    print("  propre (temps passé dans la fonction elle-même) :")
    for v, k in sorted(((v, k) for k, v in own.items()), reverse=True)[:12]:
        print(f"    {100 * v / total:5.1f}%  {k}")


def _ms(raw: str) -> float:
    value, unit = float(re.match(r"[\d.]+", raw).group()), re.sub(r"[\d.]+", "", raw)
    return value * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}.get(unit, 1)


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    bench = Bench()
    try:
        return bench.main()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())

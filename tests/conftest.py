"""Fixtures: a real database per run (SQLite file, or PostgreSQL when TEST_DATABASE_URL
is set), migrated with Alembic, emptied after each test; factories; the mail outbox.

CI=true turns every skipped PostgreSQL, Redis or browser test into a failure.

PORTAIL_TODAY moves the whole run (app, web server threads, jobs) to another day with time-machine,
the clock then ticking on from there: `PORTAIL_TODAY=2026-12-05 make test` is a Saturday,
`PORTAIL_TODAY=2027-03-28T01:30+01:00` half an hour before the change to summer time.  A bare date
means 10:00 in Paris.  `.ci/run` runs the date-sensitive tests on a handful of such days.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app import create_app
from extensions import db, limiter

pytest_plugins = ["tests.billing_helpers", "tests.payment_helpers"]  # the billing tests' factories

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TODAY = os.environ.get("PORTAIL_TODAY", "").strip()
_traveller = None


def travel_destination(raw: str):
    """'2026-12-05' (10:00 in Paris) or an ISO date-time (Paris time unless an offset is given)."""
    from datetime import datetime, time

    from core.clock import PARIS

    if len(raw) == 10:
        from datetime import date

        return datetime.combine(date.fromisoformat(raw), time(10, 0), tzinfo=PARIS)
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=PARIS)


def pytest_configure(config):
    global _traveller
    if TODAY:
        import time_machine

        _traveller = time_machine.travel(travel_destination(TODAY), tick=True)
        _traveller.start()


def travelling(env: dict) -> dict:
    """The environment of a Python process started by a test: on the tests' clock when it travels."""
    if not TODAY:
        return env
    from core.clock import now_local

    folder = str(Path(__file__).resolve().parent / "timetravel")
    path = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p)
    return dict(env, PYTHONPATH=path, PORTAIL_TRAVEL_TO=now_local().isoformat())


def pytest_unconfigure(config):
    if _traveller is not None:
        _traveller.stop()


# Modules whose behaviour depends on the day (deadlines, weeks, holidays, openings, ages, periods):
# `.ci/run` runs them again with the clock on a Saturday, a Sunday, 31/12, 29/02, a school holiday and the
# change to summer time (`-m dates`).  A new date-dependent module joins this list.
DATE_SENSITIVE = {
    "test_reservations_web", "test_booking", "test_tick_cost", "test_agenda", "test_allocation",
    "test_admin_decisions", "test_admin_lists_families", "test_waiting_room", "test_rush_booking",
    "test_reservation_journeys", "test_rush_journeys", "test_accounts", "test_dossier",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in DATE_SENSITIVE:
            item.add_marker(pytest.mark.dates)


def pytest_report_header(config):
    from core.clock import now_local

    return f"portail clock: {now_local():%A %Y-%m-%d %H:%M %Z}" + (f" (PORTAIL_TODAY={TODAY})" if TODAY else "")
PASSWORD = "Secret-pass-2026"


def require(service: str, reason: str):
    """Skip on a newcomer's machine, fail in CI."""
    if IN_CI:
        pytest.fail(f"{service} requis en CI : {reason}", pytrace=False)
    pytest.skip(f"{service} indisponible : {reason}")


@pytest.fixture
def redis_url():
    """A real Redis (TEST_REDIS_URL): skipped on a newcomer's machine, a failure in CI."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        require("Redis", "définissez TEST_REDIS_URL (par exemple redis://127.0.0.1:6379/15)")
    from redis import Redis

    try:
        Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        require("Redis", f"{url} ne répond pas ({exc})")
    return url


# ------------------------------------------------------------------ database

def _pg_admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


APP_ROLE = "portail_app"             # the application's role on PostgreSQL: no superuser, no BYPASSRLS
APP_ROLE_PASSWORD = "portail-app-tests"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """The run's database as its owner (PostgreSQL: the admin URL's role), who migrates it, empties
    its tables between tests and, in the concurrency tests, holds locks from outside."""
    admin = _pg_admin_url()
    if not admin:
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        yield f"sqlite:///{path}"
        return
    admin_url = make_url(admin)
    name = f"portail_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    from tenants.rls import ensure_app_role

    ensure_app_role(admin_url, url, APP_ROLE, APP_ROLE_PASSWORD)  # before the migrations: default privileges
    yield url
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def app_database_url(database_url) -> str:
    """The URL the application runs on: on PostgreSQL its own role, under row-level security."""
    if not database_url.startswith("postgresql"):
        return database_url
    return make_url(database_url).set(username=APP_ROLE, password=APP_ROLE_PASSWORD).render_as_string(
        hide_password=False)


def app_settings(database_url: str, app_database_url: str) -> dict:
    """create_app's overrides for the run's database: the application's role, the owner for migrations."""
    if not database_url.startswith("postgresql"):
        return {"SQLALCHEMY_DATABASE_URI": database_url}
    return {"SQLALCHEMY_DATABASE_URI": app_database_url, "MIGRATION_DATABASE_URI": database_url,
            "RLS_ROLE_CHECK": True}


@pytest.fixture(scope="session")
def outbox_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outbox")


@pytest.fixture(scope="session")
def app(database_url, app_database_url, outbox_dir):
    application = create_app("testing", **app_settings(database_url, app_database_url), OUTBOX_DIR=str(outbox_dir))
    with application.app_context():
        from flask_migrate import upgrade

        from cli import sync_tenants

        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
        sync_tenants()
    _empty_tables(application)  # every test starts with the communes alone (sync also loads piece types)
    yield application
    with application.app_context():
        db.engine.dispose()
    from tenants.rls import dispose

    dispose(application)


@pytest.fixture(scope="session")
def is_postgres(database_url) -> bool:
    return database_url.startswith("postgresql")


def _empty_tables(application) -> None:
    """Empty every table but the communes'.  A browser test's live server may still be answering
    a last request (htmx) when the test ends: TRUNCATE can then meet its locks (lock timeout or
    deadlock); it tries again once that request is done."""
    from sqlalchemy.exc import OperationalError

    from tenants.rls import maintenance_engine

    with application.app_context():
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name != "tenant"]
        engine = maintenance_engine(application)  # the owner: TRUNCATE is not the application's right
        for attempt in range(10):
            try:
                with engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables)
                                          + " RESTART IDENTITY CASCADE"))
                    else:
                        for table in tables:
                            conn.execute(table.delete())
                return
            except OperationalError:
                if attempt == 9:
                    raise
                time.sleep(0.5)


@pytest.fixture(autouse=True)
def _clean(app, outbox_dir):
    yield
    with app.app_context():
        db.session.remove()
    _empty_tables(app)
    for f in outbox_dir.glob("*"):
        f.unlink()
    limiter.reset()
    from tenants.context import set_tenant_id

    set_tenant_id(None)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


# ------------------------------------------------------------------ communes and factories

@pytest.fixture
def tenants(app):
    from tenants.context import unscoped
    from tenants.models import Tenant

    with app.app_context(), unscoped():
        rows = {t.slug: t.id for t in db.session.scalars(select(Tenant))}
        db.session.remove()
    return rows


WRITTEN_ON = "2026-12-01"  # the tests' birth dates are written as of this day (Kids 3–7, Klub 8–12…)


def aged(born: str):
    """A birth date written as of WRITTEN_ON, moved by as many days as the clock has moved since, so
    that a child's age on the tests' dates (relative to today) is the same on any day the suite runs."""
    from datetime import date

    from core.clock import today

    return date.fromisoformat(born) + (today() - date.fromisoformat(WRITTEN_ON))


def unaged(born) -> str:
    """The birth date to hand make_family so that, once aged(), the child is born on `born` exactly
    (a test about an age on a given day, e.g. six on 1 January)."""
    from datetime import date

    from core.clock import today

    return (born - (today() - date.fromisoformat(WRITTEN_ON))).isoformat()


@pytest.fixture
def make_family(app, tenants):
    """make_family("auray", parent_email=..., children=[("Lou", "2019-05-01")]) -> dict of ids."""

    from core.accounts import hash_password
    from core.clock import utcnow
    from core.models import ROLE_PARENT, Child, Family, User
    from tenants.context import tenant_scope

    counter = iter(range(1, 10_000))

    def factory(slug="auray", *, parent_email=None, password=PASSWORD, children=(("Lou", "2019-05-01"),),
                activated=True, must_change_password=False, cgu=True, name="TESTFAM"):
        n = next(counter)
        with app.app_context(), tenant_scope(tenants[slug]):
            family = Family(name=name, code=f"T{n:04d}{slug[:3].upper()}")
            for first, born in children:
                family.children.append(Child(tenant_id=tenants[slug], first_name=first, last_name=name.title(),
                                             birth_date=aged(born)))
            user = User(email=parent_email or f"parent{n}@{slug}.test", first_name="Camille", last_name=name.title(),
                        password_hash=hash_password(password), role=ROLE_PARENT, family=family,
                        activated_at=utcnow() if activated else None, must_change_password=must_change_password,
                        cgu_accepted_at=utcnow() if cgu else None)
            db.session.add_all([family, user])
            db.session.commit()
            out = {"family_id": family.id, "user_id": user.id, "email": user.email, "password": password,
                   "child_ids": [c.id for c in family.children], "tenant_id": tenants[slug], "slug": slug}
            db.session.remove()
        return out

    return factory


@pytest.fixture
def make_agent(app, tenants):
    from core.accounts import hash_password
    from core.clock import utcnow
    from core.models import ROLE_AGENT, User
    from tenants.context import tenant_scope

    def factory(slug="auray", email=None, password=PASSWORD):
        with app.app_context(), tenant_scope(tenants[slug]):
            user = User(email=email or f"agent@{slug}.test", first_name="Agent", last_name="Test",
                        password_hash=hash_password(password), role=ROLE_AGENT, activated_at=utcnow(),
                        cgu_accepted_at=utcnow())
            db.session.add(user)
            db.session.commit()
            out = {"user_id": user.id, "email": user.email, "password": password}
            db.session.remove()
        return out

    return factory


# ------------------------------------------------------------------ web helpers

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


class Web:
    """A browser-like test client: keeps cookies, fetches CSRF tokens like a page would."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def csrf_for(self, page: str) -> str:
        html = self.client.get(page).get_data(as_text=True)
        match = CSRF_RE.search(html)
        assert match, f"pas de jeton CSRF sur {page}"
        return match.group(1) or match.group(2)

    def post(self, path, data=None, *, page=None, csrf=True, **kw):
        data = dict(data or {})
        if csrf and "csrf_token" not in data:
            data["csrf_token"] = self.csrf_for(page or path)
        return self.client.post(path, data=data, **kw)

    def login(self, slug, email, password=PASSWORD, **kw):
        return self.post(f"/{slug}/connexion", {"email": email, "password": password}, **kw)


@pytest.fixture
def web(app):
    return Web(app.test_client())


@pytest.fixture
def make_web(app):
    return lambda: Web(app.test_client())


# ------------------------------------------------------------------ mails

class Outbox:
    def __init__(self, folder: Path):
        self.folder = folder

    @property
    def messages(self):
        out = []
        for path in sorted(self.folder.glob("*.eml")):
            out.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        return out

    def to(self, address):
        return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(message) -> str:
        return message.get_body(preferencelist=("html",)).get_content()

    def link(self, message, marker: str) -> str:
        links = re.findall(r"https?://\S+", self.text(message))
        found = [link for link in links if marker in link]
        assert found, f"pas de lien {marker!r} dans le mail : {links}"
        return found[0]


@pytest.fixture
def outbox(outbox_dir):
    return Outbox(outbox_dir)


# ------------------------------------------------------------------ activities

def days_from_today(n: int):
    from datetime import timedelta

    from core.calendar import now_local

    return now_local().date() + timedelta(days=n)


UNITS_SPEC = {
    "code": "kids", "name": "Accueil de loisirs Kids", "kind": "units", "season": "2026/2027",
    "structure": "Accueil de Loisirs Arlequin", "ages": [3, 7], "validation": "commune",
    "calendar": {"weekdays": [0, 1, 2, 3, 4, 5, 6], "public_holidays": "open"},
    "units": [{"code": "matin", "label": "Matin", "capacity": 2}, {"code": "repas", "label": "Repas", "capacity": 2},
              {"code": "apres_midi", "label": "Après-midi", "capacity": 2}],
}


@pytest.fixture
def make_activity(app, tenants):
    """make_activity("auray", starts_in=10, days=5, **spec overrides) -> dict(id=..., slots={(unit|title, iso): id})."""
    from core.activity_config import upsert_activity
    from core.models import Slot
    from tenants.context import tenant_scope

    def factory(slug="auray", *, starts_in=10, days=5, **overrides):
        spec = dict(UNITS_SPEC)
        spec["starts_on"] = days_from_today(starts_in)
        spec["ends_on"] = days_from_today(starts_in + days - 1)
        spec.update(overrides)
        with app.app_context(), tenant_scope(tenants[slug]):
            activity = upsert_activity(spec, zone="A")
            db.session.commit()
            slots = {}
            for slot in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id)):
                key = slot.unit.code if slot.unit_id else slot.title
                slots[(key, slot.day.isoformat())] = slot.id
            out = {"id": activity.id, "slots": slots, "tenant_id": tenants[slug], "slug": slug}
            db.session.remove()
        return out

    return factory


@pytest.fixture
def inscribe(app):
    from core.models import INSCRIPTION_ACCEPTED, Inscription
    from tenants.context import tenant_scope

    def factory(activity, child_ids, status=INSCRIPTION_ACCEPTED):
        with app.app_context(), tenant_scope(activity["tenant_id"]):
            for child_id in child_ids:
                db.session.add(Inscription(child_id=child_id, activity_id=activity["id"], status=status))
            db.session.commit()
            db.session.remove()

    return factory


# ------------------------------------------------------------------ pièces justificatives

@pytest.fixture
def piece_types(app, tenants, tmp_path):
    """piece_types("saint-loubes", required_for=["kids"]) -> {code: id}; files go to a folder of the test."""
    from core.documents.config import load_pieces
    from tenants.context import tenant_scope
    from tenants.models import Tenant
    from tests.pieces_data import types_spec

    app.config["PIECES_STORAGE_DIR"] = str(tmp_path / "pieces")
    app.extensions.pop("pieces_storage", None)

    def factory(slug="auray", *, required_for=("kids",)):
        with app.app_context(), tenant_scope(tenants[slug]):
            tenant = db.session.get(Tenant, tenants[slug])
            rows = load_pieces(tenant, types_spec(list(required_for)), update=True)
            db.session.commit()
            out = {row.code: row.id for row in rows}
            db.session.remove()
        return out

    yield factory
    app.config["PIECES_STORAGE_DIR"] = None
    app.extensions.pop("pieces_storage", None)

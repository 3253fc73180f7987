"""Isolation below the ORM: PostgreSQL's row-level security keeps the communes apart even for raw SQL
(tenants/rls.py, migration 0012_rls), and every statement of the reservation core names the commune.

The application runs as its own role (tests/conftest.py: `portail_app`, neither superuser nor
BYPASSRLS); the migrations as the database's owner."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from extensions import db
from tenants.context import set_tenant_id, tenant_scope, unscoped
from tests.conftest import APP_ROLE, app_settings, days_from_today, require

ROOT = Path(__file__).resolve().parent.parent


def _tenant_tables() -> list[str]:
    import core.models  # noqa: F401  (every model mapped)
    import tenants.models  # noqa: F401

    return sorted(t.name for t in db.metadata.sorted_tables if "tenant_id" in t.c)


TENANT_TABLES = _tenant_tables()


@pytest.fixture
def pg(is_postgres):
    if not is_postgres:
        require("PostgreSQL", "la sécurité par ligne est celle de PostgreSQL (SQLite garde le garde-fou de l'ORM) : "
                "définissez TEST_DATABASE_URL")


def _owner(app):
    from tenants.rls import maintenance_engine

    return maintenance_engine(app)


def _rls_error(exc: BaseException) -> bool:
    return "row-level security" in str(exc)


# ---------------------------------------------------------------------------- the role

@pytest.mark.postgres
def test_the_application_runs_as_a_role_that_cannot_bypass_row_level_security(pg, app):
    with app.app_context(), db.engine.connect() as conn:
        user, superuser, bypass = conn.execute(text(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
    assert (user, superuser, bypass) == (APP_ROLE, False, False)


@pytest.mark.postgres
def test_the_application_refuses_a_role_that_bypasses_row_level_security(pg, database_url, app_database_url,
                                                                        outbox_dir):
    from app import create_app
    from tenants.rls import RoleBypassesRowSecurity

    settings = dict(app_settings(database_url, app_database_url), SQLALCHEMY_DATABASE_URI=database_url)  # the owner
    owner_app = create_app("testing", **settings, OUTBOX_DIR=str(outbox_dir))
    with owner_app.app_context():
        try:
            with pytest.raises(RoleBypassesRowSecurity, match="contourne la sécurité par ligne"):
                db.session.execute(text("SELECT 1"))
        finally:
            db.session.remove()
            db.engine.dispose()


# ---------------------------------------------------------------------------- raw SQL, no ORM

@pytest.mark.postgres
def test_raw_sql_without_a_commune_sees_no_row_and_writes_none(pg, app, make_family, tenants):
    auray = make_family("auray")
    make_family("saint-loubes")
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.scalar(text("SELECT current_setting('app.tenant_id', true)")) in (None, "")
            assert conn.scalar(text("SELECT count(*) FROM child")) == 0
            assert conn.scalar(text("SELECT count(*) FROM user_account")) == 0
            assert conn.execute(text("UPDATE family SET name = 'X'")).rowcount == 0
            with pytest.raises(DBAPIError) as refused:
                conn.execute(text("INSERT INTO family (tenant_id, name, code, created_at) "
                                  "VALUES (:t, 'INTRUS', 'X1', now())"), {"t": tenants["auray"]})
            assert _rls_error(refused.value)
        with _owner(app).connect() as conn:  # nothing was changed
            assert conn.scalar(text("SELECT name FROM family WHERE id = :id"), {"id": auray["family_id"]}) == "TESTFAM"


@pytest.mark.postgres
def test_with_the_setting_of_auray_no_saint_loubes_row(pg, app, make_family, tenants):
    make_family("auray", children=[("Aurélien", "2018-01-01")])
    loubes = make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    with app.app_context(), tenant_scope(tenants["auray"]), db.engine.connect() as conn:
        assert conn.scalar(text("SELECT current_setting('app.tenant_id', true)")) == str(tenants["auray"])
        assert conn.execute(text("SELECT first_name FROM child")).scalars().all() == ["Aurélien"]
        assert conn.scalar(text("SELECT count(*) FROM child WHERE tenant_id = :t"), {"t": tenants["saint-loubes"]}) == 0
        assert conn.scalar(text("SELECT count(*) FROM family WHERE id = :id"), {"id": loubes["family_id"]}) == 0
        assert conn.execute(text("UPDATE child SET first_name = 'X' WHERE id = :id"),
                            {"id": loubes["child_ids"][0]}).rowcount == 0
        with pytest.raises(DBAPIError) as refused:  # a row of another commune cannot be written
            conn.execute(text("INSERT INTO family (tenant_id, name, code, created_at) "
                              "VALUES (:t, 'INTRUS', 'X2', now())"), {"t": tenants["saint-loubes"]})
        assert _rls_error(refused.value)


@pytest.mark.postgres
def test_the_setting_follows_the_commune_inside_a_begun_transaction(pg, app, make_family, tenants):
    """A request reads its commune by slug (the transaction begins without one), then sets it; a loop
    over communes changes it inside one transaction; leaving the scope empties it again."""
    make_family("auray", children=[("Aurélien", "2018-01-01")])
    make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    names = text("SELECT first_name FROM child ORDER BY id")
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))  # begun outside every commune
            assert db.session.execute(names).scalars().all() == []
            set_tenant_id(tenants["auray"])
            assert db.session.execute(names).scalars().all() == ["Aurélien"]
            with tenant_scope(tenants["saint-loubes"]):
                assert db.session.execute(names).scalars().all() == ["Loubésien"]
            assert db.session.execute(names).scalars().all() == ["Aurélien"]
            set_tenant_id(None)
            assert db.session.execute(names).scalars().all() == []
            with tenant_scope(tenants["auray"]):
                with unscoped():  # the ORM guard's opt-out does not open the database
                    assert db.session.execute(names).scalars().all() == []
                assert db.session.execute(names).scalars().all() == ["Aurélien"]
        finally:
            set_tenant_id(None)
            db.session.remove()


@pytest.mark.postgres
def test_a_savepoint_rolled_back_keeps_the_setting_of_the_scope(pg, app, make_family, tenants):
    make_family("auray", children=[("Aurélien", "2018-01-01")])
    make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    names = text("SELECT first_name FROM child ORDER BY id")
    with app.app_context(), tenant_scope(tenants["auray"]):
        try:
            db.session.execute(text("SELECT 1"))
            nested = db.session.begin_nested()
            with tenant_scope(tenants["saint-loubes"]):
                assert db.session.execute(names).scalars().all() == ["Loubésien"]
                nested.rollback()  # undoes the set_config made inside the savepoint
                assert db.session.execute(names).scalars().all() == ["Loubésien"]
            assert db.session.execute(names).scalars().all() == ["Aurélien"]
        finally:
            db.session.remove()


@pytest.mark.postgres
@pytest.mark.parametrize("isolation", [None, "SERIALIZABLE"])
def test_a_transaction_begins_with_its_commune_and_commits_or_rolls_back_as_usual(pg, app, make_family, tenants,
                                                                                    isolation):
    """The commune is set with the BEGIN itself (one round trip) — or, when the transaction asks for an
    isolation level of its own, right after psycopg's BEGIN; either way the transaction commits and
    rolls back as any other, and the next one sees the setting again."""
    make_family("auray", children=[("Aurélien", "2018-01-01")])
    make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    names = text("SELECT first_name FROM child ORDER BY id")
    options = {"isolation_level": isolation} if isolation else {}
    with app.app_context(), tenant_scope(tenants["auray"]):
        with db.engine.connect().execution_options(**options) as conn:
            with conn.begin():
                if isolation:
                    assert conn.scalar(text("SHOW transaction_isolation")) == isolation.lower()
                assert conn.execute(names).scalars().all() == ["Aurélien"]
                conn.execute(text("UPDATE child SET first_name = 'Aurélie'"))
            with conn.begin() as undone:
                assert conn.execute(names).scalars().all() == ["Aurélie"]  # committed
                conn.execute(text("UPDATE child SET first_name = 'X'"))
                undone.rollback()
            with conn.begin():
                assert conn.execute(names).scalars().all() == ["Aurélie"]  # rolled back
                assert conn.scalar(text("SELECT current_setting('app.tenant_id', true)")) == str(tenants["auray"])
    with app.app_context(), db.engine.connect() as conn:  # the commune is the transaction's: none outside the scope
        assert conn.execute(names).scalars().all() == []


@pytest.mark.postgres
def test_a_statement_reads_the_commune_once_not_once_per_row(pg, app, make_family, tenants):
    """The policy's commune is an InitPlan (evaluated once per statement), not a function called on
    every row the scan returns (0013_rls_once: a join of 16,700 reservations took 10 ms, then 4.7)."""
    make_family("auray", children=[("Aurélien", "2018-01-01"), ("Aude", "2019-01-01")])
    with app.app_context(), tenant_scope(tenants["auray"]), db.engine.connect() as conn:
        plan = "\n".join(conn.execute(text("EXPLAIN (COSTS OFF) SELECT first_name FROM child")).scalars())
    assert "InitPlan" in plan, plan
    assert not any("current_setting" in line for line in plan.splitlines() if "Filter" in line), plan


@pytest.mark.postgres
def test_the_fast_path_runs_on_the_session_s_connection_under_the_setting(pg, app, tenants):
    from core.fastsql import Hot, rows

    setting = Hot(select(func.current_setting("app.tenant_id", True)))
    with app.app_context(), tenant_scope(tenants["saint-aubin-de-medoc"]):
        try:
            assert rows(setting, {}) == [(str(tenants["saint-aubin-de-medoc"]),)]
        finally:
            db.session.remove()


@pytest.mark.postgres
def test_the_logged_in_user_travels_with_the_begin_and_survives_a_lost_prepared_statement(pg, app, make_family,
                                                                                           tenants):
    """A request's first statement (the logged-in user) goes in the BEGIN's round trip, as a prepared
    statement of the connection: the same user, under the commune's setting, told to the engine's
    listeners; a statement the server no longer has (psycopg deallocates all of them on a ROLLBACK), or
    one it still has when we thought it gone, is sent again — the user is found all the same; another
    commune's user is not."""
    from core.models import User
    from tenants import rls
    from tenants.scoping import get_scoped_row

    fam = make_family("auray", children=[("Aurélien", "2018-01-01")])
    other = make_family("saint-loubes", children=[("Loubésien", "2018-01-01")])
    uid, foreign = fam["user_id"], other["user_id"]
    seen, lose, infos = [], [None], []

    def count(_conn, _cursor, statement, *_a):
        seen.append(statement)

    def checkout(dbapi_connection, record, _proxy):  # the connection the next transaction will use, idle
        infos.append(record.info)
        if lose[0] == "DEALLOCATE ALL":  # the server lost it, the connection's list still has it
            assert record.info.get(rls._PREPARED)
            dbapi_connection.pgconn.exec_(b"DEALLOCATE ALL")
        elif lose[0] == "forget":  # the server has it, the list lost it
            record.info.pop(rls._PREPARED, None)

    with app.app_context(), tenant_scope(tenants["auray"]):
        event.listen(db.engine, "before_cursor_execute", count)
        event.listen(db.engine, "checkout", checkout)
        try:
            for lose[0] in (None, None, "DEALLOCATE ALL", "forget"):
                db.session.remove()
                before = len(seen)
                user = get_scoped_row(db.session, User, uid)
                assert user is not None and user.email == fam["email"], lose
                assert len(seen) == before + 1 and "FROM user_account" in seen[-1], lose  # one statement, told
                assert infos[-1].get(rls._PREPARED), lose  # it went with the BEGIN, prepared on the connection
                assert db.session.scalar(text("SELECT current_setting('app.tenant_id', true)")) == \
                    str(tenants["auray"]), lose
                assert db.session.scalar(text("SELECT count(*) FROM child")) == 1, lose  # the commune's only
                db.session.commit()
            lose[0] = None
            db.session.remove()
            assert get_scoped_row(db.session, User, foreign) is None  # Saint-Loubès's: not here
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
            event.remove(db.engine, "checkout", checkout)
            db.session.remove()


# ---------------------------------------------------------------------------- every table

def test_every_commune_table_is_listed_by_the_migration():
    """A new table with a tenant_id gets its policy in its own migration; this list is 0012's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("m0012", ROOT / "migrations" / "versions" / "0012_rls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert len(TENANT_TABLES) >= 52
    assert set(module.TABLES) <= set(TENANT_TABLES)


@pytest.mark.postgres
def test_every_table_with_a_tenant_id_in_the_database_has_a_policy(pg, app):
    with app.app_context(), _owner(app).connect() as conn:
        in_db = set(conn.scalars(text(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id' "
            "AND table_schema = current_schema()")))
        with_policy = set(conn.scalars(text(
            "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() AND policyname = 'tenant_isolation'")))
    assert in_db == set(TENANT_TABLES)
    assert in_db - with_policy == set()


@pytest.mark.postgres
@pytest.mark.parametrize("table", TENANT_TABLES)
def test_the_table_s_policy_exists_and_keeps_other_communes_out(pg, app, tenants, table):
    with app.app_context():
        with _owner(app).connect() as conn:
            enabled, forced = conn.execute(text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(:t)"),
                {"t": f'"{table}"'}).one()
            policy = conn.execute(text(
                "SELECT cmd, roles, qual, with_check FROM pg_policies WHERE tablename = :t "
                "AND policyname = 'tenant_isolation'"), {"t": table}).one_or_none()
        assert (enabled, forced) == (True, True), table
        assert policy is not None, f"{table} : pas de politique tenant_isolation"
        cmd, roles, qual, with_check = policy
        assert cmd == "ALL" and roles == ["public"], policy
        for expression in (qual, with_check):
            assert "tenant_id" in expression and "current_setting('app.tenant_id'" in expression, policy
            assert "SELECT" in expression, f"{table} : la commune doit être lue une fois par requête : {expression}"
        # it works: as the application, Auray's setting refuses a row of Saint-Loubès and lets one of
        # Auray through the policy (its other NOT NULL columns then stop it: the savepoint undoes it)
        auray, loubes = tenants["auray"], tenants["saint-loubes"]
        with tenant_scope(auray), db.engine.connect() as conn:
            insert = text(f'INSERT INTO "{table}" (tenant_id) VALUES (:t)')
            with pytest.raises(DBAPIError) as foreign, conn.begin_nested():
                conn.execute(insert, {"t": loubes})
            assert _rls_error(foreign.value), foreign.value
            try:
                with conn.begin_nested():
                    conn.execute(insert, {"t": auray})
                    raise _Undo()
            except _Undo:
                pass
            except DBAPIError as own:
                assert not _rls_error(own), f"{table} : une ligne de la commune courante est refusée : {own}"
            assert conn.scalar(text(f'SELECT count(*) FROM "{table}" WHERE tenant_id <> :t'), {"t": auray}) == 0


class _Undo(Exception):
    pass


# ---------------------------------------------------------------------------- the store names the commune

STORE = ("core/reservations/", "core/fastsql.py", "core/locking.py")
WRITE = re.compile(r"\bINSERT INTO \"?(\w+)\"? \(([^)]*)\)", re.I)
FILTER = re.compile(r"\btenant_id\s*(=|IN\b)|=\s*[\w.\"]*\btenant_id\b", re.I)


def _store_frame() -> tuple[str | None, bool]:
    """Where in the reservation core's store a statement comes from (file:line, or None), and whether
    it is the ORM's unit of work flushing objects (UPDATE … WHERE id = …, by primary key)."""
    frame = sys._getframe(2)
    root = str(ROOT) + "/"
    where, flush = None, False
    while frame is not None:
        name = frame.f_code.co_filename
        if name.endswith(("sqlalchemy/orm/persistence.py", "sqlalchemy/orm/unitofwork.py")):
            flush = True
        if where is None and name.startswith(root) and name[len(root):].startswith(STORE):
            where = f"{name[len(root):]}:{frame.f_lineno} {frame.f_code.co_name}"
        frame = frame.f_back
    return where, flush


def names_the_commune(statement: str) -> bool:
    """Every INSERT lists tenant_id; every other statement on commune tables compares tenant_id."""
    inserts = WRITE.findall(statement)
    if any("tenant_id" not in columns for _table, columns in inserts):
        return False
    rest = WRITE.sub("", statement)
    reads = re.search(r"\b(FROM|UPDATE|JOIN)\b", rest, re.I)
    return not reads or bool(FILTER.search(rest))


def test_the_check_itself_tells_a_statement_that_names_no_commune():
    assert names_the_commune("UPDATE slot SET taken=%(taken)s WHERE slot.id = %(id)s AND slot.tenant_id = %(t)s")
    assert names_the_commune("INSERT INTO cart_item (cart_id, tenant_id) VALUES (1, 2)")
    assert not names_the_commune("INSERT INTO cart_item (cart_id, slot_id) VALUES (1, 2)")
    assert not names_the_commune("SELECT slot.id, slot.tenant_id FROM slot WHERE slot.id IN (1, 2)")
    assert not names_the_commune("UPDATE reservation SET status='x' WHERE reservation.id = 3")


@pytest.fixture
def store_statements(app, web, make_family, make_activity, inscribe):
    """A booking journey — wizard, ticks, an untick, the grid form, the month, récapitulatif, Valider,
    the demande cancelled, another démarche abandoned — and what the store sent meanwhile (statements
    sent from core/reservations/, core/fastsql.py, core/locking.py): [(where, statement, flushed by the ORM's unit of work)]."""
    from tests.test_reservations_web import start_wizard, tick

    act = make_activity("auray", starts_in=10, days=28)
    fam = make_family("auray", children=[("Maël", "2021-04-12"), ("Lilou", "2020-09-01")])
    inscribe(act, fam["child_ids"])
    seen = []

    def before(_conn, _cursor, statement, *_a, **_k):
        where, flushed = _store_frame()
        if where is not None:
            seen.append((where, " ".join(statement.split()), flushed))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        cart = start_wizard(web, fam, act)
        kid, other = fam["child_ids"]
        day = days_from_today(10).isoformat()
        for unit in ("matin", "repas", "apres_midi"):
            assert tick(web, cart, kid, act["slots"][(unit, day)]).status_code == 200
        assert tick(web, cart, kid, act["slots"][("repas", day)], want=False).status_code == 200
        matin = act["slots"][("matin", day)]
        assert web.post(f"/auray/demarches/{cart}/planning",
                        {"shown": [f"{other}-{matin}"], f"c-{other}-{matin}": "1"}).status_code in (200, 303)
        assert web.get(f"/auray/demarches/{cart}/planning?vue=mois").status_code == 200
        assert web.get(f"/auray/demarches/{cart}/recapitulatif").status_code == 200
        res = web.post(f"/auray/demarches/{cart}/valider", page=f"/auray/demarches/{cart}/recapitulatif")
        number = int(re.search(r"/demandes/(\d+)", res.headers["Location"]).group(1))
        res = web.post(f"/auray/demandes/{number}/annuler", page=f"/auray/demandes/{number}")
        assert "Annulée" in web.get(res.headers["Location"]).get_data(as_text=True)
        again = start_wizard(web, fam, act)
        assert tick(web, again, kid, act["slots"][("matin", day)]).status_code == 200
        assert web.post(f"/auray/demarches/{again}/annuler", page=f"/auray/demarches/{again}/planning").status_code == 302
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert len(seen) >= 20, seen  # the journey went through the store
    assert any(re.search(r'INSERT INTO "?reservation"? \(', s) for _w, s, _f in seen), seen
    return seen


@pytest.mark.postgres  # the check reads the SQL that PostgreSQL gets; SQLite gets other shapes (and keeps the ORM guard)
def test_every_statement_the_reservation_core_writes_names_the_commune(store_statements):
    """The statements the store composes (its fast path, its locks, its queries and writes)."""
    anonymous = [(where, statement[:300]) for where, statement, flushed in store_statements
                 if not flushed and not names_the_commune(statement)]
    assert anonymous == []


@pytest.mark.postgres
def test_the_reservation_core_flushes_no_orm_object_by_primary_key_alone(store_statements):
    anonymous = [(where, statement[:300]) for where, statement, flushed in store_statements
                 if flushed and not names_the_commune(statement)]
    assert anonymous == []

"""The database restarted (or a connection was cut) while the portal's pooled connections sat
idle: the next request still answers, on a fresh connection (no 500)."""

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from core import locking
from extensions import db
from tenants.rls import maintenance_engine
from tests.conftest import require


def test_a_connection_cut_while_idle_is_replaced_before_the_next_request(web, app, is_postgres, tenants,
                                                                       make_family, monkeypatch):
    if not is_postgres:
        require("PostgreSQL", "ce test coupe une connexion PostgreSQL")
    fam = make_family("auray")
    web.login("auray", fam["email"])
    assert web.get("/auray/mon-espace").status_code == 200
    monkeypatch.setattr(locking, "IDLE_PING_SECONDS", 0)  # every pooled connection counts as idle
    with app.app_context():
        portal = db.engine.url.username  # the application's role (tests/conftest.py)
        other = create_engine(maintenance_engine(app).url, poolclass=NullPool)  # the owner, outside the portal's pool
    with other.connect() as conn:  # what a restart of PostgreSQL does to the pool's connections
        cut = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                                "AND usename = :portal"), {"portal": portal}).scalar()
    other.dispose()
    assert cut >= 1
    for _ in range(3):
        res = web.get("/auray/mon-espace")
        assert res.status_code == 200, res.get_data(as_text=True)[:300]

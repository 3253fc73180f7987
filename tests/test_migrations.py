"""The schema comes from Alembic migrations, which match the models (SQLite and PostgreSQL)."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app import create_app
from extensions import db

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def _diff(engine):
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(mc, db.metadata)


def test_migrations_match_the_models_on_the_test_database(app):
    with app.app_context():
        assert _diff(db.engine) == []


def test_a_fresh_sqlite_database_upgrades_and_downgrades(tmp_path):
    from flask_migrate import downgrade, upgrade

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        assert _diff(db.engine) == []
        downgrade(directory=MIGRATIONS, revision="base")
        upgrade(directory=MIGRATIONS)
        db.engine.dispose()

"""Configurations: production refuses to start without its secrets; demo data is development-only."""

import pytest

from app import create_app
from config import ConfigError


def test_production_refuses_to_start_without_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/x")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app("production")


def test_production_reads_everything_from_the_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1/portail")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    from config import get_config

    app = type("App", (), {"config": vars(get_config("production")) | {"DEBUG": False}, "debug": False})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@127.0.0.1/portail"
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"
    assert app.config["MAIL_BACKEND"] == "smtp"
    assert get_config("production").SESSION_COOKIE_SECURE is True
    assert app.config["SECRET_KEY"] == "s3cret" and not app.debug


def test_unknown_configuration_name_is_refused():
    with pytest.raises(ConfigError):
        create_app("staging-typo")


def test_demo_data_is_refused_outside_development(app):
    result = app.test_cli_runner().invoke(args=["demo-data"])
    assert result.exit_code != 0
    assert "refusé hors de la configuration de développement" in result.output


def test_demo_data_loads_the_accounts_the_readme_lists(app, tenants):
    from datetime import date

    from sqlalchemy import select

    from cli import DEMO_PASSWORD, demo_aging, load_demo_data
    from core import clock
    from core.accounts import check_password
    from core.models import Slot, SupportUser, User
    from extensions import db
    from tenants.context import tenant_scope, unscoped

    with app.app_context():
        load_demo_data()
        load_demo_data()  # idempotent
        season_start = date(2026, 9, 1) + demo_aging()
        for slug in ("auray", "saint-loubes", "saint-aubin-de-medoc"):
            with tenant_scope(tenants[slug]):
                agent = db.session.scalars(select(User).where(User.email == f"agent@{slug}.test")).one()
                parent = db.session.scalars(select(User).where(User.email == f"famille@{slug}.test")).one()
                assert agent.is_agent and check_password(agent, DEMO_PASSWORD)
                assert parent.family is not None and check_password(parent, DEMO_PASSWORD)
                ages = sorted(c.age_on(season_start) for c in parent.family.children)
                if slug == "auray":
                    assert 3 <= ages[0] <= 7 and 8 <= ages[1] <= 12
                elif slug == "saint-loubes":
                    assert len(ages) == 2 and all(6 <= a <= 11 for a in ages)
                else:
                    assert len(ages) == 1 and 7 <= ages[0] <= 9
                for user in (agent, parent):
                    assert user.email.endswith(".test")
                # whatever the day, the demo has dates ahead to book (periods over move by whole years)
                assert db.session.scalars(select(Slot.day).where(Slot.day >= clock.today())).first() is not None
        with unscoped():
            assert db.session.scalars(select(SupportUser.email)).all() == ["support@portail.test"]
        db.session.remove()

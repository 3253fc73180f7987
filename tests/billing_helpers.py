"""Factories of the billing tests: a month that is over (relative to the clock), tariffs of a test,
bookings written as the core leaves them, pointage and runs."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from core import clock
from extensions import db
from tenants.context import tenant_scope

TEST_BILLING = {
    "regie": {"code": "test", "name": "Régie de test", "prefix": "F", "payment_day": 15,
              "address": ["Mairie", "1 place de la Mairie"], "unjustified_absence_pct": 50,
              "bill_unbooked_presence": True, "overdue_blocks": True},
    "tariffs": [
        {"activity": "kids", "unit": "matin", "label": "Matin", "valid_from": "2000-01-01",
         "brackets": [{"min": 0, "max": 500, "price": "2.00"}, {"min": 500, "max": 1000, "price": "3.00"},
                      {"min": 1000, "price": "4.00"}]},
        {"activity": "kids", "unit": "repas", "label": "Repas", "valid_from": "2000-01-01", "meal": True,
         "brackets": [{"min": 0, "max": 500, "price": "1.00"}, {"min": 500, "price": "2.50"}]},
        {"activity": "kids", "unit": "apres_midi", "label": "Après-midi", "valid_from": "2000-01-01",
         "brackets": [{"min": 0, "max": 500, "price": "2.00"}, {"min": 500, "max": 1000, "price": "3.00"},
                      {"min": 1000, "price": "4.00"}]},
    ],
}


def last_month() -> tuple[date, date]:
    first = (clock.today().replace(day=1) - timedelta(days=1)).replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@pytest.fixture
def inside(app, tenants):
    def run(slug, fn):
        with app.app_context(), tenant_scope(tenants[slug]):
            try:
                out = fn()
                db.session.commit()
                return out
            finally:
                db.session.remove()

    return run


@pytest.fixture
def billing_settings(app, tenants):
    """billing_settings("auray", config) for one test (the commune's settings come back after)."""
    from tenants.models import Tenant
    from tenants.web import forget_tenants

    saved = {}

    def set_(slug, conf=None):
        with app.app_context():
            tenant = db.session.get(Tenant, tenants[slug])
            saved.setdefault(slug, tenant.settings)
            tenant.settings = {**(tenant.settings or {}), "billing": conf if conf is not None else TEST_BILLING}
            db.session.commit()
            db.session.remove()
        forget_tenants()

    yield set_
    with app.app_context():
        for slug, settings in saved.items():
            db.session.get(Tenant, tenants[slug]).settings = settings
        db.session.commit()
        db.session.remove()
    forget_tenants()


@pytest.fixture
def month_activity(make_activity):
    """Auray's "kids" over last month (every day, Matin / Repas / Après-midi)."""
    def factory(slug="auray", **kw):
        first, last = last_month()
        return make_activity(slug, starts_in=(first - clock.today()).days, days=(last - first).days + 1, **kw)

    return factory


@pytest.fixture
def book(app):
    """book(activity, child_id, [(unit, day)], status="reserved") → reservation ids (as the core leaves them)."""
    from core.models import Child, Reservation

    def factory(activity, child_id, keys, status="reserved"):
        out = []
        with app.app_context(), tenant_scope(activity["tenant_id"]):
            family_id = db.session.get(Child, child_id).family_id
            for unit, day in keys:
                res = Reservation(child_id=child_id, slot_id=activity["slots"][(unit, day.isoformat())],
                                  activity_id=activity["id"], family_id=family_id, status=status)
                db.session.add(res)
                db.session.flush()
                out.append(res.id)
            db.session.commit()
            db.session.remove()
        return out

    return factory


def qf(family_id, value, valid_from, valid_to=None, source="caf"):
    from core.billing.quotients import record
    from core.models import Family

    return record(db.session.get(Family, family_id), value=value, source=source, valid_from=valid_from,
                  valid_to=valid_to, agent_name="Agent Test")


def run_month(activity_ids, *, first=None, publish=False):
    from core.billing import runs

    first = first or last_month()[0]
    run = runs.create_run(first, activity_ids, actor="Agent Test")
    runs.compute(run.id, actor="Agent Test")
    if publish:
        runs.publish(run.id, actor="Agent Test")
    from types import SimpleNamespace

    return SimpleNamespace(id=run.id, warnings=list(run.warnings), total=run.total, status=run.status)


def lines_of(run_id):
    from core.billing.models import DraftLine

    return list(db.session.scalars(select(DraftLine).where(DraftLine.run_id == run_id)
                                   .order_by(DraftLine.day, DraftLine.unit, DraftLine.id)))

"""The opening morning in Chromium: the countdown opens the planning by itself, the waiting
room lets the parent in by itself (htmx polling)."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core import waiting_room
from core.clock import utcnow
from core.models import Activity
from extensions import db
from tenants.context import tenant_scope
from tests.browser.test_reservation_journeys import login

pytestmark = pytest.mark.browser


def _configure(app, act, **kw):
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        waiting_room.configure(activity, **kw)
        db.session.commit()
        db.session.remove()


def test_the_countdown_opens_the_planning_by_itself(page, app, make_family, make_activity, inscribe):
    """The browser's countdown reaches zero and reloads the page, which is then open.  Neither side waits
    on the wall clock (a loaded machine made a 5 s opening pass before the page was even shown): the
    browser's timers run on Playwright's clock, moved forward once the opening time has come server-side."""
    act = make_activity("auray", starts_in=10, days=5, name="Accueil de loisirs Kids")
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    _configure(app, act, opening_at=utcnow() + timedelta(minutes=10), concurrent=0)
    page.clock.install()
    login(page, "auray", fam)
    page.goto(f"/auray/reservations/{act['id']}")
    page.get_by_role("button", name="Aller à l'étape 2").click()
    expect(page.get_by_text("Ouverture dans")).to_be_visible()
    expect(page.get_by_role("link", name="Actualiser")).to_be_visible()
    first = page.locator("input[type=checkbox][id^='c-']").first
    expect(first).to_be_disabled()
    _configure(app, act, opening_at=utcnow() - timedelta(seconds=1), concurrent=0)  # the opening time has come
    page.clock.fast_forward("10:05")  # ... and the page's countdown reaches zero: it reloads by itself
    expect(page.get_by_text("Ouverture dans")).to_be_hidden()
    expect(page.locator("input[type=checkbox][id^='c-']").first).to_be_enabled()


def test_the_waiting_room_lets_the_parent_in_by_itself(page, app, make_family, make_activity, inscribe, tenants):
    act = make_activity("auray", starts_in=10, days=5, name="Accueil de loisirs Kids")
    first, second = (make_family("auray", children=[(n, "2021-04-12")]) for n in ("Maël", "Lilou"))
    inscribe(act, first["child_ids"] + second["child_ids"])
    _configure(app, act, opening_at=utcnow() - timedelta(minutes=1), concurrent=1)
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        assert waiting_room.check(activity, first["user_id"], start=True).state == "admitted"
        db.session.remove()
    login(page, "auray", second)
    page.goto(f"/auray/reservations/{act['id']}")
    expect(page.get_by_role("heading", name="Salle d'attente")).to_be_visible()
    expect(page.get_by_text("Votre position dans la file : 1")).to_be_visible()
    with app.app_context(), tenant_scope(act["tenant_id"]):
        waiting_room.leave(db.session.get(Activity, act["id"]), first["user_id"])  # the first family validated
        db.session.remove()
    expect(page.get_by_text("Choix des personnes concernées")).to_be_visible()

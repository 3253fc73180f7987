"""A parent opens Mon agenda, sees a booked day, justifies an absence and sees it "Absent"."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core.models import RES_PENDING, RES_WAITLIST
from tests.agenda_data import Builder, sessions_spec, today, units_spec

pytestmark = pytest.mark.browser

RESERVED_BG = "rgb(227, 243, 232)"
ABSENT_BG = "rgb(251, 228, 226)"


@pytest.fixture
def family(app, tenants, make_family, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOADS_DIR", str(tmp_path / "uploads"))
    fam = make_family("auray", children=[("Lou", "2018-05-01"), ("Noé", "2016-03-10")])
    noe, lou = fam["child_ids"]
    b = Builder(app, tenants["auray"])
    act = b.activity(units_spec())
    stages = b.activity(sessions_spec([{"dates": [today() + timedelta(days=i) for i in (1, 2, 3)],
                                        "title": "Stage de roller", "time_slot": "journee", "start_time": "08:00",
                                        "end_time": "18:00", "places": 8}]))
    for child in (lou, noe):
        b.inscribe(child, act)
        b.inscribe(child, stages)
    fam["matin"] = b.book(lou, fam["family_id"], b.slot(act, today(), unit="matin"))
    b.book(lou, fam["family_id"], b.slot(act, today(), unit="repas"), RES_PENDING)
    b.book(noe, fam["family_id"], b.slot(act, today(), unit="apres_midi"), RES_WAITLIST)
    b.book(noe, fam["family_id"], b.slot(stages, today() + timedelta(days=1), title="Stage de roller"))
    fam["builder"], fam["units"] = b, act
    return fam


def _login(pg, fam):
    pg.goto("/auray/connexion")
    pg.get_by_label("Identifiant (adresse e-mail)").fill(fam["email"])
    pg.get_by_label("Mot de passe").fill(fam["password"])
    pg.get_by_role("button", name="Connexion").click()
    expect(pg.get_by_role("heading", name="Mon espace", exact=True)).to_be_visible()


def test_parent_sees_a_booked_day_and_justifies_an_absence(page, family):
    _login(page, family)
    page.get_by_role("link", name="Mon agenda").first.click()
    expect(page.get_by_role("heading", name="Mon agenda")).to_be_visible()
    expect(page.get_by_role("heading", name="Légende")).to_be_visible()

    matin = page.locator("li.ag-item").filter(has_text="Matin").filter(has_text="Lou")
    expect(matin).to_have_count(1)
    expect(matin).to_contain_text("Réservé")
    expect(matin).to_contain_text("Accueil de loisirs Les Lutins")
    expect(matin).to_have_css("background-color", RESERVED_BG)
    expect(matin).to_have_attribute("title", re.compile(r"Accueil de loisirs Les Lutins — Matin — .+ — Lou — Réservé"))
    repas = page.locator("li.ag-item").filter(has_text="Repas")
    expect(repas).to_contain_text("En attente de validation")
    expect(page.locator("li.ag-item").filter(has_text="Après-midi")).to_contain_text("Liste d'attente")

    matin.get_by_role("link", name=re.compile("Justifier une absence")).click()
    expect(page.get_by_role("heading", name="Justifier une absence")).to_be_visible()
    page.get_by_label("Motif de l'absence").select_option(label="Maladie")
    page.get_by_label("Précisions").fill("Fièvre")
    page.get_by_role("button", name="Envoyer la justification").click()

    expect(page.get_by_text("Nous avons bien enregistré l'absence de Lou")).to_be_visible()
    matin = page.locator("li.ag-item").filter(has_text="Matin").filter(has_text="Lou")
    expect(matin).to_contain_text("Absent")
    expect(matin).to_have_css("background-color", ABSENT_BG)
    expect(matin.get_by_role("link")).to_have_count(0)
    assert family["builder"].reservation(family["matin"])["status"] == "absent"


def test_filters_and_views_work_with_the_keyboard(page, family):
    _login(page, family)
    page.goto("/auray/agenda")
    expect(page.locator("li.ag-item").filter(has_text="Lou")).not_to_have_count(0)
    page.get_by_role("checkbox", name="Lou").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Afficher").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("checkbox", name="Lou")).not_to_be_checked()
    expect(page.locator("li.ag-item").filter(has_text="Lou")).to_have_count(0)
    expect(page.locator("li.ag-item").filter(has_text="Noé")).not_to_have_count(0)
    page.get_by_role("link", name="Mois", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Mois", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("checkbox", name="Lou")).not_to_be_checked()  # the filter is kept


def test_agenda_fits_a_375px_phone(phone, family):
    b, lou = family["builder"], family["child_ids"][1]
    monday = today() + timedelta(days=7 - today().weekday())
    b.book(lou, family["family_id"], b.slot(family["units"], monday, unit="matin"))  # the coming week too
    _login(phone, family)
    for view in ("mois", "semaine", "semaine5", "jour"):
        phone.goto(f"/auray/agenda?vue={view}")
        expect(phone.locator("li.ag-item").first).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375, view
    phone.goto("/auray/absences")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.goto(f"/auray/absences/{family['matin']}")
    expect(phone.get_by_label("Motif de l'absence")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375

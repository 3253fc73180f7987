"""RGAA / WCAG 2.1 AA: the main public, parent, agent and support pages of each commune (their colours
differ) have no serious or critical axe violation, at 1280 px and at 375 px.

Every browser test is checked the same way as it goes (tests/browser/a11y.py); this one walks the
pages on purpose, with data on them (a planning with ticks, full sessions, a demande, the support
banner), and lists every violation of every page at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from core.contrast import contrast_ratio
from tests.admin_helpers import book, make_support
from tests.browser import a11y
from tests.conftest import PASSWORD, days_from_today

pytestmark = pytest.mark.browser

COMMUNES = {"auray": "Ville d'Auray", "saint-loubes": "Mairie de Saint-Loubès",
            "saint-aubin-de-medoc": "Saint-Aubin de Médoc"}


class Walk:
    """Visits pages and keeps what axe finds on each, to report them all together."""

    def __init__(self):
        self.found: list[a11y.Violation] = []
        self.pages: list[str] = []

    def check(self, page) -> None:
        self.found.extend(a11y.check_page(page))
        self.pages.append(page.url)

    def visit(self, page, path: str) -> None:
        response = page.goto(path)
        assert response is not None and response.status < 400, f"{path} : HTTP {response and response.status}"
        self.check(page)


def _born(years: int) -> str:
    return (days_from_today(0) - timedelta(days=365 * years + 40)).isoformat()


@pytest.fixture
def commune(request, app, make_family, make_activity, inscribe, make_agent):
    slug = request.param
    day = days_from_today(9)
    units = make_activity(slug, code="centre", name="Accueil de loisirs", starts_in=8, days=7, ages=[3, 12])
    sessions = make_activity(slug, code="stages", name="Stages et sorties", kind="sessions", ages=[3, 12],
                             starts_in=8, days=7, validation="commune",
                             sessions=[{"date": day, "title": "Danse latine", "time_slot": "matin", "places": 10},
                                       {"date": day, "title": "Tir à l'arc", "time_slot": "matin", "places": 0},
                                       {"dates": [day, day + timedelta(days=1)], "title": "Stage de roller",
                                        "time_slot": "journee", "start_time": "09:00", "end_time": "17:00",
                                        "places": 8, "theme": "Sport", "discipline": "Roller"}])
    fam = make_family(slug, children=[("Maël", _born(6)), ("Anouk", _born(9))])
    inscribe(units, fam["child_ids"])
    inscribe(sessions, fam["child_ids"])
    first = fam["child_ids"][0]
    demande = book(app, fam, units, [(first, units["slots"][("matin", days_from_today(8).isoformat())]),
                                     (first, units["slots"][("repas", days_from_today(8).isoformat())])])
    return {"slug": slug, "name": COMMUNES[slug], "units": units, "sessions": sessions, "fam": fam, "day": day,
            "demande": demande, "agent": make_agent(slug), "support": make_support(app)}


def _login(page, slug, email, password=PASSWORD):
    page.goto(f"/{slug}/connexion")
    page.get_by_label("Identifiant (adresse e-mail)").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Connexion").click()


def _assert_commune_colours(page, slug):
    """The page wears the commune's colours, and white text on its primary colour reads at 4.5:1."""
    primary = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary').trim()")
    expected = {"auray": "#00507d", "saint-loubes": "#2e6f40", "saint-aubin-de-medoc": "#4b7a0f"}[slug]
    assert primary == expected
    assert contrast_ratio(primary, "#ffffff") >= 4.5


@pytest.mark.parametrize("commune", list(COMMUNES), indirect=True)
def test_the_main_pages_of_the_commune_have_no_serious_axe_violation(browser, live_server, commune):
    c, walk = commune, Walk()
    slug, fam = c["slug"], c["fam"]
    first = fam["child_ids"][0]
    page = browser.new_context(base_url=live_server).new_page()

    # public
    for path in ("/", f"/{slug}/", f"/{slug}/connexion", f"/{slug}/creer-mon-espace", f"/{slug}/mot-de-passe-oublie",
                 f"/{slug}/cgu"):
        walk.visit(page, path)
    _assert_commune_colours(page, slug)

    # parent
    _login(page, slug, fam["email"])
    expect(page.get_by_role("heading", name="Mon tableau de bord")).to_be_visible()
    walk.check(page)
    for path in ("famille/dossier", f"famille/enfants/{first}", f"famille/enfants/{first}/informations",
                 f"famille/enfants/{first}/sante", f"famille/enfants/{first}/autorisations",
                 f"famille/enfants/{first}/contacts/nouveau", "mes-identifiants", "inscriptions/",
                 "inscriptions/nouvelle", "reservations", "demandes/", f"demandes/{c['demande']['number']}",
                 "agenda?vue=mois", f"agenda?vue=semaine&date={days_from_today(8).isoformat()}", "absences"):
        walk.visit(page, f"/{slug}/{path}")

    # the planning: a grid of units with a tick (htmx), the session cards (places, full, several dates), the recap
    walk.visit(page, f"/{slug}/reservations/{c['units']['id']}?enfant={first}")
    page.get_by_label("Stages et sorties").check()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    expect(page.get_by_role("heading", name="Maël")).to_be_visible()
    planning = page.url.split("?")[0]
    cell = page.locator(f"#c-{first}-{c['units']['slots'][('apres_midi', days_from_today(8).isoformat())]}")
    cell.check()
    expect(page.get_by_text("1 modification dans cette démarche")).to_be_visible()
    walk.check(page)
    walk.visit(page, f"{planning}?activite={c['units']['id']}&vue=mois&date={days_from_today(8).isoformat()}")
    walk.visit(page, f"{planning}?activite={c['sessions']['id']}&date={c['day'].isoformat()}")
    expect(page.get_by_text("Complet", exact=True)).to_be_visible()
    page.get_by_role("button", name="Liste d'attente").first.click()
    expect(page.locator(".tag--wait").first).to_have_text("liste d'attente")
    walk.check(page)
    page.get_by_role("button", name="Aller à l'étape 3").first.click()
    expect(page.get_by_role("heading", name="Le récapitulatif")).to_be_visible()
    walk.check(page)

    # agent
    agent = browser.new_context(base_url=live_server).new_page()
    _login(agent, slug, c["agent"]["email"])
    expect(agent.get_by_role("heading", name="Espace agents")).to_be_visible()
    walk.check(agent)
    for path in ("demandes", f"demandes/{c['demande']['id']}", "inscriptions",
                 f"listes?activite={c['units']['id']}&jour={days_from_today(8).isoformat()}", "annuaire",
                 f"annuaire/{fam['family_id']}", "familles", f"familles/{fam['family_id']}", "modifications",
                 "activites", f"activites/{c['units']['id']}", f"activites/{c['sessions']['id']}", "activites/nouvelle",
                 "commune", "journal", "mails", "pre-reservations"):
        walk.visit(agent, f"/{slug}/admin/{path}")
    _assert_commune_colours(agent, slug)

    # support, and the support banner inside the commune
    support = browser.new_context(base_url=live_server).new_page()
    walk.visit(support, "/support/connexion")
    support.get_by_label("Adresse e-mail").fill(c["support"]["email"])
    support.get_by_label("Mot de passe").fill(c["support"]["password"])
    support.get_by_role("button", name="Connexion").click()
    expect(support.get_by_role("heading", name="Les communes")).to_be_visible()
    walk.check(support)
    support.get_by_role("button", name=f"Entrer en mode support : {c['name']}").click()
    expect(support.get_by_role("status").filter(has_text=f"Mode support — {c['name']}")).to_be_visible()
    walk.check(support)
    walk.visit(support, f"/{slug}/admin/demandes/{c['demande']['id']}")
    walk.visit(support, "/support/journal")

    assert len(walk.pages) >= 50
    assert not walk.found, a11y.format_violations(walk.found)


def test_the_checker_fails_on_a_planted_violation_and_says_where(chromium, live_server):
    """The check itself can fail: text in the old Saint-Loubès gold and an aria-invalid="None" planted in
    a page are reported with their rule, selector, page and width (on a context the suite does not watch)."""
    context = chromium.new_context(base_url=live_server, viewport=a11y.DESKTOP, locale="fr-FR")
    try:
        page = context.new_page()
        page.goto("/auray/")
        page.evaluate("""() => document.querySelector('main').insertAdjacentHTML('beforeend',
            '<p id="planted" style="color:#f2a900">Texte doré</p><input id="planted-input" aria-invalid="None" aria-label="Nom">')""")
        found = a11y.check_page(page)
        where = {(v.rule, v.target, v.width) for v in found}
        assert {("color-contrast", "#planted", 1280), ("color-contrast", "#planted", 375),
                ("aria-valid-attr-value", "#planted-input", 1280)} <= where
        message = a11y.format_violations(found)
        assert "[color-contrast] serious" in message and "page /auray/ : #planted @1280px, #planted @375px" in message
        assert page.viewport_size == a11y.DESKTOP  # the width the test had is given back
        recorder = a11y.Recorder()
        recorder.contexts.append(context)
        with pytest.raises(AssertionError, match=r"\[aria-valid-attr-value\] critical"):
            recorder.finish()
    finally:
        context.close()

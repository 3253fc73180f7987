"""Each seed tutorial walked end to end in Chromium, with its wording."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import days_from_today

pytestmark = pytest.mark.browser


class Clicks:
    """Counts what the parent clicks after login (the seeds' portal needs ~44 for this)."""

    def __init__(self, page):
        self.page, self.n = page, 0

    def __call__(self, locator):
        self.n += 1
        locator.click()


def login(page, slug, fam):
    page.goto(f"/{slug}/")
    page.get_by_label("Identifiant (adresse e-mail)").fill(fam["email"])
    page.get_by_label("Mot de passe").fill(fam["password"])
    page.get_by_role("button", name="Connexion").click()
    expect(page.get_by_role("heading", name="Mon tableau de bord")).to_be_visible()


def first_monday_after(n):
    d = days_from_today(n)
    while d.weekday() != 0:
        d = d.replace() + __import__("datetime").timedelta(days=1)
    return d


def test_auray_kids_week_for_two_children_in_few_clicks(page, make_family, make_activity, inscribe, outbox):
    monday = first_monday_after(7)
    start = (monday - days_from_today(0)).days
    act = make_activity("auray", starts_in=start, days=5, units=[
        {"code": "matin", "label": "Matin", "capacity": 24}, {"code": "repas", "label": "Repas", "capacity": 24},
        {"code": "apres_midi", "label": "Après-midi", "capacity": 24}],
        name="Accueil de loisirs Petites vacances Kids", calendar={"weekdays": [0, 1, 2, 3, 4], "public_holidays": "open"})
    fam = make_family("auray", children=[("Maël", "2021-04-12"), ("Lilou", "2020-09-01")])
    inscribe(act, fam["child_ids"])
    login(page, "auray", fam)
    click = Clicks(page)
    click(page.get_by_role("link", name="Modifier les réservations"))
    click(page.get_by_role("link", name="Réserver : Accueil de loisirs Petites vacances Kids pour Maël"))
    expect(page.get_by_text("Choix des personnes concernées")).to_be_visible()
    click(page.get_by_role("button", name="Aller à l'étape 2"))
    expect(page.get_by_role("heading", name="Maël")).to_be_visible()
    expect(page.get_by_role("heading", name="Lilou")).to_be_visible()
    click(page.get_by_role("button", name="Tout cocher"))
    expect(page.get_by_text("30 cases cochées.")).to_be_visible()
    click(page.get_by_role("button", name="Aller à l'étape 3").first)
    expect(page.get_by_role("heading", name="Le récapitulatif")).to_be_visible()
    expect(page.get_by_text("Le demandeur")).to_be_visible()
    day = monday.strftime("%d/%m/%Y")
    expect(page.get_by_text(re.compile(f"Repas — lundi {day} — Maël"))).to_be_visible()
    click(page.get_by_role("button", name="Valider"))
    expect(page.get_by_role("heading", name="Nous avons bien enregistré votre demande")).to_be_visible()
    expect(page.get_by_text("Déposée").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"Demande N° \d+")).first).to_be_visible()
    assert click.n <= 8, click.n
    mails = outbox.to(fam["email"])
    assert len(mails) == 1 and "Nous avons bien reçu votre demande (Réservation de séances)" in outbox.text(mails[0])
    assert "La Ville d'Auray" in outbox.text(mails[0])


def test_auray_kids_a_tick_is_held_at_once_and_a_full_unit_shows_i(page, make_family, make_activity, inscribe):
    act = make_activity("auray", starts_in=8, days=3)  # capacities of 2
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    rivals = make_family("auray", children=[("A", "2021-01-01"), ("B", "2021-01-02")])
    inscribe(act, fam["child_ids"] + rivals["child_ids"])
    login(page, "auray", rivals)
    page.goto("/auray/reservations")
    page.get_by_role("link", name=re.compile("Réserver : .* pour A")).click()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    day = days_from_today(8)
    label = f"Matin — A — {day.strftime('%A')}"
    box = page.locator(f"input[id^='c-'][id$='-{act['slots'][('matin', day.isoformat())]}']").first
    box.check()
    expect(page.get_by_text("1 modification dans cette démarche")).to_be_visible()
    page.locator(f"#cell-{rivals['child_ids'][1]}-{act['slots'][('matin', day.isoformat())]} input[type=checkbox]").check()
    expect(page.get_by_text("2 modifications dans cette démarche")).to_be_visible()
    page.get_by_role("button", name="Aller à l'étape 3").first.click()
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Nous avons bien enregistré votre demande")).to_be_visible()
    assert label  # the label names the child, the unit and the day
    # now the unit is full for Maël's family: (i) and the waiting list
    page.context.clear_cookies()
    login(page, "auray", fam)
    page.goto("/auray/reservations")
    page.get_by_role("link", name=re.compile("Réserver : .* pour Maël")).click()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    cell = page.locator(f"#cell-{fam['child_ids'][0]}-{act['slots'][('matin', day.isoformat())]}")
    expect(cell.locator("input[type=checkbox]")).to_be_disabled()
    expect(cell.get_by_text("(i)")).to_be_visible()
    cell.get_by_role("button", name=re.compile("Liste d'attente")).click()
    expect(page.locator(f"#cell-{fam['child_ids'][0]}-{act['slots'][('matin', day.isoformat())]}").get_by_text("liste d'attente")).to_be_visible()


def test_auray_klub_places_complet_and_one_activity_per_time_slot(page, make_family, make_activity, inscribe):
    day = days_from_today(9)
    act = make_activity("auray", code="klub", name="Activités et repas Klub 8-12 ans", kind="sessions", ages=[8, 12],
                        online_quota_pct=50, one_per_time_slot=True, starts_in=5, days=10,
                        sessions=[{"date": day, "title": "Danse latine", "time_slot": "matin", "places": 10},
                                  {"date": day, "title": "Fun Archery", "time_slot": "matin", "places": 0},
                                  {"date": day, "title": "Repas", "time_slot": "midi", "places": 48}])
    fam = make_family("auray", children=[("Thaïs", "2016-05-01")])
    inscribe(act, fam["child_ids"])
    login(page, "auray", fam)
    page.goto("/auray/reservations")
    page.get_by_role("link", name=re.compile("Klub 8-12 ans pour Thaïs")).click()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    page.goto(page.url + f"&date={day.isoformat()}")
    danse = act["slots"][("Danse latine", day.isoformat())]
    expect(page.locator(f"#places-{danse}")).to_have_text("Places : 5")  # half of 10 online
    expect(page.locator(f"#places-{act['slots'][('Fun Archery', day.isoformat())]}")).to_have_text("Complet")
    page.locator(f"#c-{fam['child_ids'][0]}-{danse}").check()
    expect(page.locator(f"#places-{danse}")).to_have_text("Places : 4")
    repas = act["slots"][("Repas", day.isoformat())]
    page.locator(f"#c-{fam['child_ids'][0]}-{repas}").check()
    expect(page.locator(f"#places-{repas}")).to_have_text("Places : 23")
    page.reload()
    archery = page.locator(f"#cell-{fam['child_ids'][0]}-{act['slots'][('Fun Archery', day.isoformat())]}")
    expect(archery.locator("input[type=checkbox]")).to_be_disabled()
    page.get_by_role("button", name="Aller à l'étape 3").first.click()
    expect(page.get_by_text(re.compile(r"Danse latine — \w+ \d\d/\d\d/\d{4} — Thaïs"))).to_be_visible()
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Déposée").first).to_be_visible()


def test_saint_loubes_periscolaire_periodicity_is_accepted_at_once(page, make_family, make_activity, inscribe, outbox):
    act = make_activity("saint-loubes", code="periscolaire", name="Accueil périscolaire", starts_in=14, days=28,
                        validation="immediate", ages=None,
                        calendar={"weekdays": [0, 1, 3, 4], "public_holidays": "open"},
                        units=[{"code": "matin", "label": "Matin", "capacity": 60},
                               {"code": "soir", "label": "Soir", "capacity": 80}])
    fam = make_family("saint-loubes", children=[("Inès", "2018-05-21")])
    inscribe(act, fam["child_ids"])
    login(page, "saint-loubes", fam)
    page.get_by_role("link", name="Modifier les réservations").click()
    page.get_by_role("link", name=re.compile("Accueil périscolaire pour Inès")).click()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    page.get_by_text("Appliquer une périodicité").click()
    for day in ("lundi", "mardi", "jeudi", "vendredi"):
        page.get_by_label(day, exact=True).check()
    page.get_by_role("button", name="Cocher ces jours", exact=True).click()
    expect(page.get_by_text(re.compile(r"\d+ cases cochées\."))).to_be_visible()
    page.get_by_role("button", name="Aller à l'étape 3").first.click()
    expect(page.get_by_text(re.compile("Matin — lundi .* — Inès")).first).to_be_visible()
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", name="Nous avons bien enregistré votre demande")).to_be_visible()
    expect(page.get_by_text("Traitée positivement").first).to_be_visible()
    assert "traitée positivement" in outbox.text(outbox.to(fam["email"])[0])


def test_saint_aubin_inscription_then_a_four_day_stage(page, make_family, make_activity, app, tenants):
    dates = [days_from_today(30 + i) for i in range(4)]
    act = make_activity("saint-aubin-de-medoc", code="stages", name="Séjours & Stages", kind="sessions", ages=[6, 12],
                        starts_in=1, days=60, validation="prereservation", prereservation_until=days_from_today(20),
                        inscription_validation="immediate",
                        sessions=[{"dates": dates, "title": "Sport Vacances — Stage de roller", "time_slot": "journee",
                                   "start_time": "08:00", "end_time": "18:00", "places": 8, "ages": [7, 9],
                                   "discipline": "Roller", "theme": "Sport"}])
    fam = make_family("saint-aubin-de-medoc", children=[("Timéo", "2018-02-08")])
    login(page, "saint-aubin-de-medoc", fam)
    page.get_by_role("link", name="Créer une inscription").click()
    page.get_by_label("Timéo").check()
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", name="Nous avons bien enregistré votre demande")).to_be_visible()
    page.goto("/saint-aubin-de-medoc/reservations")
    page.get_by_role("link", name=re.compile("Séjours & Stages pour Timéo")).click()
    page.get_by_role("button", name="Aller à l'étape 2").click()
    page.goto(page.url + f"&date={dates[0].isoformat()}")
    expect(page.get_by_text("Sport Vacances — Stage de roller", exact=True)).to_be_visible()
    expect(page.get_by_text("Places : 8")).to_be_visible()
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.locator(f"#c-{fam['child_ids'][0]}-{act['slots'][('Sport Vacances — Stage de roller', dates[0].isoformat())]}").check()
    expect(page.get_by_text("Places : 7")).to_be_visible()
    assert "Confirmez-vous votre réservation à l'ensemble des dates ?" in messages[0]
    assert dates[3].strftime("%d/%m/%Y") in messages[0]
    page.get_by_role("button", name="Aller à l'étape 3").first.click()
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_text("Déposée").first).to_be_visible()

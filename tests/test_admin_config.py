"""Configuring the commune without code: every form validates in French next to the field and keeps
what was typed; capacities never go under the places booked; an activity with bookings is archived."""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import select

from core.models import Activity, ActivityUnit, Slot
from extensions import db
from tenants.context import tenant_scope
from tenants.models import Tenant
from tests.admin_helpers import book, form_data, keep_tenant_settings  # noqa: F401 (fixture)
from tests.conftest import days_from_today

pytestmark = pytest.mark.usefixtures("keep_tenant_settings")
NEW = "/auray/admin/activites/nouvelle"


@pytest.fixture
def agent(web, make_agent):
    a = make_agent("auray")
    web.login("auray", a["email"])
    return a


def error_next_to(html: str, field_id: str, message: str) -> bool:
    """The message is in the error paragraph that belongs to the field (aria-describedby / same cell)."""
    html = unescape(html)
    start = html.find(f'id="{field_id}"')
    if start < 0:
        return False
    window = html[start:start + 1500]
    return message in window.split("</td>")[0].split('<div class="field')[0]


def new_activity_data(web, **changes):
    html = web.get(NEW).get_data(as_text=True)
    base = dict(name="Mercredis loisirs", season="2026/2027", starts_on=days_from_today(10).isoformat(),
                ends_on=days_from_today(40).isoformat(), units__0__label="Matin", units__0__capacity="12",
                units__1__label="Repas", units__1__capacity="10")
    base.update(changes)
    return form_data(html, "", **base)


def test_create_an_activity_with_units_and_edit_it(app, web, agent, tenants):
    res = web.post(NEW, new_activity_data(web, weekdays=["2"]), page=NEW)
    assert res.status_code == 303, res.get_data(as_text=True)[:2000]
    html = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "L'activité Mercredis loisirs est créée." in unescape(html)
    with app.app_context(), tenant_scope(tenants["auray"]):
        activity = db.session.scalars(select(Activity).where(Activity.code == "mercredis-loisirs")).one()
        days = {s.day.weekday() for s in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id))}
        assert [(u.label, u.capacity) for u in activity.units] == [("Matin", 12), ("Repas", 10)]
        db.session.remove()
    assert days == {2}  # Wednesdays only
    # the edit page shows what was saved, and saving it unchanged changes nothing
    edit = res.headers["Location"]
    page = web.get(edit).get_data(as_text=True)
    assert 'value="Mercredis loisirs"' in page and 'value="12"' in page
    assert web.post(edit, form_data(page, ""), page=edit).status_code == 303


def test_bad_input_in_the_activity_form_is_explained_next_to_each_field_and_nothing_is_lost(web, agent):
    data = new_activity_data(web, name="", starts_on="32/13/2026", ends_on=days_from_today(5).isoformat(),
                             age_min="8", age_max="3", units__0__capacity="beaucoup", online_quota_pct="150",
                             booking_kind="days_before", booking_days="", booking_time="25h",
                             closed_dates="24/12/2026\nnoël", overrides="24/12/2026 ; Goûter ; 5")
    res = web.post(NEW, data, page=NEW)
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and "Rien n'a été enregistré." in unescape(html)
    assert error_next_to(html, "name", "Ce champ est obligatoire.")
    assert error_next_to(html, "starts_on", "Date invalide : saisissez-la au format JJ/MM/AAAA.")
    assert 'value="32/13/2026"' in html  # what was typed is kept
    assert error_next_to(html, "units-0-capacity", "Saisissez un nombre entier.") and 'value="beaucoup"' in html
    assert error_next_to(html, "online_quota_pct", "Saisissez un nombre entre 0 et 100.") and 'value="150"' in html
    assert error_next_to(html, "booking_days", "Indiquez le nombre de jours.")
    assert error_next_to(html, "booking_time", "Heure invalide") and 'value="25h"' in html
    assert error_next_to(html, "closed_dates", "Date illisible : « noël »")
    assert error_next_to(html, "overrides", "Ligne 1 : unité inconnue « Goûter ».")
    assert "noël</textarea>" in html and "Goûter ; 5</textarea>" in html
    # the date errors that need the other fields
    data = new_activity_data(web, ends_on=days_from_today(5).isoformat(), age_min="8", age_max="3")
    html = web.post(NEW, data, page=NEW).get_data(as_text=True)
    assert error_next_to(html, "ends_on", "La date de fin doit être après la date de début.")
    assert error_next_to(html, "age_max", "L'âge maximum doit être supérieur ou égal à l'âge minimum.")
    data = new_activity_data(web, validation="prereservation", prereservation_until="", weekdays=None)
    html = web.post(NEW, data, page=NEW).get_data(as_text=True)
    assert error_next_to(html, "prereservation_until", "Indiquez la fin de la période de pré-réservation.")
    assert "Cochez au moins un jour d'ouverture." in unescape(html)


def test_sessions_form_dates_and_periods(app, web, agent, tenants):
    start = days_from_today(20)
    data = new_activity_data(web, name="Stages de printemps", kind="sessions", units__0__label="", units__0__capacity="",
                             units__1__label="", units__1__capacity="",
                             sessions__0__title="Stage de roller",
                             sessions__0__dates=f"{start:%d/%m/%Y} au {start.replace(day=start.day) + __import__('datetime').timedelta(days=3):%d/%m/%Y}",
                             sessions__0__places="8", sessions__0__start_time="08:00", sessions__0__end_time="18:00",
                             sessions__1__title="Sortie", sessions__1__dates="31/02/2027", sessions__1__places="5",
                             sessions__2__title="Atelier", sessions__2__dates=f"{start:%d/%m/%Y}", sessions__2__places="",
                             sessions__2__start_time="14:00", sessions__2__end_time="10:00")
    html = web.post(NEW, data, page=NEW).get_data(as_text=True)
    assert error_next_to(html, "sessions-1-dates", "Date illisible : « 31/02/2027 »")
    assert error_next_to(html, "sessions-2-places", "Indiquez le nombre de places.")
    assert error_next_to(html, "sessions-2-end_time", "L'heure de fin doit être après l'heure de début.")
    data.update({"sessions-1-dates": f"{start:%d/%m/%Y}", "sessions-2-places": "6", "sessions-2-end_time": "17:00"})
    res = web.post(NEW, data, page=NEW)
    assert res.status_code == 303, res.get_data(as_text=True)[:3000]
    with app.app_context(), tenant_scope(tenants["auray"]):
        activity = db.session.scalars(select(Activity).where(Activity.code == "stages-de-printemps")).one()
        slots = {s.title: s for s in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id))}
        assert len(slots["Stage de roller"].dates) == 4 and slots["Stage de roller"].capacity == 8
        db.session.remove()


@pytest.fixture
def booked(app, make_activity, make_family, inscribe):
    act = make_activity("auray", starts_in=10, days=3)  # capacities of 2
    fam = make_family("auray", children=[("Maël", "2021-04-12"), ("Lilou", "2020-09-01")])
    inscribe(act, fam["child_ids"])
    day = days_from_today(11)
    matin = act["slots"][("matin", day.isoformat())]
    book(app, fam, act, [(c, matin) for c in fam["child_ids"]])
    return {"act": act, "day": day, "fam": fam, "matin": matin}


def test_capacity_cannot_go_under_the_places_booked(app, web, agent, booked, tenants):
    edit = f"/auray/admin/activites/{booked['act']['id']}"
    page = web.get(edit).get_data(as_text=True)
    res = web.post(edit, form_data(page, "", units__0__capacity="1"), page=edit)
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert error_next_to(html, "units-0-capacity",
                         f"2 places sont déjà réservées le {booked['day']:%d/%m/%Y} : la capacité ne peut pas descendre sous 2.")
    # a day's own capacity is checked too
    res = web.post(edit, form_data(page, "", overrides=f"{booked['day']:%d/%m/%Y} ; Matin ; 0"), page=edit)
    assert error_next_to(res.get_data(as_text=True), "overrides", "2 places sont déjà réservées")
    # removing a unit with bookings is refused
    res = web.post(edit, form_data(page, "", units__0__remove="y"), page=edit)
    assert "L'unité « Matin » a 2 réservations : elle ne peut pas être supprimée." in unescape(res.get_data(as_text=True))
    # raising it, and a special capacity for one day, are fine; the special day survives the next save
    other = booked["day"] + __import__("datetime").timedelta(days=1)
    res = web.post(edit, form_data(page, "", units__0__capacity="5", overrides=f"{other:%d/%m/%Y} ; Repas ; 1"),
                   page=edit)
    assert res.status_code == 303
    page = web.get(edit).get_data(as_text=True)
    assert f"{other:%d/%m/%Y} ; Repas ; 1" in page
    assert web.post(edit, form_data(page, ""), page=edit).status_code == 303
    with app.app_context(), tenant_scope(tenants["auray"]):
        caps = {(s.unit.code, s.day): s.capacity for s in db.session.scalars(select(Slot).where(
            Slot.activity_id == booked["act"]["id"]))}
        db.session.remove()
    assert caps[("matin", booked["day"])] == 5 and caps[("repas", other)] == 1 and caps[("repas", booked["day"])] == 2


def test_places_of_a_session_cannot_go_under_its_bookings_and_renaming_keeps_them(app, web, agent, make_activity,
                                                                                  make_family, inscribe, tenants):
    day = days_from_today(15)
    act = make_activity("auray", code="klub", name="Klub", kind="sessions", ages=[3, 12], days=20,
                        sessions=[{"date": day.isoformat(), "title": "Danse latine", "places": 4}])
    fam = make_family("auray", children=[("Thaïs", "2015-01-01"), ("Eden", "2014-01-01"), ("Loan", "2016-01-01")])
    inscribe(act, fam["child_ids"])
    slot = act["slots"][("Danse latine", day.isoformat())]
    book(app, fam, act, [(c, slot) for c in fam["child_ids"]])
    edit = f"/auray/admin/activites/{act['id']}"
    page = web.get(edit).get_data(as_text=True)
    res = web.post(edit, form_data(page, "", sessions__0__places="2"), page=edit)
    assert error_next_to(res.get_data(as_text=True), "sessions-0-places",
                         "3 places sont déjà réservées : le nombre de places ne peut pas descendre sous 3.")
    res = web.post(edit, form_data(page, "", sessions__0__remove="y"), page=edit)
    assert "La séance « Danse latine » a 3 réservations : elle ne peut pas être supprimée." in res.get_data(as_text=True)
    res = web.post(edit, form_data(page, "", sessions__0__title="Danse latine et salsa", sessions__0__places="6"),
                   page=edit)
    assert res.status_code == 303
    with app.app_context(), tenant_scope(tenants["auray"]):
        kept = db.session.get(Slot, slot)
        assert (kept.title, kept.capacity, kept.taken) == ("Danse latine et salsa", 6, 3)
        db.session.remove()


def test_an_activity_with_bookings_is_archived_not_deleted(app, web, agent, booked, make_activity, make_family,
                                                           tenants):
    edit = f"/auray/admin/activites/{booked['act']['id']}"
    res = web.post(edit + "/supprimer", {}, page=edit)
    html = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "a des réservations (2)" in html and "Archivez-la" in html
    res = web.post(edit + "/archiver", {"archiver": "1"}, page=edit)
    assert "est archivée" in web.get(res.headers["Location"]).get_data(as_text=True)
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Activity, booked["act"]["id"]).archived is True
        db.session.remove()
    # families no longer see it among the activities open to inscription
    parent = type(web)(app.test_client())
    other = make_family("auray", children=[("Nina", "2020-01-01")])
    parent.login("auray", other["email"])
    assert "Accueil de loisirs Kids" not in parent.get("/auray/inscriptions/nouvelle").get_data(as_text=True)
    # an activity nobody booked can be deleted
    empty = make_activity("auray", code="vide", name="Activité vide")
    url = f"/auray/admin/activites/{empty['id']}"
    res = web.post(url + "/supprimer", {}, page=url)
    assert res.headers["Location"].endswith("/auray/admin/activites")
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Activity, empty["id"]) is None
        assert db.session.scalars(select(ActivityUnit).where(ActivityUnit.activity_id == empty["id"])).first() is None
        db.session.remove()


# ---------------------------------------------------------------------------- the commune

COMMUNE = "/auray/admin/commune"


def test_refusal_motifs(app, web, agent, booked):
    res = web.post(COMMUNE + "/motifs", {"motifs": "  \n "}, page=COMMUNE)
    assert res.status_code == 200 and error_next_to(res.get_data(as_text=True), "motifs", "Ce champ est obligatoire.")
    res = web.post(COMMUNE + "/motifs", {"motifs": "Dossier incomplet\n" + "x" * 201}, page=COMMUNE)
    html = res.get_data(as_text=True)
    assert error_next_to(html, "motifs", "Chaque motif doit tenir en 200 caractères au plus.")
    assert "Dossier incomplet\n" + "x" * 201 in html
    res = web.post(COMMUNE + "/motifs", {"motifs": "Dossier incomplet\nQuotient familial à justifier"}, page=COMMUNE)
    assert res.status_code == 303
    with app.app_context():
        from core.models import Demande

        with tenant_scope(booked["act"]["tenant_id"]):
            demande_id = db.session.scalars(select(Demande.id)).first()
        db.session.remove()
    html = web.get(f"/auray/admin/demandes/{demande_id}").get_data(as_text=True)
    assert '<option value="Quotient familial à justifier">' in html and "Factures impayées" not in html


def test_home_page_text_and_news(app, web, agent):
    res = web.post(COMMUNE + "/accueil", {"accueil-title_fr": "T" * 201, "accueil-intro_fr": "Bienvenue aux familles"}, page=COMMUNE)
    html = res.get_data(as_text=True)
    assert error_next_to(html, "accueil-title_fr", "200 caractères au maximum.") and "Bienvenue aux familles</textarea>" in html
    res = web.post(COMMUNE + "/accueil", {"accueil-title_fr": "Bonjour Auray", "accueil-title_en": "Hello Auray",
                                          "accueil-intro_fr": "Bienvenue aux familles"}, page=COMMUNE)
    assert res.status_code == 303
    home = type(web)(app.test_client()).get("/auray/").get_data(as_text=True)
    assert "Bonjour Auray" in home and "Bienvenue aux familles" in home
    res = web.post(COMMUNE + "/actualites", {"actu-date": "31/02/2027", "actu-title_fr": "", "actu-body_fr": "Inscriptions ouvertes"},
                   page=COMMUNE)
    html = res.get_data(as_text=True)
    assert error_next_to(html, "actu-date", "Date invalide") and error_next_to(html, "actu-title_fr", "Ce champ est obligatoire.")
    assert 'value="31/02/2027"' in html and "Inscriptions ouvertes</textarea>" in html
    res = web.post(COMMUNE + "/actualites", {"actu-date": "15/01/2027", "actu-title_fr": "Vacances d'hiver",
                                             "actu-body_fr": "Les réservations ouvrent lundi."}, page=COMMUNE)
    assert res.status_code == 303
    home = type(web)(app.test_client()).get("/auray/").get_data(as_text=True)
    assert "Vacances d&#39;hiver" in home and "Les réservations ouvrent lundi." in home and "15 janvier 2027" in home
    res = web.post(COMMUNE + "/actualites/0/supprimer", {}, page=COMMUNE)
    assert "Vacances d&#39;hiver" not in type(web)(app.test_client()).get("/auray/").get_data(as_text=True)


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def test_contact_colours_and_logo(app, web, agent, tmp_path, monkeypatch, tenants):
    import io
    import shutil

    shutil.copytree(app.config["TENANTS_DIR"], tmp_path / "tenants")
    monkeypatch.setitem(app.config, "TENANTS_DIR", str(tmp_path / "tenants"))
    res = web.post(COMMUNE + "/identite", {"contact_email": "pas-une-adresse", "primary": "bleu", "accent": "#c0392b",
                                           "logo": (io.BytesIO(b"<svg onload=alert(1)>"), "logo.svg")},
                   page=COMMUNE, content_type="multipart/form-data")
    html = res.get_data(as_text=True)
    assert res.status_code == 200
    assert error_next_to(html, "contact_email", "Saisissez une adresse e-mail valide") and 'value="pas-une-adresse"' in html
    assert error_next_to(html, "primary", "Couleur invalide : saisissez-la sous la forme #1f4e79.")
    assert error_next_to(html, "logo", "Le logo doit être une image PNG, JPEG ou WebP.")
    res = web.post(COMMUNE + "/identite", {"contact_email": "Enfance@Auray.test", "primary": "#123456",
                                           "accent": "#8a1c4f", "logo": (io.BytesIO(PNG), "logo.png")},
                   page=COMMUNE, content_type="multipart/form-data")
    assert res.status_code == 303
    home = type(web)(app.test_client()).get("/auray/").get_data(as_text=True)
    assert "--primary: #123456" in home and "enfance@auray.test" in home
    with app.app_context():
        logo = db.session.get(Tenant, tenants["auray"]).settings["branding"]["logo"]
        db.session.remove()
    assert logo.startswith("uploads/logo-") and logo.endswith(".png")
    assert f"/auray/assets/{logo}" in home
    assert type(web)(app.test_client()).get(f"/auray/assets/{logo}").data == PNG

"""Presence lists (page, print, CSV for French Excel) and the families' directory (search, file, accounts)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from core.admin_services import emergency_contact, health_flag
from core.models import Child, Family, Reservation, User
from extensions import db
from tenants.context import tenant_scope
from tests.admin_helpers import book, form_data
from tests.conftest import days_from_today


@pytest.fixture
def presence_world(app, web, make_family, make_activity, inscribe, make_agent, tenants):
    monday = days_from_today(8)
    while monday.weekday() != 0:
        monday += timedelta(days=1)
    start = (monday - days_from_today(0)).days
    act = make_activity("auray", starts_in=start, days=5, name="Accueil de loisirs Kids", units=[
        {"code": "matin", "label": "Matin", "capacity": 3}, {"code": "repas", "label": "Repas", "capacity": 2}])
    fam = make_family("auray", name="LE GUÉVEL", children=[("Maël", "2021-04-12"), ("Anaïs", "2020-09-01")])
    other = make_family("auray", name="ÉVENO", children=[("Noé", "2019-01-01")])
    inscribe(act, fam["child_ids"] + other["child_ids"])
    day = monday.isoformat()
    tue = (monday + timedelta(days=1)).isoformat()
    d1 = book(app, fam, act, [(fam["child_ids"][0], act["slots"][("matin", day)]),
                              (fam["child_ids"][0], act["slots"][("repas", day)]),
                              (fam["child_ids"][1], act["slots"][("matin", day)])])
    d2 = book(app, other, act, [(other["child_ids"][0], act["slots"][("matin", day)]),
                                (other["child_ids"][0], act["slots"][("matin", tue)])])
    agent = make_agent("auray")
    web.login("auray", agent["email"])
    for d in (d1, d2):
        url = f"/auray/admin/demandes/{d['id']}"
        assert web.post(url + "/decision", {"action": "accepter"}, page=url).status_code == 303
    with app.app_context(), tenant_scope(tenants["auray"]):  # Noé is marked absent on Monday
        res = db.session.scalars(select(Reservation).where(Reservation.child_id == other["child_ids"][0],
                                                           Reservation.slot_id == act["slots"][("matin", day)])).one()
        res.status = "absent"
        db.session.commit()
        db.session.remove()
    return {"act": act, "monday": monday, "fam": fam, "other": other}


def test_the_presence_list_of_a_day(web, presence_world):
    w = presence_world
    html = web.get(f"/auray/admin/listes?activite={w['act']['id']}&jour={w['monday'].isoformat()}&vue=jour")
    text = unescape(html.get_data(as_text=True))
    assert "Liste de présence — Accueil de loisirs Kids" in text
    assert "LE GUÉVEL Maël" in text and "LE GUÉVEL Anaïs" in text and "ÉVENO Noé" in text
    # counts per unit against capacity: Matin 2 present (+1 absent) of 3, Repas 1 of 2
    assert re.search(r"2 / 3</span> <span class=\"muted\">\(1 absent\)", text)
    assert "1 / 2" in text
    assert "Absent" in text and "parent" in text  # the contact when the family file has none: the account holder
    assert "window.print()" in text and "@media print" in open("static/css/admin.css").read()


def test_the_week_and_the_csv_opens_in_french_excel(web, presence_world):
    w = presence_world
    query = f"activite={w['act']['id']}&jour={w['monday'].isoformat()}&vue=semaine"
    html = unescape(web.get(f"/auray/admin/listes?{query}").get_data(as_text=True))
    tuesday = (w["monday"] + timedelta(days=1)).strftime("%d/%m/%Y")
    assert html.count("<h2>Liste de présence — Accueil de loisirs Kids") == 5 and tuesday in html
    res = web.get(f"/auray/admin/listes.csv?{query}")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    assert "attachment" in res.headers["Content-Disposition"] and ".csv" in res.headers["Content-Disposition"]
    raw = res.data
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the accents
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:5] == ["Date", "Nom", "Prénom", "Âge", "Classe"] and rows[0][5:7] == ["Matin", "Repas"]
    monday = w["monday"].strftime("%d/%m/%Y")
    assert any(r[:3] == [monday, "Le Guével", "Maël"] for r in rows)
    anais = next(r for r in rows if r[2] == "Anaïs")  # the elder: Matin and Repas
    mael = next(r for r in rows if r[2] == "Maël")
    assert anais[5:7] == ["Présent", "Présent"] and mael[5:7] == ["Présent", ""]
    noe = [r for r in rows if r[2] == "Noé"]
    assert [r[5] for r in noe] == ["Absent", "Présent"] and noe[1][0] == tuesday
    assert b"\r\n" in raw and b";" in raw.splitlines()[0]


def test_the_health_flag_and_the_emergency_contact_come_from_the_family_file_when_it_exists():
    child = SimpleNamespace(health=SimpleNamespace(pai=True, allergies="Arachide"))
    assert health_flag(child) == "PAI · Allergies"
    assert health_flag(SimpleNamespace()) == ""
    assert health_flag(SimpleNamespace(health=[SimpleNamespace(pai=False, allergies="")])) == ""
    contact = SimpleNamespace(first_name="Mamie", last_name="Le Goff", phone="06 12 34 56 78", emergency=True)
    assert emergency_contact(SimpleNamespace(contacts=[contact]), []) == "Mamie Le Goff 06 12 34 56 78"
    holder = SimpleNamespace(display_name="Camille Test", email="c@auray.test")
    assert emergency_contact(SimpleNamespace(), [holder]) == "Camille Test <c@auray.test>"


def test_bad_list_parameters_do_not_break_the_page(web, presence_world):
    res = web.get("/auray/admin/listes?activite=abc&jour=demain&vue=mois&unite=x")
    assert res.status_code == 200
    assert "Date invalide" in unescape(res.get_data(as_text=True))


# ---------------------------------------------------------------------------- families

@pytest.fixture
def agent_web(web, make_agent):
    agent = make_agent("saint-loubes")
    web.login("saint-loubes", agent["email"])
    return web


def _family_without_account(app, tenants, name="MAULIN"):
    from datetime import date

    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        family = Family(name=name, code="SL-0042")
        family.children.append(Child(tenant_id=tenants["saint-loubes"], first_name="Bébé", last_name=name.title(),
                                     birth_date=date(2018, 1, 1), school="Hector Ducamp", class_name="CE1 A"))
        db.session.add(family)
        db.session.commit()
        out = family.id
        db.session.remove()
    return out


def test_search_and_read_a_family_file(app, agent_web, make_family, make_activity, inscribe, tenants):
    fam = make_family("saint-loubes", name="DUCAMP", parent_email="maman.test@saint-loubes.test",
                      children=[("Fille", "2017-03-01")])
    act = make_activity("saint-loubes", name="Accueil périscolaire", ages=[3, 12])
    inscribe(act, fam["child_ids"])
    book(app, fam, act, [(fam["child_ids"][0], next(iter(act["slots"].values())))])
    _family_without_account(app, tenants)
    for q in ("ducamp", "Fille", "maman.test", fam_code(app, tenants, fam)):
        html = agent_web.get(f"/saint-loubes/admin/annuaire?q={q}").get_data(as_text=True)
        assert "DUCAMP" in html and "MAULIN" not in html, q
    html = agent_web.get("/saint-loubes/admin/annuaire").get_data(as_text=True)
    assert "MAULIN" in html and "Aucun espace" in html
    html = unescape(agent_web.get(f"/saint-loubes/admin/annuaire/{fam['family_id']}").get_data(as_text=True))
    assert "Famille DUCAMP" in html and "Fille" in html and "maman.test@saint-loubes.test" in html
    assert "Accueil périscolaire" in html and "Demande N°" not in html and "Réservation de séances" in html


def fam_code(app, tenants, fam):
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        code = db.session.get(Family, fam["family_id"]).code
        db.session.remove()
    return code


def test_create_the_account_of_a_family_that_has_none(app, agent_web, make_web, tenants, outbox, make_family):
    family_id = _family_without_account(app, tenants)
    url = f"/saint-loubes/admin/annuaire/{family_id}"
    page = agent_web.get(url).get_data(as_text=True)
    assert "Cette famille n&#39;a pas encore d&#39;espace" in page or "Cette famille n'a pas encore d'espace" in page
    taken = make_family("saint-loubes", parent_email="deja@saint-loubes.test")
    res = agent_web.post(url + "/compte", {"first_name": "Maman", "last_name": "Test", "email": taken["email"]}, page=url)
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and "Un espace existe déjà avec cette adresse e-mail." in unescape(html)
    assert 'value="Maman"' in html and f'value="{taken["email"]}"' in html
    res = agent_web.post(url + "/compte", {"first_name": "Maman", "last_name": "Test", "email": "pas une adresse"},
                         page=url)
    assert "Saisissez une adresse e-mail valide" in res.get_data(as_text=True)
    res = agent_web.post(url + "/compte", {"first_name": "Maman", "last_name": "Test",
                                           "email": "Maman.Test@saint-loubes.test"}, page=url)
    assert res.status_code == 303
    assert "un mail avec l&#39;identifiant" in agent_web.get(url).get_data(as_text=True) or \
        "un mail avec l'identifiant" in agent_web.get(url).get_data(as_text=True)
    (mail,) = outbox.to("maman.test@saint-loubes.test")
    text = outbox.text(mail)
    password = re.search(r"Mot de passe\s*:\s*(\S+)", text).group(1)
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        user = db.session.scalars(select(User).where(User.email == "maman.test@saint-loubes.test")).one()
        assert user.family_id == family_id and user.must_change_password and user.activated_at is None
        db.session.remove()
    # the family activates, logs in with the generated password and must choose its own
    parent = make_web()
    assert parent.get(urlparse(outbox.link(mail, "/activation/")).path).status_code == 200
    res = parent.login("saint-loubes", "maman.test@saint-loubes.test", password)
    assert res.status_code == 302
    assert parent.get("/saint-loubes/mon-espace").headers["Location"].endswith("/saint-loubes/mes-identifiants")
    # a second account for the same family is not offered
    res = agent_web.post(url + "/compte", {"first_name": "Papa", "last_name": "Test",
                                           "email": "papa@saint-loubes.test"}, page=url)
    assert "Cette famille a déjà un espace." in unescape(agent_web.get(res.headers["Location"]).get_data(as_text=True))


def test_a_new_family_with_its_account_and_the_residence(app, agent_web, tenants, outbox):
    url = "/saint-loubes/admin/annuaire/nouvelle"
    res = agent_web.post(url, {"first_name": "", "last_name": "Garcia", "email": "garcia@saint-loubes.test"}, page=url)
    assert "Ce champ est obligatoire." in res.get_data(as_text=True) and 'value="Garcia"' in res.get_data(as_text=True)
    res = agent_web.post(url, {"first_name": "Inès", "last_name": "Garcia", "email": "garcia@saint-loubes.test"},
                         page=url)
    assert res.status_code == 303
    family_url = res.headers["Location"]
    html = agent_web.get(family_url).get_data(as_text=True)
    assert "Famille GARCIA" in html and "garcia@saint-loubes.test" in html and len(outbox.to("garcia@saint-loubes.test")) == 1
    page = agent_web.get(family_url).get_data(as_text=True)
    res = agent_web.post(family_url + "/residence", form_data(page, "/residence", resident="y"), page=family_url)
    assert res.status_code == 303
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        assert db.session.scalars(select(Family).where(Family.name == "GARCIA")).one().resident is True
        db.session.remove()

"""The commune's agents and the support staff in Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.admin_helpers import book, keep_tenant_settings, make_support  # noqa: F401 (fixture)
from tests.conftest import days_from_today

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("keep_tenant_settings")]


def login(page, slug, email, password="Secret-pass-2026"):
    page.goto(f"/{slug}/connexion")
    page.get_by_label("Identifiant (adresse e-mail)").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Connexion").click()


@pytest.fixture
def kids_demande(app, make_family, make_activity, inscribe, make_agent):
    act = make_activity("auray", starts_in=10, days=5, name="Accueil de loisirs Petites vacances Kids")
    fam = make_family("auray", name="TEST", children=[("Thaïs", "2020-05-01")])
    inscribe(act, fam["child_ids"])
    day = days_from_today(10).isoformat()
    demande = book(app, fam, act, [(fam["child_ids"][0], act["slots"][("matin", day)]),
                                   (fam["child_ids"][0], act["slots"][("repas", day)])])
    agent = make_agent("auray")
    return {"act": act, "fam": fam, "demande": demande, "agent": agent}


def open_demande(page, d):
    login(page, "auray", d["agent"]["email"])
    expect(page.get_by_role("heading", name="Espace agents")).to_be_visible()
    expect(page.get_by_role("heading", name="Demandes à traiter")).to_be_visible()
    page.get_by_role("link", name="Demandes", exact=True).click()
    page.get_by_role("link", name=f"Traiter la demande N° {d['demande']['number']}").click()
    expect(page.get_by_role("heading", name=f"Demande N° {d['demande']['number']}")).to_be_visible()


def test_an_auray_agent_accepts_a_kids_demande(page, browser, live_server, kids_demande, outbox):
    d = kids_demande
    open_demande(page, d)
    expect(page.get_by_text("Capacité 2 · prises 1 (dont celle-ci)").first).to_be_visible()
    page.get_by_role("button", name="Tout accepter (Traitée positivement)").click()
    expect(page.get_by_text(f"Demande N° {d['demande']['number']} : Traitée positivement.")).to_be_visible()
    expect(page.get_by_text("Agent Test").last).to_be_visible()  # in the history
    # the family sees it on its demande page
    family = browser.new_context(base_url=live_server).new_page()
    login(family, "auray", d["fam"]["email"])
    family.goto(f"/auray/demandes/{d['demande']['number']}")
    expect(family.get_by_role("heading", name=re.compile(f"Demande N° {d['demande']['number']}"))).to_contain_text(
        "Traitée positivement")
    family.goto(f"/auray/agenda?vue=jour&date={days_from_today(10).isoformat()}")  # and its agenda: réservé
    expect(family.locator(".ag-item").filter(has_text="Thaïs").first).to_contain_text("Réservé")
    family.context.close()
    mails = [m for m in outbox.to(d["fam"]["email"]) if "traitée positivement" in outbox.text(m)]
    assert len(mails) == 1 and "La Ville d'Auray" in outbox.text(mails[0])


def test_an_agent_refuses_with_a_motif(page, kids_demande, outbox):
    d = kids_demande
    open_demande(page, d)
    page.get_by_role("button", name="Tout refuser avec ce motif").click()
    expect(page.get_by_text("Choisissez un motif de refus dans la liste")).to_be_visible()  # next to the field
    page.get_by_label("Précisions (envoyées à la famille)").fill("Le dossier sanitaire manque.")
    page.get_by_label("Motif du refus").select_option("Pièces manquantes au dossier")
    page.get_by_role("button", name="Tout refuser avec ce motif").click()
    expect(page.get_by_text(f"Demande N° {d['demande']['number']} : Traitée négativement.")).to_be_visible()
    (mail,) = [m for m in outbox.to(d["fam"]["email"]) if "traitée négativement" in outbox.text(m)]
    assert "Motif : Pièces manquantes au dossier — Le dossier sanitaire manque." in outbox.text(mail)


def test_support_switches_to_saint_loubes_and_the_audit_log_shows_it(page, app):
    support = make_support(app)
    page.goto("/support/")
    page.get_by_label("Adresse e-mail").fill(support["email"])
    page.get_by_label("Mot de passe").fill(support["password"])
    page.get_by_role("button", name="Connexion").click()
    expect(page.get_by_role("heading", name="Les communes")).to_be_visible()
    page.get_by_role("button", name="Entrer en mode support : Mairie de Saint-Loubès").click()
    banner = page.get_by_role("status").filter(has_text="Mode support — Mairie de Saint-Loubès")
    expect(banner).to_be_visible()
    expect(page.get_by_role("heading", name="Espace agents")).to_be_visible()
    page.get_by_role("link", name="Activités", exact=True).click()
    expect(page.get_by_text("Mode support — Mairie de Saint-Loubès")).to_be_visible()  # on every page
    page.get_by_role("navigation", name="Espace agents").get_by_role("link", name="Journal").click()
    row = page.get_by_role("row").filter(has_text="Entrée en mode support — Mairie de Saint-Loubès")
    expect(row).to_contain_text("Sam Support (support)")
    page.get_by_role("button", name="Quitter le mode support").click()
    expect(page.get_by_role("heading", name="Les communes")).to_be_visible()
    page.get_by_role("link", name="Journal").click()
    expect(page.get_by_role("row").filter(has_text="Sortie du mode support — Mairie de Saint-Loubès")).to_be_visible()


def test_the_presence_list_csv_keeps_its_accents(page, app, kids_demande, make_web):
    d = kids_demande
    agent = make_web()
    agent.login("auray", d["agent"]["email"])
    url = f"/auray/admin/demandes/{d['demande']['id']}"
    agent.post(url + "/decision", {"action": "accepter"}, page=url)
    login(page, "auray", d["agent"]["email"])
    page.get_by_role("link", name="Listes de présence").click()
    page.get_by_label("Activité").select_option(label="Accueil de loisirs Petites vacances Kids")
    page.get_by_label("Jour").fill(days_from_today(10).isoformat())
    page.get_by_role("button", name="Afficher").click()
    expect(page.get_by_role("cell", name="TEST Thaïs")).to_be_visible()
    with page.expect_download() as info:
        page.get_by_role("link", name="Exporter en CSV (Excel)").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    raw = open(download.path(), "rb").read()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Date;Nom;Prénom;Âge;Classe;Matin;Repas;Après-midi")
    assert "Test;Thaïs;" in text and "Présent" in text


def test_a_configuration_form_keeps_what_was_typed_and_explains_in_french(page, kids_demande):
    d = kids_demande
    login(page, "auray", d["agent"]["email"])
    page.get_by_role("link", name="Activités", exact=True).click()
    page.get_by_role("link", name="Modifier Accueil de loisirs Petites vacances Kids").click()
    page.get_by_label("Unité 1 : capacité").fill("0")
    page.get_by_label("Nom de l'activité").fill("Kids — vacances d'hiver")
    page.get_by_role("button", name="Enregistrer l'activité").click()
    expect(page.get_by_text(re.compile(r"1 place est déjà réservée le .* ne peut pas descendre sous 1\."))).to_be_visible()
    expect(page.get_by_label("Nom de l'activité")).to_have_value("Kids — vacances d'hiver")
    expect(page.get_by_label("Unité 1 : capacité")).to_have_value("0")
    page.get_by_label("Unité 1 : capacité").fill("20")
    page.get_by_role("button", name="Enregistrer l'activité").click()
    expect(page.get_by_text("L'activité Kids — vacances d'hiver est enregistrée.")).to_be_visible()

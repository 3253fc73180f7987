"""Billing in Chromium: an agent runs, previews and publishes last month; the parent sees "Vous avez 1
facture non réglée", opens the invoice and its PDF (text extracted), downloads the attestation de
présence — on a desktop and on a 375 px phone (no horizontal scroll on the invoice pages).

Dates are relative to the clock (last month, whatever the day: PORTAIL_TODAY=2027-01-01 bills
December 2026 in 2027's numbering)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader

from core import clock
from tests.billing_helpers import last_month, qf

pytestmark = pytest.mark.browser


def log_in(pg, slug, email, password="Secret-pass-2026"):
    pg.goto(f"/{slug}/connexion")
    pg.get_by_label("Identifiant (adresse e-mail)").fill(email)
    pg.get_by_label("Mot de passe").fill(password)
    pg.get_by_role("button", name="Connexion").click()


def pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).replace("\u00a0", " ") \
        .replace("\u202f", " ")


def no_horizontal_scroll(pg) -> bool:
    return pg.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


@pytest.fixture
def billed_month(billing_settings, month_activity, make_family, inscribe, book, inside, make_agent):
    """Auray's Kids over last month; Maël (4 years old) booked Matin + Repas on its first day and
    Matin on its second; QF 620 (500 ≤ QF < 1000: Matin 3,00 €, Repas 2,50 €)."""
    billing_settings("auray")
    act = month_activity(name="Accueil de loisirs Kids")
    born = clock.today().replace(day=1) - timedelta(days=4 * 365)
    fam = make_family("auray", children=[("Maël", born.isoformat())], name="GUILLEVIC")
    inscribe(act, fam["child_ids"])
    first, _last = last_month()
    book(act, fam["child_ids"][0], [("matin", first), ("repas", first), ("matin", first + timedelta(days=1))])
    inside("auray", lambda: qf(fam["family_id"], 620, first))
    return {"act": act, "fam": fam, "agent": make_agent("auray"), "first": first}


def agent_publishes(pg, d) -> str:
    """The agent's journey: Facturation → last month, Kids → the draft → publish.  Returns the number."""
    log_in(pg, "auray", d["agent"]["email"])
    pg.get_by_role("link", name="Facturation", exact=True).first.click()
    expect(pg.get_by_role("heading", name="Facturation", exact=True)).to_be_visible()
    expect(pg.get_by_label("Mois facturé")).to_have_value(d["first"].strftime("%Y-%m"))  # last month by default
    pg.get_by_label("Accueil de loisirs Kids").check()
    pg.get_by_role("button", name="Calculer le brouillon").click()
    expect(pg.get_by_role("heading", name=re.compile("^Facturation de "))).to_be_visible()
    # the preview: the family's total per activity before anything is published
    row = pg.get_by_role("row").filter(has_text="GUILLEVIC")
    expect(row).to_contain_text("Accueil de loisirs Kids : 8,50 €")
    expect(pg.get_by_text("Total : 8,50 € pour 1 famille(s)")).to_be_visible()
    pg.get_by_role("link", name="GUILLEVIC").click()
    expect(pg.get_by_role("row").filter(has_text="Repas")).to_contain_text("2,50 €")
    pg.go_back()
    pg.get_by_role("button", name="Publier les factures").click()
    expect(pg.get_by_text("Les factures sont publiées : chaque famille a reçu un mail.")).to_be_visible()
    number = f"F-{clock.today().year}-000001"
    expect(pg.get_by_role("link", name=number)).to_be_visible()
    expect(pg.get_by_role("button", name="Publier les factures")).to_have_count(0)  # published once
    return number


def parent_reads_the_invoice(pg, d, number, *, phone: bool) -> None:
    log_in(pg, "auray", d["fam"]["email"])
    expect(pg.get_by_role("link", name="Vous avez 1 facture non réglée")).to_be_visible()
    pg.get_by_role("link", name="Vous avez 1 facture non réglée").click()
    expect(pg.get_by_role("heading", name="Mes factures")).to_be_visible()
    row = pg.get_by_role("row").filter(has_text=number)
    expect(row).to_contain_text("8,50 €")
    expect(row).to_contain_text("À payer")
    if phone:
        assert no_horizontal_scroll(pg), "Mes factures"
    row.get_by_role("link", name=number).click()
    expect(pg.get_by_role("heading", name=f"Facture {number}")).to_be_visible()
    expect(pg.get_by_role("heading", name=re.compile("Maël Guillevic"))).to_be_visible()
    lines = pg.get_by_role("row").filter(has_text="Matin")
    expect(lines).to_have_count(2)
    expect(lines.first).to_contain_text("500 ≤ QF < 1000")
    expect(pg.get_by_text("Reste à payer")).to_be_visible()
    if phone:
        assert no_horizontal_scroll(pg), "la facture"
    # its PDF, with this browser's session (the link the parent clicks)
    href = pg.get_by_role("link", name="Télécharger le PDF").get_attribute("href")
    res = pg.context.request.get(href)
    assert res.status == 200 and res.headers["content-type"] == "application/pdf"
    text = pdf_text(res.body())
    for expected in (f"Facture {number}", "Ville d'Auray", "Famille GUILLEVIC", "Maël Guillevic", "Matin", "Repas",
                     "3,00 €", "2,50 €", "8,50 €", "Reste à payer", "500 ≤ QF < 1000", "Ville d'Auray — 1 / 1"):
        assert expected in text, expected


def parent_downloads_the_attestation(pg, d, tmp_path) -> None:
    pg.get_by_role("link", name="← Mes factures").click()
    pg.get_by_role("link", name="← Mon espace").click()
    pg.get_by_role("link", name="Édition de documents").click()
    expect(pg.get_by_role("heading", name="Édition de documents")).to_be_visible()
    pg.get_by_label("Enfant").select_option(label="Maël")
    pg.get_by_label("Activité").select_option(label="Accueil de loisirs Kids")
    first, last = last_month()
    pg.get_by_label("Du").fill(first.isoformat())
    pg.get_by_label("Au").fill(last.isoformat())
    with pg.expect_download() as download:
        pg.get_by_role("button", name="Télécharger l'attestation de présence").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = pdf_text(path.read_bytes())
    assert "Attestation de présence" in text and "Maël Guillevic" in text and "Accueil de loisirs Kids" in text
    assert "3 présences." in text   # Matin and Repas on the first day, Matin on the second


def test_an_agent_publishes_the_month_and_the_parent_reads_the_invoice_on_a_desktop(
        page, browser, live_server, billed_month, outbox, tmp_path):
    number = agent_publishes(page, billed_month)
    assert [m for m in outbox.to(billed_month["fam"]["email"]) if f"Votre facture {number} est disponible"
            in outbox.text(m)]
    context = browser.new_context(base_url=live_server, locale="fr-FR", viewport={"width": 1280, "height": 900})
    parent = context.new_page()
    parent.set_default_timeout(10_000)
    try:
        parent_reads_the_invoice(parent, billed_month, number, phone=False)
        parent_downloads_the_attestation(parent, billed_month, tmp_path)
    finally:
        context.close()


def test_the_same_journey_on_a_phone(phone, browser, live_server, billed_month, tmp_path):
    context = browser.new_context(base_url=live_server, locale="fr-FR", viewport={"width": 375, "height": 740},
                                  is_mobile=True, has_touch=True)
    agent = context.new_page()
    agent.set_default_timeout(10_000)
    try:
        number = agent_publishes(agent, billed_month)
        assert no_horizontal_scroll(agent), "le brouillon de l'agent"
    finally:
        context.close()
    parent_reads_the_invoice(phone, billed_month, number, phone=True)
    parent_downloads_the_attestation(phone, billed_month, tmp_path)

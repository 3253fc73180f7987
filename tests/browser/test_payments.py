"""Billing II in Chromium: a parent pays two invoices at once through the portal's stand-in payment page
(the stand-in calls the notification URL server to server, as PayFiP does); the dashboard then says
nothing is unpaid and "Paiement reçu" is in the outbox — on a desktop and on a 375 px phone.  Another
parent signs a SEPA mandate, an agent validates it, the next invoicing run puts the invoice under
debit and the pain.008 the agent produces contains it (valid against the shipped XSD)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from lxml import etree
from playwright.sync_api import expect

from core import clock
from core.billing import sepa
from tests.billing_helpers import last_month, qf
from tests.browser.test_billing import log_in, no_horizontal_scroll
from tests.payment_helpers import IBAN_OK

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", ["page", "phone"])
def test_a_parent_pays_two_invoices_at_once_through_the_standin(request, device, pay_settings, make_family,
                                                                make_invoice, outbox):
    pg = request.getfixturevalue(device)
    pay_settings("auray")
    fam = make_family("auray", parent_email="payeur@auray.test", name="LE GOFF")
    make_invoice(fam, "8.20", due_in=5)
    make_invoice(fam, "4.35", due_in=20)
    log_in(pg, "auray", fam["email"])
    expect(pg.get_by_text("Vous avez 2 factures non réglées")).to_be_visible()
    pg.get_by_role("link", name="Mes factures", exact=True).click()
    expect(pg.get_by_role("heading", name="Mes factures")).to_be_visible()
    boxes = pg.get_by_role("checkbox", name=re.compile("^Payer la facture"))
    expect(boxes).to_have_count(2)
    for i in range(2):
        expect(boxes.nth(i)).to_be_checked()
    if device == "phone":
        assert no_horizontal_scroll(pg)
    pg.get_by_role("button", name="Payer en ligne").click()

    expect(pg.get_by_role("heading", name="Page de paiement de test")).to_be_visible()
    expect(pg.get_by_text("12,55 €")).to_be_visible()
    pg.get_by_role("button", name="Payer", exact=True).click()

    expect(pg.get_by_role("heading", name="Paiement en ligne")).to_be_visible()
    expect(pg.get_by_text("Paiement accepté")).to_be_visible()
    pg.goto("/auray/mon-espace")
    expect(pg.get_by_text("Aucune facture à régler.")).to_be_visible()
    expect(pg.get_by_text(re.compile("facture(s)? non réglée"))).to_have_count(0)
    [mail] = outbox.to("payeur@auray.test")
    assert mail["Subject"].startswith("Paiement reçu") and "12,55" in outbox.text(mail)


def test_a_mandate_signed_validated_then_the_next_run_debits_the_invoice(page, browser, live_server, pay_settings,
                                                                         month_activity, make_family, make_agent,
                                                                         inscribe, book, inside):
    pay_settings("auray")
    act = month_activity(name="Accueil de loisirs Kids")
    born = clock.today().replace(day=1) - timedelta(days=5 * 365)
    fam = make_family("auray", children=[("Nolwenn", born.isoformat())], name="KERVELLA")
    inscribe(act, fam["child_ids"])
    first, _last = last_month()
    book(act, fam["child_ids"][0], [("matin", first), ("repas", first)])
    inside("auray", lambda: qf(fam["family_id"], 620, first))
    agent = make_agent("auray")

    # the parent signs the mandate online (a wrong IBAN first: told next to the field)
    log_in(page, "auray", fam["email"])
    page.get_by_role("link", name="Mes prélèvements").first.click()
    expect(page.get_by_role("heading", name="Signer un mandat de prélèvement SEPA")).to_be_visible()
    page.get_by_label("IBAN", exact=True).fill("FR76 3000 6000 0112 3456 7890 188")
    page.get_by_label(re.compile("^J'autorise la collectivité")).check()
    page.get_by_role("button", name="Signer le mandat").click()
    expect(page.get_by_role("alert")).to_contain_text("clé de contrôle")
    page.get_by_label("IBAN", exact=True).fill(IBAN_OK)
    page.get_by_role("button", name="Signer le mandat").click()
    expect(page.get_by_text(re.compile("en attente de validation par la collectivité")).first).to_be_visible()
    expect(page.get_by_text("FR76 •••• •••• •••• •••• •••0 189").first).to_be_visible()

    # an agent validates it, then runs and publishes the month
    desk = browser.new_context(base_url=live_server, locale="fr-FR", viewport={"width": 1280, "height": 900})
    pg = desk.new_page()
    pg.set_default_timeout(10_000)
    log_in(pg, "auray", agent["email"])
    pg.goto("/auray/admin/modifications")
    item = pg.locator("li, article, section, tr").filter(has_text="Mandat de prélèvement SEPA").last
    expect(item).to_contain_text("FR76 •••• •••• •••• •••• •••0 189")
    pg.get_by_role("button", name=re.compile("^Accepter.*Mandat de prélèvement SEPA")).click()
    expect(pg.get_by_text("Modification acceptée : la famille est prévenue par e-mail.")).to_be_visible()
    pg.goto("/auray/admin/facturation/")
    pg.get_by_label("Accueil de loisirs Kids").check()
    pg.get_by_role("button", name="Calculer le brouillon").click()
    pg.get_by_role("button", name="Publier les factures").click()
    expect(pg.get_by_text("Les factures sont publiées : chaque famille a reçu un mail.")).to_be_visible()
    number = f"F-{clock.today().year}-000001"

    # the parent's invoice is under debit: no online payment
    page.goto("/auray/factures")
    expect(page.get_by_role("row").filter(has_text=number)).to_contain_text("Prélèvement prévu")
    expect(page.get_by_role("button", name="Payer en ligne")).to_have_count(0)

    # the agent produces the pain.008: it contains the invoice
    pg.get_by_role("link", name="Prélèvements").first.click()
    expect(pg.get_by_role("row").filter(has_text=number)).to_contain_text("5,50 €")
    pg.get_by_role("button", name="Produire le fichier pain.008").click()
    expect(pg.get_by_text(re.compile("Le fichier pain.008 est prêt : 1 prélèvement"))).to_be_visible()
    pg.get_by_role("link", name=re.compile("^Échéance du")).first.click()
    with pg.expect_download() as download:
        pg.get_by_role("link", name="Télécharger le fichier pain.008").click()
    xml = open(download.value.path(), "rb").read()
    doc = etree.fromstring(xml)
    assert etree.XMLSchema(etree.parse(str(sepa.XSD))).validate(doc)
    assert f"Facture {number}".encode() in xml and b"<InstdAmt Ccy=\"EUR\">5.50</InstdAmt>" in xml
    assert b"<SeqTp>FRST</SeqTp>" in xml and b"FR7630006000011234567890189" in xml
    desk.close()

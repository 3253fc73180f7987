"""Billing II's pages, parents' and agents', at 1280 px and 375 px: no serious or critical axe-core
violation, every field labelled, headers with a scope, headings in order, badges readable, no
horizontal scroll (the checks of test_billing_a11y)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from playwright.sync_api import expect

from core import clock
from core.billing import mandates, payments, sepa
from core.billing.bank import earliest_collection
from core.billing.models import Invoice
from core.dossier.models import FamilyChange
from core.models import Family, User
from extensions import db
from tests.browser.test_billing_a11y import findings, log_in
from tests.payment_helpers import IBAN_OK

pytestmark = pytest.mark.browser


class _Agent:
    id = None
    email = "agent@auray.test"
    display_name = "Agent Test"
    is_agent = True
    is_support = False


@pytest.fixture
def money(pay_settings, make_family, make_invoice, make_agent, inside):
    """A family with an invoice due, one paid at the counter, one under debit in a file, a late one
    (PORTAIL_TODAY-proof: due dates relative to the clock), and a second family's mandate pending."""
    from decimal import Decimal

    pay_settings("auray")
    fam = make_family("auray", name="LE BIHAN")
    other = make_family("auray", name="MORVAN")
    due = make_invoice(fam, "14.20", due_in=12)
    paid = make_invoice(fam, "6.00", due_in=12)
    debited = make_invoice(fam, "9.90", due_in=12)
    late = make_invoice(fam, "3.30", due_in=-10, issued_ago=30)

    def setup():
        family, user = db.session.get(Family, fam["family_id"]), db.session.get(User, fam["user_id"])
        m = mandates.sign(family, user, holder="Yann Le Bihan", iban=IBAN_OK, bic="", accepted=True)
        change = db.session.get(FamilyChange, m.change_id)
        mandates.activate(change, "Agent Test")
        from core.dossier.changes import close_change

        close_change(change, accept=True, who="Agent Test")
        sepa.plan_debits([db.session.get(Invoice, debited)])
        batch = sepa.export(earliest_collection(clock.today(), 2), agent=_Agent(), actor="Agent Test")
        payments.settle(fam["family_id"], [paid], amount=Decimal("6.00"), method="cheque", reference="0042",
                        actor="Agent Test")
        mandates.sign(db.session.get(Family, other["family_id"]), db.session.get(User, other["user_id"]),
                      holder="Gwen Morvan", iban=IBAN_OK, bic="", accepted=True)
        return batch.id

    batch_id = inside("auray", setup)
    return {"fam": fam, "agent": make_agent("auray"), "due": due, "late": late, "batch": batch_id}


def test_the_parents_payment_pages(page, money):
    log_in(page, "auray", money["fam"]["email"])
    expect(page.get_by_role("heading", name="Mon espace")).to_be_visible()
    found = findings(page)
    page.get_by_role("link", name="Mes factures", exact=True).click()
    expect(page.get_by_role("button", name="Payer en ligne")).to_be_visible()
    found += findings(page)
    page.goto(f"/auray/factures/{money['due']}")
    expect(page.get_by_role("button", name=re.compile("^Payer en ligne"))).to_be_visible()
    found += findings(page)
    page.get_by_role("button", name=re.compile("^Payer en ligne")).click()
    expect(page.get_by_role("heading", name="Page de paiement de test")).to_be_visible()
    found += findings(page)
    page.get_by_role("button", name="Refuser").click()
    expect(page.get_by_text("Paiement abandonné")).to_be_visible()
    found += findings(page)
    page.goto("/auray/prelevements")
    expect(page.get_by_role("heading", name="Mes prélèvements", level=1)).to_be_visible()
    found += findings(page)
    page.get_by_label("IBAN", exact=True).fill("FR00 1234")
    page.get_by_role("button", name="Signer le mandat").click()
    expect(page.get_by_role("alert")).to_be_visible()
    found += findings(page)
    page.goto("/auray/famille/dossier")
    expect(page.get_by_role("heading", name="Données bancaires")).to_be_visible()
    found += findings(page)
    assert found == [], "\n".join(found)


def test_the_agents_payment_pages(page, money):
    log_in(page, "auray", money["agent"]["email"])
    page.goto(f"/auray/admin/facturation/familles/{money['fam']['family_id']}/compte")
    expect(page.get_by_role("heading", name=re.compile("^Compte de la famille"))).to_be_visible()
    found = findings(page)
    page.get_by_label("Mode").select_option("cheque")
    page.get_by_label("Montant", exact=True).fill("3,30")
    page.get_by_role("button", name="Enregistrer et éditer le reçu").click()   # no cheque number: told so
    expect(page.get_by_text("Indiquez le numéro du chèque.")).to_be_visible()
    found += findings(page)
    page.get_by_label("N° de chèque ou de titre CESU").fill("0000777")
    page.get_by_role("button", name="Enregistrer et éditer le reçu").click()
    expect(page.get_by_role("heading", name=re.compile("^Reçu R-"))).to_be_visible()
    found += findings(page)
    page.goto("/auray/admin/facturation/factures")
    for name, heading in (("Journal des paiements", "Journal des paiements"), ("Prélèvements", "Prélèvements"),
                          ("Impayés", "Impayés")):
        page.get_by_role("link", name=name, exact=True).first.click()
        expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
        found += findings(page)
    page.goto(f"/auray/admin/facturation/prelevements/lots/{money['batch']}")
    expect(page.get_by_role("button", name=re.compile("^Marquer rejeté"))).to_be_visible()
    found += findings(page)
    page.goto("/auray/admin/facturation/prelevements")
    page.get_by_role("link", name=re.compile("^RUM-")).first.click()
    expect(page.get_by_role("heading", name=re.compile("^Mandat RUM-"))).to_be_visible()
    found += findings(page)
    page.goto("/auray/admin/modifications")
    expect(page.get_by_text("Mandat de prélèvement SEPA").first).to_be_visible()
    found += findings(page)
    with time_machine.travel(clock.now_local() + timedelta(days=1), tick=True):
        page.goto("/auray/admin/facturation/impayes")
        found += findings(page)
    assert found == [], "\n".join(found)

"""Prélèvement automatique: a mandate signed online (IBAN/BIC checked with schwifty, refused with a
clear reason and nothing recorded otherwise), validated by an agent through the changes under
validation, the next run puts the invoice under debit, the pain.008 (FRST then RCUR) is valid against
the XSD shipped with the portal and sums the debited invoices, collection pays, a rejection reopens
the invoice and mails the family; IBANs masked, every full read logged; reminders once each."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from lxml import etree
from sqlalchemy import func, select

from core import clock
from core.billing import mandates, reminders, sepa
from core.billing.bank import earliest_collection
from core.billing.invoices import STATUS_DEBIT, STATUS_DUE, STATUS_PAID, STATUS_RECOVERY
from core.billing.models import Invoice
from core.billing.payment_models import Debit, IbanAccessLog, Mandate, Receipt, Reminder
from core.dossier.models import FamilyChange
from core.models import Family, User
from extensions import db
from tests.billing_helpers import last_month, run_month
from tests.payment_helpers import IBAN_BAD, IBAN_OK, balance_of, snap

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def _sign(fam, **kw):
    def act():
        family = db.session.get(Family, fam["family_id"])
        user = db.session.get(User, fam["user_id"])
        args = {"holder": "Camille Testfam", "iban": IBAN_OK, "bic": "", "accepted": True, **kw}
        return mandates.sign(family, user, **args).id
    return act


@pytest.mark.parametrize("iban,bic,field,words", [
    (IBAN_BAD, "", "iban", "clé de contrôle"),
    (IBAN_OK, "DEUTDEFF", "bic", "d'un autre pays (DE) que l'IBAN (FR)"),
    ("FR76 3000", "", "iban", "longueur"),
    (IBAN_OK, "NOTABIC!", "bic", "n'est pas valide"),
])
def test_bad_bank_details_are_refused_with_a_clear_reason_and_nothing_recorded(pay_settings, make_family, inside,
                                                                               iban, bic, field, words):
    pay_settings("auray")
    fam = make_family("auray")
    with pytest.raises(mandates.MandateError) as err:
        inside("auray", _sign(fam, iban=iban, bic=bic))
    assert err.value.field == field and words in err.value.message
    assert inside("auray", lambda: (_count(Mandate), _count(FamilyChange))) == (0, 0)


def test_a_mandate_for_a_family_of_another_commune_is_refused(pay_settings, make_family, make_agent, web, inside):
    pay_settings("auray")
    pay_settings("saint-loubes")
    loubes = make_family("saint-loubes")
    with pytest.raises(mandates.MandateError, match="n'appartient pas à la commune"):
        inside("auray", lambda: mandates.sign(_foreign_family(loubes), None, holder="X", iban=IBAN_OK, bic="",
                                             accepted=True))
    agent = make_agent("auray")
    web.login("auray", agent["email"])
    page = f"/auray/admin/facturation/familles/{loubes['family_id']}/mandat"
    response = web.post(page, {"titulaire": "X", "iban": IBAN_OK, "accepte": "oui"}, page="/auray/admin/facturation/")
    assert response.status_code == 404
    assert inside("saint-loubes", lambda: _count(Mandate)) == 0


def _foreign_family(fam):
    from tenants.context import unscoped

    with unscoped():
        family = db.session.get(Family, fam["family_id"])
    return family


def test_a_parent_signs_online_an_agent_validates_and_the_next_run_puts_the_invoice_under_debit(
        pay_settings, make_family, make_agent, make_web, month_activity, inscribe, book, inside, outbox):
    pay_settings("auray", iban_readers=["agent@auray.test"])
    fam = make_family("auray", parent_email="sepa@auray.test")
    parent = make_web()
    parent.login("auray", fam["email"])
    refused = parent.post("/auray/prelevements", {"titulaire": "Camille Testfam", "iban": IBAN_BAD, "accepte": "oui"})
    assert refused.status_code == 422 and "clé de contrôle" in refused.get_data(as_text=True)
    assert IBAN_BAD in refused.get_data(as_text=True)      # what was typed is kept
    done = parent.post("/auray/prelevements", {"titulaire": "Camille Testfam", "iban": IBAN_OK, "bic": "",
                                               "accepte": "oui"})
    assert done.status_code == 303
    page = parent.get("/auray/prelevements").get_data(as_text=True)
    assert "en attente de validation" in page and "FR76 •••• •••• •••• •••• •••0 189" in page
    assert "3000 6000 0112" not in page
    assert "Données bancaires" in parent.get("/auray/famille/dossier").get_data(as_text=True)

    agent = make_web()
    agent.login("auray", make_agent("auray")["email"])
    queue = agent.get("/auray/admin/modifications").get_data(as_text=True)
    assert "Mandat de prélèvement SEPA" in queue and "FR76 •••• •••• •••• •••• •••0 189" in queue
    assert "3000 6000 0112" not in queue
    change_id = inside("auray", lambda: db.session.scalars(select(FamilyChange.id)).one())
    accepted = agent.post(f"/auray/admin/modifications/{change_id}/decision", {"decision": "accept"},
                          page=f"/auray/admin/modifications/{change_id}")
    assert accepted.status_code == 302
    mandate = inside("auray", lambda: snap(db.session.scalars(select(Mandate)).one()))
    assert mandate.status == "active" and mandate.rum.startswith("RUM-TEST-")
    assert any("Modification de votre dossier" in m["Subject"] for m in outbox.to("sepa@auray.test"))

    act = month_activity()
    inscribe(act, fam["child_ids"])
    first, _last = last_month()
    book(act, fam["child_ids"][0], [("matin", first), ("repas", first)])
    inside("auray", lambda: run_month([act["id"]], publish=True))
    invoice = inside("auray", lambda: db.session.scalars(select(Invoice.id)).one())
    st = inside("auray", lambda: balance_of(invoice))
    assert st.status == STATUS_DEBIT and not st.payable_online
    assert inside("auray", lambda: snap(db.session.scalars(select(Debit)).one())).amount == st.balance
    invoices_page = parent.get("/auray/factures").get_data(as_text=True)
    assert "Prélèvement prévu" in invoices_page


def _active_mandate(fam):
    def act():
        mandate_id = _sign(fam)()
        change = db.session.scalars(select(FamilyChange).where(FamilyChange.entity_id == mandate_id)).one()
        mandates.activate(change, "Agent")
        return mandate_id
    return act


def _plan(fam, invoice_ids):
    def act():
        docs = [db.session.get(Invoice, i) for i in invoice_ids]
        return sepa.plan_debits(docs)
    return act


class Agent:
    id = None
    email = "regisseur@auray.test"
    display_name = "Régisseur Test"
    is_agent = True
    is_support = False


def test_the_pain008_is_valid_against_the_shipped_xsd_and_sums_the_debited_invoices(
        pay_settings, make_family, make_invoice, inside):
    pay_settings("auray")
    fam1, fam2 = make_family("auray"), make_family("auray")
    inside("auray", _active_mandate(fam1))
    inside("auray", _active_mandate(fam2))
    a, b = make_invoice(fam1, "12.35"), make_invoice(fam1, "0.10")
    c = make_invoice(fam2, "101.01")
    assert inside("auray", _plan(fam1, [a, b, c])) == 3
    day = earliest_collection(clock.today(), 2)
    with pytest.raises(sepa.SepaError, match="jour ouvré"):
        inside("auray", lambda: sepa.export(clock.today(), agent=Agent(), actor="Agent"))
    batch = inside("auray", lambda: snap(sepa.export(day, agent=Agent(), actor="Agent")))
    xml = batch.xml.encode()
    schema = etree.XMLSchema(etree.parse(str(sepa.XSD)))
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log
    assert doc.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == "113.46"
    assert doc.findtext(".//p:GrpHdr/p:NbOfTxs", namespaces=NS) == "3"
    amounts = [Decimal(x.text) for x in doc.findall(".//p:DrctDbtTxInf/p:InstdAmt", namespaces=NS)]
    assert sum(amounts) == Decimal("113.46") == batch.total
    assert {x.text for x in doc.findall(".//p:PmtInf/p:PmtTpInf/p:SeqTp", namespaces=NS)} == {"FRST"}
    assert doc.findtext(".//p:CdtrSchmeId//p:Id", namespaces=NS) is not None
    assert "FR7630006000011234567890189" in batch.xml and "RUM-TEST-" in batch.xml
    assert inside("auray", lambda: _count(IbanAccessLog)) == 3
    assert inside("auray", lambda: balance_of(a).status) == STATUS_DEBIT

    d = make_invoice(fam1, "5.00")
    inside("auray", _plan(fam1, [d]))
    second = inside("auray", lambda: snap(sepa.export(day, agent=Agent(), actor="Agent")))
    assert "<SeqTp>RCUR</SeqTp>" in second.xml and "<SeqTp>FRST</SeqTp>" not in second.xml
    with pytest.raises(sepa.SepaError, match="Aucune facture"):
        inside("auray", lambda: sepa.export(day, agent=Agent(), actor="Agent"))


def test_collection_pays_and_a_rejected_debit_reopens_the_invoice_and_mails_the_family(
        pay_settings, make_family, make_invoice, inside, outbox):
    pay_settings("auray")
    fam = make_family("auray", parent_email="rejet@auray.test")
    inside("auray", _active_mandate(fam))
    inv = make_invoice(fam, "42.00")
    inside("auray", _plan(fam, [inv]))
    day = earliest_collection(clock.today(), 2)
    inside("auray", lambda: sepa.export(day, agent=Agent(), actor="Agent"))
    assert inside("auray", lambda: sepa.collect_due()) == 0            # not before its date
    with time_machine.travel(clock.now_local() + timedelta(days=(day - clock.today()).days), tick=False):
        assert inside("auray", lambda: sepa.collect_due()) == 1
        assert inside("auray", lambda: sepa.collect_due()) == 0
    assert inside("auray", lambda: balance_of(inv).status) == STATUS_PAID
    receipt = inside("auray", lambda: snap(db.session.scalars(select(Receipt)).one()))
    assert receipt.method == "prelevement" and receipt.amount == Decimal("42.00")

    debit_id = inside("auray", lambda: db.session.scalars(select(Debit.id)).one())
    with pytest.raises(sepa.SepaError, match="motif"):
        inside("auray", lambda: sepa.reject(debit_id, code="", actor="Agent"))
    inside("auray", lambda: sepa.reject(debit_id, code="AM04", actor="Agent"))
    st = inside("auray", lambda: balance_of(inv))
    assert st.balance == Decimal("42.00") and st.payable_online
    [mail] = outbox.to("rejet@auray.test")
    assert "Prélèvement rejeté" in mail["Subject"] and "Provision insuffisante" in outbox.text(mail)


def test_ibans_are_masked_and_every_full_read_is_logged(pay_settings, make_family, make_agent, make_web, inside):
    pay_settings("auray", iban_readers=["regie@auray.test"])
    fam = make_family("auray")
    mandate_id = inside("auray", _active_mandate(fam))
    plain, reader = make_web(), make_web()
    plain.login("auray", make_agent("auray")["email"])
    reader.login("auray", make_agent("auray", email="regie@auray.test")["email"])
    url = f"/auray/admin/facturation/mandats/{mandate_id}"
    for who in (plain, reader):
        page = who.get(url).get_data(as_text=True)
        assert "FR76 •••• •••• •••• •••• •••0 189" in page and "3000 6000 0112" not in page
    assert "Afficher l'IBAN complet" not in plain.get(url).get_data(as_text=True)
    denied = plain.post(url, {"action": "iban"}).get_data(as_text=True)
    assert "3000 6000 0112" not in denied
    shown = reader.post(url, {"action": "iban"}).get_data(as_text=True)
    assert "FR76 3000 6000 0112 3456 7890 189" in shown
    logs = inside("auray", lambda: [(r.agent_name, r.context) for r in db.session.scalars(select(IbanAccessLog))])
    assert logs == [("Agent Test", "fiche du mandat")]


def test_reminders_go_once_before_and_once_after_the_deadline(pay_settings, make_family, make_invoice, inside,
                                                              outbox):
    pay_settings("auray")
    fam = make_family("auray", parent_email="rappel@auray.test")
    inv = make_invoice(fam, "18.00", due_in=4)
    far = make_invoice(fam, "9.00", due_in=30)          # not yet
    assert inside("auray", reminders.send_due) == 1
    assert inside("auray", reminders.send_due) == 0      # the job ran twice: once
    with time_machine.travel(clock.now_local() + timedelta(days=8), tick=False):   # 4 days past due
        assert inside("auray", reminders.send_due) == 1
        assert inside("auray", reminders.send_due) == 0
        assert inside("auray", lambda: balance_of(inv).status) == "en_retard"
    kinds = inside("auray", lambda: sorted((r.invoice_id, r.kind) for r in db.session.scalars(select(Reminder))))
    assert kinds == [(inv, "before_due"), (inv, "overdue")]
    subjects = [m["Subject"] for m in outbox.to("rappel@auray.test")]
    assert len(subjects) == 2 and any(s.startswith("Facture en retard") for s in subjects)
    assert far not in {i for i, _k in kinds}


def test_late_invoices_are_handed_to_the_tresor_after_the_due_date_only(pay_settings, make_family, make_invoice,
                                                                       inside, outbox):
    pay_settings("auray")
    fam = make_family("auray")
    inv = make_invoice(fam, "30.00", due_in=3)
    with pytest.raises(reminders.RecoveryError, match="pas encore échue"):
        inside("auray", lambda: reminders.hand_over(inv, actor="Agent"))
    with time_machine.travel(clock.now_local() + timedelta(days=10), tick=False):
        assert inside("auray", lambda: [s.invoice.id for s in reminders.late()]) == [inv]
        inside("auray", lambda: reminders.hand_over(inv, actor="Agent"))
        assert inside("auray", lambda: balance_of(inv).status) == STATUS_RECOVERY
        with pytest.raises(reminders.RecoveryError, match="déjà transmise"):
            inside("auray", lambda: reminders.hand_over(inv, actor="Agent"))
        before = len(outbox.messages)
        inside("auray", reminders.send_due)
        assert len(outbox.messages) == before              # no reminder for the Trésor's invoices
    assert inside("auray", lambda: balance_of(inv).status) != STATUS_DUE


def test_the_billing_job_runs_twice_and_mails_once(pay_settings, make_family, make_invoice, tenants, outbox, app):
    from jobs.billing import run_billing

    pay_settings("auray")
    fam = make_family("auray", parent_email="job@auray.test")
    make_invoice(fam, "11.00", due_in=1)
    with app.app_context():
        first = run_billing(tenants["auray"])
        second = run_billing(tenants["auray"])
    assert (first["reminders"], second["reminders"]) == (1, 0)
    assert len(outbox.to("job@auray.test")) == 1

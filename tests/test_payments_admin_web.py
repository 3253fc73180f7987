"""Agents on the web: a family's account, a counter payment and its receipt (PDF), its cancellation
with a reason, the journal per day and type and its CSV, the pain.008 produced and downloaded (IBAN
reads logged), a rejected debit, the hand-over of a late invoice; another commune's ids answer 404."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import time_machine
from pypdf import PdfReader
from sqlalchemy import func, select

from core import clock
from core.billing import mandates, sepa
from core.billing.payment_models import Debit, IbanAccessLog, Receipt, Recovery
from core.dossier.models import FamilyChange
from core.models import Family, User
from extensions import db
from tests.payment_helpers import IBAN_OK, balance_of, snap

BASE = "/auray/admin/facturation"


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_counter_payment_its_receipt_and_its_cancellation(pay_settings, make_family, make_invoice, make_agent, web,
                                                           inside):
    pay_settings("auray")
    fam = make_family("auray", name="TANGUY")
    older, newer = make_invoice(fam, "10.00", due_in=2), make_invoice(fam, "7.50", due_in=20)
    web.login("auray", make_agent("auray")["email"])
    account = f"{BASE}/familles/{fam['family_id']}/compte"
    page = web.get(account).get_data(as_text=True)
    assert "Compte de la famille TANGUY" in page and "17,50" in page
    refused = web.post(account, {"factures": [str(older), str(newer)], "montant": "12,00", "mode": "cheque",
                                 "reference": "", "date": clock.today().isoformat()})
    assert refused.status_code == 422 and "Indiquez le numéro du chèque." in refused.get_data(as_text=True)
    assert "12,00" in refused.get_data(as_text=True)          # what was typed is kept
    assert inside("auray", lambda: _count(Receipt)) == 0
    done = web.post(account, {"factures": [str(older), str(newer)], "montant": "12,00", "mode": "cheque",
                              "reference": "0001234", "date": clock.today().isoformat()})
    assert done.status_code == 303
    receipt = inside("auray", lambda: snap(db.session.scalars(select(Receipt)).one()))
    assert inside("auray", lambda: (balance_of(older).balance, balance_of(newer).balance)) == (Decimal("0.00"),
                                                                                              Decimal("5.50"))
    page = web.get(f"{BASE}/recus/{receipt.id}").get_data(as_text=True)
    assert receipt.number in page and "0001234" in page
    pdf = web.get(f"{BASE}/recus/{receipt.id}.pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages).replace("\u00a0", " ")
    assert receipt.number in text and "12,00 €" in text and "TANGUY" in text

    cancel = f"{BASE}/recus/{receipt.id}/annuler"
    web.post(cancel, {"motif": ""}, page=f"{BASE}/recus/{receipt.id}")
    assert inside("auray", lambda: db.session.get(Receipt, receipt.id).cancelled_at) is None
    web.post(cancel, {"motif": "Chèque sans provision"}, page=f"{BASE}/recus/{receipt.id}")
    assert inside("auray", lambda: balance_of(older).balance) == Decimal("10.00")
    journal = web.get(f"{BASE}/paiements").get_data(as_text=True)
    assert receipt.number in journal and "Annulé" in journal
    csv_ = web.get(f"{BASE}/paiements.csv")
    assert csv_.data.startswith("\ufeff".encode()) and receipt.number in csv_.data.decode("utf-8-sig")
    assert "Chèque sans provision" in web.get("/auray/admin/journal").get_data(as_text=True)


def test_another_communes_ids_answer_404(pay_settings, make_family, make_invoice, make_agent, web, inside):
    pay_settings("saint-loubes")
    loubes = make_family("saint-loubes")
    make_invoice(loubes, "5.00")
    web.login("auray", make_agent("auray")["email"])
    assert web.get(f"{BASE}/familles/{loubes['family_id']}/compte").status_code == 404
    response = web.post(f"{BASE}/familles/{loubes['family_id']}/compte", {"montant": "5", "mode": "especes"},
                        page=f"{BASE}/paiements")
    assert response.status_code == 404


class _Agent:
    id = None
    email = "agent@auray.test"
    display_name = "Agent Test"
    is_agent = True
    is_support = False


def test_the_file_for_the_bank_a_rejection_and_a_hand_over(pay_settings, make_family, make_invoice, make_agent,
                                                           web, inside, outbox):
    pay_settings("auray")
    fam = make_family("auray", parent_email="famille.sepa@auray.test")
    web.login("auray", make_agent("auray")["email"])
    debited = make_invoice(fam, "21.00")

    def mandate_and_plan():
        family, user = db.session.get(Family, fam["family_id"]), db.session.get(User, fam["user_id"])
        m = mandates.sign(family, user, holder="Camille Testfam", iban=IBAN_OK, bic="", accepted=True)
        mandates.activate(db.session.get(FamilyChange, m.change_id), "Agent")
        from core.billing.models import Invoice

        sepa.plan_debits([db.session.get(Invoice, debited)])

    inside("auray", mandate_and_plan)
    page = web.get(f"{BASE}/prelevements").get_data(as_text=True)
    assert "21,00" in page and "Produire le fichier pain.008" in page
    refused = web.post(f"{BASE}/prelevements", {"echeance": clock.today().isoformat()})
    assert refused.status_code == 422 and "jour ouvré" in refused.get_data(as_text=True)
    from core.billing.bank import earliest_collection

    day = earliest_collection(clock.today(), 2)
    assert web.post(f"{BASE}/prelevements", {"echeance": day.isoformat()}).status_code == 303
    batch_id = inside("auray", lambda: db.session.scalars(select(Debit.batch_id)).one())
    xml = web.get(f"{BASE}/prelevements/lots/{batch_id}.xml")
    assert xml.status_code == 200 and b"<InstdAmt Ccy=\"EUR\">21.00</InstdAmt>" in xml.data
    contexts = inside("auray", lambda: sorted(r.context for r in db.session.scalars(select(IbanAccessLog))))
    assert len(contexts) == 2 and "téléchargement pain.008" in contexts

    debit_id = inside("auray", lambda: db.session.scalars(select(Debit.id)).one())
    web.post(f"{BASE}/prelevements/{debit_id}/rejet", {"code": "AC04"}, page=f"{BASE}/prelevements/lots/{batch_id}")
    assert inside("auray", lambda: (balance_of(debited).payable_online, db.session.get(Debit, debit_id).status)) \
        == (True, "rejected")
    assert any("Prélèvement rejeté" in m["Subject"] for m in outbox.to("famille.sepa@auray.test"))

    late = make_invoice(fam, "4.00", due_in=3)
    web.post(f"{BASE}/factures/{late}/tresor", {}, page=f"{BASE}/impayes")
    assert inside("auray", lambda: _count(Recovery)) == 0          # not due yet: refused
    with time_machine.travel(clock.now_local() + timedelta(days=9), tick=False):
        assert "Transmettre au Trésor public" in web.get(f"{BASE}/impayes").get_data(as_text=True)
        web.post(f"{BASE}/factures/{late}/tresor", {}, page=f"{BASE}/impayes")
        assert inside("auray", lambda: balance_of(late).status) == "recouvrement"

"""Payer en ligne through eopayment: the transaction written before the redirect, the local stand-in
(« Payer » / « Refuser ») calling the notification URL server to server, only a signed PAID
notification of the right amount records a payment, replays record one, the browser's return only
shows the status; PayFiP's SOAP calls stubbed at eopayment's get_idop / get_info_paiement; one
commune never pays, sees or is notified for another's invoice (404)."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from core import clock
from core.billing import online
from core.billing.invoices import STATUS_PAID
from core.billing.payment_models import TX_PAID, TX_WAITING, OnlineTransaction, Receipt
from extensions import db
from tests.payment_helpers import balance_of, snap


@pytest.fixture
def standin(app):
    """The stand-in's server-to-server call goes through a fresh test client (no browser cookies)."""
    calls = []

    def transport(url, data):
        parts = urlsplit(url)
        response = app.test_client().post(parts.path, data=data)
        calls.append((parts.path, dict(data), response.status_code))
        return response.status_code

    app.config["PAYMENT_STANDIN_TRANSPORT"] = transport
    yield calls
    app.config.pop("PAYMENT_STANDIN_TRANSPORT", None)


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def _start(web, slug, invoice_ids):
    response = web.post(f"/{slug}/paiements", {"factures": [str(i) for i in invoice_ids]}, page=f"/{slug}/factures")
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response.headers["Location"]


def _standin_fields(location):
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def family_with_two(pay_settings, make_family, make_invoice, web):
    pay_settings("auray")
    fam = make_family("auray", parent_email="paie@auray.test")
    a = make_invoice(fam, "10.10", due_in=5)
    b = make_invoice(fam, "4.90", due_in=12)
    web.login("auray", fam["email"])
    return fam, a, b


def test_a_parent_pays_two_invoices_at_once_through_the_standin(family_with_two, web, standin, inside, outbox):
    fam, a, b = family_with_two
    page = web.get("/auray/factures").get_data(as_text=True)
    assert "Payer en ligne" in page and "Vous avez 2 factures non réglées" in page

    location = _start(web, "auray", [a, b])
    assert urlsplit(location).path == f"/auray{online.STANDIN_PATH}"
    fields = _standin_fields(location)
    assert fields["amount"] == "15.00"
    # the transaction is written before the parent leaves for the payment page
    tx = inside("auray", lambda: snap(db.session.scalars(select(OnlineTransaction)).one()))
    assert (tx.status, tx.amount, tx.amount_cents, sorted(tx.invoice_ids)) == (TX_WAITING, Decimal("15.00"), 1500,
                                                                               sorted([a, b]))
    assert re.fullmatch(r"[A-Z0-9]{1,30}", tx.refdet)

    standin_page = web.get(location).get_data(as_text=True)
    assert ">Payer</button>" in standin_page and ">Refuser</button>" in standin_page
    back = web.post(location.split("?")[0], {**fields, "choix": "payer"}, page=location)
    assert back.status_code == 303 and back.headers["Location"].endswith(f"/auray/paiements/{tx.id}/retour")
    assert standin == [("/auray/paiements/notification", standin[0][1], 200)]

    shown = web.get(urlsplit(back.headers["Location"]).path).get_data(as_text=True)
    assert "Paiement accepté" in shown
    assert inside("auray", lambda: (balance_of(a).status, balance_of(b).status)) == (STATUS_PAID, STATUS_PAID)
    dashboard = web.get("/auray/mon-espace").get_data(as_text=True)
    assert "non réglée" not in dashboard and "Aucune facture à régler." in dashboard
    [mail] = outbox.to("paie@auray.test")
    assert mail["Subject"].startswith("Paiement reçu") and "15,00" in outbox.text(mail)


def test_the_browsers_return_only_shows_the_status(family_with_two, web, inside):
    fam, a, _b = family_with_two
    _start(web, "auray", [a])
    tx_id = inside("auray", lambda: db.session.scalars(select(OnlineTransaction.id)).one())
    for query in ("", "?ok=1&signed=1", "?transaction_id=x&ok=1"):
        page = web.get(f"/auray/paiements/{tx_id}/retour{query}").get_data(as_text=True)
        assert "En attente de confirmation" in page
    partial = web.get(f"/auray/paiements/{tx_id}/retour", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in partial.get_data(as_text=True) and "HX-Request" in partial.headers["Vary"]
    assert inside("auray", lambda: (_count(Receipt), balance_of(a).balance)) == (0, Decimal("10.10"))


def test_refused_or_abandoned_payments_change_nothing(family_with_two, web, standin, inside, outbox):
    fam, a, _b = family_with_two
    location = _start(web, "auray", [a])
    fields = _standin_fields(location)
    back = web.post(location.split("?")[0], {**fields, "choix": "refuser"}, page=location)
    assert "Paiement abandonné" in web.get(urlsplit(back.headers["Location"]).path).get_data(as_text=True)
    cancelled = web.client.post("/auray/paiements/notification", data=online_notification(web, fields, "cancel"))
    assert cancelled.status_code == 200
    assert inside("auray", lambda: (_count(Receipt), balance_of(a).balance)) == (0, Decimal("10.10"))
    assert outbox.to("paie@auray.test") == []


def online_notification(web, fields, outcome):
    with web.client.application.test_request_context():
        return online.standin_notification(fields, outcome)


def test_replayed_notifications_record_one_payment(family_with_two, web, inside, outbox):
    fam, a, b = family_with_two
    fields = _standin_fields(_start(web, "auray", [a, b]))
    data = online_notification(web, fields, "ok")
    answers = [web.client.post("/auray/paiements/notification", data=data).status_code for _ in range(10)]
    assert answers == [200] * 10
    assert inside("auray", lambda: _count(Receipt)) == 1
    assert inside("auray", lambda: db.session.scalars(select(OnlineTransaction)).one().notifications) == 10
    assert len(outbox.to("paie@auray.test")) == 1


def test_forged_unsigned_or_tampered_notifications_are_refused_and_record_nothing(family_with_two, web, inside):
    fam, a, _b = family_with_two
    fields = _standin_fields(_start(web, "auray", [a]))
    forged = {"transaction_id": fields["transaction_id"], "amount": fields["amount"], "ok": "1", "signed": "1"}
    response = web.client.post("/auray/paiements/notification", data=forged)
    assert response.status_code == 400 and "non signée" in response.get_data(as_text=True)
    wrong_sig = dict(online_notification(web, fields, "ok"), hmac="0" * 64)
    assert web.client.post("/auray/paiements/notification", data=wrong_sig).status_code == 400
    tampered_by_hand = dict(online_notification(web, fields, "ok"), amount="0.01")
    assert web.client.post("/auray/paiements/notification", data=tampered_by_hand).status_code == 400
    # even signed, an amount that is not the transaction's is refused
    other_amount = online_notification(web, dict(fields, amount="1.00"), "ok")
    response = web.client.post("/auray/paiements/notification", data=other_amount)
    assert response.status_code == 400 and "montant notifié 100" in response.get_data(as_text=True)
    assert web.client.post("/auray/paiements/notification", data={"junk": "1"}).status_code == 400
    assert inside("auray", lambda: (_count(Receipt), balance_of(a).balance)) == (0, Decimal("10.10"))
    assert inside("auray", lambda: db.session.scalars(select(OnlineTransaction)).one().status) == TX_WAITING


def test_one_commune_never_pays_sees_or_is_notified_for_anothers_invoice(pay_settings, make_family, make_invoice,
                                                                          make_web, inside):
    pay_settings("auray")
    pay_settings("saint-loubes")
    auray, loubes = make_family("auray"), make_family("saint-loubes")
    own = make_invoice(auray, "8.00")
    foreign = make_invoice(loubes, "9.00")
    parent_a, parent_l = make_web(), make_web()
    parent_a.login("auray", auray["email"])
    parent_l.login("saint-loubes", loubes["email"])
    assert parent_a.post("/auray/paiements", {"factures": [str(foreign)]},
                         page="/auray/factures").status_code == 404
    assert parent_a.post("/auray/paiements", {"factures": [str(own), str(foreign)]},
                         page="/auray/factures").status_code == 404
    fields = _standin_fields(_start(parent_l, "saint-loubes", [foreign]))
    tx_id = inside("saint-loubes", lambda: db.session.scalars(select(OnlineTransaction.id)).one())
    assert parent_a.get(f"/auray/paiements/{tx_id}/retour").status_code == 404
    data = online_notification(parent_l, fields, "ok")
    assert parent_a.client.post("/auray/paiements/notification", data=data).status_code == 404
    assert inside("saint-loubes", lambda: (_count(Receipt), balance_of(foreign).balance)) == (0, Decimal("9.00"))
    assert inside("auray", lambda: _count(OnlineTransaction)) == 0


# ---------------------------------------------------------------- PayFiP (SOAP stubbed at eopayment)

class Soap(dict):
    """What zeep gives eopayment: attributes and keys."""
    __getattr__ = dict.get


@pytest.fixture
def payfip(app, monkeypatch):
    from eopayment import payfip_ws

    calls = {"idop": [], "info": []}
    answers = {}

    def get_idop(self, **kwargs):
        calls["idop"].append(kwargs)
        return f"IDOP{len(calls['idop']):04d}"

    def get_info_paiement(self, idop, timeout=None):
        calls["info"].append(idop)
        return answers[idop]

    monkeypatch.setattr(payfip_ws.PayFiP, "get_idop", get_idop)
    monkeypatch.setattr(payfip_ws.PayFiP, "get_info_paiement", get_info_paiement)
    app.config["PAYMENT_BACKEND"] = "payfip_ws"
    yield calls, answers
    app.config["PAYMENT_BACKEND"] = "dummy"


def paid_answer(refdet, montant, result="P"):
    now = clock.now_local()
    return Soap(resultrans=result, montant=montant, refdet=refdet, numauto="123456", dattrans=now.strftime("%d%m%Y"),
                heurtrans=now.strftime("%H%M"), saisie="T", numcli="123456", exer=str(now.year), mel="x@y.test",
                objet="")


def test_decimal_10_10_reaches_payfip_as_1010_cents_and_its_notification_pays(pay_settings, make_family,
                                                                             make_invoice, web, payfip, inside):
    calls, answers = payfip
    pay_settings("auray")
    fam = make_family("auray")
    invoice = make_invoice(fam, Decimal("10.10"))
    web.login("auray", fam["email"])
    location = _start(web, "auray", [invoice])
    assert location == "https://www.payfip.gouv.fr/tpa/paiementws.web?idop=IDOP0001"
    [sent] = calls["idop"]
    assert sent["montant"] == "1010" and sent["numcli"] == "123456" and sent["saisie"] == "T"
    assert sent["exer"] == str(clock.today().year) and re.fullmatch(r"[A-Za-z0-9]{1,30}", sent["refdet"])
    assert sent["url_notification"].endswith("/auray/paiements/notification")
    tx = inside("auray", lambda: snap(db.session.scalars(select(OnlineTransaction)).one()))
    assert (tx.backend_id, tx.amount_cents, tx.refdet) == ("IDOP0001", 1010, sent["refdet"])

    answers["IDOP0001"] = paid_answer(tx.refdet, "1010")
    assert web.client.post("/auray/paiements/notification", data={"idOp": "IDOP0001"}).status_code == 200
    assert web.client.post("/auray/paiements/notification", data={"idOp": "IDOP0001"}).status_code == 200
    assert inside("auray", lambda: (balance_of(invoice).status, _count(Receipt))) == (STATUS_PAID, 1)
    receipt = inside("auray", lambda: snap(db.session.scalars(select(Receipt)).one()))
    assert receipt.amount == Decimal("10.10") and receipt.method == "en_ligne" and receipt.reference == tx.refdet


def test_payfip_refusals_and_wrong_amounts_record_nothing(pay_settings, make_family, make_invoice, web, payfip,
                                                          inside):
    calls, answers = payfip
    pay_settings("auray")
    fam = make_family("auray")
    invoice = make_invoice(fam, "20.00")
    web.login("auray", fam["email"])
    _start(web, "auray", [invoice])
    tx = inside("auray", lambda: snap(db.session.scalars(select(OnlineTransaction)).one()))
    answers["IDOP0001"] = paid_answer(tx.refdet, "1999")
    response = web.client.post("/auray/paiements/notification", data={"idOp": "IDOP0001"})
    assert response.status_code == 400 and "2000" in response.get_data(as_text=True)
    answers["IDOP0001"] = paid_answer(tx.refdet, "2000", result="R")
    assert web.client.post("/auray/paiements/notification", data={"idOp": "IDOP0001"}).status_code == 200
    assert inside("auray", lambda: (_count(Receipt), balance_of(invoice).balance)) == (0, Decimal("20.00"))
    assert inside("auray", lambda: db.session.scalars(select(OnlineTransaction.status)).one()) == "denied"
    assert web.client.post("/auray/paiements/notification", data={"idOp": "UNKNOWN"}).status_code in (400, 404)


def test_the_reconciliation_job_asks_payfip_about_transactions_left_waiting(pay_settings, make_family, make_invoice,
                                                                           web, payfip, inside, app):
    import time_machine

    calls, answers = payfip
    pay_settings("auray")
    fam = make_family("auray")
    invoice = make_invoice(fam, "7.00")
    web.login("auray", fam["email"])
    _start(web, "auray", [invoice])
    tx = inside("auray", lambda: snap(db.session.scalars(select(OnlineTransaction)).one()))
    answers["IDOP0001"] = paid_answer(tx.refdet, "700")
    assert inside("auray", online.reconcile) == 0            # too early: the idop still lives
    with time_machine.travel(clock.now_local() + online.RECONCILE_AFTER + online.RECONCILE_AFTER, tick=False):
        assert inside("auray", online.reconcile) == 1
    assert inside("auray", lambda: (balance_of(invoice).status, db.session.get(OnlineTransaction, tx.id).status)) \
        == (STATUS_PAID, TX_PAID)


def test_the_reconciliation_job_expires_standin_transactions_without_notification(family_with_two, web, inside):
    import time_machine

    fam, a, _b = family_with_two
    _start(web, "auray", [a])
    with time_machine.travel(clock.now_local() + online.RECONCILE_AFTER * 2, tick=False):
        assert inside("auray", online.reconcile) == 1
    assert inside("auray", lambda: db.session.scalars(select(OnlineTransaction.status)).one()) == "expired"
    assert inside("auray", lambda: balance_of(a).balance) == Decimal("10.10")


def test_nothing_under_debit_or_handed_to_the_tresor_is_paid_online(family_with_two, web, inside):
    from core.billing import reminders
    from core.billing.payment_models import Debit, Mandate

    fam, a, b = family_with_two

    def under_debit():
        m = Mandate(family_id=fam["family_id"], regie="test", rum="RUM-TEST-000001", holder="Camille", iban="FR76",
                    bic="AGRIFRPP", text_version="x", status="active")
        db.session.add(m)
        db.session.flush()
        db.session.add(Debit(invoice_id=a, mandate_id=m.id, family_id=fam["family_id"], amount=Decimal("10.10")))

    inside("auray", under_debit)
    response = web.post("/auray/paiements", {"factures": [str(a)]}, page="/auray/factures")
    assert response.status_code == 303 and response.headers["Location"].endswith("/auray/factures")
    assert "sera payée par prélèvement automatique" in web.get("/auray/factures").get_data(as_text=True)
    with time_travel_after_due():
        inside("auray", lambda: reminders.hand_over(b, actor="Agent"))
        response = web.post("/auray/paiements", {"factures": [str(b)]}, page="/auray/factures")
        assert "transmise au Trésor public" in web.get("/auray/factures").get_data(as_text=True)
    assert inside("auray", lambda: _count(OnlineTransaction)) == 0


def time_travel_after_due():
    from datetime import timedelta

    import time_machine

    return time_machine.travel(clock.now_local() + timedelta(days=20), tick=False)

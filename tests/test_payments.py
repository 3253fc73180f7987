"""Money coming in: receipts split over invoices oldest first, overpayment → credit, counter payments
(cheque number, CESU), cancellation with a reason (audited), amounts at the cent (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core import clock
from core.billing import payments
from core.billing.invoices import STATUS_PAID, credit_balance, statements
from core.billing.models import Credit, Invoice, Payment
from core.billing.payment_models import Receipt
from extensions import db
from tests.payment_helpers import balance_of

cents_st = st.integers(min_value=1, max_value=500_000)


def _fake(balance_cents, due_offset, ident):
    inv = SimpleNamespace(id=ident, due_on=date(2027, 1, 1) + timedelta(days=due_offset),
                          issued_on=date(2026, 12, 1), number=f"F{ident}")
    return SimpleNamespace(invoice=inv, balance=Decimal(balance_cents) / 100)


@given(balances=st.lists(st.tuples(cents_st, st.integers(0, 90)), min_size=1, max_size=8), amount=cents_st)
def test_split_covers_the_oldest_first_and_keeps_the_rest_as_credit(balances, amount):
    rows = [_fake(b, d, i) for i, (b, d) in enumerate(balances)]
    money = Decimal(amount) / 100
    plan = payments.split(money, rows)
    assert sum((part for _s, part in plan.parts), Decimal(0)) + plan.credit == money   # to the cent
    assert all(part.as_tuple().exponent >= -2 for _s, part in plan.parts)
    ordered = payments.oldest_first(rows)
    covered = {s.invoice.id: part for s, part in plan.parts}
    for i, row in enumerate(ordered):     # a later invoice gets something only once all earlier ones are paid
        if row.invoice.id in covered and i > 0:
            assert all(covered.get(p.invoice.id) == p.balance for p in ordered[:i])
        assert covered.get(row.invoice.id, Decimal(0)) <= row.balance
    total_due = sum((r.balance for r in rows), Decimal(0))
    assert plan.credit == max(money - total_due, Decimal(0))


def test_a_payment_over_two_invoices_pays_the_oldest_first_and_the_rest_becomes_a_credit(
        pay_settings, make_family, make_invoice, inside):
    pay_settings("auray")
    fam = make_family("auray")
    newer = make_invoice(fam, "20.00", due_in=20)
    older = make_invoice(fam, "15.50", due_in=5)

    receipt = inside("auray", lambda: payments.settle(fam["family_id"], [newer, older], amount=Decimal("40.10"),
                                                      method="especes", actor="Agent").id)

    def check():
        r = db.session.get(Receipt, receipt)
        assert r.number == f"R-{clock.today().year}-000001"
        assert [(a["number"], a["cents"]) for a in r.allocations] == [
            (db.session.get(Invoice, older).number, 1550), (db.session.get(Invoice, newer).number, 2000)]
        assert balance_of(older).status == STATUS_PAID and balance_of(newer).status == STATUS_PAID
        assert r.credit_amount == Decimal("4.60") and credit_balance(fam["family_id"]) == Decimal("4.60")
        assert db.session.scalar(select(Credit.receipt_id)) == r.id

    inside("auray", check)


def test_a_partial_payment_covers_the_oldest_invoice_and_leaves_the_newer_due(pay_settings, make_family,
                                                                             make_invoice, inside):
    pay_settings("auray")
    fam = make_family("auray")
    older, newer = make_invoice(fam, "10.00", due_in=3), make_invoice(fam, "10.00", due_in=30)
    inside("auray", lambda: payments.settle(fam["family_id"], [older, newer], amount=Decimal("12.34"),
                                            method="cheque", reference="1234567", actor="Agent"))
    assert inside("auray", lambda: balance_of(newer).balance) == Decimal("7.66")
    assert inside("auray", lambda: balance_of(older).balance) == Decimal("0.00")
    assert inside("auray", lambda: credit_balance(fam["family_id"])) == Decimal("0.00")


def test_a_credit_from_an_overpayment_is_used_by_the_next_invoice(pay_settings, make_family, make_invoice, inside):
    from core.billing.runs import apply_credits

    pay_settings("auray")
    fam = make_family("auray")
    first = make_invoice(fam, "8.00")
    inside("auray", lambda: payments.settle(fam["family_id"], [first], amount=Decimal("10.00"), method="especes",
                                            actor="Agent"))
    second = make_invoice(fam, "5.00", due_in=40)
    inside("auray", lambda: apply_credits([db.session.get(Invoice, second)]))
    assert inside("auray", lambda: balance_of(second).balance) == Decimal("3.00")
    assert inside("auray", lambda: credit_balance(fam["family_id"])) == Decimal("0.00")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(totals=st.lists(st.integers(min_value=1, max_value=99_999), min_size=1, max_size=4), paid=cents_st)
def test_amounts_at_the_cent_on_random_invoices(pay_settings, make_family, make_invoice, inside, totals, paid):
    pay_settings("auray")
    fam = make_family("auray")
    ids = [make_invoice(fam, str(Decimal(t) / 100), due_in=i + 1) for i, t in enumerate(totals)]
    amount = Decimal(paid) / 100

    def check():
        payments.settle(fam["family_id"], ids, amount=amount, method="especes", actor="Agent")
        db.session.flush()
        rows = statements(list(db.session.scalars(select(Invoice).where(Invoice.id.in_(ids)))))
        paid_sum = db.session.scalar(select(func.sum(Payment.amount)).where(Payment.invoice_id.in_(ids)))
        due = Decimal(sum(totals)) / 100
        assert paid_sum + credit_balance(fam["family_id"]) == amount
        assert sum((r.balance for r in rows), Decimal(0)) == max(due - amount, Decimal(0))
        assert all(r.balance >= 0 for r in rows)

    inside("auray", check)


# ---------------------------------------------------------------- counter payments

def test_a_cheque_needs_its_number_and_nothing_is_recorded_without_it(pay_settings, make_family, make_invoice,
                                                                     inside):
    pay_settings("auray")
    fam = make_family("auray")
    inv = make_invoice(fam, "30.00")
    with pytest.raises(payments.PaymentError) as err:
        inside("auray", lambda: payments.record_counter_payment(
            fam["family_id"], [inv], amount_raw="30", paid_on=clock.today(), method="cheque", reference="",
            actor="Agent"))
    assert err.value.message == "Indiquez le numéro du chèque." and err.value.field == "reference"
    with pytest.raises(payments.PaymentError) as err:
        inside("auray", lambda: payments.record_counter_payment(
            fam["family_id"], [inv], amount_raw="3O,00", paid_on=clock.today(), method="especes", reference="",
            actor="Agent"))
    assert "n'est pas un montant" in err.value.message
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(Receipt))) == 0
    receipt = inside("auray", lambda: payments.record_counter_payment(
        fam["family_id"], [inv], amount_raw="30,00", paid_on=clock.today(), method="cesu", reference="CESU-778",
        actor="Agent").number)
    assert receipt.startswith("R-")
    assert inside("auray", lambda: balance_of(inv).status) == STATUS_PAID


def test_cancelling_a_counter_payment_needs_a_reason_reopens_the_invoice_and_is_in_the_journal(
        pay_settings, make_family, make_invoice, inside):
    from core.admin_models import AuditLog

    pay_settings("auray")
    fam = make_family("auray")
    inv = make_invoice(fam, "12.00")
    rid = inside("auray", lambda: payments.record_counter_payment(
        fam["family_id"], [inv], amount_raw="15", paid_on=clock.today(), method="especes", reference="",
        actor="Agent").id)
    assert inside("auray", lambda: credit_balance(fam["family_id"])) == Decimal("3.00")
    with pytest.raises(payments.PaymentError) as err:
        inside("auray", lambda: payments.cancel(rid, reason="  ", actor="Agent"))
    assert err.value.field == "reason"
    inside("auray", lambda: payments.cancel(rid, reason="Billet refusé (faux)", actor="Agent Martin"))

    def check():
        st_ = balance_of(inv)
        assert st_.balance == Decimal("12.00") and st_.unpaid
        assert credit_balance(fam["family_id"]) == Decimal("0.00")
        r = db.session.get(Receipt, rid)
        assert r.cancelled_by == "Agent Martin" and r.cancel_reason == "Billet refusé (faux)"
        entry = db.session.scalars(select(AuditLog)).one()
        assert entry.actor == "Agent Martin" and r.number in entry.what and "Billet refusé" in entry.what

    inside("auray", check)
    with pytest.raises(payments.PaymentError, match="déjà annulé"):
        inside("auray", lambda: payments.cancel(rid, reason="encore", actor="Agent"))


def test_an_online_payment_is_not_cancelled_at_the_counter(pay_settings, make_family, make_invoice, inside):
    pay_settings("auray")
    fam = make_family("auray")
    inv = make_invoice(fam, "12.00")
    rid = inside("auray", lambda: payments.settle(fam["family_id"], [inv], amount=Decimal("12.00"),
                                                  method=payments.ONLINE, actor="Paiement en ligne").id)
    with pytest.raises(payments.PaymentError, match="ne s'annule pas au guichet"):
        inside("auray", lambda: payments.cancel(rid, reason="erreur", actor="Agent"))


def test_another_communes_invoice_is_unknown_to_a_payment(pay_settings, make_family, make_invoice, inside):
    pay_settings("auray")
    pay_settings("saint-loubes")
    auray = make_family("auray")
    loubes = make_family("saint-loubes")
    foreign = make_invoice(loubes, "10.00")
    with pytest.raises(LookupError):
        inside("auray", lambda: payments.settle(auray["family_id"], [foreign], amount=Decimal("10.00"),
                                                method="especes", actor="Agent"))
    assert inside("saint-loubes", lambda: balance_of(foreign).balance) == Decimal("10.00")


def test_the_journal_sums_per_day_and_type_and_its_csv_is_for_french_excel(pay_settings, make_family,
                                                                           make_invoice, inside):
    pay_settings("auray")
    fam = make_family("auray")
    a, b, c = (make_invoice(fam, "10.00") for _ in range(3))
    today = clock.today()
    inside("auray", lambda: payments.record_counter_payment(fam["family_id"], [a], amount_raw="10", paid_on=today,
                                                            method="especes", reference="", actor="Agent"))
    inside("auray", lambda: payments.record_counter_payment(fam["family_id"], [b], amount_raw="10,00",
                                                            paid_on=today, method="cheque", reference="0001",
                                                            actor="Agent"))
    rid = inside("auray", lambda: payments.record_counter_payment(fam["family_id"], [c], amount_raw="5",
                                                                  paid_on=today, method="especes", reference="",
                                                                  actor="Agent").id)
    inside("auray", lambda: payments.cancel(rid, reason="erreur de saisie", actor="Agent"))

    def check():
        [day] = payments.journal(today, today)
        assert day.by_method == {"especes": Decimal("10.00"), "cheque": Decimal("10.00")}
        assert day.total == Decimal("20.00") and len(day.receipts) == 3
        data = payments.journal_csv([day])
        assert data.startswith("\ufeff".encode())
        text_ = data.decode("utf-8-sig")
        assert ";Espèces;" in text_ and "10,00;1000;" in text_ and "Annulé" in text_

    inside("auray", check)

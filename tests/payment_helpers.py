"""Factories of the payment tests: a régie with PayFiP and SEPA settings, published invoices written
as a publication leaves them (numbered, with a line), relative to the clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import clock
from core.billing.bank import creditor_id
from extensions import db
from tenants.context import tenant_scope
from tests.billing_helpers import TEST_BILLING

CREDITOR_ID = creditor_id("FR", "123456")
PAY_BILLING = {**TEST_BILLING, "regie": {
    **TEST_BILLING["regie"], "payfip_client": "123456", "payfip_saisie": "T", "online_payment": True,
    "sepa_creditor_id": CREDITOR_ID, "sepa_creditor_name": "Régie de test",
    "sepa_creditor_iban": "FR7630001007941234567890185", "sepa_creditor_bic": "BDFEFRPPCCT",
    "reminder_days_before": 5, "reminder_days_after": 3}}
IBAN_OK = "FR76 3000 6000 0112 3456 7890 189"      # checksum right (an invented account)
IBAN_BAD = "FR76 3000 6000 0112 3456 7890 188"     # one digit off: checksum wrong


@pytest.fixture
def pay_settings(billing_settings):
    def set_(slug="auray", **regie):
        conf = {**PAY_BILLING, "regie": {**PAY_BILLING["regie"], **regie}}
        billing_settings(slug, conf)
        return conf

    return set_


def add_invoice(family_id: int, total, *, due_in: int = 10, issued_ago: int = 5):
    """A published invoice of the family (numbered, with a line), as a run leaves it, inside the
    commune's scope (flushed, not committed)."""
    from core.billing.invoices import allocate_numbers, number_of
    from core.billing.models import DOC_INVOICE, Invoice, InvoiceLine
    from core.billing.runs import config
    from core.models import Family

    regie = config().regie
    today = clock.today()
    issued = today - timedelta(days=issued_ago)
    [seq] = allocate_numbers(regie.code, issued.year, 1)
    amount = Decimal(str(total))
    family = db.session.get(Family, family_id)
    invoice = Invoice(regie=regie.code, year=issued.year, sequence=seq, number=number_of(regie, issued.year, seq),
                      kind=DOC_INVOICE, family_id=family_id, family_name=family.name, issued_on=issued,
                      due_on=today + timedelta(days=due_in), total=amount)
    invoice.lines.append(InvoiceLine(tenant_id=family.tenant_id, child_name="Lou", activity_name="Kids", day=issued,
                                     unit="Matin", quantity=Decimal("1.00"), unit_price=amount, amount=amount))
    db.session.add(invoice)
    db.session.flush()
    return invoice


@pytest.fixture
def make_invoice(app, tenants):
    """make_invoice(family, "12.50", due_in=10) → invoice id, published as a run leaves it."""

    def factory(family, total, *, due_in=10, issued_ago=5):
        with app.app_context(), tenant_scope(family["tenant_id"]):
            out = add_invoice(family["family_id"], total, due_in=due_in, issued_ago=issued_ago).id
            db.session.commit()
            db.session.remove()
        return out

    return factory


def balance_of(invoice_id):
    from types import SimpleNamespace

    from core.billing.invoices import statements
    from core.billing.models import Invoice

    [st] = statements([db.session.get(Invoice, invoice_id)])
    return SimpleNamespace(status=st.status, balance=st.balance, unpaid=st.unpaid, payable_online=st.payable_online,
                           under_debit=st.under_debit, recovery=st.recovery, paid=st.paid)


def snap(obj):
    """A row's columns as a plain object (readable after the session is gone)."""
    from types import SimpleNamespace

    return SimpleNamespace(**{c.key: getattr(obj, c.key) for c in obj.__table__.columns})

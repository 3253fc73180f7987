"""Receipts: one payment as received (counter, online, direct debit), split over invoices.

The one data path for money coming in: `settle()`.  It locks the invoices (id order), reads their
balances (computed from total, credits used and payments — never a counter), covers the oldest
first (due date, then issue date), and keeps what is left as a credit (avoir) that the next
invoices use.  A receipt is numbered per régie and year (R-2027-000012) under the counter's lock.
A counter receipt is cancelled with a reason (audited), never deleted: its payments go, its credit
too if nothing used it yet, so the invoices reopen.  Services never commit.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core import clock
from core.billing import config as bconf
from core.billing.invoices import (
    COUNTER_METHODS,
    PAYMENT_METHODS,
    InvoiceError,
    Statement,
    allocate_numbers,
    statements,
)
from core.billing.models import DOC_INVOICE, Credit, CreditUse, Invoice, Payment
from core.billing.payment_models import Receipt
from core.billing.pricing import cents, euros
from core.bounds import day_in_range
from core.locking import lock
from extensions import db
from tenants.context import require_tenant_id

ZERO = Decimal("0.00")
ONLINE = "en_ligne"
DIRECT_DEBIT = "prelevement"
NEEDS_REFERENCE = {"cheque": _l("Indiquez le numéro du chèque."), "cesu": _l("Indiquez le numéro du titre CESU.")}


class PaymentError(InvoiceError):
    """A refusal with a French message and the field at fault (nothing was written)."""


def _regie() -> bconf.Regie:
    from core.billing.runs import config

    return config().regie


def receipt_number(regie: bconf.Regie, year: int, sequence: int) -> str:
    return f"R-{year}-{sequence:06d}"


def oldest_first(rows: list[Statement]) -> list[Statement]:
    return sorted(rows, key=lambda s: (s.invoice.due_on, s.invoice.issued_on, s.invoice.id))


@dataclass
class Split:
    """How an amount covers invoices (oldest first) and what is left as a credit."""
    parts: list[tuple[Statement, Decimal]] = field(default_factory=list)
    credit: Decimal = ZERO


def split(amount: Decimal, rows: list[Statement]) -> Split:
    """Pure: `amount` over the balances of `rows`, oldest first; the rest is a credit."""
    out = Split()
    left = amount
    for st in oldest_first(rows):
        if left <= 0:
            break
        take = min(max(st.balance, ZERO), left)
        if take > 0:
            out.parts.append((st, take))
            left -= take
    out.credit = left
    return out


def settle(family_id: int, invoice_ids, *, amount: Decimal, method: str, reference: str = "",
           paid_on: date | None = None, actor: str = "", transaction_id: int | None = None,
           debit_id: int | None = None) -> Receipt:
    """Record a payment of `amount` over these invoices of the family (locked, oldest first); an
    overpayment becomes a credit.  Raises LookupError for an invoice that is not the family's."""
    if not isinstance(amount, Decimal) or amount != amount.quantize(bconf.CENTS) or amount <= 0:
        raise PaymentError(str(_l("Le montant réglé est un nombre positif à deux décimales.")), "amount")
    invoices = lock(Invoice, invoice_ids)
    ids = sorted({int(i) for i in invoice_ids})
    if not ids or len(invoices) != len(ids) or any(i.family_id != family_id for i in invoices.values()):
        raise LookupError(invoice_ids)
    if any(i.kind != DOC_INVOICE for i in invoices.values()):
        raise PaymentError(str(_l("Un avoir ne se règle pas.")))
    regie = _regie()
    paid_on = paid_on or clock.today()
    year = paid_on.year
    [sequence] = allocate_numbers(f"{regie.code}:recus", year, 1)
    plan = split(amount, statements([invoices[i] for i in ids]))
    receipt = Receipt(regie=regie.code, year=year, sequence=sequence, number=receipt_number(regie, year, sequence),
                      family_id=family_id, amount=amount, credit_amount=plan.credit, method=method,
                      reference=(reference or "")[:100], paid_on=paid_on, recorded_by=actor[:200],
                      transaction_id=transaction_id, debit_id=debit_id,
                      allocations=[{"invoice_id": st.invoice.id, "number": st.invoice.number, "cents": cents(part)}
                                   for st, part in plan.parts])
    db.session.add(receipt)
    db.session.flush()
    for st, part in plan.parts:
        db.session.add(Payment(invoice_id=st.invoice.id, amount=part, paid_on=paid_on, method=method,
                               reference=receipt.reference, recorded_by=actor[:200], receipt_id=receipt.id))
    if plan.credit > 0:
        last = oldest_first(statements([invoices[i] for i in ids]))[-1].invoice
        db.session.add(Credit(regie=regie.code, family_id=family_id, source_id=last.id, amount=plan.credit,
                              receipt_id=receipt.id))
    db.session.flush()
    return receipt


def parse_amount(raw) -> Decimal:
    try:
        amount = bconf.money(raw, field="amount")
    except bconf.ConfigError as err:
        raise PaymentError(err.message, "amount") from None
    if amount <= 0:
        raise PaymentError(str(_l("Le montant réglé est positif.")), "amount")
    if amount > Decimal("100000"):
        raise PaymentError(str(_l("Le montant dépasse 100 000 €.")), "amount")
    return amount


def record_counter_payment(family_id: int, invoice_ids, *, amount_raw, paid_on: date | None, method: str,
                           reference: str, actor: str) -> Receipt:
    """An agent records cash, a cheque (its number), CESU (its number), a card or a transfer over
    some of the family's invoices; the receipt is printable.  Raises PaymentError in French."""
    if method not in COUNTER_METHODS:
        raise PaymentError(str(_l("Choisissez le mode de règlement.")), "method")
    amount = parse_amount(amount_raw)
    reference = (reference or "").strip()
    if method in NEEDS_REFERENCE and not reference:
        raise PaymentError(str(NEEDS_REFERENCE[method]), "reference")
    if len(reference) > 100:
        raise PaymentError(str(_l("La référence a 100 caractères au plus.")), "reference")
    if paid_on is None:
        raise PaymentError(str(_l("Indiquez la date du règlement.")), "paid_on")
    if paid_on > clock.today():
        raise PaymentError(str(_l("La date du règlement n'est pas dans le futur.")), "paid_on")
    if not day_in_range(paid_on):  # year 1: a receipt numbered in year 1
        raise PaymentError(str(_l("Indiquez la date du règlement.")), "paid_on")
    ids = sorted({int(i) for i in invoice_ids})
    if not ids:
        raise PaymentError(str(_l("Choisissez au moins une facture.")), "invoices")
    rows = statements(list(lock(Invoice, ids).values()))
    if len(rows) != len(ids) or any(st.invoice.family_id != family_id for st in rows):
        raise LookupError(ids)
    for st in rows:
        if st.recovery:
            raise PaymentError(str(_l("La facture %(number)s est transmise au Trésor public : le règlement se fait "
                                      "auprès du comptable public.", number=st.invoice.number)), "invoices")
    due = sum((max(st.balance, ZERO) for st in rows), ZERO)
    if due <= 0:
        raise PaymentError(str(_l("Ces factures sont déjà réglées.")), "invoices")
    return settle(family_id, ids, amount=amount, method=method, reference=reference, paid_on=paid_on, actor=actor)


def cancel(receipt_id: int, *, reason: str, actor: str, internal: bool = False) -> Receipt:
    """Cancel a receipt with a reason: its payments go, its credit too (unless already used), the
    invoices reopen; written to the commune's journal.  Online payments are not cancelled here
    (`internal`: a rejected direct debit)."""
    from core.admin_models import AUDIT_CHANGE
    from core.audit import record
    from core.locking import lock_one

    receipt = lock_one(Receipt, receipt_id)
    if receipt is None:
        raise LookupError(receipt_id)
    reason = (reason or "").strip()
    if receipt.cancelled_at is not None:
        raise PaymentError(str(_l("Ce règlement est déjà annulé.")))
    if not reason:
        raise PaymentError(str(_l("Indiquez le motif de l'annulation.")), "reason")
    if not internal and receipt.method not in COUNTER_METHODS:
        raise PaymentError(str(_l("Un paiement en ligne ou un prélèvement ne s'annule pas au guichet.")))
    credit = db.session.scalars(select(Credit).where(Credit.receipt_id == receipt.id)).first()
    if credit is not None:
        used = db.session.scalar(select(func.count()).select_from(CreditUse).where(CreditUse.credit_id == credit.id))
        if used:
            raise PaymentError(str(_l("L'avoir né de ce règlement a déjà servi : émettez plutôt un avoir ou un "
                                      "remboursement.")))
        db.session.delete(credit)
    lock(Invoice, [a["invoice_id"] for a in receipt.allocations or []])
    for payment in db.session.scalars(select(Payment).where(Payment.receipt_id == receipt.id)):
        db.session.delete(payment)
    receipt.cancelled_at = clock.utcnow()
    receipt.cancelled_by = actor[:200]
    receipt.cancel_reason = reason
    record(actor=actor, action=AUDIT_CHANGE, what=f"Règlement {receipt.number} ({euros(receipt.amount)}) annulé : "
                                                  f"{reason}"[:500])
    return receipt


# ---------------------------------------------------------------------------- reading

def of_family(family_id: int) -> list[Receipt]:
    return list(db.session.scalars(select(Receipt).where(Receipt.family_id == family_id)
                                   .order_by(Receipt.paid_on.desc(), Receipt.id.desc())))


def family_balance(family_id: int) -> dict:
    """What the family owes (open invoices), its credits, and what it paid (receipts)."""
    from core.billing.invoices import available_credits
    from core.billing.invoices import of_family as invoices_of

    rows = invoices_of(family_id)
    due = sum((st.balance for st in rows if st.unpaid or st.under_debit), ZERO)
    credit = sum((left[0] for _cid, left in available_credits([family_id]).get(family_id, [])), ZERO)
    return {"invoices": rows, "due": due, "credit": credit, "net": due - credit}


@dataclass
class JournalDay:
    day: date
    by_method: dict[str, Decimal]
    receipts: list[Receipt]

    @property
    def total(self) -> Decimal:
        return sum(self.by_method.values(), ZERO)


def journal(first: date, last: date, method: str | None = None) -> list[JournalDay]:
    """Receipts per day and type (cancelled ones listed, not counted)."""
    stmt = select(Receipt).where(Receipt.paid_on >= first, Receipt.paid_on <= last)
    if method:
        stmt = stmt.where(Receipt.method == method)
    days: dict[date, JournalDay] = {}
    for r in db.session.scalars(stmt.order_by(Receipt.paid_on, Receipt.id)):
        day = days.setdefault(r.paid_on, JournalDay(r.paid_on, {}, []))
        day.receipts.append(r)
        if r.cancelled_at is None:
            day.by_method[r.method] = day.by_method.get(r.method, ZERO) + r.amount
    return [days[d] for d in sorted(days)]


def journal_csv(days: list[JournalDay]) -> bytes:
    """For the accountant: UTF-8 with BOM, ';', euros with a comma and cents."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow([str(_l("Date")), str(_l("N° de reçu")), str(_l("Mode")), str(_l("Référence")),
                     str(_l("Famille")), str(_l("Factures")), str(_l("Montant (€)")), str(_l("Montant (centimes)")),
                     str(_l("Dont avoir (€)")), str(_l("Statut"))])
    for day in days:
        for r in day.receipts:
            writer.writerow([r.paid_on.strftime("%d/%m/%Y"), r.number, str(PAYMENT_METHODS.get(r.method, r.method)),
                             r.reference, r.family.name, " ".join(a["number"] for a in r.allocations or []),
                             f"{r.amount:.2f}".replace(".", ","), cents(r.amount),
                             f"{r.credit_amount:.2f}".replace(".", ","),
                             str(_l("Annulé")) if r.cancelled_at else str(_l("Encaissé"))])
    for day in days:
        for method, total in sorted(day.by_method.items()):
            writer.writerow([day.day.strftime("%d/%m/%Y"), str(_l("Total")), str(PAYMENT_METHODS.get(method, method)),
                             "", "", "", f"{total:.2f}".replace(".", ","), cents(total), "", ""])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def tenant_guard(family_id: int) -> None:
    """A family of another commune is unknown here (404 at the web layer)."""
    from core.models import Family

    family = db.session.get(Family, family_id)
    if family is None or family.tenant_id != require_tenant_id():
        raise LookupError(family_id)

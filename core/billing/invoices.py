"""Published documents: numbers, balances, statuses, credit notes, payments, the accountant's CSV.

An invoice is never edited once published.  Its balance is computed from its total, the credits
applied to it and its payments; a correction is a credit note (avoir) with its own number.
Numbers are gap-free and unique per régie and year: `allocate_numbers` takes them under the row
lock of the régie+year counter, in the publishing transaction (a rollback gives nothing away).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, text

from core import clock
from core.billing import config as bconf
from core.billing.models import (
    DOC_CREDIT_NOTE,
    DOC_INVOICE,
    BillingCounter,
    Credit,
    CreditUse,
    Invoice,
    InvoiceLine,
    Payment,
)
from core.billing.pricing import cents, euros
from core.locking import _busy_on_lock_timeout, is_postgres, set_lock_timeout
from core.models import User
from extensions import db
from tenants.context import require_tenant_id

ZERO = Decimal("0.00")

STATUS_DUE = "a_payer"
STATUS_PAID = "payee"
STATUS_LATE = "en_retard"
STATUS_CREDIT = "avoir"
STATUS_DEBIT = "prelevement"          # under direct debit (core.billing.sepa): not payable online
STATUS_RECOVERY = "recouvrement"      # handed over to the Trésor public: not payable here any more
STATUS_WORDS = {STATUS_DUE: _l("À payer"), STATUS_PAID: _l("Payée"), STATUS_LATE: _l("En retard"),
                STATUS_CREDIT: _l("Avoir"), STATUS_DEBIT: _l("Prélèvement prévu"),
                STATUS_RECOVERY: _l("Transmise au Trésor public")}
# Counter payments (agents) first; "en_ligne" and "prelevement" are recorded by the services only.
COUNTER_METHODS = {"especes": _l("Espèces"), "cheque": _l("Chèque"), "cesu": _l("CESU"),
                   "carte": _l("Carte bancaire"), "virement": _l("Virement")}
PAYMENT_METHODS = {**COUNTER_METHODS, "en_ligne": _l("Paiement en ligne"), "prelevement": _l("Prélèvement")}


class InvoiceError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def number_of(regie: bconf.Regie, year: int, sequence: int) -> str:
    return f"{regie.prefix}-{year}-{sequence:06d}"


def allocate_numbers(regie: str, year: int, count: int) -> list[int]:
    """`count` consecutive numbers of this régie and year, under the counter's row lock (FOR UPDATE):
    two publications never interleave, a rollback returns nothing (gap-free)."""
    if count <= 0:
        return []
    tid = require_tenant_id()
    table = BillingCounter.__table__
    params = {"tenant": tid, "regie": regie, "year": year}
    if is_postgres():
        db.session.execute(text("INSERT INTO billing_counter (tenant_id, regie, year, value) "
                                "VALUES (:tenant, :regie, :year, 0) ON CONFLICT (tenant_id, regie, year) DO NOTHING"),
                           params)
    else:
        db.session.execute(text("INSERT OR IGNORE INTO billing_counter (tenant_id, regie, year, value) "
                                "VALUES (:tenant, :regie, :year, 0)"), params)
    set_lock_timeout()
    stmt = select(table.c.id, table.c.value).where(table.c.tenant_id == tid, table.c.regie == regie,
                                                   table.c.year == year)
    if is_postgres():
        stmt = stmt.with_for_update()
    with _busy_on_lock_timeout():
        counter_id, value = db.session.execute(stmt).one()
    db.session.execute(table.update().where(table.c.id == counter_id, table.c.tenant_id == tid)
                       .values(value=value + count))
    return list(range(value + 1, value + count + 1))


def due_date(regie: bconf.Regie, period_start: date | None, issued_on: date) -> date:
    """The régie's day of the month after the billed month, and at least 10 days after issue."""
    base = period_start or issued_on
    following = (base.replace(day=1) + timedelta(days=32)).replace(day=1)
    return max(following.replace(day=regie.payment_day), issued_on + timedelta(days=10))


def family_recipients(family_ids) -> dict[int, dict]:
    """The account holder mailed for each family (the first active one) and its address lines:
    two statements, columns only."""
    from core.dossier.models import Responsable

    out: dict[int, dict] = {}
    ids = sorted(set(family_ids))
    if not ids:
        return out
    for fid, user_id, email, first, last, locale in db.session.execute(
            select(User.family_id, User.id, User.email, User.first_name, User.last_name, User.locale)
            .where(User.family_id.in_(ids), User.deactivated_at.is_(None)).order_by(User.family_id, User.id)):
        out.setdefault(fid, {"email": email, "name": f"{first} {last}".strip(), "locale": locale,
                             "user_id": user_id})
    r = Responsable
    for fid, first, last, line, extra, postal, city in db.session.execute(
            select(r.family_id, r.first_name, r.last_name, r.address_line, r.address_extra, r.postal_code, r.city)
            .where(r.family_id.in_(ids)).order_by(r.family_id, r.position, r.id)):
        entry = out.setdefault(fid, {})
        if "address" not in entry and line:
            entry["address"] = "\n".join(x for x in (f"{first or ''} {last or ''}".strip(), line, extra,
                                                     f"{postal or ''} {city or ''}".strip()) if x)
    return out


def available_credits(family_ids) -> dict[int, list[tuple[int, list[Decimal]]]]:
    """{family: [(credit id, [amount left])]} oldest first (two statements)."""
    ids = sorted(set(family_ids))
    if not ids:
        return {}
    used = dict(db.session.execute(select(CreditUse.credit_id, func.sum(CreditUse.amount))
                                   .join(Credit, Credit.id == CreditUse.credit_id)
                                   .where(Credit.family_id.in_(ids)).group_by(CreditUse.credit_id)).all())
    out: dict[int, list] = {}
    for credit in db.session.scalars(select(Credit).where(Credit.family_id.in_(ids)).order_by(Credit.id)):
        left = credit.amount - (used.get(credit.id) or ZERO)
        if left > 0:
            out.setdefault(credit.family_id, []).append((credit.id, [left]))
    return out


def credit_balance(family_id: int) -> Decimal:
    return sum((left[0] for _cid, left in available_credits([family_id]).get(family_id, [])), ZERO)


@dataclass
class Statement:
    """An invoice as a list or a page shows it."""
    invoice: Invoice
    credits_used: Decimal
    paid: Decimal
    today: date
    under_debit: bool = False             # a planned or exported direct debit pays it
    debit_on: date | None = None          # its collection date, once in a file
    recovery: bool = False                # handed over to the Trésor public

    @property
    def balance(self) -> Decimal:
        if self.invoice.kind == DOC_CREDIT_NOTE or self.invoice.total <= 0:
            return ZERO
        return self.invoice.total - self.credits_used - self.paid

    @property
    def status(self) -> str:
        if self.invoice.kind == DOC_CREDIT_NOTE or self.invoice.total < 0:
            return STATUS_CREDIT
        if self.balance <= 0:
            return STATUS_PAID
        if self.recovery:
            return STATUS_RECOVERY
        if self.under_debit:
            return STATUS_DEBIT
        return STATUS_LATE if self.invoice.due_on < self.today else STATUS_DUE

    @property
    def status_word(self) -> str:
        return str(STATUS_WORDS[self.status])

    @property
    def unpaid(self) -> bool:
        """Not settled and the family has something to do (a direct debit pays by itself)."""
        return self.status in (STATUS_DUE, STATUS_LATE, STATUS_RECOVERY)

    @property
    def payable_online(self) -> bool:
        return self.status in (STATUS_DUE, STATUS_LATE)


def statements(invoices: list[Invoice]) -> list[Statement]:
    """Balances of these invoices in two statements."""
    ids = [i.id for i in invoices] or [0]
    used = dict(db.session.execute(select(CreditUse.invoice_id, func.sum(CreditUse.amount))
                                   .where(CreditUse.invoice_id.in_(ids)).group_by(CreditUse.invoice_id)).all())
    paid = dict(db.session.execute(select(Payment.invoice_id, func.sum(Payment.amount))
                                   .where(Payment.invoice_id.in_(ids)).group_by(Payment.invoice_id)).all())
    from core.billing.payment_models import DEBIT_EXPORTED, DEBIT_PLANNED, Debit, Recovery

    debits = dict(db.session.execute(select(Debit.invoice_id, Debit.collection_date).where(
        Debit.invoice_id.in_(ids), Debit.status.in_((DEBIT_PLANNED, DEBIT_EXPORTED)))).all())
    recovered = set(db.session.scalars(select(Recovery.invoice_id).where(Recovery.invoice_id.in_(ids))))
    today = clock.today()
    return [Statement(i, used.get(i.id) or ZERO, paid.get(i.id) or ZERO, today, i.id in debits, debits.get(i.id),
                      i.id in recovered) for i in invoices]


def of_family(family_id: int) -> list[Statement]:
    return statements(list(db.session.scalars(select(Invoice).where(Invoice.family_id == family_id)
                                              .order_by(Invoice.issued_on.desc(), Invoice.id.desc()))))


def unpaid_count(family_id: int) -> int:
    return sum(1 for s in of_family(family_id) if s.unpaid)


def overdue_blocking_message(family_id: int) -> str | None:
    """"Facture impayée en retard" when the commune's régie makes it blocking (the readiness check)."""
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, require_tenant_id())
    if not bconf.for_tenant(tenant).regie.overdue_blocks:
        return None
    late = [s for s in of_family(family_id) if s.status in (STATUS_LATE, STATUS_RECOVERY)]
    if not late:
        return None
    return str(_l("Facture impayée en retard (%(number)s) : réglez-la pour que vos demandes soient acceptées.",
                  number=late[0].invoice.number))


def families_with_overdue(family_ids) -> set[int]:
    ids = sorted(set(family_ids))
    if not ids:
        return set()
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.family_id.in_(ids),
                                                              Invoice.kind == DOC_INVOICE,
                                                              Invoice.due_on < clock.today())))
    return {s.invoice.family_id for s in statements(invoices) if s.status in (STATUS_LATE, STATUS_RECOVERY)}


def issue_credit_note(invoice: Invoice, *, amount_raw, reason: str, actor: str) -> Invoice:
    """Correct a published invoice: a numbered credit note, its amount applied to the invoice's
    balance, the rest kept as a credit for the next invoices."""
    from core.billing.runs import config
    from core.locking import lock_one

    invoice = lock_one(Invoice, invoice.id)
    if invoice.kind != DOC_INVOICE or invoice.total <= 0:
        raise InvoiceError(str(_l("Un avoir corrige une facture.")))
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceError(str(_l("Indiquez le motif de l'avoir.")), "reason")
    try:
        amount = bconf.money(amount_raw, field="amount")
    except bconf.ConfigError as err:
        raise InvoiceError(err.message, "amount") from None
    if amount <= 0:
        raise InvoiceError(str(_l("Le montant de l'avoir est positif.")), "amount")
    already = db.session.scalar(select(func.coalesce(func.sum(Invoice.total), 0)).where(
        Invoice.corrects_id == invoice.id)) or 0
    if amount > invoice.total + Decimal(already):
        raise InvoiceError(str(_l("L'avoir ne peut dépasser le montant de la facture (%(amount)s).",
                                  amount=euros(invoice.total + Decimal(already)))), "amount")
    regie = config().regie
    today = clock.today()
    [seq] = allocate_numbers(regie.code, today.year, 1)
    note = Invoice(regie=regie.code, year=today.year, sequence=seq, number=number_of(regie, today.year, seq),
                   kind=DOC_CREDIT_NOTE, corrects_id=invoice.id, family_id=invoice.family_id,
                   family_name=invoice.family_name, address=invoice.address, period_start=invoice.period_start,
                   period_end=invoice.period_end, issued_on=today, due_on=today, total=-amount, reason=reason)
    note.lines.append(InvoiceLine(tenant_id=invoice.tenant_id, unit=str(_l("Avoir sur la facture %(number)s",
                                                                           number=invoice.number)),
                                  quantity=Decimal("1.00"), unit_price=-amount, amount=-amount, note=reason[:200],
                                  kind="adjustment"))
    db.session.add(note)
    db.session.flush()
    credit = Credit(regie=regie.code, family_id=invoice.family_id, source_id=note.id, amount=amount)
    db.session.add(credit)
    db.session.flush()
    [st] = statements([invoice])
    applied = min(amount, max(st.balance, ZERO))
    if applied > 0:
        db.session.add(CreditUse(credit_id=credit.id, invoice_id=invoice.id, amount=applied))
    return note


def record_payment(invoice: Invoice, *, amount_raw, paid_on: date | None, method: str, reference: str,
                   actor: str):
    """A counter payment of one invoice: a numbered receipt (core.billing.payments)."""
    from core.billing import payments

    return payments.record_counter_payment(invoice.family_id, [invoice.id], amount_raw=amount_raw, paid_on=paid_on,
                                           method=method, reference=reference, actor=actor)


def export_csv(invoices: list[Invoice]) -> bytes:
    """For the accountant: UTF-8 with BOM, ';', amounts in euros with a comma and in cents."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow([str(_l("Numéro")), str(_l("Type")), str(_l("Date")), str(_l("Échéance")), str(_l("Famille")),
                     str(_l("Période")), str(_l("Total (€)")), str(_l("Total (centimes)")), str(_l("Avoirs imputés (€)")),
                     str(_l("Réglé (€)")), str(_l("Reste à payer (€)")), str(_l("Statut"))])
    for st in statements(invoices):
        inv = st.invoice

        def fr(value):
            return f"{value:.2f}".replace(".", ",")

        writer.writerow([inv.number, str(_l("Facture")) if inv.kind == DOC_INVOICE else str(_l("Avoir")),
                         inv.issued_on.strftime("%d/%m/%Y"), inv.due_on.strftime("%d/%m/%Y"), inv.family_name,
                         inv.period_start.strftime("%m/%Y") if inv.period_start else "", fr(inv.total),
                         cents(inv.total), fr(st.credits_used), fr(st.paid), fr(st.balance), st.status_word])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")



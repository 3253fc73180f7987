"""Reminders and recovery.

`send_due()` (the billing job, jobs/billing.py) mails each family a few days before an invoice's
deadline ("Votre facture arrive à échéance") and after it ("Facture en retard"), once per invoice
and kind: the row of `billing_reminder` is inserted first with ON CONFLICT DO NOTHING and the mail is
written only when that insert took (two runs of the job, even at once, mail once).  Invoices under
direct debit or handed over to the Trésor are not reminded.

Agents list late invoices and hand them over to recovery (Trésor public) after the due date; online
payment is then closed for them.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import clock
from core.billing.invoices import STATUS_DUE, STATUS_LATE, family_recipients, statements
from core.billing.models import DOC_INVOICE, Invoice
from core.billing.payment_models import REMINDER_BEFORE, REMINDER_OVERDUE, Recovery, Reminder
from core.billing.pricing import cents, euros
from core.locking import is_postgres, lock_one
from core.mail import queue_mail
from extensions import db
from tenants.context import require_tenant_id

TEMPLATES = {REMINDER_BEFORE: "invoice_reminder", REMINDER_OVERDUE: "invoice_overdue"}


class RecoveryError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _regie():
    from core.billing.runs import config

    return config().regie


def _claim(invoice_id: int, kind: str, to: str) -> bool:
    """Insert the reminder's row unless it exists: True when this run is the one that sends it."""
    values = {"tenant_id": require_tenant_id(), "invoice_id": invoice_id, "kind": kind, "to_address": to[:254],
              "sent_at": clock.utcnow()}
    if is_postgres():
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = Reminder.__table__
    stmt = insert(table).values(**values).on_conflict_do_nothing(
        index_elements=["tenant_id", "invoice_id", "kind"]).returning(table.c.id)
    return db.session.execute(stmt).first() is not None


def due_kind(invoice_due: date, today: date, days_before: int, days_after: int) -> str | None:
    """Which reminder an unpaid invoice is due today (None: none yet)."""
    if today >= invoice_due + timedelta(days=days_after):
        return REMINDER_OVERDUE
    if invoice_due - timedelta(days=days_before) <= today < invoice_due:
        return REMINDER_BEFORE
    return None


def send_due(today: date | None = None) -> int:
    """Mail the reminders due today in the current commune; returns how many were written."""
    today = today or clock.today()
    regie = _regie()
    horizon = today + timedelta(days=regie.reminder_days_before)
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.kind == DOC_INVOICE, Invoice.total > 0,
                                                              Invoice.due_on <= horizon).order_by(Invoice.id)))
    rows = [st for st in statements(invoices) if st.status in (STATUS_DUE, STATUS_LATE)]
    if not rows:
        return 0
    sent = set(db.session.execute(select(Reminder.invoice_id, Reminder.kind).where(
        Reminder.invoice_id.in_([st.invoice.id for st in rows]))).all())
    recipients = family_recipients({st.invoice.family_id for st in rows})
    count = 0
    for st in rows:
        kind = due_kind(st.invoice.due_on, today, regie.reminder_days_before, regie.reminder_days_after)
        if kind is None or (st.invoice.id, kind) in sent:
            continue
        recipient = recipients.get(st.invoice.family_id) or {}
        if not recipient.get("email"):
            continue
        if not _claim(st.invoice.id, kind, recipient["email"]):
            continue
        queue_mail(to=recipient["email"], template=TEMPLATES[kind], locale=recipient.get("locale") or "fr",
                   user=None, context={"name": recipient.get("name", ""), "number": st.invoice.number,
                                       "total_cents": cents(st.balance), "due_on": st.invoice.due_on.isoformat(),
                                       "path": f"/factures/{st.invoice.id}"})
        count += 1
    return count


def late() -> list:
    """Statements of the invoices past their due date and unpaid (recovery ones included), oldest first."""
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.kind == DOC_INVOICE, Invoice.total > 0,
                                                              Invoice.due_on < clock.today())
                                       .order_by(Invoice.due_on, Invoice.id).limit(5000)))
    return [st for st in statements(invoices) if st.unpaid]


def reminders_of(invoice_ids) -> dict[int, list[Reminder]]:
    out: dict[int, list[Reminder]] = {}
    for r in db.session.scalars(select(Reminder).where(Reminder.invoice_id.in_(list(invoice_ids) or [0]))
                                .order_by(Reminder.sent_at)):
        out.setdefault(r.invoice_id, []).append(r)
    return out


def hand_over(invoice_id: int, *, actor: str, note: str = "") -> Recovery:
    """Hand an overdue invoice over to the Trésor public (after its due date): online payment closes."""
    invoice = lock_one(Invoice, invoice_id)
    if invoice is None:
        raise LookupError(invoice_id)
    [st] = statements([invoice])
    if st.recovery:
        raise RecoveryError(str(_l("La facture %(number)s est déjà transmise au Trésor public.",
                                   number=invoice.number)))
    if st.status != STATUS_LATE:
        if st.balance <= 0:
            raise RecoveryError(str(_l("La facture %(number)s est réglée.", number=invoice.number)))
        if st.under_debit:
            raise RecoveryError(str(_l("La facture %(number)s est sous prélèvement.", number=invoice.number)))
        raise RecoveryError(str(_l("La facture %(number)s n'est pas encore échue (échéance le %(date)s).",
                                   number=invoice.number, date=invoice.due_on.strftime("%d/%m/%Y"))))
    row = Recovery(invoice_id=invoice.id, amount=st.balance, handed_by=actor[:200], note=(note or "").strip()[:500])
    db.session.add(row)
    db.session.flush()
    return row


def recovered_total() -> Decimal:
    return sum((r.amount for r in db.session.scalars(select(Recovery))), Decimal("0.00"))


def describe(st) -> str:
    return f"{st.invoice.number} — {euros(st.balance)}"

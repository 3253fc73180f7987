"""Attestations (Édition de documents): de présence, and fiscale for childcare costs.

The attestation fiscale's rule is written here once (`fiscal_eligible`): sums paid in the year for
childcare (garde d'enfants: the tariff says `childcare`), meals excluded, for children under 6 on
1 January of the year.  The amounts are the invoices' lines, which `pricing.price` priced."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from core.billing.models import (
    ATTENDANCE_ABSENT,
    ATTENDANCE_PRESENT,
    DOC_INVOICE,
    Attendance,
    CreditUse,
    Invoice,
    InvoiceLine,
    Payment,
)
from core.billing.pricing import round_cents
from core.models import RES_RESERVED, Child
from core.reservations import queries
from extensions import db

ZERO = Decimal("0.00")


def age_on_first_january(child: Child, year: int) -> int:
    return child.age_on(date(year, 1, 1))


def fiscal_eligible(line: InvoiceLine, child: Child | None, year: int) -> bool:
    """THE rule: childcare, not a meal, a child under 6 on 1 January of the year."""
    return (child is not None and line.childcare and not line.meal and line.amount > 0
            and age_on_first_january(child, year) < 6)


@dataclass
class ChildSum:
    child: Child
    amount: Decimal = ZERO
    days: int = 0


@dataclass
class FiscalAttestation:
    year: int
    children: list[ChildSum] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((c.amount for c in self.children), ZERO)


def fiscal(family_id: int, year: int) -> FiscalAttestation:
    """Per child, the eligible share of what was paid in the year (payments dated in the year, and
    credits used on invoices issued in the year), pro rata of each invoice.  Four statements."""
    children = {c.id: c for c in db.session.scalars(select(Child).where(Child.family_id == family_id)
                                                    .order_by(Child.birth_date, Child.id))}
    invoices = {i.id: i for i in db.session.scalars(select(Invoice).where(Invoice.family_id == family_id,
                                                                          Invoice.kind == DOC_INVOICE,
                                                                          Invoice.total > 0))}
    first, last = date(year, 1, 1), date(year, 12, 31)
    paid = dict(db.session.execute(select(Payment.invoice_id, func.sum(Payment.amount)).where(
        Payment.invoice_id.in_(list(invoices) or [0]), Payment.paid_on >= first, Payment.paid_on <= last)
        .group_by(Payment.invoice_id)).all())
    for invoice_id, used in db.session.execute(select(CreditUse.invoice_id, func.sum(CreditUse.amount)).where(
            CreditUse.invoice_id.in_(list(invoices) or [0])).group_by(CreditUse.invoice_id)):
        if first <= invoices[invoice_id].issued_on <= last:
            paid[invoice_id] = (paid.get(invoice_id) or ZERO) + used
    sums = {cid: ChildSum(c) for cid, c in children.items() if age_on_first_january(c, year) < 6}
    settled = {i: min(Decimal(1), (paid.get(i) or ZERO) / inv.total) for i, inv in invoices.items() if paid.get(i)}
    if settled:
        for line in db.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id.in_(list(settled)))):
            child = children.get(line.child_id)
            if child is None or child.id not in sums or not fiscal_eligible(line, child, year):
                continue
            sums[child.id].amount += line.amount * settled[line.invoice_id]
            sums[child.id].days += 1
    for s in sums.values():
        s.amount = round_cents(s.amount)
    return FiscalAttestation(year, [s for s in sums.values() if s.amount > 0])


@dataclass
class PresenceAttestation:
    child: Child
    activity_name: str
    first: date
    last: date
    days: list[tuple[date, str]]   # (day, unit or session)


def presence(child: Child, activity, first: date, last: date) -> PresenceAttestation:
    """Days the child was there: booked and not pointed absent, or pointed present.  Three statements."""
    rows = queries.bookings_between(first, last, [activity.id], statuses=(RES_RESERVED,), child_ids=[child.id])
    marks = {(m.slot_id, m.day): m.status for m in db.session.scalars(select(Attendance).where(
        Attendance.child_id == child.id, Attendance.activity_id == activity.id, Attendance.day >= first,
        Attendance.day <= last))}
    days = [(r.day, r.unit_label or r.title or activity.name) for r in rows
            if marks.get((r.slot_id, r.day)) != ATTENDANCE_ABSENT]
    booked = {(r.slot_id, r.day) for r in rows}
    extra = [k for k, v in marks.items() if v == ATTENDANCE_PRESENT and k not in booked]
    if extra:
        slots = queries.slots_by_id({s for s, _d in extra})
        days += [(d, slots[s].unit_label or slots[s].title or activity.name) for s, d in extra if s in slots]
    return PresenceAttestation(child, activity.name, first, last, sorted(days))

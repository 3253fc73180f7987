"""Billing tables.  Every one belongs to one commune (TenantScoped, tenant_id NOT NULL, unique
constraints include tenant_id).  Amounts are NUMERIC(12,2) read as Decimal.

Imported at the end of core/models/__init__.py so that every model is mapped before use.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.models import Family
from extensions import db
from tenants.scoping import TenantScoped

__all__ = [
    "ATTENDANCE_ABSENT", "ATTENDANCE_PRESENT", "DOC_CREDIT_NOTE", "DOC_INVOICE",
    "LINE_ABSENCE", "LINE_ADJUSTMENT", "LINE_BOOKING", "LINE_PRESENCE", "QF_SOURCES",
    "RUN_DRAFT", "RUN_PUBLISHED", "Attendance", "BillingCounter", "BillingRun", "Credit", "CreditUse",
    "DraftLine", "Invoice", "InvoiceLine", "Payment", "Quotient",
]

Money = Numeric(12, 2, asdecimal=True)

QF_SOURCES = ("caf", "msa", "avis_imposition", "autre")


class Quotient(TenantScoped, db.Model):
    """A family's quotient familial over a period (agents record it; the family reads it)."""

    __tablename__ = "billing_quotient"
    __table_args__ = (Index("ix_billing_quotient_family", "tenant_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(200), default="")
    change_id: Mapped[int | None] = mapped_column(ForeignKey("family_change.id", ondelete="SET NULL"))


ATTENDANCE_PRESENT = "present"
ATTENDANCE_ABSENT = "absent"


class Attendance(TenantScoped, db.Model):
    """Pointage: what the agents saw on a day (a child present or absent on a slot).  A fact of
    billing, beside the reservation (which it never changes); a presence may have no booking."""

    __tablename__ = "billing_attendance"
    __table_args__ = (UniqueConstraint("tenant_id", "child_id", "slot_id", "day"),
                      Index("ix_billing_attendance_day", "tenant_id", "activity_id", "day"))

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(200), default="")


class BillingCounter(TenantScoped, db.Model):
    """The last number given per régie and year; taken under a row lock at publication."""

    __tablename__ = "billing_counter"
    __table_args__ = (UniqueConstraint("tenant_id", "regie", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    year: Mapped[int] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(Integer, default=0)


RUN_DRAFT = "draft"
RUN_PUBLISHED = "published"


class BillingRun(TenantScoped, db.Model):
    """A month of some activities: a draft computed as often as wanted, then published once."""

    __tablename__ = "billing_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[date] = mapped_column(Date)   # the 1st of the month
    period_end: Mapped[date] = mapped_column(Date)     # its last day
    activity_ids: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=RUN_DRAFT, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    computed_at: Mapped[datetime | None]
    computations: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    families: Mapped[int] = mapped_column(Integer, default=0)
    # {family_id: cents} of the draft before the last computation (the difference shown)
    previous: Mapped[dict] = mapped_column(JSON, default=dict)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(200))


LINE_BOOKING = "booking"          # booked (and present, or not pointed)
LINE_ABSENCE = "absence"          # absent: justified (0) or not (the commune's percentage)
LINE_PRESENCE = "presence"        # present without a booking
LINE_ADJUSTMENT = "adjustment"    # added by an agent (may be negative)


class DraftLine(TenantScoped, db.Model):
    """One line of a draft (replaced on every computation)."""

    __tablename__ = "billing_draft_line"
    __table_args__ = (Index("ix_billing_draft_line_run", "tenant_id", "run_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("billing_run.id", ondelete="CASCADE"))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"))
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id", ondelete="SET NULL"))
    child_name: Mapped[str] = mapped_column(String(200), default="")
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activity.id", ondelete="SET NULL"))
    activity_name: Mapped[str] = mapped_column(String(200), default="")
    day: Mapped[date | None] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(200), default="")
    quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal("1.00"))
    unit_price: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    bracket: Mapped[str] = mapped_column(String(100), default="")
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    note: Mapped[str] = mapped_column(String(200), default="")
    meal: Mapped[bool] = mapped_column(Boolean, default=False)
    childcare: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default=LINE_BOOKING)  # an agent's adjustment survives a new computation
    slot_id: Mapped[int | None] = mapped_column(Integer)


DOC_INVOICE = "invoice"
DOC_CREDIT_NOTE = "credit_note"   # avoir


class Invoice(TenantScoped, db.Model):
    """A published document: an invoice or a credit note (avoir).  Never edited once written:
    a correction is a credit note.  Its balance comes from its total, the credits applied to it
    and its payments (never a counter)."""

    __tablename__ = "billing_invoice"
    # one document per family and run (the publication's lines are copied by joining on it)
    __table_args__ = (UniqueConstraint("tenant_id", "regie", "number"),
                      UniqueConstraint("tenant_id", "regie", "year", "sequence"),
                      UniqueConstraint("tenant_id", "run_id", "family_id"),
                      Index("ix_billing_invoice_family", "tenant_id", "family_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16), default=DOC_INVOICE)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id", ondelete="SET NULL"))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("billing_invoice.id", ondelete="SET NULL"))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="RESTRICT"))
    family_name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    family: Mapped[Family] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan")


class InvoiceLine(TenantScoped, db.Model):
    __tablename__ = "billing_invoice_line"
    __table_args__ = (Index("ix_billing_invoice_line_invoice", "tenant_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="CASCADE"))
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id", ondelete="SET NULL"))
    child_name: Mapped[str] = mapped_column(String(200), default="")
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activity.id", ondelete="SET NULL"))
    activity_name: Mapped[str] = mapped_column(String(200), default="")
    day: Mapped[date | None] = mapped_column(Date)
    unit: Mapped[str] = mapped_column(String(200), default="")
    quantity: Mapped[Decimal] = mapped_column(Money)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    bracket: Mapped[str] = mapped_column(String(100), default="")
    amount: Mapped[Decimal] = mapped_column(Money)
    note: Mapped[str] = mapped_column(String(200), default="")
    meal: Mapped[bool] = mapped_column(Boolean, default=False)
    childcare: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default=LINE_BOOKING)
    slot_id: Mapped[int | None] = mapped_column(Integer)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class Credit(TenantScoped, db.Model):
    """An avoir a family holds (from a negative total or a credit note), used by its next invoices."""

    __tablename__ = "billing_credit"
    __table_args__ = (Index("ix_billing_credit_family", "tenant_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # an overpayment: the receipt it came from (source_id: the last invoice that receipt paid)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("billing_receipt.id", ondelete="RESTRICT"))


class CreditUse(TenantScoped, db.Model):
    __tablename__ = "billing_credit_use"
    __table_args__ = (Index("ix_billing_credit_use_invoice", "tenant_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_id: Mapped[int] = mapped_column(ForeignKey("billing_credit.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payment(TenantScoped, db.Model):
    """The part of a receipt (core.billing.payments) that pays one invoice."""

    __tablename__ = "billing_payment"
    __table_args__ = (Index("ix_billing_payment_invoice", "tenant_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Money)
    paid_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(100), default="")
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(200), default="")
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("billing_receipt.id", ondelete="CASCADE"),
                                                   index=True)

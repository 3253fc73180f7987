"""Billing II tables: receipts (one payment as received, split over invoices), online transactions,
SEPA mandates and direct debits, reminders, hand-overs to recovery, IBAN reads.

Every one belongs to one commune (TenantScoped, tenant_id NOT NULL, unique constraints include
tenant_id).  Amounts are NUMERIC(12,2) read as Decimal; cents (int) only where money leaves.
Imported by core/billing/models.py so that every model is mapped before use.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.models import Family
from extensions import db
from tenants.scoping import TenantScoped

Money = Numeric(12, 2, asdecimal=True)

__all__ = [
    "DEBIT_CANCELLED", "DEBIT_COLLECTED", "DEBIT_EXPORTED", "DEBIT_PLANNED", "DEBIT_REJECTED",
    "MANDATE_ACTIVE", "MANDATE_PENDING", "MANDATE_REFUSED", "MANDATE_REVOKED",
    "REMINDER_BEFORE", "REMINDER_OVERDUE",
    "TX_CANCELLED", "TX_CREATED", "TX_DENIED", "TX_ERROR", "TX_EXPIRED", "TX_PAID", "TX_WAITING",
    "Debit", "DebitBatch", "IbanAccessLog", "Mandate", "OnlineTransaction", "Receipt", "Recovery", "Reminder",
]


class Receipt(TenantScoped, db.Model):
    """One payment as received (counter, online, direct debit): numbered, split over the family's
    invoices oldest first (its `Payment` rows), the rest kept as a credit.  Cancelled, never deleted."""

    __tablename__ = "billing_receipt"
    __table_args__ = (UniqueConstraint("tenant_id", "regie", "year", "sequence"),
                      UniqueConstraint("tenant_id", "transaction_id"),
                      UniqueConstraint("tenant_id", "debit_id"),
                      Index("ix_billing_receipt_family", "tenant_id", "family_id"),
                      Index("ix_billing_receipt_day", "tenant_id", "paid_on"))

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(40))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    credit_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))  # overpayment → avoir
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(100), default="")
    paid_on: Mapped[date] = mapped_column(Date)
    allocations: Mapped[list] = mapped_column(JSON, default=list)  # [{invoice_id, number, amount}] as split
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("billing_online_transaction.id",
                                                                  ondelete="RESTRICT"))
    debit_id: Mapped[int | None] = mapped_column(ForeignKey("billing_debit.id", ondelete="RESTRICT"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(200), default="")
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    family: Mapped[Family] = relationship()

    @property
    def parts(self) -> list[tuple[int, str, Decimal]]:
        """(invoice id, number, amount) as split: cents back to Decimal, never a float."""
        return [(a["invoice_id"], a["number"], Decimal(int(a["cents"])).scaleb(-2)) for a in self.allocations or []]


TX_CREATED = "created"      # written before the request to the backend
TX_WAITING = "waiting"      # the parent was sent to the payment page
TX_PAID = "paid"            # a signed PAID notification recorded the receipt
TX_DENIED = "denied"
TX_CANCELLED = "cancelled"  # abandoned by the parent
TX_EXPIRED = "expired"
TX_ERROR = "error"


class OnlineTransaction(TenantScoped, db.Model):
    """A "Payer en ligne" attempt over one or several invoices, written before the redirect.  Only
    the backend's signed notification (or the reconciliation job) turns it into a receipt."""

    __tablename__ = "billing_online_transaction"
    __table_args__ = (UniqueConstraint("tenant_id", "backend", "backend_id"),
                      UniqueConstraint("tenant_id", "regie", "exer", "refdet"),
                      Index("ix_billing_online_transaction_family", "tenant_id", "family_id"),
                      Index("ix_billing_online_transaction_status", "tenant_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    regie: Mapped[str] = mapped_column(String(40))
    exer: Mapped[int] = mapped_column(Integer)
    refdet: Mapped[str] = mapped_column(String(30))
    backend: Mapped[str] = mapped_column(String(20))
    backend_id: Mapped[str | None] = mapped_column(String(100))   # idop (PayFiP), transaction id (dummy)
    amount: Mapped[Decimal] = mapped_column(Money)
    amount_cents: Mapped[int] = mapped_column(Integer)
    invoice_ids: Mapped[list] = mapped_column(JSON, default=list)
    email: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[str] = mapped_column(String(16), default=TX_CREATED)
    bank_status: Mapped[str] = mapped_column(String(200), default="")
    bank_data: Mapped[dict] = mapped_column(JSON, default=dict)   # as the bank sent it (audit)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None]


MANDATE_PENDING = "pending"   # signed online, waiting for an agent (a FamilyChange)
MANDATE_ACTIVE = "active"
MANDATE_REFUSED = "refused"
MANDATE_REVOKED = "revoked"


class Mandate(TenantScoped, db.Model):
    """A SEPA direct debit mandate (Prélèvement automatique): holder, IBAN, BIC, RUM per régie."""

    __tablename__ = "billing_mandate"
    __table_args__ = (UniqueConstraint("tenant_id", "regie", "rum"),
                      Index("ix_billing_mandate_family", "tenant_id", "family_id"),
                      # at most one active and one pending mandate per family
                      Index("uq_billing_mandate_active", "tenant_id", "family_id", unique=True,
                            postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
                      Index("uq_billing_mandate_pending", "tenant_id", "family_id", unique=True,
                            postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")))

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="RESTRICT"))
    regie: Mapped[str] = mapped_column(String(40))
    rum: Mapped[str] = mapped_column(String(35))
    holder: Mapped[str] = mapped_column(String(70))
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str] = mapped_column(String(11))
    text_version: Mapped[str] = mapped_column(String(64))   # sha256 of the mandate text the family accepted
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    signed_by: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=MANDATE_PENDING)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("family_change.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    family: Mapped[Family] = relationship()


class IbanAccessLog(TenantScoped, db.Model):
    """Every read of a full IBAN by staff (who, which mandate, when, where) — like health data."""

    __tablename__ = "billing_iban_access_log"
    __table_args__ = (Index("ix_billing_iban_access_log_mandate", "tenant_id", "mandate_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    agent_name: Mapped[str] = mapped_column(String(200))
    mandate_id: Mapped[int] = mapped_column(ForeignKey("billing_mandate.id", ondelete="CASCADE"))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"))
    context: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DebitBatch(TenantScoped, db.Model):
    """A pain.008 file given to the bank (kept to be downloaded again)."""

    __tablename__ = "billing_debit_batch"
    __table_args__ = (UniqueConstraint("tenant_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    regie: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(35))
    collection_date: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)
    xml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")


DEBIT_PLANNED = "planned"       # the invoice is under debit: no online payment
DEBIT_EXPORTED = "exported"     # in a pain.008 file
DEBIT_COLLECTED = "collected"   # the collection date passed: a receipt pays the invoice
DEBIT_REJECTED = "rejected"     # the bank rejected it: the invoice reopens, the family is mailed
DEBIT_CANCELLED = "cancelled"   # mandate revoked before the file


class Debit(TenantScoped, db.Model):
    """An invoice under direct debit; at most one open debit per invoice."""

    __tablename__ = "billing_debit"
    __table_args__ = (Index("ix_billing_debit_batch", "tenant_id", "batch_id"),
                      Index("ix_billing_debit_mandate", "tenant_id", "mandate_id"),
                      Index("uq_billing_debit_open", "tenant_id", "invoice_id", unique=True,
                            postgresql_where=text("status IN ('planned', 'exported', 'collected')"),
                            sqlite_where=text("status IN ('planned', 'exported', 'collected')")),
                      UniqueConstraint("tenant_id", "end_to_end_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="RESTRICT"))
    mandate_id: Mapped[int] = mapped_column(ForeignKey("billing_mandate.id", ondelete="RESTRICT"))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="RESTRICT"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("billing_debit_batch.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    sequence_type: Mapped[str | None] = mapped_column(String(4))   # FRST / RCUR
    end_to_end_id: Mapped[str | None] = mapped_column(String(35))
    collection_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=DEBIT_PLANNED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    collected_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    rejected_by: Mapped[str | None] = mapped_column(String(200))
    reject_reason: Mapped[str | None] = mapped_column(Text)

    mandate: Mapped[Mandate] = relationship()
    invoice: Mapped["Invoice"] = relationship("Invoice")  # noqa: F821 (core.billing.models)


REMINDER_BEFORE = "before_due"   # "votre facture arrive à échéance"
REMINDER_OVERDUE = "overdue"     # "facture en retard"


class Reminder(TenantScoped, db.Model):
    """A reminder mailed: once per invoice and kind (the unique constraint backs it)."""

    __tablename__ = "billing_reminder"
    __table_args__ = (UniqueConstraint("tenant_id", "invoice_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    to_address: Mapped[str] = mapped_column(String(254), default="")


class Recovery(TenantScoped, db.Model):
    """An overdue invoice handed over to the Trésor public for recovery: online payment closes."""

    __tablename__ = "billing_recovery"
    __table_args__ = (UniqueConstraint("tenant_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoice.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    handed_at: Mapped[datetime] = mapped_column(default=utcnow)
    handed_by: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")

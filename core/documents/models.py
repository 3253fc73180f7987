"""Models of the pièces justificatives (imported at the end of core/models/__init__.py).

Every table belongs to one commune (TenantScoped, tenant_id NOT NULL); unique constraints include it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.models import Child, Family, User
from extensions import db
from tenants.scoping import TenantScoped

__all__ = [
    "CONCERNS_CHILD", "CONCERNS_FAMILY",
    "PIECE_PENDING", "PIECE_REFUSED", "PIECE_VALIDATED",
    "VALIDITY_MONTHS", "VALIDITY_SCHOOL_YEAR", "VALIDITY_UNLIMITED",
    "Piece", "PieceAccessLog", "PieceType",
]

CONCERNS_FAMILY = "family"
CONCERNS_CHILD = "child"

VALIDITY_MONTHS = "months"            # e.g. justificatif de domicile: 3 months
VALIDITY_SCHOOL_YEAR = "school_year"  # until the 31st of August ending the school year
VALIDITY_UNLIMITED = "unlimited"      # e.g. jugement de garde

PIECE_PENDING = "pending"      # en attente de validation
PIECE_VALIDATED = "validated"  # validée (jusqu'au valid_until, or without end); expired once past it
PIECE_REFUSED = "refused"      # refusée avec motif


class PieceType(TenantScoped, db.Model):
    """A kind of piece a commune asks for: who it concerns, how long it stays valid, what requires it."""

    __tablename__ = "piece_type"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    concerns: Mapped[str] = mapped_column(String(10), default=CONCERNS_FAMILY)
    validity: Mapped[str] = mapped_column(String(16), default=VALIDITY_MONTHS)
    validity_months: Mapped[int | None] = mapped_column(Integer)
    # codes of the activities whose inscription requires it; "*" = every activity
    required_for: Mapped[list] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def requires(self, activity_code: str) -> bool:
        codes = self.required_for or []
        return self.active and ("*" in codes or activity_code in codes)

    @property
    def for_child(self) -> bool:
        return self.concerns == CONCERNS_CHILD


class Piece(TenantScoped, db.Model):
    """One file a family gave: for the family or one child, of one type, and its decision."""

    __tablename__ = "piece"
    __table_args__ = (UniqueConstraint("tenant_id", "storage_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("piece_type.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PIECE_PENDING, index=True)
    storage_key: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))          # the family's file name, shown only
    content_type: Mapped[str] = mapped_column(String(40))       # found from the content
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    uploaded_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    valid_until: Mapped[date | None] = mapped_column(Date, index=True)
    motif: Mapped[str | None] = mapped_column(Text)
    expiry_notified_at: Mapped[datetime | None]  # "expire dans moins de 30 jours" sent (once)

    family: Mapped[Family] = relationship()
    child: Mapped[Child | None] = relationship()
    type: Mapped[PieceType] = relationship()
    uploader: Mapped[User | None] = relationship()

    def expired_on(self, day: date) -> bool:
        return self.status == PIECE_VALIDATED and self.valid_until is not None and self.valid_until < day

    def valid_on(self, day: date) -> bool:
        return self.status == PIECE_VALIDATED and (self.valid_until is None or self.valid_until >= day)


class PieceAccessLog(TenantScoped, db.Model):
    """Every agent's read of a piece's file (who, which piece of which family, when), like health data."""

    __tablename__ = "piece_access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    piece_id: Mapped[int | None] = mapped_column(ForeignKey("piece.id", ondelete="SET NULL"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id", ondelete="SET NULL"))
    piece_label: Mapped[str] = mapped_column(String(300))
    context: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow)

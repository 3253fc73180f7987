"""Demandes (numbered per commune), their lines and dated history; the per-commune counters."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

if TYPE_CHECKING:
    from core.models.accounts import User
    from core.models.activities import Activity, Slot
    from core.models.families import Child, Family

DEMANDE_DEPOSEE = "deposee"
DEMANDE_EN_COURS = "en_cours"
DEMANDE_ACCEPTEE = "acceptee"
DEMANDE_REFUSEE = "refusee"
DEMANDE_PARTIELLE = "partielle"
DEMANDE_ANNULEE = "annulee"
DEMANDE_LISTE_ATTENTE = "attente"     # every line is on the waiting list
DEMANDE_OPEN = (DEMANDE_DEPOSEE, DEMANDE_EN_COURS)

TYPE_RESERVATION = "reservation"
TYPE_INSCRIPTION = "inscription"
TYPE_ABSENCE = "absence"


class Counter(TenantScoped, db.Model):
    """Per-commune sequences (demande numbers), allocated under a row lock."""

    __tablename__ = "counter"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[int] = mapped_column(Integer, default=0)


class Demande(TenantScoped, db.Model):
    __tablename__ = "demande"
    __table_args__ = (UniqueConstraint("tenant_id", "number"), UniqueConstraint("tenant_id", "cart_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(20))
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("cart.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=DEMANDE_DEPOSEE, index=True)
    motif: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))

    family: Mapped[Family] = relationship()
    requester: Mapped[User | None] = relationship()
    lines: Mapped[list[DemandeLine]] = relationship(
        back_populates="demande", order_by="DemandeLine.position", cascade="all, delete-orphan")
    events: Mapped[list[DemandeEvent]] = relationship(
        back_populates="demande", order_by="DemandeEvent.at", cascade="all, delete-orphan")


LINE_PENDING = "pending"
LINE_ACCEPTED = "accepted"
LINE_REFUSED = "refused"
LINE_WAITLIST = "waitlist"
LINE_CANCELLED = "cancelled"

ACTION_BOOK = "book"
ACTION_CANCEL = "cancel"
ACTION_WAITLIST = "waitlist"
ACTION_INSCRIPTION = "inscription"
ACTION_ABSENCE = "absence"


class DemandeLine(TenantScoped, db.Model):
    __tablename__ = "demande_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    demande_id: Mapped[int] = mapped_column(ForeignKey("demande.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    action: Mapped[str] = mapped_column(String(16))
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slot.id", ondelete="SET NULL"), index=True)
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservation.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=LINE_PENDING)
    label: Mapped[str] = mapped_column(String(300), default="")
    motif: Mapped[str | None] = mapped_column(Text)

    demande: Mapped[Demande] = relationship(back_populates="lines")
    child: Mapped[Child] = relationship()
    activity: Mapped[Activity] = relationship()
    slot: Mapped[Slot | None] = relationship()


class DemandeEvent(TenantScoped, db.Model):
    __tablename__ = "demande_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    demande_id: Mapped[int] = mapped_column(ForeignKey("demande.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str | None] = mapped_column(Text)

    demande: Mapped[Demande] = relationship(back_populates="events")

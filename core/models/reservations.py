"""Reservations, démarches (carts) and their items, and the opening-day waiting room's tickets."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

if TYPE_CHECKING:
    from core.models.activities import Activity, Slot
    from core.models.families import Child

RES_HELD = "held"            # ticked in an open wizard, not yet validated
RES_PENDING = "pending"      # en attente de validation
RES_RESERVED = "reserved"    # réservé
RES_WAITLIST = "waitlist"    # liste d'attente
RES_ABSENT = "absent"        # absent (justified or not)
RES_CANCELLED = "cancelled"  # annulé
RES_REFUSED = "refused"      # refusé par la commune
RES_TAKING_PLACE = (RES_HELD, RES_PENDING, RES_RESERVED, RES_ABSENT)


class Reservation(TenantScoped, db.Model):
    """At most one row per child and slot (unique), its status moving with the demandes."""

    __tablename__ = "reservation"
    __table_args__ = (UniqueConstraint("tenant_id", "child_id", "slot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    cart_id: Mapped[int | None] = mapped_column(ForeignKey("cart.id", ondelete="SET NULL"), index=True)
    held_until: Mapped[datetime | None]
    waitlisted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    absence_motif: Mapped[str | None] = mapped_column(Text)
    absence_document: Mapped[str | None] = mapped_column(String(300))

    child: Mapped[Child] = relationship()
    slot: Mapped[Slot] = relationship()
    activity: Mapped[Activity] = relationship()


CART_OPEN = "open"
CART_SUBMITTED = "submitted"
CART_CANCELLED = "cancelled"
CART_EXPIRED = "expired"


class Cart(TenantScoped, db.Model):
    """A reservation wizard ("démarche") in progress: its children, holds and cancellations."""

    __tablename__ = "cart"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    activity_ids: Mapped[list] = mapped_column(JSON, default=list)
    child_ids: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=CART_OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    token: Mapped[str] = mapped_column(String(32))

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", order_by="CartItem.id", cascade="all, delete-orphan")
    # read-only twin of `items`, loaded with the démarche (its lock, its page) in the same query;
    # the wizard's writes go through the session, never through this collection
    current_items: Mapped[list[CartItem]] = relationship(viewonly=True, order_by="CartItem.id")


class CartItem(TenantScoped, db.Model):
    """One wish of the wizard: book (a held place), waitlist, or cancel an existing booking."""

    __tablename__ = "cart_item"
    __table_args__ = (UniqueConstraint("tenant_id", "cart_id", "child_id", "slot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("cart.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("slot.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservation.id", ondelete="SET NULL"))

    cart: Mapped[Cart] = relationship(back_populates="items")
    child: Mapped[Child] = relationship()
    slot: Mapped[Slot] = relationship()
    reservation: Mapped[Reservation | None] = relationship()


class WaitingTicket(TenantScoped, db.Model):
    """A parent's place in an activity's waiting room, when no Redis is configured.

    With Redis the room lives in sorted sets (core/waiting_room.py); this table is the
    fallback so that `make run` works with SQLite alone.  Arrival order is the id.
    """

    __tablename__ = "waiting_ticket"
    __table_args__ = (UniqueConstraint("tenant_id", "activity_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    arrived_at: Mapped[datetime] = mapped_column(default=utcnow)
    admitted_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]   # admitted: until when (grace to show up, then the booking time)
    started_at: Mapped[datetime | None]   # first wizard page after admission

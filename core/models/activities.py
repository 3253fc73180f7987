"""Activities, their units (Matin, Repas…), their slots, and the children's inscriptions to them."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

if TYPE_CHECKING:
    from core.models.families import Child

KIND_UNITS = "units"        # days with units (Matin / Repas / Après-midi), each with its own capacity
KIND_SESSIONS = "sessions"  # sessions with places (Klub), possibly over several dates (stages)

VALIDATION_IMMEDIATE = "immediate"            # Saint-Loubès: "Traitée positivement" at once
VALIDATION_COMMUNE = "commune"                # Auray: the commune decides
VALIDATION_PRERESERVATION = "prereservation"  # Saint-Aubin: lists established after a date


class Activity(TenantScoped, db.Model):
    __tablename__ = "activity"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    structure: Mapped[str | None] = mapped_column(String(200))
    season: Mapped[str] = mapped_column(String(20))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    age_min: Mapped[int | None] = mapped_column(Integer)
    age_max: Mapped[int | None] = mapped_column(Integer)
    validation_mode: Mapped[str] = mapped_column(String(20), default=VALIDATION_COMMUNE)
    prereservation_until: Mapped[date | None] = mapped_column(Date)
    inscription_validation: Mapped[str] = mapped_column(String(20), default=VALIDATION_COMMUNE)
    inscription_open: Mapped[bool] = mapped_column(Boolean, default=True)
    online_quota_pct: Mapped[int] = mapped_column(Integer, default=100)
    one_per_time_slot: Mapped[bool] = mapped_column(Boolean, default=False)
    booking_deadline: Mapped[dict] = mapped_column(JSON, default=dict)
    cancel_deadline: Mapped[dict] = mapped_column(JSON, default=dict)
    calendar: Mapped[dict] = mapped_column(JSON, default=dict)
    hold_minutes: Mapped[int] = mapped_column(Integer, default=20)
    opening_at: Mapped[datetime | None]
    # Opening-day waiting room (`flask rush open`): how many parents book at once, and for how long
    rush_concurrent: Mapped[int | None] = mapped_column(Integer)
    rush_minutes: Mapped[int | None] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    units: Mapped[list[ActivityUnit]] = relationship(
        back_populates="activity", order_by="ActivityUnit.position", cascade="all, delete-orphan")

    def online_places(self, capacity: int) -> int:
        return (capacity * max(0, min(100, self.online_quota_pct))) // 100


class ActivityUnit(TenantScoped, db.Model):
    """A unit of a day (Matin, Repas, Après-midi, Soir) with its default capacity ("jauge")."""

    __tablename__ = "activity_unit"
    __table_args__ = (UniqueConstraint("tenant_id", "activity_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)
    capacity: Mapped[int] = mapped_column(Integer)

    activity: Mapped[Activity] = relationship(back_populates="units")


class Slot(TenantScoped, db.Model):
    """What is booked and what is locked: a unit on a day, or a session (one or several dates).

    ``taken`` counts the places held, pending or reserved; it only changes while the
    row is locked (SELECT ... FOR UPDATE), in the transaction that changes the bookings.
    """

    __tablename__ = "slot"
    __table_args__ = (UniqueConstraint("tenant_id", "activity_id", "unit_id", "day", "title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("activity_unit.id", ondelete="CASCADE"), index=True)
    day: Mapped[date] = mapped_column(Date, index=True)          # first (or only) date
    last_day: Mapped[date] = mapped_column(Date)                 # last date (stages)
    dates: Mapped[list] = mapped_column(JSON, default=list)      # every date, ISO strings
    title: Mapped[str] = mapped_column(String(200), default="")
    time_slot: Mapped[str | None] = mapped_column(String(20))    # matin / midi / apres_midi / soir
    start_time: Mapped[str | None] = mapped_column(String(5))
    end_time: Mapped[str | None] = mapped_column(String(5))
    theme: Mapped[str | None] = mapped_column(String(80))
    discipline: Mapped[str | None] = mapped_column(String(80))
    age_min: Mapped[int | None] = mapped_column(Integer)
    age_max: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer, default=0)

    activity: Mapped[Activity] = relationship()
    unit: Mapped[ActivityUnit | None] = relationship()

    @property
    def unit_label(self) -> str | None:
        """"Matin", "Repas"… (as the locked rows of a tick carry it: core.reservations.SlotRow)."""
        return self.unit.label if self.unit_id is not None and self.unit is not None else None


INSCRIPTION_PENDING = "pending"      # Demande en cours
INSCRIPTION_ACCEPTED = "accepted"    # Réservation possible
INSCRIPTION_REFUSED = "refused"      # Refusée


class Inscription(TenantScoped, db.Model):
    __tablename__ = "inscription"
    __table_args__ = (UniqueConstraint("tenant_id", "child_id", "activity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=INSCRIPTION_PENDING)
    demande_id: Mapped[int | None] = mapped_column(ForeignKey("demande.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    child: Mapped[Child] = relationship()
    activity: Mapped[Activity] = relationship()

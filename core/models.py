from __future__ import annotations

from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.models import Tenant
from tenants.scoping import TenantScoped

ROLE_PARENT = "parent"
ROLE_AGENT = "agent"
ROLES = (ROLE_PARENT, ROLE_AGENT)


class Family(TenantScoped, db.Model):
    __tablename__ = "family"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resident: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # lists' priority

    children: Mapped[list[Child]] = relationship(
        back_populates="family", order_by="Child.birth_date", cascade="all, delete-orphan"
    )
    members: Mapped[list[User]] = relationship(back_populates="family")


class Child(TenantScoped, db.Model):
    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    school: Mapped[str | None] = mapped_column(String(200))
    class_name: Mapped[str | None] = mapped_column(String(100))

    family: Mapped[Family] = relationship(back_populates="children")
    # read-only: loaded with the child where a page or a tick needs them in the same query
    inscriptions: Mapped[list[Inscription]] = relationship(viewonly=True)

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


class User(UserMixin, TenantScoped, db.Model):
    """A parent or an agent: an account of one commune."""

    __tablename__ = "user_account"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_PARENT)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("family.id", ondelete="SET NULL"), index=True)
    activated_at: Mapped[datetime | None]
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    cgu_accepted_at: Mapped[datetime | None]
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    previous_login_at: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]  # account deletion asked: no login any more

    tenant: Mapped[Tenant] = relationship()
    family: Mapped[Family | None] = relationship(back_populates="members")

    def get_id(self) -> str:
        return f"u:{self.id}"

    @property
    def is_activated(self) -> bool:
        return self.activated_at is not None

    @property
    def is_active(self) -> bool:  # Flask-Login: an inactive user is never authenticated
        return self.deactivated_at is None

    @property
    def is_agent(self) -> bool:
        return self.role == ROLE_AGENT

    @property
    def is_support(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class SupportUser(UserMixin, db.Model):
    """Support staff: reach every commune.  Created from the CLI only."""

    __tablename__ = "support_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    def get_id(self) -> str:
        return f"s:{self.id}"

    is_agent = False
    is_support = True
    must_change_password = False

    @property
    def display_name(self) -> str:
        return self.name


class UserToken(TenantScoped, db.Model):
    """A single-use, expiring token mailed to a user (activation, password reset)."""

    __tablename__ = "user_token"
    __table_args__ = (UniqueConstraint("tenant_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


MAIL_PENDING = "pending"
MAIL_QUEUED = "queued"
MAIL_SENT = "sent"
MAIL_FAILED = "failed"


class OutboxMail(TenantScoped, db.Model):
    """A mail to send, written in the same transaction as what caused it."""

    __tablename__ = "outbox_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(100))
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    locale: Mapped[str] = mapped_column(String(8), default="fr")
    subject: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=MAIL_PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]  # set after a failed attempt: when to try again
    sent_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(200))


# ====================================================================== activities and bookings

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
        """"Matin", "Repas"… (as the locked rows of a tick carry it: core.booking.SlotRow)."""
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


import core.billing.models  # noqa: E402,F401  (registers the billing models with the mapper)
import core.billing.payment_models  # noqa: E402,F401  (billing II: receipts, online payments, SEPA, reminders)
import core.documents.models  # noqa: E402,F401  (registers the pièces justificatives' models)
import core.dossier.models  # noqa: E402,F401  (registers the family file's models with the mapper)
from core.admin_models import AllocationRun, AuditLog  # noqa: E402,F401  (back-office models)
from core.calendar_feed import CalendarFeed  # noqa: E402,F401  (the family's calendar feed)

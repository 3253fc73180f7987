"""The rules of the reservation core: what a cell (child × slot) shows and whether it may change.

Pure judgement over rows already read (`core.reservations.store`): no statement is sent here but
by `Context.load`, through the store (and by an ORM slot's unit, loaded for `describe_slot`).
Every commune uses these rules; communes differ only by their activities' configuration (kind,
units, sessions, validation mode, deadlines, calendar, quota).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from flask_babel import format_date
from flask_babel import lazy_gettext as _l

from core import calendar as cal
from core.clock import utcnow
from core.models import (
    ACTION_CANCEL,
    ACTION_WAITLIST,
    RES_ABSENT,
    RES_HELD,
    RES_PENDING,
    RES_RESERVED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
    VALIDATION_PRERESERVATION,
)
from core.reservations import store
from core.reservations.store import CartRow, Placed
from extensions import db

if TYPE_CHECKING:
    from core.models import Activity, Child, Reservation, Slot

# States of a cell (child x slot) as the planning shows it
FREE = "free"            # may be ticked
HELD = "held"            # ticked in this démarche (place held)
BOOKED = "booked"        # booked before (réservé or en attente de validation)
CANCEL = "cancel"        # booked before, unticked in this démarche: cancellation on Valider
WAITLIST = "waitlist"    # asked for the waiting list in this démarche
WAITLISTED = "waitlisted"  # already on the waiting list
FULL = "full"            # no online place left: "Complet", the waiting list is offered
BLOCKED = "blocked"      # locked, with a reason

CHECKED_STATES = {HELD, BOOKED}

REASONS = {
    "not_inscribed": _l("Pas d'inscription validée à cette activité."),
    "age": _l("Activité réservée à une autre tranche d'âge."),
    cal.CLOSED_WEEKDAY: _l("Fermé ce jour-là."),
    cal.CLOSED_PUBLIC_HOLIDAY: _l("Jour férié."),
    cal.CLOSED_SCHOOL_HOLIDAY: _l("Vacances scolaires."),
    cal.CLOSED_NOT_HOLIDAY: _l("Hors vacances scolaires."),
    cal.CLOSED_DATE: _l("Fermeture exceptionnelle."),
    cal.CLOSED_OUTSIDE: _l("En dehors de la période de l'activité."),
    "deadline": _l("Le délai de réservation est dépassé."),
    "cancel_deadline": _l("Le délai d'annulation est dépassé."),
    "full": _l("Complet : il ne reste plus de place en ligne."),
    "time_slot": _l("Déjà une réservation d'activité sur ce créneau horaire (une seule activité peut être choisie)."),
    "other_cart": _l("Déjà choisi dans une autre démarche en cours."),
    "not_open": _l("Les réservations ne sont pas encore ouvertes."),
    "prereservation_closed": _l("La période de pré-réservation est terminée."),
    "not_in_cart": _l("Cet enfant ou cette activité ne fait pas partie de la démarche."),
    "cart_closed": _l("Cette démarche est terminée : recommencez depuis « Modifier les réservations »."),
    "absent": _l("Absence déclarée ce jour-là."),
}


class BookingError(Exception):
    def __init__(self, code: str, message: str | None = None):
        self.code = code
        self.message = str(message or REASONS.get(code, code))
        super().__init__(self.message)


@dataclass
class Cell:
    child_id: int
    slot_id: int
    state: str
    reason: str | None = None
    reservation_status: str | None = None

    @property
    def checked(self) -> bool:
        return self.state in CHECKED_STATES or self.reservation_status == RES_ABSENT

    @property
    def locked(self) -> bool:
        return self.state in (BLOCKED, FULL, WAITLISTED)

    @property
    def message(self) -> str:
        return str(REASONS.get(self.reason, "")) if self.reason else ""


def slot_dates(slot: Slot) -> list[date]:
    return [date.fromisoformat(d) for d in (slot.dates or [])] or [slot.day]


def online_remaining(activity: Activity, slot: Slot) -> int:
    return activity.online_places(slot.capacity) - slot.taken


def is_expired_hold(res: Reservation, now: datetime | None = None) -> bool:
    """A hold of a démarche abandoned past its time: it no longer counts, whatever `taken` says
    until it is released."""
    return res.status == RES_HELD and res.held_until is not None and res.held_until < (now or utcnow())


@dataclass
class Context:
    """Everything needed to judge cells, loaded with a constant number of queries."""

    cart: CartRow | None
    activities: dict
    children: dict
    slots: dict
    zone: str
    now: datetime = field(default_factory=cal.now_local)
    reservations: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    inscribed: set[tuple[int, int]] = field(default_factory=set)
    # (child, activity, day, time_slot) -> slot ids taking a place
    busy: dict[tuple, set[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, cart, activities, children, slots, zone: str, now=None,
             inscribed: set | None = None, reservations: list[Placed] | None = None) -> Context:
        """`cart`: a CartRow, or None (the back-office); a démarche given by another shape is read
        again as a row (only its id counts).  `inscribed`: the children's accepted (child_id,
        activity_id), when read with them; `reservations`: theirs on `slots`, when read with the slots."""
        if cart is not None and type(cart) is not CartRow:
            cart = store.read_cart(cart.id)
        ctx = cls(cart=cart, activities={a.id: a for a in activities}, children={c.id: c for c in children},
                  slots={s.id: s for s in slots}, zone=zone, now=now or cal.now_local())
        child_ids = list(ctx.children)
        if inscribed is not None:
            ctx.inscribed = {(c, a) for c, a in inscribed if a in ctx.activities}
        elif child_ids and ctx.activities:
            ctx.inscribed = store.accepted_inscriptions(child_ids, ctx.activities)
        days = sorted({s.day for s in slots})
        if reservations is None:
            reservations = store.reservations_in_range(child_ids, ctx.activities, days[0], days[-1]) \
                if child_ids and days else []
        for placed in reservations:
            ctx.index(placed)
        if cart is not None:
            ctx.items = dict(cart.items)
        return ctx

    def index(self, placed: Placed) -> None:
        """Remember a reservation of a child, and whether it makes the child busy in its time slot."""
        res = placed.res
        self.reservations[(res.child_id, res.slot_id)] = res
        key = (res.child_id, placed.activity_id, placed.day, placed.time_slot)
        if res.status in RES_TAKING_PLACE and not is_expired_hold(res):
            self.busy.setdefault(key, set()).add(res.slot_id)
        else:
            self.busy.setdefault(key, set()).discard(res.slot_id)

    # ------------------------------------------------------------ judging

    def blocked_reason(self, child: Child, slot: Slot, *, for_cancel: bool = False) -> str | None:
        activity = self.activities[slot.activity_id]
        if self.cart is not None and (child.id not in self.cart.child_ids or activity.id not in self.cart.activity_ids):
            return "not_in_cart"
        if (child.id, activity.id) not in self.inscribed:
            return "not_inscribed"
        first = slot_dates(slot)[0]
        if for_cancel:
            rule = activity.cancel_deadline or activity.booking_deadline
            return "cancel_deadline" if cal.is_past_deadline(rule, first, self.now) else None
        for day in slot_dates(slot):
            reason = cal.closed_reason(activity.calendar or {}, day, zone=self.zone,
                                       starts_on=activity.starts_on, ends_on=activity.ends_on)
            if reason and slot.unit_id is not None:  # sessions are explicit: only the period counts
                return reason
            if reason == cal.CLOSED_OUTSIDE:
                return reason
        if activity.opening_at is not None and self.now.astimezone(UTC).replace(tzinfo=None) < activity.opening_at:  # naive UTC
            return "not_open"
        if activity.validation_mode == VALIDATION_PRERESERVATION and activity.prereservation_until \
                and self.now.date() > activity.prereservation_until:
            return "prereservation_closed"
        if cal.is_past_deadline(activity.booking_deadline, first, self.now):
            return "deadline"
        low = slot.age_min if slot.age_min is not None else activity.age_min
        high = slot.age_max if slot.age_max is not None else activity.age_max
        age = child.age_on(first)
        if (low is not None and age < low) or (high is not None and age > high):
            return "age"
        if activity.one_per_time_slot and slot.time_slot:
            others = self.busy.get((child.id, activity.id, slot.day, slot.time_slot), set()) - {slot.id}
            if others:
                return "time_slot"
        return None

    def cell(self, child_id: int, slot_id: int) -> Cell:
        child, slot = self.children[child_id], self.slots[slot_id]
        activity = self.activities[slot.activity_id]
        res = self.reservations.get((child_id, slot_id))
        item = self.items.get((child_id, slot_id))
        status = res.status if res else None
        if item is not None and item.action == ACTION_CANCEL:
            return Cell(child_id, slot_id, CANCEL, reservation_status=status)
        if item is not None and item.action == ACTION_WAITLIST:
            return Cell(child_id, slot_id, WAITLIST)
        if res is not None and res.status == RES_HELD and self.cart is not None and res.cart_id == self.cart.id:
            return Cell(child_id, slot_id, HELD, reservation_status=status)
        if res is not None and res.status in (RES_PENDING, RES_RESERVED):
            return Cell(child_id, slot_id, BOOKED, reservation_status=status)
        if res is not None and res.status == RES_ABSENT:  # booked, absence declared: keeps its place
            return Cell(child_id, slot_id, BLOCKED, "absent", reservation_status=status)
        if res is not None and res.status == RES_WAITLIST:
            return Cell(child_id, slot_id, WAITLISTED, reservation_status=status)
        if res is not None and res.status == RES_HELD and not is_expired_hold(res):
            return Cell(child_id, slot_id, BLOCKED, "other_cart", reservation_status=status)
        reason = self.blocked_reason(child, slot)
        if reason:
            return Cell(child_id, slot_id, BLOCKED, reason)
        if online_remaining(activity, slot) <= 0:
            return Cell(child_id, slot_id, FULL, "full")
        return Cell(child_id, slot_id, FREE)


def exclusive(activity: Activity, slot) -> bool:
    """"One activity per time slot" applies to this slot."""
    return bool(activity.one_per_time_slot and slot.time_slot)


def describe_slot(slot: Slot, activity: Activity, unit_label: str | None = None) -> str:
    """"Repas — lundi 19/10/2026" (a unit) or "Stage de roller — du mardi 19/04/2022 au vendredi 22/04/2022"."""
    name = unit_label or _unit_label(slot) or slot.title or activity.name
    dates = slot_dates(slot)
    if len(dates) > 1:
        return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')} → {format_date(dates[-1], 'EEEE dd/MM/yyyy')}"
    return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')}"


def _unit_label(slot) -> str | None:
    """A row carries its unit's label; an ORM slot may load its unit, by primary key, without
    flushing first what the caller has not written yet (a demande being filed, an absence): a
    unit's label depends on none of it (a unit changed in this transaction is the session's own
    object, read as it is in memory)."""
    with db.session.no_autoflush:
        return slot.unit_label

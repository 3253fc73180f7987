"""The one reservation core: what a child may book, holds, cancellations, waiting list.

Every commune uses these functions; communes differ only by their activities'
configuration (kind, units, sessions, validation mode, deadlines, calendar, quota).

A tick in the planning is ``set_choices(cart, [(child, slot, want)])``: it locks the
slots (and the children, for "one activity per time slot") in id order, checks,
writes and leaves the commit to the caller, in one transaction.  The wish is a
*desired state*, so a doubled or retried request changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select, update
from sqlalchemy.orm import joinedload

from core import calendar as cal
from core.clock import utcnow
from core.locking import lock, lock_one
from core.models import (
    ACTION_BOOK,
    ACTION_CANCEL,
    ACTION_WAITLIST,
    CART_CANCELLED,
    CART_EXPIRED,
    CART_OPEN,
    INSCRIPTION_ACCEPTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_RESERVED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
    VALIDATION_IMMEDIATE,
    VALIDATION_PRERESERVATION,
    Activity,
    Cart,
    CartItem,
    Child,
    Inscription,
    Reservation,
    Slot,
)
from extensions import db

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


def _loaded(obj, relationship: str) -> bool:
    """True when `relationship` of `obj` was read along with it (no query to use it)."""
    return relationship not in inspect(obj).unloaded


def child_age_on(child: Child, day: date) -> int:
    return child.age_on(day)


@dataclass
class Context:
    """Everything needed to judge cells, loaded with a constant number of queries."""

    cart: Cart | None
    activities: dict[int, Activity]
    children: dict[int, Child]
    slots: dict[int, Slot]
    zone: str
    now: datetime = field(default_factory=cal.now_local)
    reservations: dict[tuple[int, int], Reservation] = field(default_factory=dict)
    items: dict[tuple[int, int], CartItem] = field(default_factory=dict)
    inscribed: set[tuple[int, int]] = field(default_factory=set)
    # (child, activity, day, time_slot) -> slot ids taking a place
    busy: dict[tuple, set[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, cart: Cart | None, activities, children, slots, zone: str, now=None) -> Context:
        ctx = cls(cart=cart, activities={a.id: a for a in activities}, children={c.id: c for c in children},
                  slots={s.id: s for s in slots}, zone=zone, now=now or cal.now_local())
        child_ids = list(ctx.children)
        if child_ids and ctx.activities:
            if all(_loaded(c, "inscriptions") for c in children):  # read with the children
                ctx.inscribed.update((i.child_id, i.activity_id) for c in children for i in c.inscriptions
                                     if i.status == INSCRIPTION_ACCEPTED and i.activity_id in ctx.activities)
            else:
                ctx.inscribed.update((c, a) for c, a in db.session.execute(
                    select(Inscription.child_id, Inscription.activity_id).where(
                        Inscription.child_id.in_(child_ids), Inscription.activity_id.in_(list(ctx.activities)),
                        Inscription.status == INSCRIPTION_ACCEPTED)))
        days = sorted({s.day for s in slots})
        if child_ids and days:
            rows = db.session.execute(
                select(Reservation, Slot).join(Slot, Reservation.slot_id == Slot.id).where(
                    Reservation.child_id.in_(child_ids), Reservation.activity_id.in_(list(ctx.activities)),
                    Slot.day >= days[0], Slot.day <= days[-1])
                # populate_existing refreshes the slots too: keep their unit (the cells show its label)
                .options(joinedload(Slot.unit)).execution_options(populate_existing=True)).all()
            for res, slot in rows:
                ctx._index(res, slot)
        if cart is not None:
            items = cart.current_items if _loaded(cart, "current_items") else db.session.scalars(
                select(CartItem).where(CartItem.cart_id == cart.id).execution_options(populate_existing=True))
            for item in items:  # read with the démarche (its lock or its page) where it could be
                ctx.items[(item.child_id, item.slot_id)] = item
        return ctx

    def _index(self, res: Reservation, slot: Slot) -> None:
        self.reservations[(res.child_id, res.slot_id)] = res
        self.slots.setdefault(slot.id, slot)
        key = (res.child_id, slot.activity_id, slot.day, slot.time_slot)
        if res.status in RES_TAKING_PLACE and self._counts(res):
            self.busy.setdefault(key, set()).add(slot.id)
        else:
            self.busy.setdefault(key, set()).discard(slot.id)

    def _counts(self, res: Reservation) -> bool:
        return not is_expired_hold(res)

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
        if res is not None and res.status == RES_HELD and self._counts(res):
            return Cell(child_id, slot_id, BLOCKED, "other_cart", reservation_status=status)
        reason = self.blocked_reason(child, slot)
        if reason:
            return Cell(child_id, slot_id, BLOCKED, reason)
        if online_remaining(activity, slot) <= 0:
            return Cell(child_id, slot_id, FULL, "full")
        return Cell(child_id, slot_id, FREE)


# ====================================================================== carts (the wizard)

def open_cart(*, user, family, activity_ids: list[int], child_ids: list[int], hold_minutes: int) -> Cart:
    cart = Cart(family_id=family.id, user_id=user.id, activity_ids=sorted(set(activity_ids)),
                child_ids=sorted(set(child_ids)), expires_at=utcnow() + timedelta(minutes=hold_minutes),
                token=secrets.token_hex(8))
    db.session.add(cart)
    db.session.flush()
    return cart


def cart_is_open(cart: Cart) -> bool:
    return cart.status == CART_OPEN and cart.expires_at >= utcnow()


TOUCH_SLACK = timedelta(seconds=60)


def touch(cart: Cart, hold_minutes: int) -> bool:
    """Every action in the wizard gives its holds the configured time again.

    To the minute: a démarche touched less than TOUCH_SLACK ago keeps its expiry (and its holds
    theirs), so a burst of ticks does not rewrite the démarche and all its holds each time.
    Returns True when the expiry moved."""
    target = utcnow() + timedelta(minutes=hold_minutes)
    if cart.expires_at is not None and target - cart.expires_at < TOUCH_SLACK:
        return False
    cart.expires_at = target
    return True


def _release(res: Reservation, slot: Slot) -> None:
    if res.status in RES_TAKING_PLACE:
        slot.taken = max(0, slot.taken - 1)
    res.status = RES_CANCELLED
    res.cart_id = None
    res.held_until = None


def release_expired_holds_of(slots: dict[int, Slot]) -> list[int]:
    """Under the slots' locks: free holds whose démarche was abandoned. Returns freed slot ids."""
    if not slots:
        return []
    now = utcnow()
    freed = []
    for res in db.session.scalars(select(Reservation).where(
            Reservation.slot_id.in_(list(slots)), Reservation.status == RES_HELD, Reservation.held_until < now)
            .execution_options(populate_existing=True)):
        _release(res, slots[res.slot_id])
        if res.cart_id is not None:
            for item in db.session.scalars(select(CartItem).where(CartItem.reservation_id == res.id)):
                db.session.delete(item)
        freed.append(res.slot_id)
    return freed


def set_choices(ctx: Context, wishes: list[tuple[int, int, bool]], *, waitlist: bool = False) -> dict:
    """Apply desired states [(child_id, slot_id, want)] in one transaction (caller commits).

    Locks the cart, then the slots, then the children, in id order (the order every path
    follows: cart or demande, slots, children); loads and judges under the locks what the
    cells need, so `ctx` only has to carry the cart, its activities and the zone (a tick
    loads nothing before).  Slots or children outside the démarche raise "not_in_cart".
    Returns {(child_id, slot_id): Cell} with the state after the change.
    """
    cart = ctx.cart
    if cart is None:
        raise BookingError("cart_closed")
    # The cart first: a concurrent "Valider" of the same démarche is then either done (and this
    # tick refused) or not started; checked under the lock with fresh values.
    cart = lock_one(Cart, cart.id)
    if cart is None or not cart_is_open(cart):
        raise BookingError("cart_closed")
    ctx.cart = cart
    slot_ids = {s for _c, s, _w in wishes}
    child_ids = {c for c, _s, _w in wishes}
    if not child_ids.issubset(cart.child_ids):
        raise BookingError("not_in_cart")
    locked = lock(Slot, slot_ids, joinedload(Slot.unit))  # the cell shows the unit's label
    children = lock(Child, child_ids, joinedload(Child.inscriptions))  # the rules need them
    if set(locked) != slot_ids or any(s.activity_id not in ctx.activities for s in locked.values()) \
            or set(children) != child_ids or any(c.family_id != cart.family_id for c in children.values()):
        raise BookingError("not_in_cart")
    ctx.slots.update(locked)
    ctx.children.update(children)
    # Read the children's bookings under the locks (another tab may have changed them).
    fresh = Context.load(cart=cart, activities=ctx.activities.values(), children=ctx.children.values(),
                         slots=list(ctx.slots.values()), zone=ctx.zone, now=ctx.now)
    ctx.reservations, ctx.items, ctx.busy, ctx.inscribed = fresh.reservations, fresh.items, fresh.busy, fresh.inscribed
    # Holds of abandoned démarches are freed when they matter: a slot that looks full, or a
    # child's own expired hold about to be taken again; the worker's sweep frees the others every
    # minute.  Without a worker (no Redis: the newcomer's embedded mode) a tick frees them on
    # every slot it locks, as nothing else would.
    now = utcnow()
    sweeping = bool(current_app.config.get("REDIS_URL"))
    stale = [s for s in locked.values() if not sweeping or online_remaining(ctx.activities[s.activity_id], s) <= 0]
    stale += [locked[sid] for (_c, sid), res in ctx.reservations.items() if sid in locked and is_expired_hold(res, now)]
    # (the freed rows are the instances ctx holds: they read "cancelled" at once; none was counted busy)
    freed = release_expired_holds_of({s.id: s for s in stale}) if stale else []
    activity_hold = {a.id: a.hold_minutes for a in ctx.activities.values()}
    if touch(cart, max(activity_hold.values() or [20])):
        # every action keeps the démarche's earlier holds alive as long as the démarche itself
        db.session.execute(update(Reservation).where(Reservation.cart_id == cart.id, Reservation.status == RES_HELD)
                           .values(held_until=cart.expires_at))
    results = {}
    for child_id, slot_id, want in wishes:
        results[(child_id, slot_id)] = _apply(ctx, child_id, slot_id, want, waitlist=waitlist)
    for slot_id in set(freed):
        promote_waitlist(locked[slot_id])
    return results


def _apply(ctx: Context, child_id: int, slot_id: int, want: bool, *, waitlist: bool) -> Cell:
    cart, slot = ctx.cart, ctx.slots[slot_id]
    activity = ctx.activities[slot.activity_id]
    child = ctx.children[child_id]
    current = ctx.cell(child_id, slot_id)
    res = ctx.reservations.get((child_id, slot_id))
    item = ctx.items.get((child_id, slot_id))

    if want:
        if current.state in (HELD, BOOKED, WAITLISTED) or (current.state == WAITLIST and waitlist):
            return current
        if current.state == CANCEL:  # ticked again: keep the booking
            db.session.delete(item)
            ctx.items.pop((child_id, slot_id), None)
            return ctx.cell(child_id, slot_id)
        if current.state == BLOCKED:
            return current
        if current.state == FULL or current.state == WAITLIST:
            if not waitlist:
                return current
            if item is None:
                item = CartItem(cart_id=cart.id, child_id=child_id, slot_id=slot_id, action=ACTION_WAITLIST)
                db.session.add(item)
                ctx.items[(child_id, slot_id)] = item
            return ctx.cell(child_id, slot_id)
        # FREE: hold the place
        if res is None:
            res = Reservation(child_id=child_id, slot_id=slot_id, activity_id=activity.id, family_id=child.family_id,
                              status=RES_HELD)
            db.session.add(res)
        res.status = RES_HELD
        res.cart_id = cart.id
        res.held_until = cart.expires_at
        slot.taken += 1
        # no flush: the commit inserts the reservation before its item (one flush per tick)
        item = CartItem(cart_id=cart.id, child_id=child_id, slot_id=slot_id, action=ACTION_BOOK, reservation=res)
        db.session.add(item)
        ctx.items[(child_id, slot_id)] = item
        ctx._index(res, slot)
        return ctx.cell(child_id, slot_id)

    # want == False
    if current.state == HELD:
        _release(res, slot)
        if item is not None:
            db.session.delete(item)
            ctx.items.pop((child_id, slot_id), None)
        ctx._index(res, slot)
        promote_waitlist(slot)
        return ctx.cell(child_id, slot_id)
    if current.state == WAITLIST:
        db.session.delete(item)
        ctx.items.pop((child_id, slot_id), None)
        return ctx.cell(child_id, slot_id)
    if current.state in (BOOKED, WAITLISTED):
        reason = ctx.blocked_reason(child, slot, for_cancel=True)
        if reason:
            cell = ctx.cell(child_id, slot_id)
            cell.reason = reason
            return cell
        item = CartItem(cart_id=cart.id, child_id=child_id, slot_id=slot_id, action=ACTION_CANCEL,
                        reservation_id=res.id)
        db.session.add(item)
        ctx.items[(child_id, slot_id)] = item
        return ctx.cell(child_id, slot_id)
    return current


def cancel_cart(cart: Cart) -> None:
    """"Annuler la démarche": every held place is released at once."""
    lock_one(Cart, cart.id)  # same order as a tick: the cart, then its slots
    holds = db.session.scalars(select(Reservation).where(Reservation.cart_id == cart.id,
                                                         Reservation.status == RES_HELD)).all()
    slots = lock(Slot, {r.slot_id for r in holds})
    for res in holds:
        _release(res, slots[res.slot_id])
    for item in list(cart.items):
        db.session.delete(item)
    cart.status = CART_CANCELLED
    for slot in slots.values():
        promote_waitlist(slot)


def expire_abandoned_carts(now: datetime | None = None) -> int:
    """Release the holds of démarches not validated in time (a periodic job)."""
    now = now or utcnow()
    carts = db.session.scalars(select(Cart).where(Cart.status == CART_OPEN, Cart.expires_at < now)).all()
    for cart in carts:
        cancel_cart(cart)
        cart.status = CART_EXPIRED
    return len(carts)


# ====================================================================== waiting list

def promote_waitlist(slot: Slot) -> list[Reservation]:
    """Give freed places to the first in line (slot already locked by the caller)."""
    from core.demandes import on_promoted  # late import: demandes builds on booking

    activity = db.session.get(Activity, slot.activity_id)
    promoted = []
    if online_remaining(activity, slot) <= 0:
        return promoted
    # One read of the line, without autoflush (one flush per tick instead of two): an entry this
    # transaction changed but did not write yet is judged by its state in memory.
    with db.session.no_autoflush:
        line = db.session.scalars(select(Reservation).where(
            Reservation.slot_id == slot.id, Reservation.status == RES_WAITLIST
        ).order_by(Reservation.waitlisted_at, Reservation.id)).all()
    for res in line:
        if online_remaining(activity, slot) <= 0:
            break
        if res.status != RES_WAITLIST:
            continue
        if activity.one_per_time_slot and slot.time_slot and _busy_elsewhere(res, slot):
            continue  # booked meanwhile in another activity of the same time slot: the next in line
        res.status = RES_RESERVED if activity.validation_mode == VALIDATION_IMMEDIATE else RES_PENDING
        slot.taken += 1
        promoted.append(res)
        on_promoted(res, slot, activity)
    return promoted


def _busy_elsewhere(res: Reservation, slot: Slot) -> bool:
    """Whether the waiting child already takes a place (or holds one) in another session of the same
    activity, day and time slot.  The child is locked first, as a tick on that other session does."""
    lock(Child, [res.child_id])
    others = db.session.scalars(select(Reservation).join(Slot, Reservation.slot_id == Slot.id).where(
        Reservation.child_id == res.child_id, Reservation.activity_id == slot.activity_id, Slot.id != slot.id,
        Slot.day == slot.day, Slot.time_slot == slot.time_slot, Reservation.status.in_(RES_TAKING_PLACE))).all()
    return any(not is_expired_hold(r) for r in others)


def describe_slot(slot: Slot, activity: Activity, unit_label: str | None = None) -> str:
    """"Repas — lundi 19/10/2026" (a unit) or "Stage de roller — du mardi 19/04/2022 au vendredi 22/04/2022"."""
    name = unit_label or (slot.unit.label if slot.unit_id and slot.unit else slot.title) or activity.name
    dates = slot_dates(slot)
    if len(dates) > 1:
        return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')} → {format_date(dates[-1], 'EEEE dd/MM/yyyy')}"
    return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')}"

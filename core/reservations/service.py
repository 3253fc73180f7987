"""The reservation core's actions: open a démarche, tick (desired states), cancel, expire.

A tick in the planning is ``set_choices(ctx, [(child, slot, want)])``: it locks the démarche,
the slots (and the children, for "one activity per time slot") in id order, checks, writes and
leaves the commit to the caller, in one transaction.  The wish is a *desired state*, so a doubled
or retried request changes nothing.  Statements: `core.reservations.store`; transitions and the
slots' counters: `core.reservations.lifecycle`; judgement: `core.reservations.rules`.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from core.clock import utcnow
from core.models import (
    ACTION_BOOK,
    ACTION_CANCEL,
    ACTION_WAITLIST,
    CART_CANCELLED,
    CART_EXPIRED,
    CART_OPEN,
    RES_CANCELLED,
    RES_HELD,
    Cart,
    Slot,
)
from core.reservations import lifecycle, store
from core.reservations.rules import (
    BLOCKED,
    BOOKED,
    CANCEL,
    FULL,
    HELD,
    WAITLIST,
    WAITLISTED,
    BookingError,
    Cell,
    Context,
    exclusive,
    is_expired_hold,
    online_remaining,
)
from core.reservations.store import ItemRow, LockedSlots, Placed, ResRow, Writes
from core.reservations.waitlist import promote_waitlist
from extensions import db


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


def set_choices(ctx: Context, wishes: list[tuple[int, int, bool]], *, waitlist: bool = False,
                locked: LockedSlots | None = None) -> dict:
    """Apply desired states [(child_id, slot_id, want)] in one transaction (caller commits).

    Locks the cart, then the slots, then (for "one activity per time slot") the children, in id
    order (the order every path follows: cart or demande, slots, children); reads under the locks
    what the cells need, so `ctx` only has to carry the cart, its activities and the zone.  A
    tick is then five statements: the démarche with its items, the slot with the child's
    bookings on it, the child with its inscriptions, and the writes (reservation, item, counter).
    Slots or children outside the démarche raise "not_in_cart".  `locked`: the slots' rows as
    `lock_cart_and_slots` read them with the démarche (a tick: one statement for every lock).
    Returns {(child_id, slot_id): Cell} with the state after the change.
    """
    if ctx.cart is None:
        raise BookingError("cart_closed")
    store.flush_pending()  # the store's statements see what the session holds unwritten
    # The cart first: a concurrent "Valider" of the same démarche is then either done (and this
    # tick refused) or not started; checked under the lock with fresh values.
    cart = ctx.cart if locked is not None else store.lock_cart(ctx.cart.id)
    if cart is None or not cart_is_open(cart):
        raise BookingError("cart_closed")
    ctx.cart = cart
    ctx.items = dict(cart.items)
    slot_ids = sorted({s for _c, s, _w in wishes})
    child_ids = sorted({c for c, _s, _w in wishes})
    if not set(child_ids).issubset(cart.child_ids):
        raise BookingError("not_in_cart")
    if locked is None:
        locked = store.lock_slots(slot_ids, child_ids)
    slots, children = locked.slots, locked.children
    ctx.reservations, ctx.busy = {}, {}
    for placed in locked.reservations:
        ctx.index(placed)
    if set(slots) != set(slot_ids) or any(s.activity_id not in ctx.activities for s in slots.values()) \
            or set(children) != set(child_ids) or any(c.family_id != cart.family_id for c in children.values()):
        raise BookingError("not_in_cart")
    ctx.slots.update(slots)
    ctx.children.update(children)
    ctx.inscribed = set(locked.inscribed)
    sessions = [s for s in slots.values() if exclusive(ctx.activities[s.activity_id], s)]
    if sessions:  # the children locked (after the slots), then what they take elsewhere in these time slots
        store.lock_children(child_ids)
        for placed in store.busy_on(child_ids, {s.activity_id for s in sessions}, {s.day for s in sessions}):
            if (placed.res.child_id, placed.res.slot_id) not in ctx.reservations:
                ctx.index(placed)
    # Holds of abandoned démarches are freed when they matter: a slot that looks full, or a
    # child's own expired hold about to be taken again; the worker's sweep frees the others every
    # minute.  Without a worker (no Redis: the newcomer's embedded mode) a tick frees them on
    # every slot it locks, as nothing else would.
    now = utcnow()
    sweeping = bool(current_app.config.get("REDIS_URL"))
    stale = {s.id for s in slots.values() if not sweeping or online_remaining(ctx.activities[s.activity_id], s) <= 0}
    stale |= {sid for (_c, sid), res in ctx.reservations.items() if sid in slots and is_expired_hold(res, now)}
    freed = lifecycle.release_expired({sid: slots[sid] for sid in sorted(stale)}) if stale else []
    if freed:  # the rows ctx holds were freed too: read them as the database has them now
        for key, res in ctx.reservations.items():
            if key[1] in freed and is_expired_hold(res, now):
                res.status, res.cart_id, res.held_until = RES_CANCELLED, None, None  # (counted by release_expired)
                slot = slots[key[1]]
                ctx.index(Placed(res, slot.activity_id, slot.day, slot.time_slot))
        ctx.items = {k: i for k, i in ctx.items.items()
                     if not (i.action == ACTION_BOOK and k[1] in freed and ctx.reservations.get(k) is not None
                             and ctx.reservations[k].status == RES_CANCELLED)}
    writes = Writes(cart.id)
    for sid in freed:
        writes.taken(slots[sid])
    if touch(cart, max([a.hold_minutes for a in ctx.activities.values()] or [20])):
        # every action keeps the démarche's earlier holds alive as long as the démarche itself
        store.touch_cart(cart)
        for res in ctx.reservations.values():
            if res.status == RES_HELD and res.cart_id == cart.id:
                res.held_until = cart.expires_at
    results = {}
    for child_id, slot_id, want in wishes:
        results[(child_id, slot_id)] = _apply(ctx, writes, child_id, slot_id, want, waitlist=waitlist)
    writes.send()
    promote = sorted(set(freed) | writes.freed)
    waiting = [slots[sid] for sid in promote if slots[sid].has_waitlist]
    for slot in waiting:
        promote_waitlist(slot)  # writes the entries it promotes and the counter
    cart.items = ctx.items
    return results


def _apply(ctx: Context, writes: Writes, child_id: int, slot_id: int, want: bool, *, waitlist: bool) -> Cell:
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
            writes.drop_item(child_id, slot_id)
            ctx.items.pop((child_id, slot_id), None)
            return ctx.cell(child_id, slot_id)
        if current.state == BLOCKED:
            return current
        if current.state == FULL or current.state == WAITLIST:
            if not waitlist:
                return current
            if item is None:
                item = ItemRow(child_id, slot_id, ACTION_WAITLIST)
                writes.add_item(item)
                ctx.items[(child_id, slot_id)] = item
            return ctx.cell(child_id, slot_id)
        # FREE: hold the place
        if res is None:
            res = ResRow(id=None, child_id=child_id, slot_id=slot_id, activity_id=activity.id,
                         family_id=child.family_id, status=None, cart_id=None, held_until=None)
        lifecycle.hold(res, slot, cart_id=cart.id, until=cart.expires_at)
        writes.reservation(res)
        writes.taken(slot)
        item = ItemRow(child_id, slot_id, ACTION_BOOK, res.id)
        writes.add_item(item, res)
        ctx.items[(child_id, slot_id)] = item
        ctx.index(Placed(res, slot.activity_id, slot.day, slot.time_slot))
        return ctx.cell(child_id, slot_id)

    # want == False
    if current.state == HELD:
        lifecycle.release(res, slot)
        writes.reservation(res)
        writes.taken(slot)
        writes.freed.add(slot_id)
        if item is not None:
            writes.drop_item(child_id, slot_id)
            ctx.items.pop((child_id, slot_id), None)
        ctx.index(Placed(res, slot.activity_id, slot.day, slot.time_slot))
        return ctx.cell(child_id, slot_id)
    if current.state == WAITLIST:
        writes.drop_item(child_id, slot_id)
        ctx.items.pop((child_id, slot_id), None)
        return ctx.cell(child_id, slot_id)
    if current.state in (BOOKED, WAITLISTED):
        reason = ctx.blocked_reason(child, slot, for_cancel=True)
        if reason:
            cell = ctx.cell(child_id, slot_id)
            cell.reason = reason
            return cell
        item = ItemRow(child_id, slot_id, ACTION_CANCEL, res.id)
        writes.add_item(item)
        ctx.items[(child_id, slot_id)] = item
        return ctx.cell(child_id, slot_id)
    return current


def cancel_cart(cart: Cart, *, status: str = CART_CANCELLED) -> None:
    """"Annuler la démarche": every held place is released at once, the démarche's items go and it
    takes `status` (CART_EXPIRED: abandoned).  The store's statements (each names the commune), in
    a tick's order: the démarche, then its slots; the caller commits."""
    if store.lock_cart(cart.id) is None:  # not the current commune's
        return
    slots = store.lock_slot_rows(store.held_slot_ids(cart.id))
    freed = lifecycle.release_cart(cart.id, slots)
    store.close_cart(cart.id, status)
    store.set_taken([slots[sid] for sid in sorted(set(freed))])
    for slot in slots.values():
        if slot.has_waitlist:
            promote_waitlist(slot)  # writes the counter again when it gives the place
    store.forget(Slot, slots)


def expire_abandoned_carts(now: datetime | None = None) -> int:
    """Release the holds of démarches not validated in time (a periodic job)."""
    now = now or utcnow()
    carts = db.session.scalars(select(Cart).where(Cart.status == CART_OPEN, Cart.expires_at < now)).all()
    for cart in carts:
        expire_cart(cart)
    return len(carts)


def expire_cart(cart: Cart) -> None:
    """A démarche past its time (the periodic job, or its own family coming back to it): its holds
    are released now, it is expired."""
    if cart.status == CART_OPEN:
        cancel_cart(cart, status=CART_EXPIRED)


def add_child(cart: Cart, child) -> None:
    """"Effectuer la même demande pour": another child of the family joins the démarche."""
    if child.family_id != cart.family_id:
        raise ValueError("a child of another family")
    if child.id not in cart.child_ids:
        store.set_cart_children(cart, sorted(set(cart.child_ids) | {child.id}))

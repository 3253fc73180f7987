"""Every transition of a reservation, and the slot's `taken` counter that follows it.

    (new) ──hold──▶ held ──confirm──▶ requested (pending) ──accept──▶ reserved ──mark_absent──▶ absent
                     │                    │         ╲──refuse──▶ refused
                     ╰──release──▶ cancelled ◀──cancel── (requested, reserved, waiting list)
    (new, refused, cancelled) ──to_waitlist──▶ waiting list ──promote──▶ reserved / requested

A place is taken by a reservation held, requested, reserved or absent (RES_TAKING_PLACE); `_move`
is the one place where `taken` changes, from the status before and after, so no caller adjusts it.
The functions take a reservation and its slot as the caller holds them, ORM objects (the
back-office, the demandes) or the store's rows (a tick): the same attributes (status, cart_id,
held_until; taken).  The caller holds the slot's lock and writes (the ORM flush, or the store's
`Writes`).
"""

from __future__ import annotations

from datetime import datetime

from core.clock import utcnow
from core.models import (
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_REFUSED,
    RES_RESERVED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
)
from core.reservations import store


def _move(res, slot, status: str) -> bool:
    """Set the status; the slot's counter follows.  True when a place came free."""
    was = res.status in RES_TAKING_PLACE
    takes = status in RES_TAKING_PLACE
    if takes and not was:
        slot.taken += 1
    elif was and not takes:
        slot.taken = max(0, slot.taken - 1)
    res.status = status
    return was and not takes


def _done(res) -> None:
    """No démarche holds it any more."""
    res.cart_id = None
    res.held_until = None


def hold(res, slot, *, cart_id: int, until: datetime) -> None:
    """A ticked cell: the place is held for the démarche until `until`."""
    _move(res, slot, RES_HELD)
    res.cart_id, res.held_until = cart_id, until


def confirm(res, slot, *, immediate: bool) -> None:
    """"Valider": a held place becomes reserved (immediate validation) or requested."""
    _move(res, slot, RES_RESERVED if immediate else RES_PENDING)
    _done(res)


def accept(res, slot) -> None:
    """The agent accepts (or the allocation gives a place): reserved."""
    _move(res, slot, RES_RESERVED)
    _done(res)


def refuse(res, slot) -> bool:
    """The agent refuses (or the allocation gives no place).  True when a place came free."""
    freed = _move(res, slot, RES_REFUSED)
    _done(res)
    return freed


def release(res, slot) -> bool:
    """An unticked hold, a cancelled démarche or demande, a cancellation: cancelled.  True when a
    place came free (the waiting list may move)."""
    freed = _move(res, slot, RES_CANCELLED)
    _done(res)
    return freed


cancel = release


def to_waitlist(res, slot, *, at: datetime | None = None) -> bool:
    """On the waiting list, in the order of `at` (now by default).  A new reservation (no status
    yet) may start here.  True when a place came free."""
    freed = _move(res, slot, RES_WAITLIST)
    res.waitlisted_at = at or utcnow()
    _done(res)
    return freed


def promote(res, slot, *, immediate: bool) -> None:
    """First in line and a place came free: reserved (immediate validation) or requested."""
    _move(res, slot, RES_RESERVED if immediate else RES_PENDING)
    _done(res)


def mark_absent(res) -> None:
    """An absence declared on a reserved day: the reservation keeps its place."""
    res.status = RES_ABSENT


def release_expired(slots: dict) -> list[int]:
    """Under the slots' locks ({id: slot}, rows or ORM objects): holds of abandoned démarches on
    them become cancelled (one statement) and their slots' counters go down in memory, for the
    caller to write.  The freed slot ids, once per freed place."""
    if not slots:
        return []
    return _released(slots, store.release_expired_holds(list(slots)))


def release_cart(cart_id: int, slots: dict) -> list[int]:
    """Under the démarche's lock and its slots' ({id: slot}): its holds on them become cancelled
    (one statement) and their slots' counters go down in memory, for the caller to write.  The
    freed slot ids, once per freed place."""
    if not slots:
        return []
    return _released(slots, store.release_cart_holds(cart_id, list(slots)))


def _released(slots: dict, freed: list[tuple[int, int]]) -> list[int]:
    for _rid, slot_id in freed:
        slot = slots[slot_id]
        slot.taken = max(0, slot.taken - 1)  # RES_HELD → RES_CANCELLED, as `release`
    return [slot_id for _rid, slot_id in freed]

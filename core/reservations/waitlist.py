"""The waiting list: freed places go to the first in line."""

from __future__ import annotations

from sqlalchemy import select

from core.locking import lock
from core.models import (
    RES_TAKING_PLACE,
    RES_WAITLIST,
    VALIDATION_IMMEDIATE,
    Activity,
    Child,
    Reservation,
    Slot,
)
from core.reservations import lifecycle
from core.reservations.rules import is_expired_hold, online_remaining
from extensions import db


def promote_waitlist(slot) -> list[Reservation]:
    """Give freed places to the first in line (slot, a row or an ORM object, already locked by the
    caller; its `taken` changes in memory, for the caller to write)."""
    from core.demandes import on_promoted  # late import: demandes builds on the reservation core

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
        lifecycle.promote(res, slot, immediate=activity.validation_mode == VALIDATION_IMMEDIATE)
        promoted.append(res)
        on_promoted(res, slot, activity)
    return promoted


def _busy_elsewhere(res: Reservation, slot) -> bool:
    """Whether the waiting child already takes a place (or holds one) in another session of the same
    activity, day and time slot.  The child is locked first, as a tick on that other session does."""
    lock(Child, [res.child_id])
    others = db.session.scalars(select(Reservation).join(Slot, Reservation.slot_id == Slot.id).where(
        Reservation.child_id == res.child_id, Reservation.activity_id == slot.activity_id, Slot.id != slot.id,
        Slot.day == slot.day, Slot.time_slot == slot.time_slot, Reservation.status.in_(RES_TAKING_PLACE))).all()
    return any(not is_expired_hold(r) for r in others)

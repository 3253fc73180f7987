"""The waiting list: freed places go to the first in line."""

from __future__ import annotations

from core.models import VALIDATION_IMMEDIATE
from core.reservations import lifecycle, store
from core.reservations.rules import exclusive, is_expired_hold, online_remaining
from core.reservations.store import ResRow, Writes


def promote_waitlist(slot) -> list[ResRow]:
    """Give freed places to the first in line (slot, a row or an ORM object, already locked by the
    caller, who wrote its own changes first).  The line is read and the entries promoted are
    written by the store (statements naming the commune), with the slot's counter, which changes in
    memory too (an ORM slot is left with nothing to write); then the demandes hear of each."""
    from core.demandes import on_promoted  # late import: demandes builds on the reservation core

    store.flush_pending()  # the store's statements see what the session holds unwritten
    activity = store.load_activities([slot.activity_id])[0]
    promoted = []
    if online_remaining(activity, slot) <= 0:
        return promoted
    immediate = activity.validation_mode == VALIDATION_IMMEDIATE
    for res in store.waiting_line(slot.id):
        if online_remaining(activity, slot) <= 0:
            break
        if exclusive(activity, slot) and _busy_elsewhere(res, slot):
            continue  # booked meanwhile in another activity of the same time slot: the next in line
        lifecycle.promote(res, slot, immediate=immediate)
        promoted.append(res)
    if promoted:
        writes = Writes(None)
        for res in promoted:
            writes.reservation(res)
        writes.taken(slot)
        writes.send()
        store.mark_written(slot, "taken")
    for res in promoted:
        on_promoted(res, slot, activity)
    return promoted


def _busy_elsewhere(res: ResRow, slot) -> bool:
    """Whether the waiting child already takes a place (or holds one) in another session of the same
    activity, day and time slot.  The child is locked first, as a tick on that other session does."""
    store.lock_children([res.child_id])
    return any(placed.res.slot_id != slot.id and placed.time_slot == slot.time_slot
               and not is_expired_hold(placed.res)
               for placed in store.busy_on([res.child_id], [slot.activity_id], [slot.day]))

"""The one reservation core shared by every commune: what a child may book, holds, cancellations,
waiting list.

    rules.py      what a cell (child × slot) shows and whether it may change (no statement)
    store.py      every statement on reservations, démarches and slots; typed rows
    lifecycle.py  every status transition of a reservation, and the slots' `taken` counter
    service.py    the actions: open a démarche, tick (desired states), cancel, expire
    waitlist.py   freed places to the first in line
    queries.py    read-only views for other packages (billing, documents)
    wizard.py     what the parent's démarche pages read (steps 1 to 3), as ORM objects

This module is the public API; other packages import from here (or `queries`, `lifecycle`).
"""

from core.models import RES_TAKING_PLACE
from core.reservations.rules import (
    BLOCKED,
    BOOKED,
    CANCEL,
    CHECKED_STATES,
    FREE,
    FULL,
    HELD,
    REASONS,
    WAITLIST,
    WAITLISTED,
    BookingError,
    Cell,
    Context,
    describe_slot,
    is_expired_hold,
    online_remaining,
    slot_dates,
)
from core.reservations.service import (
    TOUCH_SLACK,
    add_child,
    cancel_cart,
    cart_is_open,
    expire_abandoned_carts,
    expire_cart,
    open_cart,
    set_choices,
    touch,
)
from core.reservations.store import (
    ACTIVITY_CACHE_SECONDS,
    ActivityRow,
    CartRow,
    ChildRow,
    ItemRow,
    LockedSlots,
    Placed,
    ResRow,
    SlotRow,
    UnitRow,
    load_activities,
    load_slots,
    lock_cart,
    lock_cart_and_slots,
    read_cart,
    read_cart_and_children,
)
from core.reservations.waitlist import promote_waitlist

__all__ = [
    "ACTIVITY_CACHE_SECONDS", "BLOCKED", "BOOKED", "CANCEL", "CHECKED_STATES", "FREE", "FULL", "HELD", "REASONS",
    "RES_TAKING_PLACE", "TOUCH_SLACK", "WAITLIST", "WAITLISTED", "ActivityRow", "BookingError", "CartRow", "Cell",
    "ChildRow", "Context", "ItemRow", "LockedSlots", "Placed", "ResRow", "SlotRow", "UnitRow", "add_child", "cancel_cart",
    "cart_is_open", "describe_slot", "expire_abandoned_carts", "expire_cart", "is_expired_hold", "load_activities", "load_slots",
    "lock_cart", "lock_cart_and_slots", "online_remaining", "open_cart", "promote_waitlist", "read_cart",
    "read_cart_and_children", "set_choices", "slot_dates", "touch",
]

"""The estimated cost of a démarche while the parent ticks: its items priced with `price()`.

No statement of its own: the items come with the démarche's lock (their slot's activity, time slot
and day, core.reservations.ItemRow), the tariffs with the commune's settings, and the family's pricing
(QF periods, residency, siblings' ranks) is kept with the démarche since it was opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.billing.config import BillingConfig
from core.billing.pricing import FamilyPricing, price
from core.models import ACTION_BOOK, ACTION_CANCEL

ZERO = Decimal("0.00")


@dataclass
class Estimate:
    booked: Decimal = ZERO       # what the new bookings of the démarche cost
    cancelled: Decimal = ZERO    # what its cancellations save
    count: int = 0
    no_qf: bool = False          # priced at the highest bracket (no valid QF on some day)
    unpriced: int = 0            # items without a tariff

    @property
    def total(self) -> Decimal:
        return self.booked - self.cancelled


def estimate(conf: BillingConfig, activity_codes: dict[int, str], items, family: FamilyPricing,
             slots: dict | None = None) -> Estimate:
    """`items`: the démarche's items (ItemRow or ORM CartItem with its slot); `slots`: slot rows by
    id for items made in this very request (their slot's data is then read from there)."""
    out = Estimate()
    for item in items:
        if item.action not in (ACTION_BOOK, ACTION_CANCEL):
            continue
        activity_id, time_slot, day = (getattr(item, "activity_id", None), getattr(item, "time_slot", None),
                                       getattr(item, "day", None))
        if activity_id is None or day is None:
            slot = (slots or {}).get(item.slot_id) or getattr(item, "slot", None)
            if slot is None:
                out.unpriced += 1
                continue
            activity_id, time_slot, day = slot.activity_id, slot.time_slot, slot.day
        code = activity_codes.get(activity_id)
        p = price(conf, code, time_slot, day, family, item.child_id) if code else None
        if p is None:
            out.unpriced += 1
            continue
        out.no_qf = out.no_qf or p.no_qf
        if item.action == ACTION_BOOK:
            out.booked += p.unit_price
            out.count += 1
        else:
            out.cancelled += p.unit_price
    return out

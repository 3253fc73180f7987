"""View-model of the planning grid (step 2): a constant number of queries whatever the range."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core import booking
from core import calendar as cal
from core.activity_config import TIME_SLOTS
from core.models import KIND_UNITS, Activity, Slot
from extensions import db

VIEWS = ("semaine", "mois")


@dataclass
class Filters:
    themes: set[str] = field(default_factory=set)
    time_slots: set[str] = field(default_factory=set)
    disciplines: set[str] = field(default_factory=set)
    age: int | None = None

    def keep(self, slot) -> bool:
        if self.themes and (slot.theme or "") not in self.themes:
            return False
        if self.time_slots and (slot.time_slot or "") not in self.time_slots:
            return False
        if self.disciplines and (slot.discipline or "") not in self.disciplines:
            return False
        if self.age is not None:
            if slot.age_min is not None and self.age < slot.age_min:
                return False
            if slot.age_max is not None and self.age > slot.age_max:
                return False
        return True

    @property
    def active(self) -> bool:
        return bool(self.themes or self.time_slots or self.disciplines or self.age is not None)


def parse_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def first_bookable_day(activity: Activity, today: date) -> date:
    day = db.session.scalars(select(Slot.day).where(Slot.activity_id == activity.id, Slot.day >= today)
                             .order_by(Slot.day).limit(1)).first()
    return day or max(activity.starts_on, min(today, activity.ends_on))


def date_range(view: str, anchor: date) -> tuple[date, date, list[list[date]]]:
    if view == "mois":
        weeks = cal.month_grid(anchor)
    else:
        start = cal.week_start(anchor)
        weeks = [[start + timedelta(days=i) for i in range(7)]]
    return weeks[0][0], weeks[-1][-1], weeks


def neighbours(view: str, anchor: date) -> tuple[date, date]:
    if view == "mois":
        first = anchor.replace(day=1)
        prev = (first - timedelta(days=1)).replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
        return prev, nxt
    return anchor - timedelta(days=7), anchor + timedelta(days=7)


@dataclass
class Planning:
    activity: Activity
    activities: list[Activity]
    children: list
    view: str
    anchor: date
    weeks: list[list[date]]
    days_shown: list[int]              # weekday indexes shown as columns
    slots_by_day: dict                 # day -> [slot]
    closed: dict                       # day -> reason code (units: no slot that day)
    ctx: booking.Context
    filters: Filters
    facets: dict
    prev: date
    next: date

    @property
    def is_units(self) -> bool:
        return self.activity.kind == KIND_UNITS

    def cell(self, child_id: int, slot_id: int) -> booking.Cell:
        return self.ctx.cell(child_id, slot_id)

    def remaining(self, slot) -> int:
        return max(0, booking.online_remaining(self.activity, slot))

    def sessions(self, day: date, time_slot: str) -> list:
        return [s for s in self.slots_by_day.get(day, []) if (s.time_slot or "journee") == time_slot]

    @property
    def time_slots(self) -> list[tuple[str, str]]:
        used = {s.time_slot or "journee" for slots in self.slots_by_day.values() for s in slots}
        return [(code, label) for code, label in TIME_SLOTS.items() if code in used]


def build(cart, activities: list[Activity], activity: Activity, children: list, *, view: str, anchor: date,
          zone: str, filters: Filters) -> Planning:
    start, end, weeks = date_range(view, anchor)
    q = select(Slot).where(Slot.activity_id == activity.id, Slot.day <= end, Slot.last_day >= start).order_by(
        Slot.day, Slot.time_slot, Slot.title)
    if activity.kind == KIND_UNITS:
        q = q.options(selectinload(Slot.unit))
    all_slots = db.session.scalars(q).all()
    facets = {
        "themes": sorted({s.theme for s in all_slots if s.theme}),
        "disciplines": sorted({s.discipline for s in all_slots if s.discipline}),
        "time_slots": [(c, lbl) for c, lbl in TIME_SLOTS.items() if c in {s.time_slot for s in all_slots}],
    }
    slots = [s for s in all_slots if activity.kind == KIND_UNITS or filters.keep(s)]
    ctx = booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone=zone)
    by_day: dict = {}
    for slot in slots:
        by_day.setdefault(slot.day, []).append(slot)
    if activity.kind == KIND_UNITS:
        order = {u.id: u.position for u in activity.units}
        for day_slots in by_day.values():
            day_slots.sort(key=lambda s: order.get(s.unit_id, 0))
    closed = {}
    for week in weeks:
        for day in week:
            if day not in by_day:
                closed[day] = cal.closed_reason(activity.calendar or {}, day, zone=zone,
                                                starts_on=activity.starts_on, ends_on=activity.ends_on) or "none"
    weekend_used = any(d.weekday() >= 5 for d in by_day)
    days_shown = list(range(7)) if weekend_used else list(range(5))
    prev, nxt = neighbours(view, anchor)
    return Planning(activity=activity, activities=activities, children=children, view=view, anchor=anchor,
                    weeks=weeks, days_shown=days_shown, slots_by_day=by_day, closed=closed, ctx=ctx,
                    filters=filters, facets=facets, prev=prev, next=nxt)

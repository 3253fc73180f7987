"""View-model of the planning grid (step 2): a constant number of queries whatever the range.

What is the same for every cell (day labels and classes, unit labels, translated reasons) is
worked out here once per page; the templates only print it (a month is hundreds of cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from core import calendar as cal
from core import clock
from core import reservations as booking
from core.activity_config import TIME_SLOTS
from core.models import KIND_UNITS, Activity
from core.reservations import wizard
from web.dates import date_dm, date_long, weekday_names

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


def first_bookable_day(activity: Activity, today: date) -> tuple[date, bool]:
    """The day the planning opens on: the first day with a slot still open to booking (its booking
    deadline not passed), and True; on a Saturday the next week's cells are often past their deadline,
    so this may be the week after.  When nothing is open any more: the first day still to come (or
    the period's nearest day) and False, so that the page says so."""
    now = clock.now_local()
    days = wizard.slot_days_from(activity, today)
    for day in days:
        if not cal.is_past_deadline(activity.booking_deadline, day, now):
            return day, True
    return (days[0] if days else max(activity.starts_on, min(today, activity.ends_on))), False


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


@dataclass(slots=True)
class Day:
    """One column cell of the units grid, the same for every child: computed once per page."""
    date: date
    css: str               # class of the <td>
    dm: str                # "14/12"
    long: str              # "lundi 14/12/2026" ("" when closed)
    closed: bool           # no slot that day
    note: str | None       # why it is closed, when worth saying
    units: list            # [(slot, unit label)] in the activity's unit order


@dataclass(slots=True)
class Toggle:
    """One cell (child x slot) as `_cells.html::toggles` renders it."""
    key: str               # "<child>-<slot>": the ids of the elements
    child_id: int
    slot_id: int
    cell: booking.Cell
    label: str
    detail: str            # read by screen readers after the label
    message: str           # why it is locked ("" when it is not)
    confirm: str | None = None
    extra_class: str = ""


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
    weekday_names: tuple[str, ...] = ()
    nothing_open: bool = False         # no date of the activity can be booked any more (said on the page)
    grid: list[list[Day]] = field(default_factory=list)  # units: the weeks, shown days only
    _messages: dict = field(default_factory=dict, init=False, repr=False)  # reason -> translated message

    @property
    def is_units(self) -> bool:
        return self.activity.kind == KIND_UNITS

    def cell(self, child_id: int, slot_id: int) -> booking.Cell:
        return self.ctx.cell(child_id, slot_id)

    def toggle(self, child, slot_id: int, label: str, detail: str, confirm=None, extra_class: str = "") -> Toggle:
        cell = self.ctx.cell(child.id, slot_id)
        message = ""
        if cell.reason:
            message = self._messages.get(cell.reason)
            if message is None:
                message = self._messages[cell.reason] = cell.message
        return Toggle(f"{child.id}-{slot_id}", child.id, slot_id, cell, label, detail, message, confirm, extra_class)

    def unit_toggles(self, child) -> dict:
        """{day: [Toggle]} of one child over the open days shown."""
        first_name = child.first_name
        out = {}
        for week in self.grid:
            for day in week:
                if not day.closed:
                    detail = f"{first_name} — {day.long}"
                    out[day.date] = [self.toggle(child, slot.id, label, detail) for slot, label in day.units]
        return out

    def session_toggles(self, slot, detail: str, confirm=None) -> list[Toggle]:
        """One toggle per child of the démarche for a session."""
        return [self.toggle(child, slot.id, child.first_name, detail, confirm, "toggle") for child in self.children]

    def remaining(self, slot) -> int:
        return max(0, booking.online_remaining(self.activity, slot))

    def sessions(self, day: date, time_slot: str) -> list:
        return [s for s in self.slots_by_day.get(day, []) if (s.time_slot or "journee") == time_slot]

    @property
    def time_slots(self) -> list[tuple[str, str]]:
        used = {s.time_slot or "journee" for slots in self.slots_by_day.values() for s in slots}
        return [(code, label) for code, label in TIME_SLOTS.items() if code in used]


def build(cart, activities: list, activity, children: list, *, view: str, anchor: date,
          zone: str, filters: Filters, inscribed: set | None = None) -> Planning:
    """The page's view-model.  `activities`, `children` and `cart` are rows (core.reservations) or ORM
    objects alike; `inscribed`: the children's accepted inscriptions when read with them."""
    start, end, weeks = date_range(view, anchor)
    all_slots, reservations = booking.load_slots(activity.id, start, end, [c.id for c in children])
    used_time_slots = {s.time_slot for s in all_slots}
    facets = {
        "themes": sorted({s.theme for s in all_slots if s.theme}),
        "disciplines": sorted({s.discipline for s in all_slots if s.discipline}),
        "time_slots": [(c, lbl) for c, lbl in TIME_SLOTS.items() if c in used_time_slots],
    }
    is_units = activity.kind == KIND_UNITS
    slots = all_slots if is_units else [s for s in all_slots if filters.keep(s)]
    ctx = booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone=zone,
                               inscribed=inscribed, reservations=reservations)
    by_day: dict = {}
    for slot in slots:
        by_day.setdefault(slot.day, []).append(slot)
    units = {}
    if is_units:
        units = {u.id: u for u in activity.units}  # loaded with the activity
        order = {u.id: u.position for u in units.values()}
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
    names = weekday_names()
    grid = []
    if is_units:
        grid = [[_day(week[i], by_day, closed, units, names, other_month=view == "mois" and week[i].month != anchor.month)
                 for i in days_shown] for week in weeks]
    return Planning(activity=activity, activities=activities, children=children, view=view, anchor=anchor,
                    weeks=weeks, days_shown=days_shown, slots_by_day=by_day, closed=closed, ctx=ctx,
                    filters=filters, facets=facets, prev=prev, next=nxt, weekday_names=names, grid=grid)


SILENT_CLOSURES = ("none", cal.CLOSED_WEEKDAY, cal.CLOSED_OUTSIDE)


def _day(day: date, by_day: dict, closed: dict, units: dict, names: tuple[str, ...], *, other_month: bool) -> Day:
    """What the template used to work out for every child and unit (classes, labels, closure note), once."""
    is_closed = day in closed
    css = "day"
    if is_closed:
        css += " day--closed"
    if other_month:
        css += " day--other"
    note = None
    if is_closed and closed[day] not in SILENT_CLOSURES:
        note = str(booking.REASONS.get(closed[day], ""))
    pairs = []
    for slot in by_day.get(day, ()):  # none on a closed day
        unit = units.get(slot.unit_id)  # (a unit of another activity would be read on its own)
        pairs.append((slot, unit.label if unit is not None else slot.unit_label))
    return Day(day, css, date_dm(day), "" if is_closed else date_long(day, names), is_closed, note, pairs)

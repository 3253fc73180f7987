"""Pointage: agents tick présent / absent per child for a day, from the listes de présence.

Its own table (billing_attendance), beside the reservation: what was seen on the day is a fact the
invoicing run reads, the booking is what was asked; a child may be present without a booking (no
reservation row to carry it), and the reservation core keeps its statuses to itself (an absence the
family declares goes through the core's absence flow and stays "justified")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from core import clock
from core.billing.models import ATTENDANCE_ABSENT, ATTENDANCE_PRESENT, Attendance
from core.models import INSCRIPTION_ACCEPTED, Activity, Child, Inscription
from core.reservations import queries
from extensions import db

MARKS = (ATTENDANCE_PRESENT, ATTENDANCE_ABSENT)


class AttendanceError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class RosterChild:
    child_id: int
    family_id: int
    name: str
    marks: dict = field(default_factory=dict)      # slot_id -> present / absent / None
    booked: dict = field(default_factory=dict)     # slot_id -> reservation status (reserved / absent)


@dataclass
class Roster:
    activity: Activity
    day: date
    slots: list                                     # [(slot_id, label)]
    children: list[RosterChild]
    others: list[Child]                             # inscribed children without a booking that day


def roster(activity: Activity, day: date) -> Roster:
    """The day's slots, the children booked on them and what was pointed: three statements."""
    rows = queries.day_roster(activity.id, day)
    slots, seen, children = [], set(), {}
    for r in rows:
        if r.slot_id not in seen:
            seen.add(r.slot_id)
            slots.append((r.slot_id, r.unit_label or r.title or activity.name))
        if r.child_id is not None:
            kid = children.setdefault(r.child_id, RosterChild(r.child_id, r.family_id,
                                                              f"{r.last_name} {r.first_name}"))
            kid.booked[r.slot_id] = r.status
    marks = db.session.scalars(select(Attendance).where(Attendance.activity_id == activity.id, Attendance.day == day))
    extra = []
    for m in marks:
        if m.slot_id not in seen:
            continue
        if m.child_id not in children:
            extra.append(m)
            continue
        children[m.child_id].marks[m.slot_id] = m.status
    inscribed = db.session.scalars(select(Child).join(Inscription, Inscription.child_id == Child.id).where(
        Inscription.activity_id == activity.id, Inscription.status == INSCRIPTION_ACCEPTED)
        .order_by(Child.last_name, Child.first_name)).all()
    by_id = {c.id: c for c in inscribed}
    for m in extra:
        child = by_id.get(m.child_id)
        if child is None:
            continue
        kid = children.setdefault(child.id, RosterChild(child.id, child.family_id,
                                                        f"{child.last_name} {child.first_name}"))
        kid.marks[m.slot_id] = m.status
    others = [c for c in inscribed if c.id not in children]
    ordered = sorted(children.values(), key=lambda k: k.name.lower())
    return Roster(activity, day, slots, ordered, others)


def save(activity: Activity, day: date, marks: dict[tuple[int, int], str | None], *, agent_name: str) -> int:
    """Record the day's marks {(child_id, slot_id): present / absent / None (unmarked)}; a presence
    without booking only for a child inscribed to the activity.  Returns how many marks are set."""
    if day > clock.today():
        raise AttendanceError(str(_l("On ne pointe pas un jour à venir.")))
    current = roster(activity, day)
    slot_ids = {s for s, _label in current.slots}
    known = {k.child_id: k for k in current.children} | {c.id: None for c in current.others}
    families = {k.child_id: k.family_id for k in current.children} | {c.id: c.family_id for c in current.others}
    for (child_id, slot_id), status in marks.items():
        if slot_id not in slot_ids or child_id not in known:
            raise AttendanceError(str(_l("Cet enfant ou ce créneau ne fait pas partie de la liste du jour.")))
        if status is not None and status not in MARKS:
            raise AttendanceError(str(_l("Pointage inconnu.")))
    keys = list(marks)
    if keys:
        db.session.execute(delete(Attendance).where(
            Attendance.activity_id == activity.id, Attendance.day == day,
            Attendance.child_id.in_({c for c, _s in keys})).execution_options(synchronize_session=False))
    count = 0
    for (child_id, slot_id), status in sorted(marks.items()):
        if status is None:
            continue
        db.session.add(Attendance(child_id=child_id, slot_id=slot_id, activity_id=activity.id,
                                  family_id=families[child_id], day=day, status=status, recorded_by=agent_name))
        count += 1
    return count

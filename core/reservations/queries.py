"""Read-only views of the reservation core for other packages (billing first).

Other packages never select from the reservation, slot or cart tables themselves: they call these
functions.  Each one is a constant number of statements (one) whatever the number of families,
children or days, names the commune in every statement (Core statements skip the ORM guard, so the
commune is a bound parameter of each), and returns typed rows built by column name.

Self-contained on purpose: it depends only on the models, so it can move with the reservation core.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, func, select

from core.models import (
    ACTION_CANCEL,
    INSCRIPTION_ACCEPTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_PENDING,
    RES_RESERVED,
    ActivityUnit,
    Child,
    Demande,
    DemandeLine,
    Inscription,
    Reservation,
    Slot,
)
from extensions import db
from tenants.context import require_tenant_id

# Statuses a bill may look at: booked (réservé), absence declared by the family (the absence flow:
# justified), cancelled (in time or late, judged by the cancellation deadline), still pending.
BILLABLE_STATUSES = (RES_RESERVED, RES_ABSENT, RES_CANCELLED, RES_PENDING)

_res, _slot, _unit, _child, _ins = (m.__table__ for m in (Reservation, Slot, ActivityUnit, Child, Inscription))
_line, _dem = DemandeLine.__table__, Demande.__table__
_T = bindparam("tenant")
# When the family asked to cancel a booking (the démarche's "cancel" line): a released hold or a
# withdrawn request has none, so it is never mistaken for a cancellation.
_CANCEL_ASKED = (select(func.max(_dem.c.created_at))
                 .select_from(_line.join(_dem, and_(_dem.c.id == _line.c.demande_id, _dem.c.tenant_id == _T)))
                 .where(_line.c.reservation_id == _res.c.id, _line.c.action == ACTION_CANCEL,
                        _line.c.tenant_id == _T)
                 .correlate(_res).scalar_subquery())


def _build(cls, rows):
    names = [f.name for f in fields(cls)]
    return [cls(**{n: m[n] for n in names}) for m in (r._mapping for r in rows)]


def _run(stmt, params: dict):
    return db.session.connection().execute(stmt, {**params, "tenant": require_tenant_id()}).all()


class BookedRow(NamedTuple):
    """A child's reservation on a slot, with what a bill or an attestation shows of it.  A tuple
    (a month of a commune is ~70,000 of them: built as fast as rows come)."""
    reservation_id: int
    status: str
    cancel_asked_at: datetime | None  # naive UTC: when its cancellation was asked (None: never asked)
    child_id: int
    family_id: int
    first_name: str
    last_name: str
    activity_id: int              # (its deadlines, name and code: the Activity, read once)
    slot_id: int
    day: date                     # first (or only) date of the slot
    last_day: date
    time_slot: str | None         # the unit's code for days with units; matin / midi / journee… for sessions
    title: str
    unit_label: str | None
    inscribed: bool               # an accepted inscription to the activity


_BOOKED = (select(_res.c.id.label("reservation_id"), _res.c.status,
                  case((_res.c.status == RES_CANCELLED, _CANCEL_ASKED), else_=None).label("cancel_asked_at"),
                  _res.c.child_id, _child.c.family_id, _child.c.first_name, _child.c.last_name,
                  _slot.c.activity_id, _slot.c.id.label("slot_id"), _slot.c.day, _slot.c.last_day,
                  _slot.c.time_slot, _slot.c.title, _unit.c.label.label("unit_label"),
                  (_ins.c.id.is_not(None)).label("inscribed"))
           .select_from(_res.join(_slot, and_(_slot.c.id == _res.c.slot_id, _slot.c.tenant_id == _T))
                        .join(_child, and_(_child.c.id == _res.c.child_id, _child.c.tenant_id == _T))
                        .outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T))
                        .outerjoin(_ins, and_(_ins.c.child_id == _res.c.child_id,
                                              _ins.c.activity_id == _slot.c.activity_id,
                                              _ins.c.status == INSCRIPTION_ACCEPTED, _ins.c.tenant_id == _T)))
           .where(_res.c.tenant_id == _T, _slot.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
                  _slot.c.day >= bindparam("first"), _slot.c.day <= bindparam("last"),
                  _res.c.status.in_(bindparam("statuses", expanding=True)))
           .order_by(_child.c.family_id, _res.c.child_id, _slot.c.day, _slot.c.time_slot, _slot.c.id))
assert [c.name for c in _BOOKED.selected_columns] == list(BookedRow._fields)


def bookings_between(first: date, last: date, activity_ids, *, statuses=BILLABLE_STATUSES,
                     child_ids=None) -> list[BookedRow]:
    """Reservations of these activities on slots starting in [first, last] (a stage counts once, on
    its first date), every family at once; optionally only some children.  One statement."""
    stmt = _BOOKED
    params = {"activity_ids": sorted(set(activity_ids)) or [0], "first": first, "last": last,
              "statuses": list(statuses)}
    if child_ids is not None:
        stmt = stmt.where(_res.c.child_id.in_(bindparam("child_ids", expanding=True)))
        params["child_ids"] = sorted(set(child_ids)) or [0]
    return [BookedRow._make(row) for row in _run(stmt, params)]


@dataclass(frozen=True, slots=True)
class SlotInfo:
    slot_id: int
    activity_id: int
    day: date
    last_day: date
    time_slot: str | None
    title: str
    unit_label: str | None
    capacity: int


def _slots_with_units(*more, bookings=None):
    """The commune's slots with their unit (SlotInfo's columns, then `more`); `bookings`: the
    reservation statuses whose rows are joined to them, with their child (the roster)."""
    joined = _slot.outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T))
    if bookings is not None:
        joined = (joined.outerjoin(_res, and_(_res.c.slot_id == _slot.c.id, _res.c.tenant_id == _T,
                                              _res.c.status.in_(bookings)))
                  .outerjoin(_child, and_(_child.c.id == _res.c.child_id, _child.c.tenant_id == _T)))
    return (select(_slot.c.id.label("slot_id"), _slot.c.activity_id, _slot.c.day, _slot.c.last_day,
                   _slot.c.time_slot, _slot.c.title, _unit.c.label.label("unit_label"), _slot.c.capacity, *more)
            .select_from(joined).where(_slot.c.tenant_id == _T))


_SLOTS = _slots_with_units().where(_slot.c.id.in_(bindparam("slot_ids", expanding=True))).order_by(_slot.c.id)


def slots_by_id(slot_ids) -> dict[int, SlotInfo]:
    """These slots (with their unit's label), by id.  One statement."""
    ids = sorted({int(i) for i in slot_ids})
    if not ids:
        return {}
    return {s.slot_id: s for s in _build(SlotInfo, _run(_SLOTS, {"slot_ids": ids}))}


@dataclass(frozen=True, slots=True)
class RosterRow(SlotInfo):
    """A slot of the day (SlotInfo's fields first) and, when someone booked it, the child and the
    booking's status."""
    position: int | None
    child_id: int | None
    family_id: int | None
    first_name: str | None
    last_name: str | None
    status: str | None


_ROSTER = (_slots_with_units(_unit.c.position, _res.c.child_id, _child.c.family_id, _child.c.first_name,
                             _child.c.last_name, _res.c.status, bookings=(RES_RESERVED, RES_ABSENT))
           .where(_slot.c.activity_id == bindparam("activity_id"), _slot.c.day <= bindparam("day"),
                  _slot.c.last_day >= bindparam("day"))
           .order_by(_unit.c.position, _slot.c.start_time, _slot.c.title, _slot.c.id, _child.c.last_name,
                     _child.c.first_name))


def day_roster(activity_id: int, day: date) -> list[RosterRow]:
    """The activity's slots on `day` (a stage on each of its dates) with the children booked on them
    (réservé or absence declared), for the pointage.  One statement."""
    rows = _build(RosterRow, _run(_ROSTER, {"activity_id": int(activity_id), "day": day}))
    return [r for r in rows if r.day == day or r.last_day >= day]  # (a stage's dates: kept whole)

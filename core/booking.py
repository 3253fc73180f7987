"""The one reservation core: what a child may book, holds, cancellations, waiting list.

Every commune uses these functions; communes differ only by their activities'
configuration (kind, units, sessions, validation mode, deadlines, calendar, quota).

A tick in the planning is ``set_choices(cart, [(child, slot, want)])``: it locks the
slots (and the children, for "one activity per time slot") in id order, checks,
writes and leaves the commit to the caller, in one transaction.  The wish is a
*desired state*, so a doubled or retried request changes nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, make_dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    String,
    and_,
    bindparam,
    cast,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from core import calendar as cal
from core.clock import utcnow
from core.hotsql import hot
from core.hotsql import rows as hot_rows
from core.locking import is_locked, is_postgres, lock, lock_one, lock_rows, mark_locked
from core.models import (
    ACTION_BOOK,
    ACTION_CANCEL,
    ACTION_WAITLIST,
    CART_CANCELLED,
    CART_EXPIRED,
    CART_OPEN,
    INSCRIPTION_ACCEPTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_RESERVED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
    VALIDATION_IMMEDIATE,
    VALIDATION_PRERESERVATION,
    Activity,
    ActivityUnit,
    Cart,
    CartItem,
    Child,
    Inscription,
    Reservation,
    Slot,
)
from extensions import db
from tenants.context import require_tenant_id
from tenants.models import Tenant

# States of a cell (child x slot) as the planning shows it
FREE = "free"            # may be ticked
HELD = "held"            # ticked in this démarche (place held)
BOOKED = "booked"        # booked before (réservé or en attente de validation)
CANCEL = "cancel"        # booked before, unticked in this démarche: cancellation on Valider
WAITLIST = "waitlist"    # asked for the waiting list in this démarche
WAITLISTED = "waitlisted"  # already on the waiting list
FULL = "full"            # no online place left: "Complet", the waiting list is offered
BLOCKED = "blocked"      # locked, with a reason

CHECKED_STATES = {HELD, BOOKED}

REASONS = {
    "not_inscribed": _l("Pas d'inscription validée à cette activité."),
    "age": _l("Activité réservée à une autre tranche d'âge."),
    cal.CLOSED_WEEKDAY: _l("Fermé ce jour-là."),
    cal.CLOSED_PUBLIC_HOLIDAY: _l("Jour férié."),
    cal.CLOSED_SCHOOL_HOLIDAY: _l("Vacances scolaires."),
    cal.CLOSED_NOT_HOLIDAY: _l("Hors vacances scolaires."),
    cal.CLOSED_DATE: _l("Fermeture exceptionnelle."),
    cal.CLOSED_OUTSIDE: _l("En dehors de la période de l'activité."),
    "deadline": _l("Le délai de réservation est dépassé."),
    "cancel_deadline": _l("Le délai d'annulation est dépassé."),
    "full": _l("Complet : il ne reste plus de place en ligne."),
    "time_slot": _l("Déjà une réservation d'activité sur ce créneau horaire (une seule activité peut être choisie)."),
    "other_cart": _l("Déjà choisi dans une autre démarche en cours."),
    "not_open": _l("Les réservations ne sont pas encore ouvertes."),
    "prereservation_closed": _l("La période de pré-réservation est terminée."),
    "not_in_cart": _l("Cet enfant ou cette activité ne fait pas partie de la démarche."),
    "cart_closed": _l("Cette démarche est terminée : recommencez depuis « Modifier les réservations »."),
    "absent": _l("Absence déclarée ce jour-là."),
}


class BookingError(Exception):
    def __init__(self, code: str, message: str | None = None):
        self.code = code
        self.message = str(message or REASONS.get(code, code))
        super().__init__(self.message)


@dataclass
class Cell:
    child_id: int
    slot_id: int
    state: str
    reason: str | None = None
    reservation_status: str | None = None

    @property
    def checked(self) -> bool:
        return self.state in CHECKED_STATES or self.reservation_status == RES_ABSENT

    @property
    def locked(self) -> bool:
        return self.state in (BLOCKED, FULL, WAITLISTED)

    @property
    def message(self) -> str:
        return str(REASONS.get(self.reason, "")) if self.reason else ""


def slot_dates(slot: Slot) -> list[date]:
    return [date.fromisoformat(d) for d in (slot.dates or [])] or [slot.day]


def online_remaining(activity: Activity, slot: Slot) -> int:
    return activity.online_places(slot.capacity) - slot.taken


def is_expired_hold(res: Reservation, now: datetime | None = None) -> bool:
    """A hold of a démarche abandoned past its time: it no longer counts, whatever `taken` says
    until it is released."""
    return res.status == RES_HELD and res.held_until is not None and res.held_until < (now or utcnow())


def _loaded(obj, relationship: str) -> bool:
    """True when `relationship` of `obj` was read along with it (no query to use it)."""
    return relationship not in inspect(obj).unloaded


# ====================================================================== rows the hot paths read and write
#
# A tick is the hottest request of an opening morning: it reads and writes plain rows (column
# selects, Core INSERT/UPDATE/DELETE) rather than ORM objects and a unit-of-work flush, the
# cost of which was most of a tick (BENCHMARKS.md).  The rules (`Context`) read these rows and
# ORM objects alike.  Column selects of mapped attributes still pass the tenancy guard
# (tenants/scoping.py); writes name the rows' commune explicitly.

@dataclass(slots=True)
class CartRow:
    """A démarche as locked by `lock_cart`, with its items {(child_id, slot_id): ItemRow}."""
    id: int
    family_id: int
    user_id: int
    status: str
    expires_at: datetime
    activity_ids: list
    child_ids: list
    activities_version: int | None = None  # the commune's (`load_activities(version=…)`)
    items: dict = field(default_factory=dict)


@dataclass(slots=True)
class ItemRow:
    child_id: int
    slot_id: int
    action: str
    reservation_id: int | None = None
    # the slot's activity, time slot (a unit's code for days with units) and first day: what prices
    # the démarche (core.billing.estimate) without reading the slots again
    activity_id: int | None = None
    time_slot: str | None = None
    day: date | None = None


@dataclass(slots=True)
class SlotRow:
    """A slot locked by `set_choices`; `taken` is written back when it changes."""
    id: int
    activity_id: int
    unit_id: int | None
    day: date
    last_day: date
    dates: list
    title: str
    time_slot: str | None
    age_min: int | None
    age_max: int | None
    capacity: int
    taken: int
    start_time: str | None
    end_time: str | None
    theme: str | None
    discipline: str | None
    unit_label: str | None = None
    has_waitlist: bool = False


@dataclass(slots=True)
class ResRow:
    id: int | None
    child_id: int
    slot_id: int
    activity_id: int
    family_id: int
    status: str
    cart_id: int | None
    held_until: datetime | None


@dataclass(slots=True)
class ChildRow:
    id: int
    family_id: int
    first_name: str
    birth_date: date

    age_on = Child.age_on


ActivityRow = make_dataclass(
    "ActivityRow", [c.key for c in Activity.__table__.columns] + [("units", list, field(default_factory=list))],
    slots=True, namespace={"online_places": Activity.online_places,
                           "__doc__": "An activity's settings as a tick or a page reads them (a row, not an ORM "
                                      "object); `units` only where asked for (the planning)."})


@dataclass(slots=True)
class UnitRow:
    id: int
    code: str
    label: str
    position: int
    capacity: int

_act, _cart, _item, _slot, _res, _child, _ins, _unit, _tenant = (m.__table__ for m in (
    Activity, Cart, CartItem, Slot, Reservation, Child, Inscription, ActivityUnit, Tenant))
_T = bindparam("tenant")  # every statement below names its commune (Core statements skip the ORM guard)

_RES_COLUMNS = (_res.c.id, _res.c.child_id, _res.c.slot_id, _res.c.activity_id, _res.c.family_id, _res.c.status,
                _res.c.cart_id, _res.c.held_until)
_RES_WIDTH = len(_RES_COLUMNS)
_SLOT_COLUMNS = (_slot.c.id, _slot.c.activity_id, _slot.c.unit_id, _slot.c.day, _slot.c.last_day, _slot.c.dates,
                 _slot.c.title, _slot.c.time_slot, _slot.c.age_min, _slot.c.age_max, _slot.c.capacity, _slot.c.taken,
                 _slot.c.start_time, _slot.c.end_time, _slot.c.theme, _slot.c.discipline)
_SLOT_WIDTH = len(_SLOT_COLUMNS)
_CHILD_COLUMNS = (_child.c.id, _child.c.family_id, _child.c.first_name, _child.c.birth_date)

_ACTIVITIES = hot(select(*_act.c).where(_act.c.id.in_(bindparam("activity_ids", expanding=True)), _act.c.tenant_id == _T)
               .order_by(_act.c.position, _act.c.id))
_ACT_WIDTH = len(_act.c)
_ACTIVITIES_WITH_UNITS = hot(
    select(*_act.c, _unit.c.id, _unit.c.code, _unit.c.label, _unit.c.position, _unit.c.capacity)
    .select_from(_act.outerjoin(_unit, and_(_unit.c.activity_id == _act.c.id, _unit.c.tenant_id == _T)))
    .where(_act.c.id.in_(bindparam("activity_ids", expanding=True)), _act.c.tenant_id == _T)
    .order_by(_act.c.position, _act.c.id, _unit.c.position, _unit.c.id))
# The démarche with its items as one string ("child:slot:action:reservation,…", `_cart_with_items`)
# and the version of the commune's activities; locked alone when a path has not locked it yet
# (FOR UPDATE OF cart on PostgreSQL; SQLite serialises writers).
_version = select(_tenant.c.activities_version).where(_tenant.c.id == _T).scalar_subquery()
_CART_COLUMNS = (_cart.c.id, _cart.c.family_id, _cart.c.user_id, _cart.c.status, _cart.c.expires_at,
                 _cart.c.activity_ids, _cart.c.child_ids)
_item_slot = _slot.alias("item_slot")
_ITEM_TEXT = (cast(_item.c.child_id, String) + ":" + cast(_item.c.slot_id, String) + ":" + _item.c.action + ":"
              + func.coalesce(cast(_item.c.reservation_id, String), "") + ":"
              + cast(_item_slot.c.activity_id, String) + ":" + func.coalesce(_item_slot.c.time_slot, "") + ":"
              + cast(_item_slot.c.day, String))
_ITEMS = (select(func.aggregate_strings(_ITEM_TEXT, ","))
          .select_from(_item.join(_item_slot, and_(_item_slot.c.id == _item.c.slot_id, _item_slot.c.tenant_id == _T)))
          .where(_item.c.cart_id == _cart.c.id, _item.c.tenant_id == _T)
          .correlate(_cart).scalar_subquery())
_CART_HEAD = (*_CART_COLUMNS, _version.label("activities_version"), _ITEMS.label("items"))
_LOCK_CART = hot(select(*_CART_HEAD).where(_cart.c.id == bindparam("cart_id"), _cart.c.tenant_id == _T)
                 .with_for_update(of=_cart))
# An activity's slots over a range of days (a stage counts on each of its days), with their unit's
# label and these children's reservations on them (the planning: one statement).
_SLOTS_IN_RANGE = hot(select(*_SLOT_COLUMNS, _unit.c.label, *_RES_COLUMNS)
                   .select_from(_slot.outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T))
                                .outerjoin(_res, and_(_res.c.slot_id == _slot.c.id, _res.c.tenant_id == _T,
                                                      _res.c.child_id.in_(bindparam("child_ids", expanding=True)))))
                   .where(_slot.c.activity_id == bindparam("activity_id"), _slot.c.day <= bindparam("last"),
                          _slot.c.last_day >= bindparam("first"), _slot.c.tenant_id == _T)
                   .order_by(_slot.c.day, _slot.c.time_slot, _slot.c.title, _slot.c.id))
# The wished slots in id order, locked, each with its unit's label and whether anyone waits for it,
# times the wished children (with their inscription to the slot's activity and their reservation
# on the slot): everything a tick judges, in one statement.
_waiting = (exists().where(_res.c.slot_id == _slot.c.id, _res.c.status == RES_WAITLIST, _res.c.tenant_id == _T)
            .correlate(_slot))
_LOCK_SLOTS = hot(select(*_SLOT_COLUMNS, _unit.c.label, _waiting.label("has_waitlist"), *_CHILD_COLUMNS,
                      _ins.c.activity_id, *_RES_COLUMNS)
               .select_from(
                   _slot.join(_child, and_(_child.c.id.in_(bindparam("child_ids", expanding=True)),
                                           _child.c.tenant_id == _T))
                   .outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T))
                   .outerjoin(_ins, and_(_ins.c.child_id == _child.c.id, _ins.c.activity_id == _slot.c.activity_id,
                                         _ins.c.status == INSCRIPTION_ACCEPTED, _ins.c.tenant_id == _T))
                   .outerjoin(_res, and_(_res.c.slot_id == _slot.c.id, _res.c.child_id == _child.c.id,
                                         _res.c.tenant_id == _T)))
               .where(_slot.c.id.in_(bindparam("slot_ids", expanding=True)), _slot.c.tenant_id == _T)
               .order_by(_slot.c.id, _child.c.id).with_for_update(of=_slot))
# A tick's first statement: the démarche (its items as one string) and the wished slots with the
# children, all locked, the démarche first (FOR UPDATE OF cart, slot: the rows of the first table
# of the FROM are locked first; the order of every path: démarche, slots, children).
_LOCK_CART_AND_SLOTS = hot(
    select(*_CART_HEAD, *_LOCK_SLOTS.selected_columns)
    .select_from(_cart.join(_LOCK_SLOTS.get_final_froms()[0], true()))  # (one démarche row: no product to fear)
    .where(_cart.c.id == bindparam("cart_id"), _cart.c.tenant_id == _T, *_LOCK_SLOTS.whereclause.clauses)
    .order_by(_slot.c.id, _child.c.id).with_for_update(of=(_cart, _slot)))
# The planning's first statement: the démarche (its items as one string) and its family's children
# (by birth date) with their accepted inscriptions.
_CART_AND_CHILDREN = hot(
    select(*_CART_HEAD, *_CHILD_COLUMNS, _ins.c.activity_id)
    .select_from(_cart.outerjoin(_child, and_(_child.c.family_id == _cart.c.family_id, _child.c.tenant_id == _T))
                 .outerjoin(_ins, and_(_ins.c.child_id == _child.c.id, _ins.c.status == INSCRIPTION_ACCEPTED,
                                       _ins.c.tenant_id == _T)))
    .where(_cart.c.id == bindparam("cart_id"), _cart.c.tenant_id == _T)
    .order_by(_child.c.birth_date, _child.c.id))
_LOCK_CHILDREN = hot(select(_child.c.id).where(_child.c.id.in_(bindparam("child_ids", expanding=True)),
                                            _child.c.tenant_id == _T)
                  .order_by(_child.c.id).with_for_update(of=_child))
# The children's reservations on these activities over a range of days, with their slot's time slot.
_RESERVATIONS_IN_RANGE = hot(select(*_RES_COLUMNS, _slot.c.activity_id, _slot.c.day, _slot.c.time_slot)
                          .select_from(_res.join(_slot, _res.c.slot_id == _slot.c.id))
                          .where(_res.c.child_id.in_(bindparam("child_ids", expanding=True)),
                                 _res.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
                                 _slot.c.day >= bindparam("first"), _slot.c.day <= bindparam("last"),
                                 _res.c.tenant_id == _T))
# What a child takes (or holds) on the days of the wished sessions ("one activity per time slot").
_BUSY = hot(select(*_RES_COLUMNS, _slot.c.activity_id, _slot.c.day, _slot.c.time_slot)
         .select_from(_res.join(_slot, _res.c.slot_id == _slot.c.id))
         .where(_res.c.child_id.in_(bindparam("child_ids", expanding=True)),
                _res.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
                _slot.c.day.in_(bindparam("days", expanding=True)),
                _res.c.status.in_(RES_TAKING_PLACE), _res.c.tenant_id == _T))

_SET_TAKEN = (update(_slot).where(_slot.c.id == bindparam("b_id"), _slot.c.tenant_id == bindparam("b_tenant"))
              .values(taken=bindparam("b_taken")))
_SET_RES = (update(_res).where(_res.c.id == bindparam("b_id"), _res.c.tenant_id == bindparam("b_tenant"))
            .values(status=bindparam("b_status"), cart_id=bindparam("b_cart"), held_until=bindparam("b_until")))
_ADD_RES = insert(_res).returning(_res.c.id, sort_by_parameter_order=True)
_ADD_ITEM = insert(_item)
_DROP_ITEM = delete(_item).where(_item.c.cart_id == bindparam("b_cart"), _item.c.child_id == bindparam("b_child"),
                                 _item.c.slot_id == bindparam("b_slot"), _item.c.tenant_id == bindparam("b_tenant"))


# The same writes in one PostgreSQL statement (`_Writes._send_at_once`): démarche items dropped,
# reservations changed and added, items added (a new reservation's id joined in), counters set.
_WRITE_PARTS = (
    ("gone", "DELETE FROM cart_item WHERE tenant_id = :tenant AND cart_id = :cart AND (child_id, slot_id) IN "
             "(VALUES {rows})", "(CAST(:gc{k} AS integer), CAST(:gs{k} AS integer))"),
    ("changed", "UPDATE reservation SET status = v.status, cart_id = v.cart_id, held_until = v.held_until, "
                "updated_at = :now FROM (VALUES {rows}) AS v(id, status, cart_id, held_until) "
                "WHERE reservation.id = v.id AND reservation.tenant_id = :tenant",
     "(CAST(:ci{k} AS integer), CAST(:cs{k} AS varchar), CAST(:cc{k} AS integer), CAST(:cu{k} AS timestamp))"),
    ("added", "INSERT INTO reservation (tenant_id, child_id, slot_id, activity_id, family_id, status, cart_id, "
              "held_until, created_at, updated_at) SELECT :tenant, v.*, :now, :now FROM (VALUES {rows}) "
              "AS v(child_id, slot_id, activity_id, family_id, status, cart_id, held_until) "
              "RETURNING id, child_id, slot_id",
     "(CAST(:nc{k} AS integer), CAST(:ns{k} AS integer), CAST(:na{k} AS integer), CAST(:nf{k} AS integer), "
     "CAST(:nt{k} AS varchar), CAST(:nk{k} AS integer), CAST(:nu{k} AS timestamp))"),
    ("items", "INSERT INTO cart_item (tenant_id, cart_id, child_id, slot_id, action, reservation_id) "
              "SELECT :tenant, :cart, v.child_id, v.slot_id, v.action, COALESCE(v.reservation_id, {added}) "
              "FROM (VALUES {rows}) AS v(child_id, slot_id, action, reservation_id)",
     "(CAST(:ic{k} AS integer), CAST(:is{k} AS integer), CAST(:ia{k} AS varchar), CAST(:ir{k} AS integer))"),
    ("counted", "UPDATE slot SET taken = v.taken FROM (VALUES {rows}) AS v(id, taken) "
                "WHERE slot.id = v.id AND slot.tenant_id = :tenant", "(CAST(:si{k} AS integer), CAST(:st{k} AS integer))"),
)
_write_statements: dict[tuple, object] = {}


def _write_statement(shape: tuple):
    """The one statement for this many rows of each kind (remembered: a few shapes serve every tick)."""
    stmt = _write_statements.get(shape)
    if stmt is None:
        ctes = []
        for (name, body, row), count in zip(_WRITE_PARTS, shape, strict=True):
            if count:
                rows = ", ".join(row.format(k=k) for k in range(count))
                added = ("(SELECT a.id FROM added a WHERE a.child_id = v.child_id AND a.slot_id = v.slot_id)"
                         if shape[2] else "NULL")
                ctes.append(f"{name} AS ({body.format(rows=rows, added=added)})")
        tail = "SELECT id, child_id, slot_id FROM added" if shape[2] else "SELECT NULL, NULL, NULL WHERE false"
        stmt = _write_statements[shape] = hot(text(f"WITH {', '.join(ctes)} {tail}" if ctes else tail))
    return stmt


def _run(stmt, params=None):
    """A Core statement on the session's connection, in its transaction (no ORM layer: a tick's
    statements cost a third of what they did through the session)."""
    return db.session.connection().execute(stmt, params)


ACTIVITY_CACHE_SECONDS = 60
# tenant_id -> (activities_version, until, {activity_id: ActivityRow with its units}), per process
_activity_cache: dict[int, tuple[int, float, dict]] = {}


def load_activities(activity_ids, *, with_units: bool = False, version: int | None = None) -> list:
    """The commune's activities with these ids, as rows (ordered as the pages list them), with
    their units (Matin, Repas…) in the same statement when asked.

    `version`: the commune's activities version read with the démarche (`CartRow`): the rows are
    then kept per process and read again only when an activity or a unit changed (any ORM flush
    gives the commune a new random version, see `_activities_changed`), or after
    ACTIVITY_CACHE_SECONDS (a change written outside the ORM).  Shared rows: never modified."""
    tid = require_tenant_id()
    ids = sorted(set(activity_ids))
    ttl = current_app.config.get("ACTIVITY_CACHE_SECONDS", ACTIVITY_CACHE_SECONDS)
    if not version or not ttl:  # 0: never changed through the ORM (nothing vouches for a cached copy)
        return _read_activities(ids, tid, with_units=with_units)
    now = time.monotonic()
    hit = _activity_cache.get(tid)
    fresh = hit is not None and hit[0] == version and hit[1] > now
    if fresh and all(i in hit[2] for i in ids):
        return sorted((hit[2][i] for i in ids), key=lambda a: (a.position, a.id))
    rows = _read_activities(ids, tid, with_units=True)
    kept = hit[2] if fresh else {}
    kept.update((a.id, a) for a in rows)
    _activity_cache[tid] = (version, hit[1] if fresh else now + ttl, kept)
    return rows


def _read_activities(ids: list[int], tid: int, *, with_units: bool) -> list:
    params = {"activity_ids": ids, "tenant": tid}
    if not with_units:
        return [ActivityRow(*row) for row in hot_rows(_ACTIVITIES, params)]
    out: dict[int, object] = {}
    for row in hot_rows(_ACTIVITIES_WITH_UNITS, params):
        activity = out.get(row[0])
        if activity is None:
            activity = out[row[0]] = ActivityRow(*row[:_ACT_WIDTH])
        if row[_ACT_WIDTH] is not None:
            activity.units.append(UnitRow(*row[_ACT_WIDTH:]))
    return list(out.values())


@event.listens_for(Session, "after_flush")
def _activities_changed(session, _flush_context) -> None:
    """An activity or a unit was written: its commune's activities get a new version (in the same
    transaction), so every process reads them again."""
    tids = {obj.tenant_id for obj in (*session.new, *session.dirty, *session.deleted)
            if isinstance(obj, Activity | ActivityUnit) and obj.tenant_id is not None}
    if tids:
        session.connection().execute(update(_tenant).where(_tenant.c.id.in_(sorted(tids)))
                                     .values(activities_version=secrets.randbits(62) | 1))


def read_cart_and_children(cart_id: int) -> tuple[CartRow | None, list[ChildRow], set[tuple[int, int]]]:
    """The démarche with its items (no lock: a page), the children it is for (by birth date) and
    their accepted inscriptions (child_id, activity_id) to its activities, in one statement.
    (None, [], set()) when the démarche is not the current commune's."""
    found = hot_rows(_CART_AND_CHILDREN, {"cart_id": int(cart_id), "tenant": require_tenant_id()})
    if not found:
        return None, [], set()
    cart = _cart_with_items(found[0])
    wanted, activities = set(cart.child_ids), set(cart.activity_ids)
    children: dict[int, ChildRow] = {}
    inscribed: set[tuple[int, int]] = set()
    for row in found:
        if row[9] is None or row[9] not in wanted:
            continue
        if row[9] not in children:
            children[row[9]] = ChildRow(*row[9:13])
        if row[13] in activities:
            inscribed.add((row[9], row[13]))
    return cart, list(children.values()), inscribed


def load_slots(activity_id: int, first: date, last: date, child_ids=()) -> tuple[list[SlotRow], list]:
    """An activity's slots that fall in [first, last], by day, time slot and title, and these
    children's reservations on them (for `Context.load(reservations=…)`)."""
    slots: dict[int, SlotRow] = {}
    reservations = []
    w = _SLOT_WIDTH + 1
    for row in hot_rows(_SLOTS_IN_RANGE, {"activity_id": activity_id, "first": first, "last": last,
                                      "child_ids": sorted(set(child_ids)), "tenant": require_tenant_id()}):
        slot = slots.get(row[0])
        if slot is None:
            slot = slots[row[0]] = SlotRow(*row[:w])
        if row[w] is not None:
            reservations.append((ResRow(*row[w:]), slot.activity_id, slot.day, slot.time_slot))
    return list(slots.values()), reservations


def lock_cart(cart_id: int) -> CartRow | None:
    """Lock the démarche (first, the order every path follows) and read its items in the same
    statement.  None when it is not the current commune's (or does not exist).  May raise Busy."""
    found = lock_rows(Cart, _LOCK_CART, {"cart_id": int(cart_id), "tenant": require_tenant_id()}, [int(cart_id)])
    return _cart_with_items(found[0]) if found else None


def lock_cart_and_slots(cart_id: int, slot_ids, child_ids) -> tuple[CartRow | None, list]:
    """A tick's locks in one statement: the démarche (with its items), then the wished slots with
    the wished children (the rows `set_choices(locked=…)` takes).  (None, []) when the démarche,
    a slot or a child is not found in the commune.  May raise Busy."""
    slot_ids, child_ids = sorted(set(slot_ids)), sorted(set(child_ids))
    rows = lock_rows(Cart, _LOCK_CART_AND_SLOTS, {"cart_id": int(cart_id), "slot_ids": slot_ids,
                                                  "child_ids": child_ids, "tenant": require_tenant_id()},
                     [int(cart_id)])
    if not rows:
        return None, []
    mark_locked(Slot, slot_ids)
    return _cart_with_items(rows[0]), [row[9:] for row in rows]


def _cart_with_items(row) -> CartRow:
    """A CartRow from a row that begins with the démarche's columns, its activities version and its
    items as one string ("child:slot:action:reservation,…")."""
    cart = CartRow(*row[:8])
    for text_ in (row[8] or "").split(","):
        if text_:
            child, slot, action, reservation, activity, time_slot, day = text_.split(":")
            cart.items[(int(child), int(slot))] = ItemRow(int(child), int(slot), action,
                                                          int(reservation) if reservation else None,
                                                          int(activity), time_slot or None,
                                                          date.fromisoformat(day[:10]))
    return cart


class _Writes:
    """What one call of the core changes, sent at the end in a few statements (executemany)."""

    def __init__(self, tenant_id: int, cart_id: int):
        self.tenant_id, self.cart_id = tenant_id, cart_id
        self.slots: dict[int, object] = {}            # slots whose `taken` changed
        self.res_changed: dict[int, ResRow] = {}      # existing reservations whose state changed
        self.res_new: list[ResRow] = []               # reservations to insert
        self.items_new: list[tuple[ItemRow, ResRow | None]] = []
        self.items_gone: list[tuple[int, int]] = []
        self.freed: set[int] = set()                   # slots where a place came free

    def taken(self, slot) -> None:
        self.slots[slot.id] = slot

    def reservation(self, res: ResRow) -> None:
        if res.id is None:
            if res not in self.res_new:
                self.res_new.append(res)
        else:
            self.res_changed[res.id] = res

    def add_item(self, item: ItemRow, res: ResRow | None = None) -> None:
        self.items_new.append((item, res))

    def drop_item(self, child_id: int, slot_id: int) -> None:
        new = [(i, r) for i, r in self.items_new if (i.child_id, i.slot_id) != (child_id, slot_id)]
        if len(new) != len(self.items_new):  # added by this very call: nothing to delete
            self.items_new = new
        else:
            self.items_gone.append((child_id, slot_id))

    AT_ONCE_MAX = 8  # rows of a kind; beyond (Tout cocher, a periodicity), one statement per kind

    def send(self) -> None:
        gone = set(self.items_gone)
        if is_postgres() and max(len(self.items_gone), len(self.res_changed), len(self.res_new), len(self.items_new),
                                 len(self.slots)) <= self.AT_ONCE_MAX \
                and not any((i.child_id, i.slot_id) in gone for i, _r in self.items_new):
            self._send_at_once()  # (an item dropped and added again in one call: in turn, below)
        else:
            self._send_each()
        _forget(Slot, self.slots)
        _forget(Reservation, self.res_changed)

    def _send_at_once(self) -> None:
        """PostgreSQL: every change in one statement (data-modifying CTEs over VALUES lists, the
        text remembered per shape, so prepared once); the new reservations' ids come back."""
        new, items = self.res_new, self.items_new
        shape = (len(self.items_gone), len(self.res_changed), len(new), len(items), len(self.slots))
        params = {"tenant": self.tenant_id, "cart": self.cart_id, "now": utcnow()}
        for k, (c, s) in enumerate(self.items_gone):
            params[f"gc{k}"], params[f"gs{k}"] = c, s
        for k, r in enumerate(self.res_changed.values()):
            params.update({f"ci{k}": r.id, f"cs{k}": r.status, f"cc{k}": r.cart_id, f"cu{k}": r.held_until})
        for k, r in enumerate(new):
            params.update({f"nc{k}": r.child_id, f"ns{k}": r.slot_id, f"na{k}": r.activity_id, f"nf{k}": r.family_id,
                           f"nt{k}": r.status, f"nk{k}": r.cart_id, f"nu{k}": r.held_until})
        for k, (i, r) in enumerate(items):
            params.update({f"ic{k}": i.child_id, f"is{k}": i.slot_id, f"ia{k}": i.action,
                           f"ir{k}": r.id if r is not None else i.reservation_id})
        for k, slot in enumerate(self.slots.values()):
            params[f"si{k}"], params[f"st{k}"] = slot.id, slot.taken
        ids = {(c, s): rid for rid, c, s in hot_rows(_write_statement(shape), params)}
        for res in new:
            res.id = ids[(res.child_id, res.slot_id)]
        for item, res in items:
            if res is not None:
                item.reservation_id = res.id

    def _send_each(self) -> None:
        session, tid = db.session.connection(), self.tenant_id
        if self.items_gone:
            session.execute(_DROP_ITEM, [{"b_cart": self.cart_id, "b_child": c, "b_slot": s, "b_tenant": tid}
                                         for c, s in self.items_gone])
        if self.res_changed:
            session.execute(_SET_RES, [{"b_id": r.id, "b_tenant": tid, "b_status": r.status, "b_cart": r.cart_id,
                                        "b_until": r.held_until} for r in self.res_changed.values()])
        if self.res_new:
            now = utcnow()
            ids = session.execute(_ADD_RES, [
                {"tenant_id": tid, "child_id": r.child_id, "slot_id": r.slot_id, "activity_id": r.activity_id,
                 "family_id": r.family_id, "status": r.status, "cart_id": r.cart_id, "held_until": r.held_until,
                 "created_at": now, "updated_at": now} for r in self.res_new]).scalars().all()
            for res, rid in zip(self.res_new, ids, strict=True):
                res.id = rid
        if self.items_new:
            session.execute(_ADD_ITEM, [
                {"tenant_id": tid, "cart_id": self.cart_id, "child_id": i.child_id, "slot_id": i.slot_id,
                 "action": i.action, "reservation_id": r.id if r is not None else i.reservation_id}
                for i, r in self.items_new])
            for item, res in self.items_new:
                if res is not None:
                    item.reservation_id = res.id
        if self.slots:
            session.execute(_SET_TAKEN, [{"b_id": s.id, "b_tenant": tid, "b_taken": s.taken}
                                         for s in self.slots.values()])


def _forget(model, ids) -> None:
    """ORM copies of rows just written with Core statements (a caller may hold some) read them again."""
    session = db.session()
    for ident in ids:
        obj = session.identity_map.get(session.identity_key(model, ident))
        if obj is not None and obj not in session.dirty:
            session.expire(obj)


@dataclass
class Context:
    """Everything needed to judge cells, loaded with a constant number of queries."""

    cart: Cart | None
    activities: dict[int, Activity]
    children: dict[int, Child]
    slots: dict[int, Slot]
    zone: str
    now: datetime = field(default_factory=cal.now_local)
    reservations: dict[tuple[int, int], Reservation] = field(default_factory=dict)
    items: dict[tuple[int, int], CartItem] = field(default_factory=dict)
    inscribed: set[tuple[int, int]] = field(default_factory=set)
    # (child, activity, day, time_slot) -> slot ids taking a place
    busy: dict[tuple, set[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, cart: Cart | None, activities, children, slots, zone: str, now=None,
             inscribed: set | None = None, reservations: list | None = None) -> Context:
        """`inscribed`: the children's accepted (child_id, activity_id), when read with them;
        `reservations`: theirs on `slots` [(row, activity_id, day, time_slot)], when read with the slots."""
        ctx = cls(cart=cart, activities={a.id: a for a in activities}, children={c.id: c for c in children},
                  slots={s.id: s for s in slots}, zone=zone, now=now or cal.now_local())
        child_ids = list(ctx.children)
        if inscribed is not None:
            ctx.inscribed = {(c, a) for c, a in inscribed if a in ctx.activities}
        elif child_ids and ctx.activities:
            if all(_loaded(c, "inscriptions") for c in children):  # read with the children
                ctx.inscribed.update((i.child_id, i.activity_id) for c in children for i in c.inscriptions
                                     if i.status == INSCRIPTION_ACCEPTED and i.activity_id in ctx.activities)
            else:
                ctx.inscribed.update((c, a) for c, a in db.session.execute(
                    select(Inscription.child_id, Inscription.activity_id).where(
                        Inscription.child_id.in_(child_ids), Inscription.activity_id.in_(list(ctx.activities)),
                        Inscription.status == INSCRIPTION_ACCEPTED)))
        days = sorted({s.day for s in slots})
        if reservations is not None:
            for res, activity_id, day, time_slot in reservations:
                ctx._index(res, activity_id, day, time_slot)
        elif child_ids and days:
            for row in hot_rows(_RESERVATIONS_IN_RANGE, {
                    "child_ids": child_ids, "activity_ids": list(ctx.activities), "first": days[0], "last": days[-1],
                    "tenant": require_tenant_id()}):
                ctx._index(ResRow(*row[:_RES_WIDTH]), *row[_RES_WIDTH:])
        if cart is not None:
            if isinstance(cart, CartRow):
                ctx.items = dict(cart.items)
            else:
                items = cart.current_items if _loaded(cart, "current_items") else db.session.scalars(
                    select(CartItem).where(CartItem.cart_id == cart.id).execution_options(populate_existing=True))
                for item in items:  # read with the démarche (its lock or its page) where it could be
                    ctx.items[(item.child_id, item.slot_id)] = item
        return ctx

    def _index(self, res, activity_id: int, day: date, time_slot: str | None) -> None:
        """Remember a reservation of a child, and whether it makes the child busy in its time slot."""
        self.reservations[(res.child_id, res.slot_id)] = res
        key = (res.child_id, activity_id, day, time_slot)
        if res.status in RES_TAKING_PLACE and self._counts(res):
            self.busy.setdefault(key, set()).add(res.slot_id)
        else:
            self.busy.setdefault(key, set()).discard(res.slot_id)

    def _counts(self, res: Reservation) -> bool:
        return not is_expired_hold(res)

    # ------------------------------------------------------------ judging

    def blocked_reason(self, child: Child, slot: Slot, *, for_cancel: bool = False) -> str | None:
        activity = self.activities[slot.activity_id]
        if self.cart is not None and (child.id not in self.cart.child_ids or activity.id not in self.cart.activity_ids):
            return "not_in_cart"
        if (child.id, activity.id) not in self.inscribed:
            return "not_inscribed"
        first = slot_dates(slot)[0]
        if for_cancel:
            rule = activity.cancel_deadline or activity.booking_deadline
            return "cancel_deadline" if cal.is_past_deadline(rule, first, self.now) else None
        for day in slot_dates(slot):
            reason = cal.closed_reason(activity.calendar or {}, day, zone=self.zone,
                                       starts_on=activity.starts_on, ends_on=activity.ends_on)
            if reason and slot.unit_id is not None:  # sessions are explicit: only the period counts
                return reason
            if reason == cal.CLOSED_OUTSIDE:
                return reason
        if activity.opening_at is not None and self.now.astimezone(UTC).replace(tzinfo=None) < activity.opening_at:  # naive UTC
            return "not_open"
        if activity.validation_mode == VALIDATION_PRERESERVATION and activity.prereservation_until \
                and self.now.date() > activity.prereservation_until:
            return "prereservation_closed"
        if cal.is_past_deadline(activity.booking_deadline, first, self.now):
            return "deadline"
        low = slot.age_min if slot.age_min is not None else activity.age_min
        high = slot.age_max if slot.age_max is not None else activity.age_max
        age = child.age_on(first)
        if (low is not None and age < low) or (high is not None and age > high):
            return "age"
        if activity.one_per_time_slot and slot.time_slot:
            others = self.busy.get((child.id, activity.id, slot.day, slot.time_slot), set()) - {slot.id}
            if others:
                return "time_slot"
        return None

    def cell(self, child_id: int, slot_id: int) -> Cell:
        child, slot = self.children[child_id], self.slots[slot_id]
        activity = self.activities[slot.activity_id]
        res = self.reservations.get((child_id, slot_id))
        item = self.items.get((child_id, slot_id))
        status = res.status if res else None
        if item is not None and item.action == ACTION_CANCEL:
            return Cell(child_id, slot_id, CANCEL, reservation_status=status)
        if item is not None and item.action == ACTION_WAITLIST:
            return Cell(child_id, slot_id, WAITLIST)
        if res is not None and res.status == RES_HELD and self.cart is not None and res.cart_id == self.cart.id:
            return Cell(child_id, slot_id, HELD, reservation_status=status)
        if res is not None and res.status in (RES_PENDING, RES_RESERVED):
            return Cell(child_id, slot_id, BOOKED, reservation_status=status)
        if res is not None and res.status == RES_ABSENT:  # booked, absence declared: keeps its place
            return Cell(child_id, slot_id, BLOCKED, "absent", reservation_status=status)
        if res is not None and res.status == RES_WAITLIST:
            return Cell(child_id, slot_id, WAITLISTED, reservation_status=status)
        if res is not None and res.status == RES_HELD and self._counts(res):
            return Cell(child_id, slot_id, BLOCKED, "other_cart", reservation_status=status)
        reason = self.blocked_reason(child, slot)
        if reason:
            return Cell(child_id, slot_id, BLOCKED, reason)
        if online_remaining(activity, slot) <= 0:
            return Cell(child_id, slot_id, FULL, "full")
        return Cell(child_id, slot_id, FREE)


# ====================================================================== carts (the wizard)

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


def _release(res: Reservation, slot: Slot) -> None:
    if res.status in RES_TAKING_PLACE:
        slot.taken = max(0, slot.taken - 1)
    res.status = RES_CANCELLED
    res.cart_id = None
    res.held_until = None


_RELEASE_EXPIRED = (update(_res).where(_res.c.slot_id.in_(bindparam("slot_ids", expanding=True)),
                                       _res.c.tenant_id == bindparam("b_tenant"), _res.c.status == RES_HELD,
                                       _res.c.held_until < bindparam("now"))
                    .values(status=RES_CANCELLED, cart_id=None, held_until=None)
                    .returning(_res.c.id, _res.c.slot_id))
_DROP_ITEMS_OF = delete(_item).where(_item.c.reservation_id.in_(bindparam("res_ids", expanding=True)),
                                     _item.c.tenant_id == bindparam("b_tenant"))


def release_expired_holds_of(slots: dict) -> list[int]:
    """Under the slots' locks: free holds whose démarche was abandoned (their démarche items go
    with them).  `slots` are locked rows or ORM slots; their `taken` goes down in memory, for the
    caller to write.  Returns the freed slot ids, once per freed place."""
    if not slots:
        return []
    tid = require_tenant_id()
    freed = _run(_RELEASE_EXPIRED, {"slot_ids": list(slots), "b_tenant": tid, "now": utcnow()}).all()
    if not freed:
        return []
    _run(_DROP_ITEMS_OF, {"res_ids": [rid for rid, _s in freed], "b_tenant": tid})
    for _rid, slot_id in freed:
        slot = slots[slot_id]
        slot.taken = max(0, slot.taken - 1)
    _forget(Reservation, [rid for rid, _s in freed])
    _forget_items_of([rid for rid, _s in freed])
    return [slot_id for _rid, slot_id in freed]


def _forget_items_of(reservation_ids) -> None:
    """ORM démarche items of these reservations, deleted by a Core statement, are read again (gone)."""
    gone = set(reservation_ids)
    session = db.session()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CartItem) and obj.reservation_id in gone and obj not in session.dirty:
            session.expire(obj)


def _exclusive(activity: Activity, slot) -> bool:
    """"One activity per time slot" applies to this slot."""
    return bool(activity.one_per_time_slot and slot.time_slot)


def set_choices(ctx: Context, wishes: list[tuple[int, int, bool]], *, waitlist: bool = False,
                locked: list | None = None) -> dict:
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
    # The cart first: a concurrent "Valider" of the same démarche is then either done (and this
    # tick refused) or not started; checked under the lock with fresh values.
    session = db.session()
    if session.new or session.dirty or session.deleted:  # the Core statements below see the session's changes
        session.flush()
    cart = ctx.cart
    if not (isinstance(cart, CartRow) and is_locked(Cart, cart.id)):
        cart = lock_cart(cart.id)
    if cart is None or not cart_is_open(cart):
        raise BookingError("cart_closed")
    ctx.cart = cart
    ctx.items = dict(cart.items)
    slot_ids = sorted({s for _c, s, _w in wishes})
    child_ids = sorted({c for c, _s, _w in wishes})
    if not set(child_ids).issubset(cart.child_ids):
        raise BookingError("not_in_cart")
    tid = require_tenant_id()
    slots: dict[int, SlotRow] = {}
    children: dict[int, ChildRow] = {}
    inscribed: set[tuple[int, int]] = set()
    ctx.reservations, ctx.busy = {}, {}
    c0, r0 = _SLOT_WIDTH + 2, _SLOT_WIDTH + 6  # where the child's columns, then the reservation's, begin
    if locked is None:
        locked = lock_rows(Slot, _LOCK_SLOTS, {"slot_ids": slot_ids, "child_ids": child_ids, "tenant": tid}, slot_ids)
    for row in locked:
        slot = slots.get(row[0])
        if slot is None:
            slot = slots[row[0]] = SlotRow(*row[:c0])
        if row[c0] not in children:
            children[row[c0]] = ChildRow(*row[c0:c0 + 4])
        if row[r0] is not None:
            inscribed.add((row[c0], row[r0]))
        if row[r0 + 1] is not None:
            ctx._index(ResRow(*row[r0 + 1:]), slot.activity_id, slot.day, slot.time_slot)
    if set(slots) != set(slot_ids) or any(s.activity_id not in ctx.activities for s in slots.values()) \
            or set(children) != set(child_ids) or any(c.family_id != cart.family_id for c in children.values()):
        raise BookingError("not_in_cart")
    ctx.slots.update(slots)
    ctx.children.update(children)
    ctx.inscribed = inscribed
    exclusive = [s for s in slots.values() if _exclusive(ctx.activities[s.activity_id], s)]
    if exclusive:  # the children locked (after the slots), then what they take elsewhere in these time slots
        lock_rows(Child, _LOCK_CHILDREN, {"child_ids": child_ids, "tenant": tid}, child_ids)
        for row in hot_rows(_BUSY, {"child_ids": child_ids, "days": sorted({s.day for s in exclusive}),
                                "activity_ids": sorted({s.activity_id for s in exclusive}), "tenant": tid}):
            if (row[1], row[2]) not in ctx.reservations:
                ctx._index(ResRow(*row[:_RES_WIDTH]), *row[_RES_WIDTH:])
    # Holds of abandoned démarches are freed when they matter: a slot that looks full, or a
    # child's own expired hold about to be taken again; the worker's sweep frees the others every
    # minute.  Without a worker (no Redis: the newcomer's embedded mode) a tick frees them on
    # every slot it locks, as nothing else would.
    now = utcnow()
    sweeping = bool(current_app.config.get("REDIS_URL"))
    stale = {s.id for s in slots.values() if not sweeping or online_remaining(ctx.activities[s.activity_id], s) <= 0}
    stale |= {sid for (_c, sid), res in ctx.reservations.items() if sid in slots and is_expired_hold(res, now)}
    freed = release_expired_holds_of({sid: slots[sid] for sid in sorted(stale)}) if stale else []
    if freed:  # the rows ctx holds were freed too: read them as the database has them now
        for key, res in ctx.reservations.items():
            if key[1] in freed and is_expired_hold(res, now):
                res.status, res.cart_id, res.held_until = RES_CANCELLED, None, None
                ctx._index(res, slots[key[1]].activity_id, slots[key[1]].day, slots[key[1]].time_slot)
        ctx.items = {k: i for k, i in ctx.items.items()
                     if not (i.action == ACTION_BOOK and k[1] in freed and ctx.reservations.get(k) is not None
                             and ctx.reservations[k].status == RES_CANCELLED)}
    writes = _Writes(tid, cart.id)
    for sid in freed:
        writes.taken(slots[sid])
    activity_hold = {a.id: a.hold_minutes for a in ctx.activities.values()}
    if touch(cart, max(activity_hold.values() or [20])):
        # every action keeps the démarche's earlier holds alive as long as the démarche itself
        _run(update(_cart).where(_cart.c.id == cart.id, _cart.c.tenant_id == tid).values(expires_at=cart.expires_at))
        _run(update(_res).where(_res.c.cart_id == cart.id, _res.c.status == RES_HELD,
                                              _res.c.tenant_id == writes.tenant_id)
                           .values(held_until=cart.expires_at))
        for res in ctx.reservations.values():
            if res.status == RES_HELD and res.cart_id == cart.id:
                res.held_until = cart.expires_at
        _forget(Cart, [cart.id])
    results = {}
    for child_id, slot_id, want in wishes:
        results[(child_id, slot_id)] = _apply(ctx, writes, child_id, slot_id, want, waitlist=waitlist)
    writes.send()
    promote = {sid for sid in freed} | writes.freed
    for slot_id in sorted(promote):
        if slots[slot_id].has_waitlist:
            promote_waitlist(slots[slot_id])  # ORM rows of the line; the counter below
    if any(slots[sid].has_waitlist for sid in promote):
        _run(_SET_TAKEN, [{"b_id": sid, "b_tenant": writes.tenant_id, "b_taken": slots[sid].taken}
                                        for sid in sorted(promote)])
    cart.items = ctx.items
    return results


def _apply(ctx: Context, writes: _Writes, child_id: int, slot_id: int, want: bool, *, waitlist: bool) -> Cell:
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
            res = ResRow(None, child_id, slot_id, activity.id, child.family_id, RES_HELD, cart.id, cart.expires_at)
        res.status, res.cart_id, res.held_until = RES_HELD, cart.id, cart.expires_at
        writes.reservation(res)
        slot.taken += 1
        writes.taken(slot)
        item = ItemRow(child_id, slot_id, ACTION_BOOK, res.id)
        writes.add_item(item, res)
        ctx.items[(child_id, slot_id)] = item
        ctx._index(res, slot.activity_id, slot.day, slot.time_slot)
        return ctx.cell(child_id, slot_id)

    # want == False
    if current.state == HELD:
        _release(res, slot)
        writes.reservation(res)
        writes.taken(slot)
        writes.freed.add(slot_id)
        if item is not None:
            writes.drop_item(child_id, slot_id)
            ctx.items.pop((child_id, slot_id), None)
        ctx._index(res, slot.activity_id, slot.day, slot.time_slot)
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


def cancel_cart(cart: Cart) -> None:
    """"Annuler la démarche": every held place is released at once."""
    lock_one(Cart, cart.id)  # same order as a tick: the cart, then its slots
    holds = db.session.scalars(select(Reservation).where(Reservation.cart_id == cart.id,
                                                         Reservation.status == RES_HELD)).all()
    slots = lock(Slot, {r.slot_id for r in holds})
    for res in holds:
        _release(res, slots[res.slot_id])
    for item in list(cart.items):
        db.session.delete(item)
    cart.status = CART_CANCELLED
    for slot in slots.values():
        promote_waitlist(slot)


def expire_abandoned_carts(now: datetime | None = None) -> int:
    """Release the holds of démarches not validated in time (a periodic job)."""
    now = now or utcnow()
    carts = db.session.scalars(select(Cart).where(Cart.status == CART_OPEN, Cart.expires_at < now)).all()
    for cart in carts:
        cancel_cart(cart)
        cart.status = CART_EXPIRED
    return len(carts)


# ====================================================================== waiting list

def promote_waitlist(slot: Slot) -> list[Reservation]:
    """Give freed places to the first in line (slot already locked by the caller)."""
    from core.demandes import on_promoted  # late import: demandes builds on booking

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
        res.status = RES_RESERVED if activity.validation_mode == VALIDATION_IMMEDIATE else RES_PENDING
        slot.taken += 1
        promoted.append(res)
        on_promoted(res, slot, activity)
    return promoted


def _busy_elsewhere(res: Reservation, slot: Slot) -> bool:
    """Whether the waiting child already takes a place (or holds one) in another session of the same
    activity, day and time slot.  The child is locked first, as a tick on that other session does."""
    lock(Child, [res.child_id])
    others = db.session.scalars(select(Reservation).join(Slot, Reservation.slot_id == Slot.id).where(
        Reservation.child_id == res.child_id, Reservation.activity_id == slot.activity_id, Slot.id != slot.id,
        Slot.day == slot.day, Slot.time_slot == slot.time_slot, Reservation.status.in_(RES_TAKING_PLACE))).all()
    return any(not is_expired_hold(r) for r in others)


def describe_slot(slot: Slot, activity: Activity, unit_label: str | None = None) -> str:
    """"Repas — lundi 19/10/2026" (a unit) or "Stage de roller — du mardi 19/04/2022 au vendredi 22/04/2022"."""
    name = unit_label or slot.unit_label or slot.title or activity.name
    dates = slot_dates(slot)
    if len(dates) > 1:
        return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')} → {format_date(dates[-1], 'EEEE dd/MM/yyyy')}"
    return f"{name} — {format_date(dates[0], 'EEEE dd/MM/yyyy')}"

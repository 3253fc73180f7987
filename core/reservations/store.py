"""Every SQL statement the reservation core sends on reservations, démarches (carts) and slots.

A tick is the hottest request of an opening morning: it reads and writes plain rows (column
selects, Core INSERT/UPDATE/DELETE) rather than ORM objects and a unit-of-work flush, the cost of
which was most of a tick (BENCHMARKS.md).  The statements are Core, built from the tables'
columns, run through `core.fastsql` (compiled once per process); every column is labelled and
every row is read by its labels into a small dataclass (never by position).  Core statements skip
the ORM's tenancy guard, so every statement names its commune (the `tenant` parameter, always
filled by this module from the tenant scope, never by a caller).

The ORM objects (core.models) stay for the back-office and the family file; the rules
(`core.reservations.rules.Context`) read these rows.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields, make_dataclass
from datetime import date, datetime
from operator import itemgetter

from flask import current_app
from sqlalchemy import (
    String,
    and_,
    bindparam,
    cast,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    null,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core import fastsql
from core.clock import utcnow
from core.fastsql import Hot
from core.locking import busy_on_lock_timeout, is_postgres, mark_locked, set_lock_timeout
from core.models import (
    INSCRIPTION_ACCEPTED,
    RES_CANCELLED,
    RES_HELD,
    RES_TAKING_PLACE,
    RES_WAITLIST,
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

# ====================================================================== typed rows


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
class CartRow:
    """A démarche with its items {(child_id, slot_id): ItemRow}."""
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
class SlotRow:
    """A slot as a page or a tick reads it; `taken` is written back when it changes."""
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


@dataclass(slots=True)
class Placed:
    """A child's reservation with where its slot lies (what "one activity per time slot" judges)."""
    res: ResRow
    activity_id: int
    day: date
    time_slot: str | None


class _Reader:
    """Builds `cls` from a row whose columns are labelled `prefix` + the field's name."""

    def __init__(self, cls, prefix: str, names=None):
        self.cls, self.prefix = cls, prefix
        self.names = tuple(names or (f.name for f in fields(cls)))
        self.labels = tuple(prefix + n for n in self.names)
        # the fields' own order (the rest defaulted): each column found by its label, passed by position
        self.positional = len(self.names) > 1 and self.names == tuple(f.name for f in fields(cls))[:len(self.names)]
        self._readers: dict[tuple, object] = {}  # per result shape (its columns' labels): a statement has one

    def columns(self, table, **extra):
        """The table's columns for these fields (or `extra[name]`), labelled."""
        return tuple((extra[n] if n in extra else table.c[n]).label(self.prefix + n) for n in self.names
                     if n in extra or n in table.c)

    def on(self, keys: tuple):
        """A function building `cls` from a row of a result whose columns are `keys` (each field's
        column found by its label once per shape of result, not per row), or None when the row has
        none (an outer join: the first field, the id, is NULL)."""
        read = self._readers.get(keys)
        if read is None:
            read = self._readers[keys] = self._reader(keys)
        return read

    def _reader(self, keys: tuple):
        get = itemgetter(*(keys.index(label) for label in self.labels))
        first = keys.index(self.labels[0])
        cls, names = self.cls, self.names
        if self.positional:
            def read(row):
                return None if row[first] is None else cls(*get(row))
            return read

        def read(row):
            return None if row[first] is None else cls(**dict(zip(names, get(row), strict=True)))
        return read


def _keys(rows) -> tuple:
    return rows[0]._fields if rows else ()


# ====================================================================== statements

_act, _cart, _item, _slot, _res, _child, _ins, _unit, _tenant = (m.__table__ for m in (
    Activity, Cart, CartItem, Slot, Reservation, Child, Inscription, ActivityUnit, Tenant))
_T = bindparam("tenant")  # every statement names its commune (Core statements skip the ORM guard)

_as_res = _Reader(ResRow, "r_")
_as_slot = _Reader(SlotRow, "s_", [f.name for f in fields(SlotRow) if f.name not in ("unit_label", "has_waitlist")])
_as_child = _Reader(ChildRow, "c_")
_as_activity = _Reader(ActivityRow, "a_", [c.key for c in _act.columns])
_as_unit = _Reader(UnitRow, "u_")
_RES = _as_res.columns(_res)
_SLOT = _as_slot.columns(_slot)
_CHILD = _as_child.columns(_child)
_UNIT_LABEL = _unit.c.label.label("unit_label")
_PLACE = (_slot.c.activity_id.label("p_activity_id"), _slot.c.day.label("p_day"),
          _slot.c.time_slot.label("p_time_slot"))

_ACTIVITIES = Hot(select(*_as_activity.columns(_act))
                  .where(_act.c.id.in_(bindparam("activity_ids", expanding=True)), _act.c.tenant_id == _T)
                  .order_by(_act.c.position, _act.c.id))
_ACTIVITIES_WITH_UNITS = Hot(
    select(*_as_activity.columns(_act), *_as_unit.columns(_unit))
    .select_from(_act.outerjoin(_unit, and_(_unit.c.activity_id == _act.c.id, _unit.c.tenant_id == _T)))
    .where(_act.c.id.in_(bindparam("activity_ids", expanding=True)), _act.c.tenant_id == _T)
    .order_by(_act.c.position, _act.c.id, _unit.c.position, _unit.c.id))
# The démarche with its items as one string ("child:slot:action:reservation:activity:time_slot:day,…",
# `_cart_of`) and the version of the commune's activities.
_version = select(_tenant.c.activities_version).where(_tenant.c.id == _T).scalar_subquery()
_item_slot = _slot.alias("item_slot")
_ITEM_TEXT = (cast(_item.c.child_id, String) + ":" + cast(_item.c.slot_id, String) + ":" + _item.c.action + ":"
              + func.coalesce(cast(_item.c.reservation_id, String), "") + ":"
              + cast(_item_slot.c.activity_id, String) + ":" + func.coalesce(_item_slot.c.time_slot, "") + ":"
              + cast(_item_slot.c.day, String))
_ITEMS = (select(func.aggregate_strings(_ITEM_TEXT, ","))
          .select_from(_item.join(_item_slot, and_(_item_slot.c.id == _item.c.slot_id, _item_slot.c.tenant_id == _T)))
          .where(_item.c.cart_id == _cart.c.id, _item.c.tenant_id == _T)
          .correlate(_cart).scalar_subquery())
_as_cart = _Reader(CartRow, "cart_", [f.name for f in fields(CartRow) if f.name != "items"])
_CART = _as_cart.columns(_cart, activities_version=_version)
_CART_HEAD = (*_CART, _ITEMS.label("cart_items"))
_CART_BY_ID = (_cart.c.id == bindparam("cart_id"), _cart.c.tenant_id == _T)
_READ_CART = Hot(select(*_CART_HEAD).where(*_CART_BY_ID))
_LOCK_CART = Hot(select(*_CART_HEAD).where(*_CART_BY_ID).with_for_update(of=_cart))
# An activity's slots over a range of days (a stage counts on each of its days), with their unit's
# label and these children's reservations on them (the planning: one statement).
_SLOTS_IN_RANGE = Hot(
    select(*_SLOT, _UNIT_LABEL, *_RES)
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
_SLOTS_AND_CHILDREN_FROM = (
    _slot.join(_child, and_(_child.c.id.in_(bindparam("child_ids", expanding=True)), _child.c.tenant_id == _T))
    .outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T))
    .outerjoin(_ins, and_(_ins.c.child_id == _child.c.id, _ins.c.activity_id == _slot.c.activity_id,
                          _ins.c.status == INSCRIPTION_ACCEPTED, _ins.c.tenant_id == _T))
    .outerjoin(_res, and_(_res.c.slot_id == _slot.c.id, _res.c.child_id == _child.c.id, _res.c.tenant_id == _T)))
_SLOTS_AND_CHILDREN = (*_SLOT, _UNIT_LABEL, _waiting.label("has_waitlist"), *_CHILD,
                       _ins.c.activity_id.label("inscribed_to"), *_RES)
_SLOTS_WHERE = (_slot.c.id.in_(bindparam("slot_ids", expanding=True)), _slot.c.tenant_id == _T)
_LOCK_SLOTS = Hot(select(*_SLOTS_AND_CHILDREN).select_from(_SLOTS_AND_CHILDREN_FROM).where(*_SLOTS_WHERE)
                  .order_by(_slot.c.id, _child.c.id).with_for_update(of=_slot))
# A tick's first statement: the démarche (its items as one string) and the wished slots with the
# children, all locked, the démarche first (FOR UPDATE OF cart, slot: the rows of the first table
# of the FROM are locked first; the order of every path: démarche, slots, children).
_LOCK_CART_AND_SLOTS = Hot(
    select(*_CART_HEAD, *_SLOTS_AND_CHILDREN)
    .select_from(_cart.join(_SLOTS_AND_CHILDREN_FROM, true()))  # (one démarche row: no product to fear)
    .where(*_CART_BY_ID, *_SLOTS_WHERE)
    .order_by(_slot.c.id, _child.c.id).with_for_update(of=(_cart, _slot)))
# The planning's first statement: the démarche (its items as one string) and its family's children
# (by birth date) with their accepted inscriptions.
_CART_AND_CHILDREN = Hot(
    select(*_CART_HEAD, *_CHILD, _ins.c.activity_id.label("inscribed_to"))
    .select_from(_cart.outerjoin(_child, and_(_child.c.family_id == _cart.c.family_id, _child.c.tenant_id == _T))
                 .outerjoin(_ins, and_(_ins.c.child_id == _child.c.id, _ins.c.status == INSCRIPTION_ACCEPTED,
                                       _ins.c.tenant_id == _T)))
    .where(*_CART_BY_ID)
    .order_by(_child.c.birth_date, _child.c.id))
# Slots locked alone (in id order), with their unit's label and whether anyone waits for them:
# a démarche cancelled, whose holds they carry.
_LOCK_SLOT_ROWS = Hot(select(*_SLOT, _UNIT_LABEL, _waiting.label("has_waitlist"))
                      .select_from(_slot.outerjoin(_unit, and_(_unit.c.id == _slot.c.unit_id, _unit.c.tenant_id == _T)))
                      .where(*_SLOTS_WHERE).order_by(_slot.c.id).with_for_update(of=_slot))
_HELD_SLOTS = Hot(select(_res.c.slot_id).distinct()
                  .where(_res.c.cart_id == bindparam("cart_id"), _res.c.status == RES_HELD, _res.c.tenant_id == _T)
                  .order_by(_res.c.slot_id))
# A slot's waiting list, first in line first.
_WAITING_LINE = Hot(select(*_RES).where(_res.c.slot_id == bindparam("slot_id"), _res.c.status == RES_WAITLIST,
                                        _res.c.tenant_id == _T)
                    .order_by(_res.c.waitlisted_at, _res.c.id))
_LOCK_CHILDREN = Hot(select(_child.c.id).where(_child.c.id.in_(bindparam("child_ids", expanding=True)),
                                               _child.c.tenant_id == _T)
                     .order_by(_child.c.id).with_for_update(of=_child))
_INSCRIBED = Hot(select(_ins.c.child_id, _ins.c.activity_id)
                 .where(_ins.c.child_id.in_(bindparam("child_ids", expanding=True)),
                        _ins.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
                        _ins.c.status == INSCRIPTION_ACCEPTED, _ins.c.tenant_id == _T))
_PLACED = select(*_RES, *_PLACE).select_from(_res.join(_slot, and_(_res.c.slot_id == _slot.c.id,
                                                                    _slot.c.tenant_id == _T)))
# The children's reservations on these activities over a range of days, with their slot's time slot.
_RESERVATIONS_IN_RANGE = Hot(_PLACED.where(
    _res.c.child_id.in_(bindparam("child_ids", expanding=True)),
    _res.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
    _slot.c.day >= bindparam("first"), _slot.c.day <= bindparam("last"), _res.c.tenant_id == _T))
# What a child takes (or holds) on the days of the wished sessions ("one activity per time slot").
_BUSY = Hot(_PLACED.where(
    _res.c.child_id.in_(bindparam("child_ids", expanding=True)),
    _res.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
    _slot.c.day.in_(bindparam("days", expanding=True)),
    _res.c.status.in_(RES_TAKING_PLACE), _res.c.tenant_id == _T))

_SET_TAKEN = (update(_slot).where(_slot.c.id == bindparam("b_id"), _slot.c.tenant_id == _T)
              .values(taken=bindparam("b_taken")))
_TOUCH_CART = update(_cart).where(_cart.c.id == bindparam("b_cart"), _cart.c.tenant_id == _T).values(
    expires_at=bindparam("until"))
_TOUCH_HOLDS = (update(_res).where(_res.c.cart_id == bindparam("b_cart"), _res.c.status == RES_HELD,
                                   _res.c.tenant_id == _T).values(held_until=bindparam("until")))
_RELEASE_EXPIRED = (update(_res).where(_res.c.slot_id.in_(bindparam("slot_ids", expanding=True)),
                                       _res.c.tenant_id == _T, _res.c.status == RES_HELD,
                                       _res.c.held_until < bindparam("now"))
                    .values(status=RES_CANCELLED, cart_id=None, held_until=None)
                    .returning(_res.c.id, _res.c.slot_id))
_RELEASE_CART = (update(_res).where(_res.c.cart_id == bindparam("b_cart"), _res.c.status == RES_HELD,
                                    _res.c.slot_id.in_(bindparam("slot_ids", expanding=True)), _res.c.tenant_id == _T)
                 .values(status=RES_CANCELLED, cart_id=None, held_until=None, updated_at=bindparam("now"))
                 .returning(_res.c.id, _res.c.slot_id))
_DROP_ITEMS_OF_CART = delete(_item).where(_item.c.cart_id == bindparam("b_cart"), _item.c.tenant_id == _T)
_SET_CART_STATUS = (update(_cart).where(_cart.c.id == bindparam("b_cart"), _cart.c.tenant_id == _T)
                    .values(status=bindparam("status")))
_SET_CART_CHILDREN = (update(_cart).where(_cart.c.id == bindparam("b_cart"), _cart.c.tenant_id == _T)
                      .values(child_ids=bindparam("child_ids", type_=_cart.c.child_ids.type)))
_DROP_ITEMS_OF = delete(_item).where(_item.c.reservation_id.in_(bindparam("res_ids", expanding=True)),
                                     _item.c.tenant_id == _T)

# ---------------------------------------------------------------------- the writes of one call
# Five kinds of rows, each one Core statement over its rows (a UNION ALL of bound rows, a subquery
# both PostgreSQL and SQLite read): démarche items dropped, reservations changed and added, items
# added (a new reservation's id joined in), counters set.  On PostgreSQL they are the
# data-modifying CTEs of one statement; SQLite (no DML in a CTE) runs them in turn.

_WRITE_ROWS = {  # kind: (table, columns of its rows)
    "gone": (_item, ("child_id", "slot_id")),
    "changed": (_res, ("id", "status", "cart_id", "held_until")),
    "added": (_res, ("child_id", "slot_id", "activity_id", "family_id", "status", "cart_id", "held_until")),
    "items": (_item, ("child_id", "slot_id", "action", "reservation_id")),
    "counted": (_slot, ("id", "taken")),
}


def _bound_rows(kind: str, count: int):
    """`count` rows of bound parameters named `{kind}{k}_{column}`, typed as the table's columns."""
    table, columns = _WRITE_ROWS[kind]
    selects = [select(*(bindparam(f"{kind}{k}_{c}", type_=table.c[c].type).label(c) for c in columns))
               for k in range(count)]
    return (selects[0] if count == 1 else union_all(*selects)).subquery(kind[0])


def _write_parts(shape: dict, added_ids):
    """The statements of one call's writes, {kind: statement}, for this many rows of each kind.
    `added_ids`: where an added item finds its new reservation's id (the `added` CTE on PostgreSQL),
    or None when the caller fills it in."""
    parts = {}
    if shape["gone"]:
        g = _bound_rows("gone", shape["gone"])
        parts["gone"] = delete(_item).where(
            _item.c.tenant_id == _T, _item.c.cart_id == bindparam("cart"),
            tuple_(_item.c.child_id, _item.c.slot_id).in_(select(g.c.child_id, g.c.slot_id)))
    if shape["changed"]:
        c = _bound_rows("changed", shape["changed"])
        parts["changed"] = (update(_res).where(_res.c.id == c.c.id, _res.c.tenant_id == _T)
                            .values(status=c.c.status, cart_id=c.c.cart_id, held_until=c.c.held_until,
                                    updated_at=bindparam("now")))
    if shape["added"]:
        n = _bound_rows("added", shape["added"])
        names = _WRITE_ROWS["added"][1]
        parts["added"] = (insert(_res).from_select(
            ["tenant_id", *names, "created_at", "updated_at"],
            select(_T, *(n.c[c] for c in names), bindparam("now", type_=_res.c.created_at.type),
                   bindparam("now", type_=_res.c.updated_at.type)))
            .returning(_res.c.id.label("id"), _res.c.child_id.label("child_id"), _res.c.slot_id.label("slot_id")))
    if shape["items"]:
        i = _bound_rows("items", shape["items"])
        reservation = i.c.reservation_id
        if added_ids is not None:
            reservation = func.coalesce(reservation, select(added_ids.c.id).where(
                added_ids.c.child_id == i.c.child_id, added_ids.c.slot_id == i.c.slot_id).scalar_subquery())
        parts["items"] = insert(_item).from_select(
            ["tenant_id", "cart_id", "child_id", "slot_id", "action", "reservation_id"],
            select(_T, bindparam("cart", type_=_item.c.cart_id.type), i.c.child_id, i.c.slot_id, i.c.action,
                   reservation))
    if shape["counted"]:
        t = _bound_rows("counted", shape["counted"])
        parts["counted"] = update(_slot).where(_slot.c.id == t.c.id, _slot.c.tenant_id == _T).values(taken=t.c.taken)
    return parts


def _writes_at_once(shape: dict) -> Hot:
    """PostgreSQL: the parts as the CTEs of one statement, which answers the new reservations' ids."""
    added = None
    if shape["added"]:
        added = _write_parts({**{k: 0 for k in shape}, "added": shape["added"]}, None)["added"].cte("added")
    parts = _write_parts({**shape, "added": 0}, added)
    ctes = [part.cte(kind) for kind, part in parts.items()]
    if added is not None:
        return Hot(select(added.c.id, added.c.child_id, added.c.slot_id).add_cte(*ctes))
    return Hot(select(null().label("id"), null().label("child_id"), null().label("slot_id"))
               .where(false()).add_cte(*ctes))


_WRITE_SHAPES_KEPT = 8  # rows of a kind up to which the statement is kept per process (ticks);
_writes_kept: dict[tuple, object] = {}  # beyond (Tout cocher, a periodicity), built for the call


def _writes_for(shape: dict, dialect: str):
    key = (dialect, *shape.values())
    plan = _writes_kept.get(key)
    if plan is None:
        if dialect == "postgresql":
            plan = _writes_at_once(shape)
        else:
            plan = {kind: Hot(part) for kind, part in _write_parts(shape, None).items()}
        if max(shape.values()) <= _WRITE_SHAPES_KEPT:
            _writes_kept[key] = plan
    return plan


# ====================================================================== running them

def _rows(stmt: Hot, **params) -> list:
    return fastsql.rows(stmt, {**params, "tenant": require_tenant_id()})


def _run(stmt, params=None):
    """A Core statement on the session's connection, in its transaction (no ORM layer: a tick's
    statements cost a third of what they did through the session); `tenant` filled in."""
    tid = require_tenant_id()
    if isinstance(params, list):
        params = [{**p, "tenant": tid} for p in params]
    else:
        params = {**(params or {}), "tenant": tid}
    return db.session.connection().execute(stmt, params)


def _locked(model, stmt: Hot, ids, **params) -> list:
    """Run a statement ending in FOR UPDATE OF `model`'s table (rows in id order): the locked `ids`
    join the transaction's memo (core.locking); a lock timeout raises Busy."""
    set_lock_timeout()
    with busy_on_lock_timeout():
        found = _rows(stmt, **params)
    mark_locked(model, ids)
    return found


def flush_pending() -> None:
    """The Core statements below see what the session holds unwritten."""
    session = db.session()
    if session.new or session.dirty or session.deleted:
        session.flush()


# ====================================================================== activities

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
        return _read_activities(ids, with_units=with_units)
    now = time.monotonic()
    hit = _activity_cache.get(tid)
    fresh = hit is not None and hit[0] == version and hit[1] > now
    if fresh and all(i in hit[2] for i in ids):
        return sorted((hit[2][i] for i in ids), key=lambda a: (a.position, a.id))
    rows = _read_activities(ids, with_units=True)
    kept = hit[2] if fresh else {}
    kept.update((a.id, a) for a in rows)
    _activity_cache[tid] = (version, hit[1] if fresh else now + ttl, kept)
    return rows


def _read_activities(ids: list[int], *, with_units: bool) -> list:
    if not with_units:
        found = _rows(_ACTIVITIES, activity_ids=ids)
        if not found:
            return []
        as_activity = _as_activity.on(_keys(found))
        return [as_activity(row) for row in found]
    found = _rows(_ACTIVITIES_WITH_UNITS, activity_ids=ids)
    if not found:
        return []
    keys = _keys(found)
    as_activity, as_unit = _as_activity.on(keys), _as_unit.on(keys)
    out: dict[int, object] = {}
    for row in found:
        activity = as_activity(row)
        activity = out.setdefault(activity.id, activity)
        unit = as_unit(row)
        if unit is not None:
            activity.units.append(unit)
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


# ====================================================================== démarches, slots, children

def _cart_of(found) -> CartRow:
    """A CartRow from the first of rows that carry the démarche's columns, its activities version
    and its items as one string ("child:slot:action:reservation:activity:time_slot:day,…")."""
    row = found[0]
    cart = _as_cart.on(row._fields)(row)
    for text_ in (row.cart_items or "").split(","):
        if text_:
            child, slot, action, reservation, activity, time_slot, day = text_.split(":")
            cart.items[(int(child), int(slot))] = ItemRow(int(child), int(slot), action,
                                                          int(reservation) if reservation else None,
                                                          int(activity), time_slot or None,
                                                          date.fromisoformat(day[:10]))
    return cart


def read_cart(cart_id: int) -> CartRow | None:
    """The démarche with its items (no lock).  None when it is not the current commune's."""
    flush_pending()
    found = _rows(_READ_CART, cart_id=int(cart_id))
    return _cart_of(found) if found else None


def read_cart_and_children(cart_id: int) -> tuple[CartRow | None, list[ChildRow], set[tuple[int, int]]]:
    """The démarche with its items (no lock: a page), the children it is for (by birth date) and
    their accepted inscriptions (child_id, activity_id) to its activities, in one statement.
    (None, [], set()) when the démarche is not the current commune's."""
    found = _rows(_CART_AND_CHILDREN, cart_id=int(cart_id))
    if not found:
        return None, [], set()
    cart = _cart_of(found)
    wanted, activities = set(cart.child_ids), set(cart.activity_ids)
    keys = _keys(found)
    as_child, child_at, inscribed_at = _as_child.on(keys), keys.index("c_id"), keys.index("inscribed_to")
    children: dict[int, ChildRow] = {}
    inscribed: set[tuple[int, int]] = set()
    for row in found:
        child_id = row[child_at]
        if child_id is None or child_id not in wanted:
            continue
        if child_id not in children:
            children[child_id] = as_child(row)
        if row[inscribed_at] in activities:
            inscribed.add((child_id, row[inscribed_at]))
    return cart, list(children.values()), inscribed


def load_slots(activity_id: int, first: date, last: date, child_ids=()) -> tuple[list[SlotRow], list[Placed]]:
    """An activity's slots that fall in [first, last], by day, time slot and title, and these
    children's reservations on them (for `Context.load(reservations=…)`)."""
    found = _rows(_SLOTS_IN_RANGE, activity_id=activity_id, first=first, last=last, child_ids=sorted(set(child_ids)))
    keys = _keys(found)
    slots: dict[int, SlotRow] = {}
    reservations = []
    if found:
        as_slot, as_res, slot_at, label_at = _as_slot.on(keys), _as_res.on(keys), keys.index("s_id"), \
            keys.index("unit_label")
    for row in found:
        slot = slots.get(row[slot_at])
        if slot is None:
            slot = slots[row[slot_at]] = as_slot(row)
            slot.unit_label = row[label_at]
        res = as_res(row)
        if res is not None:
            reservations.append(Placed(res, slot.activity_id, slot.day, slot.time_slot))
    return list(slots.values()), reservations


def lock_cart(cart_id: int) -> CartRow | None:
    """Lock the démarche (first, the order every path follows) and read its items in the same
    statement.  None when it is not the current commune's (or does not exist).  May raise Busy."""
    flush_pending()
    found = _locked(Cart, _LOCK_CART, [int(cart_id)], cart_id=int(cart_id))
    return _cart_of(found) if found else None


@dataclass(slots=True)
class LockedSlots:
    """The wished slots as a tick locks them, with the wished children, their accepted inscriptions
    and their reservations on these slots."""
    slots: dict[int, SlotRow] = field(default_factory=dict)
    children: dict[int, ChildRow] = field(default_factory=dict)
    inscribed: set = field(default_factory=set)
    reservations: list[Placed] = field(default_factory=list)


def _locked_slots(rows) -> LockedSlots:
    out = LockedSlots()
    if not rows:
        return out
    keys = _keys(rows)
    as_slot, as_child, as_res = _as_slot.on(keys), _as_child.on(keys), _as_res.on(keys)
    slot_at, child_at, inscribed_at = keys.index("s_id"), keys.index("c_id"), keys.index("inscribed_to")
    label_at, waiting_at = keys.index("unit_label"), keys.index("has_waitlist")
    for row in rows:
        slot = out.slots.get(row[slot_at])
        if slot is None:
            slot = out.slots[row[slot_at]] = as_slot(row)
            slot.unit_label, slot.has_waitlist = row[label_at], bool(row[waiting_at])
        child_id = row[child_at]
        if child_id not in out.children:
            out.children[child_id] = as_child(row)
        if row[inscribed_at] is not None:
            out.inscribed.add((child_id, row[inscribed_at]))
        res = as_res(row)
        if res is not None:
            out.reservations.append(Placed(res, slot.activity_id, slot.day, slot.time_slot))
    return out


def lock_cart_and_slots(cart_id: int, slot_ids, child_ids) -> tuple[CartRow | None, LockedSlots | None]:
    """A tick's locks in one statement: the démarche (with its items), then the wished slots with
    the wished children (what `set_choices(locked=…)` takes).  (None, None) when the démarche,
    a slot or a child is not found in the commune.  May raise Busy."""
    slot_ids, child_ids = sorted(set(slot_ids)), sorted(set(child_ids))
    flush_pending()
    rows = _locked(Cart, _LOCK_CART_AND_SLOTS, [int(cart_id)], cart_id=int(cart_id), slot_ids=slot_ids,
                   child_ids=child_ids)
    if not rows:
        return None, None
    mark_locked(Slot, slot_ids)
    return _cart_of(rows), _locked_slots(rows)


def lock_slots(slot_ids, child_ids) -> LockedSlots:
    """The wished slots locked (in id order), with the wished children (see `LockedSlots`)."""
    slot_ids = sorted(set(slot_ids))
    return _locked_slots(_locked(Slot, _LOCK_SLOTS, slot_ids, slot_ids=slot_ids, child_ids=sorted(set(child_ids))))


def lock_children(child_ids) -> None:
    child_ids = sorted(set(child_ids))
    _locked(Child, _LOCK_CHILDREN, child_ids, child_ids=child_ids)


def held_slot_ids(cart_id: int) -> list[int]:
    """The slots on which the démarche holds places (no lock: the démarche's is what counts)."""
    return [row.slot_id for row in _rows(_HELD_SLOTS, cart_id=int(cart_id))]


def lock_slot_rows(slot_ids) -> dict[int, SlotRow]:
    """These slots locked alone (in id order), with their unit's label and whether anyone waits
    for them.  May raise Busy."""
    slot_ids = sorted(set(slot_ids))
    if not slot_ids:
        return {}
    found = _locked(Slot, _LOCK_SLOT_ROWS, slot_ids, slot_ids=slot_ids)
    if not found:
        return {}
    keys = _keys(found)
    as_slot, label_at, waiting_at = _as_slot.on(keys), keys.index("unit_label"), keys.index("has_waitlist")
    slots = {}
    for row in found:
        slot = slots[row.s_id] = as_slot(row)
        slot.unit_label, slot.has_waitlist = row[label_at], bool(row[waiting_at])
    return slots


def waiting_line(slot_id: int) -> list[ResRow]:
    """The slot's waiting list, first in line first (by `waitlisted_at`, then id)."""
    found = _rows(_WAITING_LINE, slot_id=int(slot_id))
    if not found:
        return []
    as_res = _as_res.on(_keys(found))
    return [as_res(row) for row in found]


def _placed(found) -> list[Placed]:
    """Reservations with where their slot lies (`_PLACED`)."""
    if not found:
        return []
    keys = _keys(found)
    as_res, place = _as_res.on(keys), itemgetter(*(keys.index(c.name) for c in _PLACE))
    out = []
    for row in found:
        activity_id, day, time_slot = place(row)
        out.append(Placed(as_res(row), activity_id=activity_id, day=day, time_slot=time_slot))
    return out


def busy_on(child_ids, activity_ids, days) -> list[Placed]:
    """What these children take (or hold) in these activities on these days."""
    return _placed(_rows(_BUSY, child_ids=sorted(set(child_ids)), activity_ids=sorted(set(activity_ids)),
                         days=sorted(set(days))))


def reservations_in_range(child_ids, activity_ids, first: date, last: date) -> list[Placed]:
    return _placed(_rows(_RESERVATIONS_IN_RANGE, child_ids=sorted(set(child_ids)),
                         activity_ids=sorted(set(activity_ids)), first=first, last=last))


def accepted_inscriptions(child_ids, activity_ids) -> set[tuple[int, int]]:
    """(child_id, activity_id) of these children's accepted inscriptions to these activities."""
    return {(row.child_id, row.activity_id) for row in _rows(
        _INSCRIBED, child_ids=sorted(set(child_ids)), activity_ids=sorted(set(activity_ids)))}


# ====================================================================== writes

def touch_cart(cart: CartRow) -> None:
    """The démarche's new expiry, and its holds'."""
    _run(_TOUCH_CART, {"b_cart": cart.id, "until": cart.expires_at})
    _run(_TOUCH_HOLDS, {"b_cart": cart.id, "until": cart.expires_at})
    forget(Cart, [cart.id])


def set_taken(slots) -> None:
    """Write the `taken` counter of these slot rows."""
    if slots:
        _run(_SET_TAKEN, [{"b_id": s.id, "b_taken": s.taken} for s in slots])


def release_expired_holds(slot_ids) -> list[tuple[int, int]]:
    """Holds on these slots whose démarche was abandoned become cancelled (their démarche items go
    with them): [(reservation_id, slot_id)].  `core.reservations.lifecycle` counts the places."""
    freed = _run(_RELEASE_EXPIRED, {"slot_ids": sorted(slot_ids), "now": utcnow()}).all()
    if freed:
        ids = [rid for rid, _s in freed]
        _run(_DROP_ITEMS_OF, {"res_ids": ids})
        forget(Reservation, ids)
        _forget_items_of(ids)
    return [(rid, sid) for rid, sid in freed]


def release_cart_holds(cart_id: int, slot_ids) -> list[tuple[int, int]]:
    """The démarche's holds on these (locked) slots become cancelled: [(reservation_id, slot_id)].
    `core.reservations.lifecycle` counts the places."""
    if not slot_ids:
        return []
    freed = _run(_RELEASE_CART, {"b_cart": int(cart_id), "slot_ids": sorted(slot_ids), "now": utcnow()}).all()
    forget(Reservation, [rid for rid, _s in freed])
    return [(rid, sid) for rid, sid in freed]


def close_cart(cart_id: int, status: str) -> None:
    """The démarche's items go and it takes `status` (cancelled, expired)."""
    _run(_DROP_ITEMS_OF_CART, {"b_cart": int(cart_id)})
    _run(_SET_CART_STATUS, {"b_cart": int(cart_id), "status": status})
    _forget_items_of_cart(int(cart_id))
    forget(Cart, [int(cart_id)])


def set_cart_children(cart, child_ids: list[int]) -> None:
    """The démarche's children become `child_ids` (in memory too)."""
    _run(_SET_CART_CHILDREN, {"b_cart": int(cart.id), "child_ids": list(child_ids)})
    cart.child_ids = list(child_ids)
    mark_written(cart, "child_ids")


def mark_written(obj, *keys) -> None:
    """An ORM object whose columns `keys` were just written as they are in memory by a Core
    statement: the unit of work has nothing left to write for them.  A row: nothing to do."""
    if sa_inspect(obj, raiseerr=False) is not None:
        for key in keys:
            set_committed_value(obj, key, getattr(obj, key))


class Writes:
    """What one call of the core changes, sent at the end in a few statements."""

    def __init__(self, cart_id: int):
        self.cart_id = cart_id
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

    def send(self) -> None:
        """Every change in one statement on PostgreSQL (the text kept per shape, so prepared once),
        one per kind of row on SQLite; the new reservations get their ids."""
        gone = set(self.items_gone)
        if any((i.child_id, i.slot_id) in gone for i, _r in self.items_new):  # dropped and added again: in turn
            self._send({"gone": [{"child_id": c, "slot_id": s} for c, s in self.items_gone]}, [])
            self.items_gone = []
        self._send({
            "gone": [{"child_id": c, "slot_id": s} for c, s in self.items_gone],
            "changed": [{"id": r.id, "status": r.status, "cart_id": r.cart_id, "held_until": r.held_until}
                        for r in self.res_changed.values()],
            "added": [{"child_id": r.child_id, "slot_id": r.slot_id, "activity_id": r.activity_id,
                       "family_id": r.family_id, "status": r.status, "cart_id": r.cart_id,
                       "held_until": r.held_until} for r in self.res_new],
            "counted": [{"id": s.id, "taken": s.taken} for s in self.slots.values()],
        }, self.items_new)
        forget(Slot, self.slots)
        forget(Reservation, self.res_changed)

    def _send(self, rows: dict, items: list) -> None:
        shape = {kind: len(rows.get(kind, items if kind == "items" else ())) for kind in _WRITE_ROWS}
        if not any(shape.values()):
            return
        params = {"cart": self.cart_id, "now": utcnow()}

        def bind(kind, listed):
            for k, row in enumerate(listed):
                params.update({f"{kind}{k}_{c}": v for c, v in row.items()})

        def item_rows():  # a new reservation without its id yet: None (PostgreSQL joins it in)
            return [{"child_id": i.child_id, "slot_id": i.slot_id, "action": i.action,
                     "reservation_id": r.id if r is not None else i.reservation_id} for i, r in items]

        for kind, listed in rows.items():
            bind(kind, listed)
        if is_postgres():
            bind("items", item_rows())
            found = _rows(_writes_for(shape, "postgresql"), **params)
            ids = {(row.child_id, row.slot_id): row.id for row in found}
            for res in self.res_new:
                res.id = ids[(res.child_id, res.slot_id)]
        else:
            for kind, stmt in _writes_for(shape, "other").items():
                if kind == "items":
                    bind("items", item_rows())
                found = _rows(stmt, **params)
                if kind == "added":
                    ids = {(row.child_id, row.slot_id): row.id for row in found}
                    for res in self.res_new:
                        res.id = ids[(res.child_id, res.slot_id)]
        for item, res in items:
            if res is not None:
                item.reservation_id = res.id


def forget(model, ids) -> None:
    """ORM copies of rows just written with Core statements (a caller may hold some) read them again."""
    session = db.session()
    identity_map = session.identity_map
    if not identity_map:
        return
    mapper = sa_inspect(model)
    for ident in ids:
        obj = identity_map.get(mapper.identity_key_from_primary_key((ident,)))
        if obj is not None and obj not in session.dirty:
            session.expire(obj)


def _forget_items_of(reservation_ids) -> None:
    """ORM démarche items of these reservations, deleted by a Core statement, are read again (gone)."""
    gone = set(reservation_ids)
    session = db.session()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CartItem) and obj.reservation_id in gone and obj not in session.dirty:
            session.expire(obj)


def _forget_items_of_cart(cart_id: int) -> None:
    """ORM items of a démarche whose items a Core statement deleted are read again (gone)."""
    session = db.session()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CartItem) and obj.cart_id == cart_id and obj not in session.dirty:
            session.expire(obj)

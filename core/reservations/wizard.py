"""What the parent's démarche reads, step by step ("Modifier les réservations", 1 - Choix des
personnes, 2 - the planning's forms, 3 - le récapitulatif): the views of blueprints/reservations call
these and hold no query of their own on activities, slots, démarches, items or inscriptions.

ORM objects (the pages and the rules' `Context.load` read them); every query names the family or the
démarche it is for, and runs under the commune's scope (the ORM guard, row-level security).  The tick
and the planning read rows through the store (store.py) instead: they are the hot paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from core.dossier.records import family_children
from core.models import (
    INSCRIPTION_ACCEPTED,
    Activity,
    Cart,
    CartItem,
    Child,
    Demande,
    Inscription,
    Slot,
)
from core.reservations.rules import describe_slot
from extensions import db


def bookable_inscriptions(children: list[Child]) -> list[tuple[Inscription, Child, Activity]]:
    """"Modifier les réservations": the accepted inscriptions of these children to activities still shown."""
    if not children:
        return []
    return [tuple(row) for row in db.session.execute(
        select(Inscription, Child, Activity).join(Child, Inscription.child_id == Child.id)
        .join(Activity, Inscription.activity_id == Activity.id)
        .where(Inscription.child_id.in_([c.id for c in children]), Inscription.status == INSCRIPTION_ACCEPTED,
               Activity.archived.is_(False))
        .order_by(Child.birth_date, Activity.position, Activity.name))]


@dataclass(frozen=True)
class StepOne:
    """1 - Choix des personnes: which children may come, per activity they are accepted to."""
    by_activity: dict[int, set[int]]   # activity id → the family's children accepted to it
    others: list[Activity]             # the other activities the démarche may take at the same time


def step_one(activity: Activity, children: list[Child]) -> StepOne:
    by_activity: dict[int, set[int]] = {}
    if children:
        for ins in db.session.scalars(select(Inscription).where(
                Inscription.child_id.in_([c.id for c in children]), Inscription.status == INSCRIPTION_ACCEPTED)):
            by_activity.setdefault(ins.activity_id, set()).add(ins.child_id)
    others = []
    if activity.id in by_activity:
        others = list(db.session.scalars(
            select(Activity).where(Activity.id.in_(list(by_activity)), Activity.id != activity.id,
                                   Activity.archived.is_(False)).order_by(Activity.position, Activity.name)))
    return StepOne(by_activity, others)


def activities(ids: Iterable[int]) -> list[Activity]:
    """These activities in the commune's order (the démarche's tabs)."""
    ids = list(ids)
    if not ids:
        return []
    return list(db.session.scalars(select(Activity).where(Activity.id.in_(ids))
                                   .order_by(Activity.position, Activity.id)))


def cart_children(cart: Cart) -> list[Child]:
    """The children of the démarche (its family's only), eldest first."""
    return list(db.session.scalars(select(Child).where(Child.id.in_(cart.child_ids or [0]),
                                                       Child.family_id == cart.family_id)
                                   .order_by(Child.birth_date)))


def cart_slots(cart: Cart, slot_ids: set[int]) -> list[Slot] | None:
    """These slots if every one belongs to one of the démarche's activities, else None (a foreign id)."""
    slots = list(db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids or {0}),
                                                       Slot.activity_id.in_(cart.activity_ids or [0]))))
    return slots if len(slots) == len(slot_ids) else None


def slots_between(activity: Activity, start: date, end: date, *, unit_ids: set[int] | None = None,
                  weekdays: set[int] | None = None) -> list[Slot]:
    """The activity's slots from `start` to `end` ("Tout cocher", "Appliquer une périodicité": of these
    units, on these weekdays — 0 is Monday)."""
    stmt = select(Slot).where(Slot.activity_id == activity.id, Slot.day >= start, Slot.day <= end)
    if unit_ids is not None:
        stmt = stmt.where(Slot.unit_id.in_(unit_ids or {0}))
    slots = db.session.scalars(stmt.order_by(Slot.day, Slot.id))
    return [s for s in slots if weekdays is None or s.day.weekday() in weekdays]


def slot_days_from(activity: Activity, first: date) -> list[date]:
    """The days the activity has a slot, from `first` on (where the planning may open)."""
    return list(db.session.scalars(select(Slot.day).where(Slot.activity_id == activity.id, Slot.day >= first)
                                   .group_by(Slot.day).order_by(Slot.day)))


def recap_lines(cart: Cart) -> dict[Child, list[tuple[CartItem, str, Activity]]]:
    """Le récapitulatif: each child's lines (item, the slot as a parent reads it, activity), by day."""
    rows = db.session.execute(
        select(CartItem, Slot, Activity, Child).join(Slot, CartItem.slot_id == Slot.id)
        .join(Activity, Slot.activity_id == Activity.id).join(Child, CartItem.child_id == Child.id)
        .where(CartItem.cart_id == cart.id).order_by(Child.birth_date, Slot.day, Slot.time_slot)).all()
    by_child: dict = {}
    for item, slot, activity, child in rows:
        by_child.setdefault(child, []).append((item, describe_slot(slot, activity), activity))
    return by_child


def others_for_same_request(cart: Cart, by_child: dict) -> list[Child]:
    """"Effectuer la même demande pour": the family's other children accepted to an activity the
    démarche asks for."""
    if not by_child:
        return []
    used = {a.id for lines in by_child.values() for _i, _d, a in lines}
    others = [c for c in family_children(cart.family_id) if c not in by_child]
    if not others:
        return []
    inscribed = {(i.child_id, i.activity_id) for i in db.session.scalars(select(Inscription).where(
        Inscription.child_id.in_([c.id for c in others]), Inscription.activity_id.in_(list(used)),
        Inscription.status == INSCRIPTION_ACCEPTED))}
    return [c for c in others if any((c.id, a) in inscribed for a in used)]


def booked_slot_ids(cart: Cart) -> list[int]:
    """The slots the démarche asks to book (not its cancellations), in order."""
    return sorted(set(db.session.scalars(select(CartItem.slot_id).where(CartItem.cart_id == cart.id,
                                                                         CartItem.action == "book"))))


def demande_of(cart: Cart) -> Demande | None:
    """The demande a validated démarche became (None before "Valider")."""
    return db.session.scalars(select(Demande).where(Demande.cart_id == cart.id)).first()

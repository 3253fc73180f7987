"""The family file's rows (created on first use) and, for a section of a change, the row it targets, its
current values and how accepted values are written."""

from __future__ import annotations

from sqlalchemy import select

from core.dossier.fields import (
    ENTITY_AUTHORISATIONS,
    ENTITY_CHILD,
    ENTITY_CONTACT,
    ENTITY_HEALTH,
    ENTITY_RESPONSABLE,
    FIELDS,
    from_json,
    normalize,
    spec,
)
from core.dossier.models import (
    RESP_COPARENT,
    RESP_PRINCIPAL,
    ChildContact,
    ChildFile,
    ChildHealth,
    FamilyFile,
    Responsable,
)
from core.models import ROLE_PARENT, Child, Family, User
from core.uploads import remove_after_commit
from extensions import db


def family_file(family: Family) -> FamilyFile:
    return _row_of(FamilyFile, "family_id", family)


def child_file(child: Child) -> ChildFile:
    return _row_of(ChildFile, "child_id", child)


def child_health(child: Child) -> ChildHealth:
    return _row_of(ChildHealth, "child_id", child)


def _row_of(model, owner_key: str, owner):
    """The one row of ``model`` that belongs to ``owner`` (a family or a child), added on first use."""
    row = db.session.scalars(select(model).where(getattr(model, owner_key) == owner.id)).first()
    if row is None:
        row = model(**{owner_key: owner.id, "tenant_id": owner.tenant_id})
        db.session.add(row)
    return row


def contacts_of(child: Child) -> list[ChildContact]:
    return list(db.session.scalars(
        select(ChildContact).where(ChildContact.child_id == child.id).order_by(ChildContact.id)))


def children_of(family: Family) -> list[Child]:
    return family_children(family.id)


def family_children(family_id: int | None) -> list[Child]:
    """The family's children, eldest first (none without a family)."""
    if family_id is None:
        return []
    return list(db.session.scalars(
        select(Child).where(Child.family_id == family_id).order_by(Child.birth_date, Child.id)))


def members_of(family: Family) -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.family_id == family.id, User.role == ROLE_PARENT).order_by(User.id)))


def responsables(family: Family) -> list[Responsable]:
    """The family's responsables; each member account gets its own (created from the account)."""
    rows = list(db.session.scalars(
        select(Responsable).where(Responsable.family_id == family.id).order_by(Responsable.position, Responsable.id)))
    linked = {r.user_id for r in rows if r.user_id}
    for user in members_of(family):
        if user.id in linked:
            continue
        resp = Responsable(family_id=family.id, tenant_id=family.tenant_id, user_id=user.id,
                           position=RESP_PRINCIPAL if not rows else RESP_COPARENT,
                           first_name=user.first_name, last_name=user.last_name)
        db.session.add(resp)
        rows.append(resp)
    return rows


def target_of(entity: str, entity_id: int):
    if entity == ENTITY_RESPONSABLE:
        return db.session.get(Responsable, entity_id)
    if entity == ENTITY_CONTACT:
        return db.session.get(ChildContact, entity_id)
    child = db.session.get(Child, entity_id)
    if child is None:
        return None
    if entity == ENTITY_HEALTH:
        return child_health(child)
    if entity == ENTITY_AUTHORISATIONS:
        return child_file(child)
    return child


def family_id_of(entity: str, target) -> int:
    if entity == ENTITY_RESPONSABLE:
        return target.family_id
    if entity == ENTITY_CHILD:
        return target.family_id
    return target.child.family_id if target.child is not None else db.session.get(Child, target.child_id).family_id


def child_id_of(entity: str, target) -> int | None:
    if entity == ENTITY_RESPONSABLE:
        return None
    if entity == ENTITY_CHILD:
        return target.id
    return target.child_id


def entity_id_of(entity: str, target) -> int:
    if entity in (ENTITY_HEALTH, ENTITY_AUTHORISATIONS):
        return target.child_id
    return target.id


def current_values(entity: str, target) -> dict:
    out = {}
    for f in FIELDS[entity]:
        if entity == ENTITY_CHILD and f.name == "photo":
            row = db.session.scalars(select(ChildFile).where(ChildFile.child_id == target.id)).first()
            out[f.name] = row.photo if row else None
            continue
        out[f.name] = normalize(f, getattr(target, f.name))
    return out


def apply_values(entity: str, target, values: dict) -> None:
    for name, value in values.items():
        f = spec(entity, name)
        if entity == ENTITY_CHILD and name == "photo":
            row = child_file(target)
            old, row.photo = row.photo, value
            if old and old != value:
                remove_after_commit(target.tenant_id, old)
            continue
        if f.kind == "flag":
            value = bool(value)
        setattr(target, name, from_json(f, value))
        if entity == ENTITY_RESPONSABLE and name in ("first_name", "last_name") and target.user is not None \
                and value:
            setattr(target.user, name, value)

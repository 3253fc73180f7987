"""Changes under the commune's validation: the family proposes (update, new child or contact, contact
deletion) or withdraws, an agent accepts (the value becomes current) or refuses, the family gets a mail."""

from __future__ import annotations

from datetime import date, timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from core.clock import utcnow
from core.dossier.common import DossierError
from core.dossier.fields import (
    ENTITY_CHILD,
    ENTITY_CONTACT,
    ENTITY_MANDATE,
    ENTITY_QUOTIENT,
    FIELDS,
    normalize,
)
from core.dossier.models import (
    CHANGE_ACCEPTED,
    CHANGE_CANCELLED,
    CHANGE_PENDING,
    CHANGE_REFUSED,
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    ChildContact,
    FamilyChange,
)
from core.dossier.records import (
    apply_values,
    child_id_of,
    current_values,
    entity_id_of,
    family_id_of,
    members_of,
    target_of,
)
from core.dossier.summaries import change_path, field_labels, stored_label
from core.locking import lock_one
from core.mail import queue_mail
from core.models import Child, Family, User
from core.uploads import remove_after_commit
from extensions import db


def pending_changes(family: Family) -> list[FamilyChange]:
    return list(db.session.scalars(
        select(FamilyChange).where(FamilyChange.family_id == family.id, FamilyChange.status == CHANGE_PENDING)
        .order_by(FamilyChange.requested_at, FamilyChange.id)))


def pending_for(entity: str, entity_id: int | None) -> FamilyChange | None:
    if entity_id is None:
        return None
    return db.session.scalars(select(FamilyChange).where(
        FamilyChange.entity == entity, FamilyChange.entity_id == entity_id,
        FamilyChange.status == CHANGE_PENDING).order_by(FamilyChange.id.desc())).first()


def recent_decisions(family: Family, days: int = 30) -> list[FamilyChange]:
    since = utcnow() - timedelta(days=days)
    return list(db.session.scalars(
        select(FamilyChange).where(FamilyChange.family_id == family.id,
                                   FamilyChange.status.in_((CHANGE_ACCEPTED, CHANGE_REFUSED)),
                                   FamilyChange.decided_at >= since)
        .order_by(FamilyChange.decided_at.desc()).limit(20)))


def pending_queue() -> list[FamilyChange]:
    return list(db.session.scalars(select(FamilyChange).where(FamilyChange.status == CHANGE_PENDING)
                                   .order_by(FamilyChange.requested_at, FamilyChange.id)))


def pending_photo(change: FamilyChange | None) -> str | None:
    if change is None or change.op != OP_UPDATE:
        return None
    photo = (change.changes or {}).get("photo")
    return photo.get("new") if isinstance(photo, dict) else None


def _check_family(entity: str, target, family: Family) -> None:
    if target is None or family_id_of(entity, target) != family.id:
        raise LookupError("not this family's")


def propose_update(*, family: Family, user: User, entity: str, target, values: dict) -> FamilyChange | None:
    """Record what the family wants; the current value stays until an agent accepts.

    A second proposal on the same entity replaces the pending one (its fields not sent this
    time are kept); a proposal equal to the current values withdraws the pending change.
    """
    _check_family(entity, target, family)
    entity_id = entity_id_of(entity, target)
    current = current_values(entity, target)
    diff = {}
    for f in FIELDS[entity]:
        if f.name not in values:
            continue
        new = normalize(f, values[f.name])
        if new != current[f.name]:
            diff[f.name] = {"old": current[f.name], "new": new}
    existing = pending_for(entity, entity_id)
    if existing is not None and existing.op == OP_DELETE:
        raise DossierError(_("La suppression de ce contact est déjà en attente de validation."))
    if existing is not None:
        kept = {k: v for k, v in (existing.changes or {}).items() if k not in values}
        merged = {**kept, **diff}
        old_photo = pending_photo(existing)
        if old_photo and "photo" in values and old_photo != (merged.get("photo") or {}).get("new"):
            remove_after_commit(family.tenant_id, old_photo)
        if not merged:
            close(existing, CHANGE_CANCELLED, user.display_name)
            return None
        existing.changes = merged
        existing.requested_by_id = user.id
        existing.requested_at = utcnow()
        existing.label = stored_label(entity, target)
        return existing
    if not diff:
        return None
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=child_id_of(entity, target),
        entity=entity, entity_id=entity_id, op=OP_UPDATE, changes=diff,
        label=stored_label(entity, target), requested_by_id=user.id)
    db.session.add(change)
    return change


def propose_create(*, family: Family, user: User, entity: str, values: dict, child: Child | None = None) -> FamilyChange:
    """A new child or a new contact: it exists only once an agent accepts it."""
    if entity not in (ENTITY_CHILD, ENTITY_CONTACT):
        raise ValueError(entity)
    if entity == ENTITY_CONTACT and (child is None or child.family_id != family.id):
        raise LookupError("not this family's")
    data = {}
    for f in FIELDS[entity]:
        if f.name in values and f.kind != "photo":
            data[f.name] = normalize(f, values[f.name])
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=child.id if child else None,
        entity=entity, entity_id=None, op=OP_CREATE, changes=data,
        label=stored_label(entity, None, child=child, values=data), requested_by_id=user.id)
    db.session.add(change)
    return change


def propose_delete(*, family: Family, user: User, contact: ChildContact) -> FamilyChange:
    _check_family(ENTITY_CONTACT, contact, family)
    existing = pending_for(ENTITY_CONTACT, contact.id)
    if existing is not None and existing.op == OP_DELETE:
        return existing
    if existing is not None:
        close(existing, CHANGE_CANCELLED, user.display_name)
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=contact.child_id, entity=ENTITY_CONTACT,
        entity_id=contact.id, op=OP_DELETE, changes={}, label=stored_label(ENTITY_CONTACT, contact),
        requested_by_id=user.id)
    db.session.add(change)
    return change


def cancel_change(change: FamilyChange, *, family: Family, user: User) -> None:
    """The family withdraws its own pending change."""
    if change.family_id != family.id:
        raise LookupError("not this family's")
    if change.status != CHANGE_PENDING:
        raise DossierError(_("Cette modification a déjà été traitée par la collectivité."))
    photo = (change.changes or {}).get("photo")
    if isinstance(photo, dict) and photo.get("new"):
        remove_after_commit(family.tenant_id, photo["new"])
    close(change, CHANGE_CANCELLED, user.display_name)


def close(change: FamilyChange, status: str, who: str, motif: str | None = None) -> None:
    """Close a change without mailing the family (withdrawn, replaced, or its mandate revoked)."""
    change.status = status
    change.decided_at = utcnow()
    change.decided_by = who
    change.motif = motif


def _apply(change: FamilyChange) -> None:
    if change.op == OP_CREATE:
        data = change.changes or {}
        if change.entity == ENTITY_CHILD:
            child = Child(family_id=change.family_id, tenant_id=change.tenant_id,
                          first_name=data.get("first_name") or "", last_name=data.get("last_name") or "",
                          birth_date=date.fromisoformat(data["birth_date"]),
                          school=data.get("school"), class_name=data.get("class_name"))
            db.session.add(child)
            db.session.flush()
            change.child_id = child.id
            change.entity_id = child.id
        else:
            contact = ChildContact(child_id=change.child_id, tenant_id=change.tenant_id,
                                   first_name=data.get("first_name") or "", last_name=data.get("last_name") or "",
                                   relationship_label=data.get("relationship_label"), phone=data.get("phone") or "",
                                   can_pick_up=bool(data.get("can_pick_up")), emergency=bool(data.get("emergency")))
            db.session.add(contact)
            db.session.flush()
            change.entity_id = contact.id
        return
    target = target_of(change.entity, change.entity_id)
    if target is None:
        raise DossierError(_("L'élément concerné n'existe plus : refusez cette modification."))
    if change.op == OP_DELETE:
        db.session.delete(target)
        return
    apply_values(change.entity, target, {k: v["new"] for k, v in (change.changes or {}).items()})


def decide(change_id: int, *, agent, accept: bool, motif: str | None = None) -> FamilyChange:
    """An agent accepts (the value becomes current) or refuses (it stays as it was); the family gets a mail."""
    change = lock_one(FamilyChange, change_id)
    if change is None:
        raise LookupError(change_id)
    if change.status != CHANGE_PENDING:
        raise DossierError(_("Cette modification a déjà été traitée."))
    motif = (motif or "").strip() or None
    if not accept and not motif:
        raise DossierError(_("Indiquez le motif du refus : il sera envoyé à la famille."), field="motif")
    if accept and change.entity == ENTITY_QUOTIENT:
        raise DossierError(_("Acceptez cette demande en saisissant le nouveau quotient et ses dates "
                             "(page de la famille, « Quotient familial »)."))
    if change.entity == ENTITY_MANDATE:  # the mandate row holds the bank details (core.billing.mandates)
        from core.billing import mandates

        if accept:
            mandates.activate(change, agent.display_name)
        else:
            mandates.refuse(change, agent.display_name)
    elif accept:
        _apply(change)
    else:
        photo = (change.changes or {}).get("photo")
        if isinstance(photo, dict) and photo.get("new"):
            remove_after_commit(change.tenant_id, photo["new"])
    close(change, CHANGE_ACCEPTED if accept else CHANGE_REFUSED, agent.display_name, motif)
    _tell_family(change, accept)
    return change


def close_change(change: FamilyChange, *, accept: bool, who: str, motif: str | None = None) -> None:
    """Close a change decided elsewhere (the quotient familial: core.billing) and mail the family."""
    close(change, CHANGE_ACCEPTED if accept else CHANGE_REFUSED, who, motif)
    _tell_family(change, accept)


def _tell_family(change: FamilyChange, accepted: bool) -> None:
    recipient = change.requested_by
    if recipient is None or recipient.family_id != change.family_id or not recipient.is_active:
        recipient = next((u for u in members_of(change.family) if u.is_active), None)
    if recipient is None:
        return
    locale = recipient.locale or "fr"
    with force_locale(locale):
        label = field_labels(change)
    queue_mail(to=recipient.email, template="family_change_decided", locale=locale, user=recipient,
               context={"name": recipient.display_name, "field_label": label, "accepted": accepted,
                        "motif": change.motif, "path": change_path(change)})

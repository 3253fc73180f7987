"""Services of the family file: changes under the commune's validation, the family code,
the co-représentant, the login e-mail, health access logs, the JSON export, account
deletion requests and the readiness check.  No request, no HTML, no queue calls here:
mails go through core.mail.queue_mail (written in the same transaction).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from core import calendar as cal
from core.accounts import find_user_by_email, hash_password, normalize_email, password_is_valid, password_rule
from core.clock import utcnow
from core.dossier import (
    CHANGE_ACCEPTED,
    CHANGE_CANCELLED,
    CHANGE_PENDING,
    CHANGE_REFUSED,
    DELETION_HANDLED,
    DELETION_OPEN,
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    RESP_COPARENT,
    RESP_PRINCIPAL,
    AccountDeletionRequest,
    ChildContact,
    ChildFile,
    ChildHealth,
    EmailChange,
    FamilyChange,
    FamilyCodeClaim,
    FamilyFile,
    FamilyInvitation,
    HealthAccessLog,
    Responsable,
)
from core.locking import lock_one
from core.mail import queue_mail
from core.models import (
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    ROLE_PARENT,
    Activity,
    Cart,
    Child,
    Demande,
    Family,
    Inscription,
    Reservation,
    User,
)
from core.uploads import remove_after_commit
from extensions import db

INVITATION_DAYS = 7
EMAIL_CHANGE_HOURS = 48
MAX_RESPONSABLES = 2


class DossierError(Exception):
    """A refusal the user can read (French, translated)."""

    def __init__(self, message: str, code: str = "refused", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


# ====================================================================== fields

@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: object
    kind: str = "str"            # str, text, date, bool (None/True/False), flag (True/False), choice, photo
    choices: dict | None = None


CIVILITIES = {"madame": _l("Madame"), "monsieur": _l("Monsieur")}
DIETS = {
    "aucun": _l("Aucun régime particulier"),
    "sans_porc": _l("Sans porc"),
    "vegetarien": _l("Végétarien"),
    "sans_viande": _l("Sans viande"),
    "autre": _l("Autre régime (préciser)"),
}

ENTITY_RESPONSABLE = "responsable"
ENTITY_CHILD = "child"
ENTITY_HEALTH = "health"
ENTITY_AUTHORISATIONS = "authorisations"
ENTITY_CONTACT = "contact"
ENTITY_QUOTIENT = "quotient"  # a new quotient familial asked with a justificatif (core.billing.quotients)
ENTITY_MANDATE = "mandate"    # a SEPA mandate signed online (core.billing.mandates); the IBAN kept masked here

FIELDS: dict[str, list[FieldSpec]] = {
    ENTITY_RESPONSABLE: [
        FieldSpec("civility", _l("Civilité"), "choice", CIVILITIES),
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("address_line", _l("Adresse")),
        FieldSpec("address_extra", _l("Complément d'adresse")),
        FieldSpec("postal_code", _l("Code postal")),
        FieldSpec("city", _l("Ville")),
        FieldSpec("phone_mobile", _l("Téléphone portable")),
        FieldSpec("phone_home", _l("Téléphone domicile")),
        FieldSpec("phone_work", _l("Téléphone professionnel")),
        FieldSpec("email", _l("Adresse e-mail de contact")),
    ],
    ENTITY_CHILD: [
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("birth_date", _l("Date de naissance"), "date"),
        FieldSpec("school", _l("École")),
        FieldSpec("class_name", _l("Classe")),
        FieldSpec("photo", _l("Photo"), "photo"),
    ],
    ENTITY_HEALTH: [
        FieldSpec("allergies", _l("Allergies"), "text"),
        FieldSpec("pai", _l("PAI (projet d'accueil individualisé)"), "bool"),
        FieldSpec("pai_details", _l("Précisions sur le PAI"), "text"),
        FieldSpec("diet", _l("Régime alimentaire"), "choice", DIETS),
        FieldSpec("diet_details", _l("Précisions sur le régime")),
        FieldSpec("doctor_name", _l("Médecin traitant")),
        FieldSpec("doctor_phone", _l("Téléphone du médecin")),
        FieldSpec("vaccinations", _l("Vaccinations obligatoires à jour"), "bool"),
        FieldSpec("vaccinations_notes", _l("Précisions sur les vaccinations")),
        FieldSpec("notes", _l("Autres informations (traitement, recommandations)"), "text"),
    ],
    ENTITY_AUTHORISATIONS: [
        FieldSpec("photos", _l("Droit à l'image (photos, vidéos)"), "bool"),
        FieldSpec("leave_alone", _l("Autorisé(e) à partir seul(e)"), "bool"),
        FieldSpec("transport", _l("Transport en car ou minibus lors des sorties"), "bool"),
        FieldSpec("emergency_care", _l("Soins d'urgence et hospitalisation si nécessaire"), "bool"),
    ],
    ENTITY_QUOTIENT: [
        FieldSpec("value", _l("Quotient familial lu sur le justificatif")),
        FieldSpec("comment", _l("Commentaire"), "text"),
    ],
    ENTITY_MANDATE: [
        FieldSpec("holder", _l("Titulaire du compte")),
        FieldSpec("iban", _l("IBAN")),
        FieldSpec("bic", _l("BIC")),
        FieldSpec("rum", _l("Référence unique du mandat (RUM)")),
    ],
    ENTITY_CONTACT: [
        FieldSpec("first_name", _l("Prénom")),
        FieldSpec("last_name", _l("Nom")),
        FieldSpec("relationship_label", _l("Lien avec l'enfant")),
        FieldSpec("phone", _l("Téléphone")),
        FieldSpec("can_pick_up", _l("Autorisé(e) à venir chercher l'enfant"), "flag"),
        FieldSpec("emergency", _l("À prévenir en cas d'urgence"), "flag"),
    ],
}
ENTITY_LABELS = {
    ENTITY_RESPONSABLE: _l("Responsable"),
    ENTITY_CHILD: _l("Informations générales"),
    ENTITY_HEALTH: _l("Informations santé"),
    ENTITY_AUTHORISATIONS: _l("Autorisations"),
    ENTITY_CONTACT: _l("Contacts"),
    ENTITY_QUOTIENT: _l("Quotient familial"),
    ENTITY_MANDATE: _l("Mandat de prélèvement SEPA"),
}
# What a health form needs before the child can be booked (short names for the readiness check).
HEALTH_REQUIRED = {
    "allergies": _l("allergies"),
    "pai": _l("PAI"),
    "diet": _l("régime alimentaire"),
    "doctor_name": _l("médecin traitant"),
    "doctor_phone": _l("téléphone du médecin"),
    "vaccinations": _l("vaccinations"),
}
AUTHORISATIONS_SHORT = {
    "photos": _l("droit à l'image"),
    "leave_alone": _l("départ seul"),
    "transport": _l("transport"),
    "emergency_care": _l("soins d'urgence"),
}


def spec(entity: str, name: str) -> FieldSpec:
    for f in FIELDS[entity]:
        if f.name == name:
            return f
    raise KeyError(name)


def _normalize(f: FieldSpec, value):
    """A submitted value -> its JSON form (dates as ISO strings, '' -> None)."""
    if f.kind == "flag":
        return bool(value)
    if value is None:
        return None
    if f.kind == "bool":
        if isinstance(value, bool):
            return value
        return {"oui": True, "non": False, "true": True, "false": False}.get(str(value).lower())
    if f.kind == "date":
        if isinstance(value, (date, datetime)):
            return value.isoformat()[:10]
        return str(value)[:10] or None
    value = str(value).strip()
    if f.kind == "choice" and value not in (f.choices or {}):
        return None
    return value or None


def _from_json(f: FieldSpec, value):
    if f.kind == "date" and value:
        return date.fromisoformat(value)
    return value


def display(f: FieldSpec, value) -> str:
    """A JSON value as a French (or English) reader sees it."""
    if f.kind == "flag":
        return _("Oui") if value else _("Non")
    if value is None or value == "":
        return _("Non renseigné")
    if f.kind == "bool":
        return _("Oui") if value else _("Non")
    if f.kind == "date":
        return format_date(date.fromisoformat(value), "dd/MM/yyyy")
    if f.kind == "choice":
        return str((f.choices or {}).get(value, value))
    if f.kind == "photo":
        return _("Nouvelle photo")
    return str(value)


# ====================================================================== the file's rows

def family_file(family: Family) -> FamilyFile:
    row = db.session.scalars(select(FamilyFile).where(FamilyFile.family_id == family.id)).first()
    if row is None:
        row = FamilyFile(family_id=family.id, tenant_id=family.tenant_id)
        db.session.add(row)
    return row


def child_file(child: Child) -> ChildFile:
    row = db.session.scalars(select(ChildFile).where(ChildFile.child_id == child.id)).first()
    if row is None:
        row = ChildFile(child_id=child.id, tenant_id=child.tenant_id)
        db.session.add(row)
    return row


def child_health(child: Child) -> ChildHealth:
    row = db.session.scalars(select(ChildHealth).where(ChildHealth.child_id == child.id)).first()
    if row is None:
        row = ChildHealth(child_id=child.id, tenant_id=child.tenant_id)
        db.session.add(row)
    return row


def contacts_of(child: Child) -> list[ChildContact]:
    return list(db.session.scalars(
        select(ChildContact).where(ChildContact.child_id == child.id).order_by(ChildContact.id)))


def children_of(family: Family) -> list[Child]:
    return list(db.session.scalars(
        select(Child).where(Child.family_id == family.id).order_by(Child.birth_date, Child.id)))


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


# ====================================================================== targets

def _target(entity: str, entity_id: int):
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


def _family_id_of(entity: str, target) -> int:
    if entity == ENTITY_RESPONSABLE:
        return target.family_id
    if entity == ENTITY_CHILD:
        return target.family_id
    return target.child.family_id if target.child is not None else db.session.get(Child, target.child_id).family_id


def _child_id_of(entity: str, target) -> int | None:
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
        out[f.name] = _normalize(f, getattr(target, f.name))
    return out


def _apply_values(entity: str, target, values: dict) -> None:
    for name, value in values.items():
        f = spec(entity, name)
        if entity == ENTITY_CHILD and name == "photo":
            row = child_file(target)
            old, row.photo = row.photo, value
            if old and old != value:
                _after_commit_remove(target.tenant_id, old)
            continue
        if f.kind == "flag":
            value = bool(value)
        setattr(target, name, _from_json(f, value))
        if entity == ENTITY_RESPONSABLE and name in ("first_name", "last_name") and target.user is not None \
                and value:
            setattr(target.user, name, value)


# ====================================================================== changes under validation

def _label(entity: str, target=None, child: Child | None = None, values: dict | None = None) -> str:
    """Stored with the change, in French: the commune's agents read it in the queue."""
    with force_locale("fr"):
        return _title(entity, target, child, values)


def describe(change: FamilyChange) -> str:
    """The change's title in the reader's language (mails to the family)."""
    child = db.session.get(Child, change.child_id) if change.child_id else None
    if change.entity == ENTITY_CHILD:
        target = child if change.op != OP_CREATE else None
    elif change.entity in (ENTITY_RESPONSABLE, ENTITY_CONTACT) and change.op != OP_CREATE:
        target = _target(change.entity, change.entity_id) if change.entity_id else None
        if target is None:
            return change.label
    else:
        target = None
    return _title(change.entity, target, child, change.changes if change.op == OP_CREATE else None)


def _title(entity: str, target, child: Child | None, values: dict | None) -> str:
    section = str(ENTITY_LABELS[entity])
    if entity == ENTITY_QUOTIENT:
        return _("%(section)s — justificatif", section=section)
    if entity == ENTITY_MANDATE:
        return f"{section} — {(values or {}).get('rum') or ''}".strip(" —")
    if entity == ENTITY_RESPONSABLE:
        name = target.display_name if target is not None else ""
        return f"{section} — {name}".strip(" —")
    if entity == ENTITY_CHILD and target is None:
        return _("Nouvel enfant : %(name)s", name=f"{(values or {}).get('first_name') or ''} "
                                                  f"{(values or {}).get('last_name') or ''}".strip())
    kid = child if child is not None else (target if entity == ENTITY_CHILD else getattr(target, "child", None))
    who = f"{kid.first_name} {kid.last_name}" if kid is not None else ""
    if entity == ENTITY_CONTACT:
        name = target.display_name if target is not None else \
            f"{(values or {}).get('first_name') or ''} {(values or {}).get('last_name') or ''}".strip()
        return f"{who} — {section} — {name}"
    return f"{who} — {section}"


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


def _check_family(entity: str, target, family: Family) -> None:
    if target is None or _family_id_of(entity, target) != family.id:
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
        new = _normalize(f, values[f.name])
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
            _after_commit_remove(family.tenant_id, old_photo)
        if not merged:
            _close(existing, CHANGE_CANCELLED, user.display_name)
            return None
        existing.changes = merged
        existing.requested_by_id = user.id
        existing.requested_at = utcnow()
        existing.label = _label(entity, target)
        return existing
    if not diff:
        return None
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=_child_id_of(entity, target),
        entity=entity, entity_id=entity_id, op=OP_UPDATE, changes=diff,
        label=_label(entity, target), requested_by_id=user.id)
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
            data[f.name] = _normalize(f, values[f.name])
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=child.id if child else None,
        entity=entity, entity_id=None, op=OP_CREATE, changes=data,
        label=_label(entity, None, child=child, values=data), requested_by_id=user.id)
    db.session.add(change)
    return change


def propose_delete(*, family: Family, user: User, contact: ChildContact) -> FamilyChange:
    _check_family(ENTITY_CONTACT, contact, family)
    existing = pending_for(ENTITY_CONTACT, contact.id)
    if existing is not None and existing.op == OP_DELETE:
        return existing
    if existing is not None:
        _close(existing, CHANGE_CANCELLED, user.display_name)
    change = FamilyChange(
        family_id=family.id, tenant_id=family.tenant_id, child_id=contact.child_id, entity=ENTITY_CONTACT,
        entity_id=contact.id, op=OP_DELETE, changes={}, label=_label(ENTITY_CONTACT, contact),
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
        _after_commit_remove(family.tenant_id, photo["new"])
    _close(change, CHANGE_CANCELLED, user.display_name)


def _close(change: FamilyChange, status: str, who: str, motif: str | None = None) -> None:
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
    target = _target(change.entity, change.entity_id)
    if target is None:
        raise DossierError(_("L'élément concerné n'existe plus : refusez cette modification."))
    if change.op == OP_DELETE:
        db.session.delete(target)
        return
    _apply_values(change.entity, target, {k: v["new"] for k, v in (change.changes or {}).items()})


def field_labels(change: FamilyChange) -> str:
    title = describe(change)
    if change.op == OP_UPDATE:
        names = []
        for name in change.changes or {}:
            try:
                names.append(str(spec(change.entity, name).label))
            except KeyError:
                continue
        return _("%(title)s : %(fields)s", title=title, fields=", ".join(names))
    if change.op == OP_DELETE:
        return _("%(label)s (suppression)", label=title)
    return title


def change_path(change: FamilyChange) -> str:
    if change.entity == ENTITY_QUOTIENT:
        return "/mes-qf-revenus"
    if change.entity == ENTITY_MANDATE:
        return "/prelevements"
    if change.child_id:
        return f"/famille/enfants/{change.child_id}"
    return "/famille/dossier"


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
            _after_commit_remove(change.tenant_id, photo["new"])
    _close(change, CHANGE_ACCEPTED if accept else CHANGE_REFUSED, agent.display_name, motif)
    _tell_family(change, accept)
    return change


def close_change(change: FamilyChange, *, accept: bool, who: str, motif: str | None = None) -> None:
    """Close a change decided elsewhere (the quotient familial: core.billing) and mail the family."""
    _close(change, CHANGE_ACCEPTED if accept else CHANGE_REFUSED, who, motif)
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


@dataclass
class Row:
    name: str
    label: str
    current: str
    pending: str | None = None

    @property
    def has_pending(self) -> bool:
        return self.pending is not None


def rows(entity: str, target, change: FamilyChange | None, *, skip=("photo",)) -> list[Row]:
    """Current value beside the pending one, field by field."""
    current = current_values(entity, target)
    changed = (change.changes or {}) if change is not None and change.op == OP_UPDATE else {}
    out = []
    for f in FIELDS[entity]:
        if f.name in skip:
            continue
        pending = display(f, changed[f.name]["new"]) if f.name in changed else None
        out.append(Row(f.name, str(f.label), display(f, current[f.name]), pending))
    return out


def change_rows(change: FamilyChange, *, skip=("photo",)) -> list[Row]:
    """What a change asks, for the agents' queue (current value as recorded when asked)."""
    out = []
    if change.op == OP_CREATE:
        for f in FIELDS[change.entity]:
            if f.name in skip or f.name not in (change.changes or {}):
                continue
            out.append(Row(f.name, str(f.label), "", display(f, change.changes[f.name])))
        return out
    if change.op == OP_DELETE:
        return out
    target = _target(change.entity, change.entity_id)
    current = current_values(change.entity, target) if target is not None else {}
    for name, values in (change.changes or {}).items():
        try:
            f = spec(change.entity, name)
        except KeyError:
            continue
        if name in skip:
            continue
        out.append(Row(name, str(f.label), display(f, current.get(name, values.get("old"))), display(f, values["new"])))
    return out


def pending_photo(change: FamilyChange | None) -> str | None:
    if change is None or change.op != OP_UPDATE:
        return None
    photo = (change.changes or {}).get("photo")
    return photo.get("new") if isinstance(photo, dict) else None


# ====================================================================== photos

PHOTO_MAX_BYTES = 5 * 1024 * 1024
PHOTO_MAX_PIXELS = 40_000_000
PHOTO_MAX_SIDE = 1200
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_photo(data: bytes) -> tuple[bytes, str]:
    """Checks a photo by its content (not its name) and re-encodes it without its metadata.

    Returns (bytes, extension); raises DossierError with a French message.
    """
    if len(data) > PHOTO_MAX_BYTES:
        raise DossierError(_("La photo dépasse la taille maximale de 5 Mo."), field="photo")
    if data.startswith(JPEG_MAGIC):
        kind = "JPEG"
    elif data.startswith(PNG_MAGIC):
        kind = "PNG"
    else:
        raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo")
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != kind or probe.width * probe.height > PHOTO_MAX_PIXELS:
                raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo")
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            img.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
            out = io.BytesIO()
            if kind == "JPEG":
                img.convert("RGB").save(out, "JPEG", quality=85)
                return out.getvalue(), "jpg"
            if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                img = img.convert("RGBA")
            img.save(out, "PNG", optimize=True)
            return out.getvalue(), "png"
    except DossierError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DossierError(_("Le fichier n'est pas une image JPEG ou PNG."), field="photo") from exc


def _after_commit_remove(tenant_id: int, name: str) -> None:
    remove_after_commit(tenant_id, name)


# ====================================================================== family code ("Mes abonnements")

def _is_empty(family: Family, but_user: User) -> bool:
    others = db.session.scalar(select(func.count()).select_from(User).where(
        User.family_id == family.id, User.id != but_user.id))
    if others:
        return False
    for model in (Child, Demande, Cart, Reservation):
        if db.session.scalar(select(func.count()).select_from(model).where(model.family_id == family.id)):
            return False
    return True


def _drop_family(family: Family) -> None:
    for model in (FamilyChange, FamilyInvitation, FamilyFile, Responsable, FamilyCodeClaim):
        for row in db.session.scalars(select(model).where(model.family_id == family.id)):
            db.session.delete(row)
    for row in db.session.scalars(select(AccountDeletionRequest).where(AccountDeletionRequest.family_id == family.id)):
        row.family_id = None
    db.session.flush()
    db.session.delete(family)


def _move_to_family(user: User, family: Family) -> None:
    """Attach an account to a family; its own empty family (created with the account) goes away."""
    old = user.family
    if old is not None and old.id != family.id and not _is_empty(old, user):
        raise DossierError(
            _("Votre espace est déjà rattaché à un dossier famille qui contient des enfants ou des demandes : "
              "contactez la collectivité pour regrouper les dossiers."), code="not_empty")
    own = db.session.scalars(select(Responsable).where(Responsable.user_id == user.id)).first()
    existing = list(db.session.scalars(select(Responsable).where(Responsable.family_id == family.id)))
    match = next((r for r in existing if r.user_id is None and r.email
                  and normalize_email(r.email) == user.email), None) or \
        next((r for r in existing if r.user_id is None and r.first_name.lower() == user.first_name.lower()
              and r.last_name.lower() == user.last_name.lower()), None)
    if own is not None:
        if match is not None:
            db.session.delete(own)
        else:
            own.family_id = family.id
            own.position = RESP_PRINCIPAL if not existing else RESP_COPARENT
    db.session.flush()
    if match is not None:
        match.user_id = user.id
    user.family = family
    db.session.flush()
    if old is not None and old.id != family.id:
        _drop_family(old)


def claim_family_code(user: User, code: str) -> Family:
    """A parent links their account to the family file the commune created, with its code.

    A code links once (a unique row backs it), only in its commune (queries are scoped).
    """
    code = (code or "").strip().upper()
    family = db.session.scalars(select(Family).where(func.upper(Family.code) == code)).first() if code else None
    if family is None:
        raise DossierError(_("Aucun dossier famille ne correspond à ce code abonné. Vérifiez-le ou contactez la "
                             "collectivité."), code="unknown", field="code")
    if user.family_id == family.id:
        raise DossierError(_("Votre espace est déjà rattaché à ce dossier famille."), code="already", field="code")
    used = db.session.scalars(select(FamilyCodeClaim).where(FamilyCodeClaim.family_id == family.id)).first()
    has_members = db.session.scalar(select(func.count()).select_from(User).where(User.family_id == family.id))
    if used is not None or has_members:
        raise DossierError(_("Ce code abonné a déjà été utilisé. Pour rejoindre un dossier famille existant, "
                             "demandez une invitation au responsable du dossier."), code="used", field="code")
    try:
        with db.session.begin_nested():
            db.session.add(FamilyCodeClaim(family_id=family.id, tenant_id=family.tenant_id, user_id=user.id))
            db.session.flush()
    except IntegrityError as exc:
        raise DossierError(_("Ce code abonné a déjà été utilisé. Pour rejoindre un dossier famille existant, "
                             "demandez une invitation au responsable du dossier."), code="used", field="code") from exc
    _move_to_family(user, family)
    return family


# ====================================================================== tokens

def _hash(raw: str) -> str:
    return hashlib.sha256((raw or "").encode()).hexdigest()


# ====================================================================== co-représentant

def invite_coparent(*, family: Family, inviter: User, email: str, first_name: str, last_name: str) -> FamilyInvitation:
    email = normalize_email(email)
    if email == inviter.email:
        raise DossierError(_("Saisissez l'adresse e-mail de l'autre responsable, pas la vôtre."), field="email")
    now = utcnow()
    open_invites = list(db.session.scalars(select(FamilyInvitation).where(
        FamilyInvitation.family_id == family.id, FamilyInvitation.accepted_at.is_(None),
        FamilyInvitation.revoked_at.is_(None), FamilyInvitation.expires_at > now)))
    for inv in open_invites:
        if inv.email == email:
            inv.revoked_at = now  # sent again: the old link stops working
    open_invites = [inv for inv in open_invites if inv.email != email]
    if len(members_of(family)) + len(open_invites) >= MAX_RESPONSABLES:
        raise DossierError(_("Votre dossier compte déjà deux responsables (ou une invitation en cours)."),
                           field="email")
    member = find_user_by_email(email)
    if member is not None and member.family_id == family.id:
        raise DossierError(_("Cette personne a déjà accès à votre dossier famille."), field="email")
    raw = secrets.token_urlsafe(32)
    invitation = FamilyInvitation(family_id=family.id, tenant_id=family.tenant_id, email=email,
                                  first_name=first_name.strip(), last_name=last_name.strip(),
                                  token_hash=_hash(raw), invited_by_id=inviter.id,
                                  expires_at=now + timedelta(days=INVITATION_DAYS))
    db.session.add(invitation)
    queue_mail(to=email, template="coparent_invitation", locale=inviter.locale or "fr",
               context={"name": invitation.display_name, "inviter": inviter.display_name, "family": family.name,
                        "days": INVITATION_DAYS, "path": f"/famille/invitation/{raw}"})
    return invitation


def open_invitation(raw: str) -> FamilyInvitation:
    inv = db.session.scalars(select(FamilyInvitation).where(FamilyInvitation.token_hash == _hash(raw))).first()
    if inv is None or inv.revoked_at is not None:
        raise DossierError(_("Ce lien d'invitation n'est pas valide."), code="invalid")
    if inv.accepted_at is not None:
        raise DossierError(_("Cette invitation a déjà été acceptée. Connectez-vous avec votre adresse e-mail."),
                           code="used")
    if inv.expires_at < utcnow():
        raise DossierError(_("Cette invitation a expiré : demandez au responsable du dossier de vous inviter à "
                             "nouveau."), code="expired")
    return inv


def accept_invitation_new_account(inv: FamilyInvitation, *, tenant, first_name: str, last_name: str,
                                  password: str, locale: str) -> User:
    """The co-représentant creates their own login, attached to the family (the mail proved the address)."""
    if find_user_by_email(inv.email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail : connectez-vous pour accepter "
                             "l'invitation."), code="exists")
    policy = tenant.setting("password_policy", default={})
    if not password_is_valid(policy, password):
        raise DossierError(password_rule(policy), field="password")
    now = utcnow()
    user = User(tenant_id=inv.tenant_id, email=inv.email, first_name=first_name.strip(),
                last_name=last_name.strip(), password_hash=hash_password(password), role=ROLE_PARENT,
                family_id=inv.family_id, activated_at=now, cgu_accepted_at=now, locale=locale)
    db.session.add(user)
    db.session.flush()
    db.session.add(Responsable(family_id=inv.family_id, tenant_id=inv.tenant_id, user_id=user.id,
                               position=RESP_COPARENT, first_name=user.first_name, last_name=user.last_name))
    inv.accepted_at = now
    return user


def accept_invitation_existing(inv: FamilyInvitation, user: User) -> None:
    if user.email != inv.email:
        raise DossierError(_("Cette invitation est adressée à une autre adresse e-mail."), code="other")
    _move_to_family(user, inv.family)
    resp = db.session.scalars(select(Responsable).where(Responsable.user_id == user.id)).first()
    if resp is not None:
        resp.position = RESP_COPARENT
    inv.accepted_at = utcnow()


def open_invitations(family: Family) -> list[FamilyInvitation]:
    return list(db.session.scalars(select(FamilyInvitation).where(
        FamilyInvitation.family_id == family.id, FamilyInvitation.accepted_at.is_(None),
        FamilyInvitation.revoked_at.is_(None), FamilyInvitation.expires_at > utcnow())))


# ====================================================================== login e-mail

def request_email_change(user: User, new_email: str) -> EmailChange:
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise DossierError(_("C'est déjà votre adresse de connexion."), field="email")
    if find_user_by_email(new_email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail."), field="email")
    raw = secrets.token_urlsafe(32)
    row = EmailChange(user_id=user.id, tenant_id=user.tenant_id, new_email=new_email, token_hash=_hash(raw),
                      expires_at=utcnow() + timedelta(hours=EMAIL_CHANGE_HOURS))
    db.session.add(row)
    queue_mail(to=new_email, template="email_change_confirm", locale=user.locale, user=user,
               context={"name": user.display_name, "new_email": new_email, "hours": EMAIL_CHANGE_HOURS,
                        "path": f"/famille/adresse-email/{raw}"})
    return row


def confirm_email_change(raw: str) -> User:
    row = db.session.scalars(select(EmailChange).where(EmailChange.token_hash == _hash(raw))).first()
    if row is None:
        raise DossierError(_("Ce lien n'est pas valide."), code="invalid")
    if row.confirmed_at is not None:
        raise DossierError(_("Ce lien a déjà été utilisé."), code="used")
    if row.expires_at < utcnow():
        raise DossierError(_("Ce lien a expiré. Demandez-en un nouveau."), code="expired")
    user = row.user
    if not user.is_active:
        raise DossierError(_("Ce lien n'est pas valide."), code="invalid")
    if find_user_by_email(row.new_email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail."), code="taken")
    old = user.email
    user.email = row.new_email
    row.confirmed_at = utcnow()
    for other in db.session.scalars(select(EmailChange).where(
            EmailChange.user_id == user.id, EmailChange.confirmed_at.is_(None), EmailChange.id != row.id)):
        other.expires_at = utcnow()
    queue_mail(to=old, template="email_changed_notice", locale=user.locale, user=user,
               context={"name": user.display_name, "new_email": row.new_email})
    return user


# ====================================================================== health data

def log_health_read(*, agent, child: Child, context: str) -> HealthAccessLog:
    row = HealthAccessLog(agent_id=agent.id if not getattr(agent, "is_support", False) else None,
                          agent_name=agent.display_name, child_id=child.id, family_id=child.family_id,
                          tenant_id=child.tenant_id, context=context)
    db.session.add(row)
    return row


def health_reads(child: Child, limit: int = 20) -> list[HealthAccessLog]:
    return list(db.session.scalars(select(HealthAccessLog).where(HealthAccessLog.child_id == child.id)
                                   .order_by(HealthAccessLog.at.desc(), HealthAccessLog.id.desc()).limit(limit)))


def health_missing(health: ChildHealth | None) -> list[str]:
    missing = []
    for name, short in HEALTH_REQUIRED.items():
        value = getattr(health, name, None) if health is not None else None
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(str(short))
    return missing


def authorisations_missing(row: ChildFile | None) -> list[str]:
    return [str(short) for name, short in AUTHORISATIONS_SHORT.items()
            if (getattr(row, name, None) if row is not None else None) is None]


# ====================================================================== fiscal data

def set_quotient(family: Family, *, agent, value: int | None) -> FamilyFile:
    row = family_file(family)
    row.quotient_familial = value
    row.quotient_set_at = utcnow()
    row.quotient_set_by = agent.display_name
    return row


# ====================================================================== account deletion

def request_account_deletion(user: User, reason: str | None) -> AccountDeletionRequest:
    row = AccountDeletionRequest(user_id=user.id, tenant_id=user.tenant_id, family_id=user.family_id,
                                 user_email=user.email, user_name=user.display_name,
                                 reason=(reason or "").strip() or None)
    db.session.add(row)
    user.deactivated_at = utcnow()
    if user.family_id is not None and not db.session.scalar(select(func.count()).select_from(User).where(
            User.family_id == user.family_id, User.id != user.id, User.deactivated_at.is_(None))):
        # the family's last active account: its pièces justificatives go now (files after the commit)
        from core.documents.services import purge_family

        purge_family(user.family_id)
    for inv in db.session.scalars(select(FamilyInvitation).where(FamilyInvitation.invited_by_id == user.id,
                                                                 FamilyInvitation.accepted_at.is_(None))):
        inv.revoked_at = utcnow()
    return row


def deletion_requests(status: str | None = DELETION_OPEN) -> list[AccountDeletionRequest]:
    stmt = select(AccountDeletionRequest).order_by(AccountDeletionRequest.requested_at.desc())
    if status:
        stmt = stmt.where(AccountDeletionRequest.status == status)
    return list(db.session.scalars(stmt))


def mark_deletion_handled(row: AccountDeletionRequest, *, agent) -> None:
    row.status = DELETION_HANDLED
    row.handled_at = utcnow()
    row.handled_by = agent.display_name


# ====================================================================== agents: families

def search_families(query: str | None, limit: int = 100) -> list[Family]:
    stmt = select(Family).order_by(Family.name, Family.id)
    q = (query or "").strip()
    if q:
        like = f"%{q.lower()}%"
        users = select(User.family_id).where(func.lower(User.email).like(like), User.family_id.is_not(None))
        resps = select(Responsable.family_id).where(or_(func.lower(Responsable.email).like(like),
                                                        func.lower(Responsable.last_name).like(like)))
        stmt = stmt.where(or_(func.lower(Family.name).like(like), func.lower(Family.code).like(like),
                              Family.id.in_(users), Family.id.in_(resps)))
    return list(db.session.scalars(stmt.limit(limit)))


def pending_queue() -> list[FamilyChange]:
    return list(db.session.scalars(select(FamilyChange).where(FamilyChange.status == CHANGE_PENDING)
                                   .order_by(FamilyChange.requested_at, FamilyChange.id)))


def create_family(name: str) -> Family:
    from core.accounts import new_family_code

    for _attempt in range(10):
        code = new_family_code()
        if db.session.scalars(select(Family).where(Family.code == code)).first() is None:
            break
    family = Family(name=name.strip().upper(), code=code)
    db.session.add(family)
    db.session.flush()
    family_file(family)
    return family


def add_child_directly(family: Family, values: dict) -> Child:
    """An agent adds a child to a file (no validation needed: the commune is the validator)."""
    child = Child(family_id=family.id, tenant_id=family.tenant_id, first_name=values["first_name"].strip(),
                  last_name=values["last_name"].strip(), birth_date=values["birth_date"],
                  school=(values.get("school") or "").strip() or None,
                  class_name=(values.get("class_name") or "").strip() or None)
    db.session.add(child)
    return child


# ====================================================================== readiness check

@dataclass
class Readiness:
    child: Child
    messages: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.messages


def readiness(family: Family, now: datetime | None = None) -> list[Readiness]:
    """What would stop each child from booking, in French: checked before activities open."""
    now = now or cal.now_local()
    local_now = now.replace(tzinfo=None)
    today = local_now.date()
    children = children_of(family)
    if not children:
        return []
    ids = [c.id for c in children]
    healths = {h.child_id: h for h in db.session.scalars(select(ChildHealth).where(ChildHealth.child_id.in_(ids)))}
    files = {f.child_id: f for f in db.session.scalars(select(ChildFile).where(ChildFile.child_id.in_(ids)))}
    pending = pending_changes(family)
    family_pending = any(c.child_id is None for c in pending)
    child_pending = {c.child_id for c in pending if c.child_id}
    activities = list(db.session.scalars(select(Activity).where(
        Activity.archived.is_(False), Activity.ends_on >= today).order_by(Activity.position, Activity.starts_on)))
    inscriptions = {(i.child_id, i.activity_id): i for i in db.session.scalars(
        select(Inscription).where(Inscription.child_id.in_(ids)))}
    from core.billing.invoices import overdue_blocking_message  # late import: billing builds on the file
    from core.documents import services as pieces

    family_pieces, piece_types = pieces.family_pieces(family.id), pieces.types()
    overdue = overdue_blocking_message(family.id)
    out = []
    for child in children:
        result = Readiness(child)
        needing = []
        for act in activities:
            ins = inscriptions.get((child.id, act.id))
            upcoming = act.opening_at is not None and act.opening_at > local_now
            if ins is None and not upcoming:
                continue
            age = child.age_on(max(today, act.starts_on))
            if (act.age_min is not None and age < act.age_min) or (act.age_max is not None and age > act.age_max):
                continue
            opening = ""
            if upcoming:  # opening_at is a naive local time: no time-zone shift
                opening = " " + _("(ouverture des réservations le %(date)s à %(time)s)",
                                  date=format_date(act.opening_at.date(), "dd/MM/yyyy"),
                                  time=act.opening_at.strftime("%H:%M"))
            if ins is None:
                result.messages.append(_("Aucune inscription validée à « %(activity)s » : faites une demande de "
                                         "pré-inscription.", activity=act.name) + opening)
            elif ins.status == INSCRIPTION_PENDING:
                result.messages.append(_("Pré-inscription à « %(activity)s » en attente de validation.",
                                         activity=act.name) + opening)
            elif ins.status == INSCRIPTION_REFUSED:
                result.messages.append(_("Pré-inscription à « %(activity)s » refusée.", activity=act.name))
            elif ins.status != INSCRIPTION_ACCEPTED:
                continue
            if ins is not None and ins.status in (INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED):
                needing.append(act)
        result.messages.extend(pieces.readiness_messages(family, child, needing, today=today, pieces=family_pieces,
                                                         piece_types=piece_types))
        missing = health_missing(healths.get(child.id))
        if missing:
            result.messages.append(_("Informations santé incomplètes : %(fields)s.", fields=", ".join(missing)))
        auth_missing = authorisations_missing(files.get(child.id))
        if auth_missing:
            result.messages.append(_("Autorisations non renseignées : %(fields)s.", fields=", ".join(auth_missing)))
        if child.id in child_pending:
            result.messages.append(_("Une modification de sa fiche est en attente de validation par la "
                                     "collectivité."))
        if family_pending:
            result.messages.append(_("Une modification du dossier famille est en attente de validation par la "
                                     "collectivité."))
        if overdue:
            result.messages.append(overdue)
        out.append(result)
    return out


# ====================================================================== JSON export

def _j(value):
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _columns(obj, skip=("tenant_id",)) -> dict:
    return {c.key: _j(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in skip}


def _pieces_export(family: Family) -> list[dict]:
    from core.documents import services as pieces

    return pieces.export(family.id)


def export_family(family: Family, tenant) -> dict:
    """All the family's data (its whole file), nothing of another family."""
    children = children_of(family)
    ids = [c.id for c in children]

    def by_child(model):
        rows = {}
        if ids:
            for row in db.session.scalars(select(model).where(model.child_id.in_(ids)).order_by(model.id)):
                rows.setdefault(row.child_id, []).append(row)
        return rows

    healths, files, contacts = by_child(ChildHealth), by_child(ChildFile), by_child(ChildContact)
    inscriptions = by_child(Inscription)
    fiscal = db.session.scalars(select(FamilyFile).where(FamilyFile.family_id == family.id)).first()
    out = {
        "export": {"commune": tenant.name, "generated_at": utcnow().isoformat() + "Z", "format": 1},
        "family": {"name": family.name, "code": family.code, "created_at": _j(family.created_at),
                   "quotient_familial": fiscal.quotient_familial if fiscal else None,
                   "quotient_set_at": _j(fiscal.quotient_set_at) if fiscal else None},
        "accounts": [{"email": u.email, "first_name": u.first_name, "last_name": u.last_name, "locale": u.locale,
                      "created_at": _j(u.created_at), "activated_at": _j(u.activated_at),
                      "last_login_at": _j(u.last_login_at), "deactivated_at": _j(u.deactivated_at)}
                     for u in db.session.scalars(select(User).where(User.family_id == family.id).order_by(User.id))],
        "responsables": [_columns(r, skip=("tenant_id", "family_id", "user_id"))
                         for r in db.session.scalars(select(Responsable).where(Responsable.family_id == family.id)
                                                     .order_by(Responsable.position, Responsable.id))],
        "children": [],
        "changes": [{"section": c.entity, "operation": c.op, "label": c.label, "changes": c.changes,
                     "status": c.status, "motif": c.motif, "requested_at": _j(c.requested_at),
                     "decided_at": _j(c.decided_at)}
                    for c in db.session.scalars(select(FamilyChange).where(FamilyChange.family_id == family.id)
                                                .order_by(FamilyChange.id))],
        "invitations": [{"email": i.email, "first_name": i.first_name, "last_name": i.last_name,
                         "created_at": _j(i.created_at), "accepted_at": _j(i.accepted_at)}
                        for i in db.session.scalars(select(FamilyInvitation).where(
                            FamilyInvitation.family_id == family.id).order_by(FamilyInvitation.id))],
        "demandes": [{"number": d.number, "type": d.type, "status": d.status, "summary": d.summary,
                      "motif": d.motif, "created_at": _j(d.created_at), "decided_at": _j(d.decided_at)}
                     for d in db.session.scalars(select(Demande).where(Demande.family_id == family.id)
                                                 .order_by(Demande.number))],
        "reservations": [{"child_id": r.child_id, "activity": r.activity.name, "slot_day": _j(r.slot.day),
                          "status": r.status, "created_at": _j(r.created_at)}
                         for r in db.session.scalars(select(Reservation).where(Reservation.family_id == family.id)
                                                     .order_by(Reservation.id))],
        "health_access_log": [{"agent": h.agent_name, "child_id": h.child_id, "at": _j(h.at), "context": h.context}
                              for h in db.session.scalars(select(HealthAccessLog).where(
                                  HealthAccessLog.family_id == family.id).order_by(HealthAccessLog.id))],
        "pieces": _pieces_export(family),
        "deletion_requests": [{"email": d.user_email, "requested_at": _j(d.requested_at), "status": d.status}
                              for d in db.session.scalars(select(AccountDeletionRequest).where(
                                  AccountDeletionRequest.family_id == family.id))],
    }
    for child in children:
        health = (healths.get(child.id) or [None])[0]
        cfile = (files.get(child.id) or [None])[0]
        out["children"].append({
            "id": child.id, "first_name": child.first_name, "last_name": child.last_name,
            "birth_date": _j(child.birth_date), "school": child.school, "class_name": child.class_name,
            "photo": cfile.photo if cfile else None,
            "authorisations": {f.name: getattr(cfile, f.name) if cfile else None
                               for f in FIELDS[ENTITY_AUTHORISATIONS]},
            "health": {f.name: getattr(health, f.name) if health else None for f in FIELDS[ENTITY_HEALTH]},
            "contacts": [_columns(c, skip=("tenant_id", "child_id")) for c in contacts.get(child.id, [])],
            "inscriptions": [{"activity": i.activity.name, "status": i.status, "created_at": _j(i.created_at)}
                             for i in inscriptions.get(child.id, [])],
        })
    return out

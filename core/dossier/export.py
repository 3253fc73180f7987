"""The JSON export of a family's whole file (its data, nothing of another family)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from core.clock import utcnow
from core.dossier.fields import ENTITY_AUTHORISATIONS, ENTITY_HEALTH, FIELDS
from core.dossier.models import (
    AccountDeletionRequest,
    ChildContact,
    ChildFile,
    ChildHealth,
    FamilyChange,
    FamilyFile,
    FamilyInvitation,
    HealthAccessLog,
    Responsable,
)
from core.dossier.records import children_of
from core.models import Demande, Family, Inscription, Reservation, User
from extensions import db


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

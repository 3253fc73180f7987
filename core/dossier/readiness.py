"""The readiness check: what would stop each child from booking (inscriptions, pièces, health form,
authorisations, changes waiting, overdue invoices), in French, before activities open."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import calendar as cal
from core.dossier.changes import pending_changes
from core.dossier.models import ChildFile, ChildHealth
from core.dossier.records import children_of
from core.models import (
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    Activity,
    Child,
    Family,
    Inscription,
)
from extensions import db

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

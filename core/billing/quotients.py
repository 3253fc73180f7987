"""Quotient familial: agents record it (value, source, dates); the family reads it and asks for a
change with a justificatif through the family file's changes under validation (entity "quotient");
the agent accepts with the new value and dates (the family is mailed) or refuses with a motif."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import clock
from core.billing.models import QF_SOURCES, Quotient
from core.billing.pricing import FamilyPricing, QFPeriod
from core.dossier.changes import close_change
from core.dossier.models import CHANGE_PENDING, OP_CREATE, FamilyChange
from core.dossier.records import family_file
from core.locking import lock_one
from core.models import Child, Family
from core.uploads import uploads_root
from extensions import db

SOURCES = {"caf": _l("CAF"), "msa": _l("MSA"), "avis_imposition": _l("Avis d'imposition"), "autre": _l("Autre")}
QF_MAX = 99_999
ENTITY_QUOTIENT = "quotient"
JUSTIFICATIF_MAX_BYTES = 5 * 1024 * 1024


class QuotientError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def parse_qf(raw) -> int:
    """A QF as typed: digits only (spaces allowed), 0 to 99 999; French message otherwise."""
    text = str(raw or "").strip().replace(" ", "").replace("\u00a0", "")
    if not text:
        raise QuotientError(str(_l("Indiquez le quotient familial.")), "value")
    if not text.isdigit():
        raise QuotientError(str(_l("Le quotient familial s'écrit en chiffres seulement (exemple : 742).")), "value")
    value = int(text)
    if value > QF_MAX:
        raise QuotientError(str(_l("Le quotient familial est compris entre 0 et 99 999.")), "value")
    return value


def record(family: Family, *, value, source: str, valid_from: date | None, valid_to: date | None, agent_name: str,
           change_id: int | None = None) -> Quotient:
    """Record a QF (checked; raises QuotientError); the family file shows the one in force today."""
    qf = parse_qf(value)
    if source not in QF_SOURCES:
        raise QuotientError(str(_l("Choisissez la source du quotient (CAF, MSA, avis d'imposition…).")), "source")
    if valid_from is None:
        raise QuotientError(str(_l("Indiquez la date de début de validité.")), "valid_from")
    if valid_to is not None and valid_to < valid_from:
        raise QuotientError(str(_l("La fin de validité précède son début.")), "valid_to")
    row = Quotient(family_id=family.id, value=qf, source=source, valid_from=valid_from, valid_to=valid_to,
                   recorded_by=agent_name, change_id=change_id)
    db.session.add(row)
    db.session.flush()
    current = in_force(family.id, clock.today())
    family_file(family).quotient_familial = current.value if current is not None else None
    return row


def of_family(family_id: int) -> list[Quotient]:
    return list(db.session.scalars(select(Quotient).where(Quotient.family_id == family_id)
                                   .order_by(Quotient.valid_from.desc(), Quotient.id.desc())))


def in_force(family_id: int, day: date) -> Quotient | None:
    best = None
    for q in of_family(family_id):
        if q.valid_from <= day and (q.valid_to is None or day <= q.valid_to) and (best is None or q.id > best.id):
            best = q
    return best


def pricing_of(family_ids) -> dict[int, FamilyPricing]:
    """Each family's QF periods, residency and children's sibling ranks: three statements whatever
    the number of families."""
    ids = sorted(set(family_ids))
    out = {fid: FamilyPricing() for fid in ids}
    if not ids:
        return out
    for fid, resident in db.session.execute(select(Family.id, Family.resident).where(Family.id.in_(ids))):
        out[fid].resident = bool(resident)
    for q in db.session.execute(select(Quotient.family_id, Quotient.value, Quotient.valid_from, Quotient.valid_to,
                                       Quotient.id).where(Quotient.family_id.in_(ids))):
        out[q.family_id].quotients.append(QFPeriod(q.value, q.valid_from, q.valid_to, q.id))
    ranks: dict[int, int] = {}
    for child_id, fid in db.session.execute(select(Child.id, Child.family_id).where(Child.family_id.in_(ids))
                                            .order_by(Child.family_id, Child.birth_date, Child.id)):
        ranks[fid] = ranks.get(fid, 0) + 1
        out[fid].ranks[child_id] = ranks[fid]
    return out


# ---------------------------------------------------------------------------- the family asks

def store_justificatif(tenant_slug: str, data: bytes) -> str:
    """A PDF, JPEG or PNG (judged by its content) under uploads/<commune>/justificatifs/."""
    from core.agenda import detect_document_type

    if not data:
        raise QuotientError(str(_l("Joignez votre justificatif (attestation CAF ou MSA, avis d'imposition).")),
                            "document")
    if len(data) > JUSTIFICATIF_MAX_BYTES:
        raise QuotientError(str(_l("Le justificatif dépasse 5 Mo.")), "document")
    kind = detect_document_type(data[:16])
    if kind is None:
        raise QuotientError(str(_l("Le justificatif doit être un PDF, une image JPEG ou PNG.")), "document")
    folder = uploads_root() / tenant_slug / "justificatifs"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{kind}"
    (folder / name).write_bytes(data)
    return name


def justificatif_path(tenant_slug: str, name: str | None) -> Path | None:
    if not name or len(name) > 40 or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = uploads_root() / tenant_slug / "justificatifs" / name
    return path if path.is_file() else None


def request_change(family: Family, user, *, document: str, value=None, comment: str = "") -> FamilyChange:
    """The family's request (pending): its justificatif, the QF it reads on it, a comment."""
    proposed = parse_qf(value) if str(value or "").strip() else None
    existing = pending_request(family.id)
    if existing is not None:
        raise QuotientError(str(_l("Une demande de modification du quotient familial est déjà en attente de "
                                   "validation.")), "document")
    change = FamilyChange(family_id=family.id, tenant_id=family.tenant_id, child_id=None, entity=ENTITY_QUOTIENT,
                          entity_id=None, op=OP_CREATE,
                          changes={"document": document, "value": proposed, "comment": (comment or "").strip()[:500]},
                          label="Quotient familial — justificatif", requested_by_id=user.id)
    db.session.add(change)
    return change


def pending_request(family_id: int) -> FamilyChange | None:
    return db.session.scalars(select(FamilyChange).where(
        FamilyChange.family_id == family_id, FamilyChange.entity == ENTITY_QUOTIENT,
        FamilyChange.status == CHANGE_PENDING)).first()


def decide_request(change_id: int, *, agent_name: str, accept: bool, motif: str | None = None, value=None,
                   source: str | None = None, valid_from: date | None = None,
                   valid_to: date | None = None) -> FamilyChange:
    """Accept (a new QF with its dates) or refuse (a motif); the family is mailed either way."""
    change = lock_one(FamilyChange, change_id)
    if change is None or change.entity != ENTITY_QUOTIENT:
        raise LookupError(change_id)
    if change.status != CHANGE_PENDING:
        raise QuotientError(str(_l("Cette modification a déjà été traitée.")))
    family = db.session.get(Family, change.family_id)
    motif = (motif or "").strip() or None
    if accept:
        record(family, value=value, source=source or "", valid_from=valid_from, valid_to=valid_to,
               agent_name=agent_name, change_id=change.id)
    elif not motif:
        raise QuotientError(str(_l("Indiquez le motif du refus : il sera envoyé à la famille.")), "motif")
    close_change(change, accept=accept, who=agent_name, motif=motif)
    return change

"""Services of the pièces justificatives: no request, no HTML, no queue call; the caller commits.

Which piece answers a need ("slot" = a type, for the family or for one child):
a validated piece still valid today (the one valid the longest) → ``valid``; otherwise a piece
waiting for the commune → ``pending``; otherwise the latest refused or expired one → ``refused`` /
``expired``; otherwise ``missing``.  A validated piece therefore serves every inscription or demande
that needs its type until it expires — given once, reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from core import clock
from core.clock import utcnow
from core.documents import storage as st
from core.documents.config import default_end, settings_of
from core.documents.content import DEFAULT_MAX_BYTES, ContentError, check_upload
from core.documents.models import (
    PIECE_PENDING,
    PIECE_REFUSED,
    PIECE_VALIDATED,
    VALIDITY_UNLIMITED,
    Piece,
    PieceAccessLog,
    PieceType,
)
from core.locking import lock_one
from core.mail import queue_mail
from core.models import (
    DEMANDE_OPEN,
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    LINE_PENDING,
    ROLE_PARENT,
    VALIDATION_IMMEDIATE,
    Activity,
    Child,
    Demande,
    Family,
    Inscription,
    User,
)
from extensions import db

STATE_VALID = "valid"
STATE_PENDING = "pending"
STATE_REFUSED = "refused"
STATE_EXPIRED = "expired"
STATE_MISSING = "missing"

STATE_WORDS = {
    STATE_VALID: _l("Validée"),
    STATE_PENDING: _l("En attente de validation"),
    STATE_REFUSED: _l("Refusée"),
    STATE_EXPIRED: _l("Expirée"),
    STATE_MISSING: _l("À fournir"),
}

MOTIF_MAX = 1000


class PieceError(Exception):
    """A refusal the user can read (French, translated); `field` names the form field."""

    def __init__(self, message: str, code: str = "refused", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


# ====================================================================== types

def types(*, active_only: bool = True) -> list[PieceType]:
    stmt = select(PieceType).order_by(PieceType.position, PieceType.label, PieceType.id)
    if active_only:
        stmt = stmt.where(PieceType.active.is_(True))
    return list(db.session.scalars(stmt))


def type_label(piece_type: PieceType) -> str:
    if piece_type.label_en and str(get_locale() or "fr") == "en":
        return piece_type.label_en
    return piece_type.label


def piece_label(piece_type: PieceType, child: Child | None) -> str:
    return f"{type_label(piece_type)} — {child.first_name}" if child is not None else type_label(piece_type)


# ====================================================================== what answers a need

@dataclass
class Slot:
    """A type of piece for the family (child None) or for one child, and where it stands."""

    type: PieceType
    child: Child | None
    piece: Piece | None = None        # the piece that decides the state (None: missing)
    newer: Piece | None = None        # a replacement waiting for validation while `piece` is still valid
    state: str = STATE_MISSING
    required_by: list[str] = field(default_factory=list)   # activity names needing it

    @property
    def satisfied(self) -> bool:
        return self.state == STATE_VALID

    @property
    def label(self) -> str:
        return piece_label(self.type, self.child)

    @property
    def key(self) -> str:
        return f"{self.type.id}-{self.child.id if self.child is not None else 0}"

    @property
    def status_text(self) -> str:
        """"Validée jusqu'au 12/03/2027", "Refusée : motif", "Expirée le …", "En attente de validation"…"""
        piece = self.piece
        if self.state == STATE_VALID:
            if piece.valid_until is None:
                return _("Validée")
            return _("Validée jusqu'au %(date)s", date=format_date(piece.valid_until, "dd/MM/yyyy"))
        if self.state == STATE_EXPIRED:
            return _("Expirée depuis le %(date)s", date=format_date(piece.valid_until + timedelta(days=1),
                                                                   "dd/MM/yyyy"))
        if self.state == STATE_REFUSED:
            return _("Refusée : %(motif)s", motif=piece.motif) if piece.motif else _("Refusée")
        return str(STATE_WORDS[self.state])


def _state(pieces: list[Piece], today: date) -> tuple[str, Piece | None, Piece | None]:
    valid = [p for p in pieces if p.valid_on(today)]
    pending = sorted((p for p in pieces if p.status == PIECE_PENDING), key=lambda p: (p.uploaded_at, p.id))
    if valid:
        best = max(valid, key=lambda p: (p.valid_until or date.max, p.id))
        return STATE_VALID, best, (pending[-1] if pending else None)
    if pending:
        return STATE_PENDING, pending[-1], None
    others = sorted((p for p in pieces if p.status == PIECE_REFUSED or p.expired_on(today)),
                    key=lambda p: (p.decided_at or p.uploaded_at, p.id))
    if others:
        last = others[-1]
        return (STATE_REFUSED if last.status == PIECE_REFUSED else STATE_EXPIRED), last, None
    return STATE_MISSING, None, None


def family_pieces(family_id: int) -> list[Piece]:
    return list(db.session.scalars(select(Piece).where(Piece.family_id == family_id).order_by(Piece.id)))


def _group(pieces: list[Piece]) -> dict[tuple[int, int | None], list[Piece]]:
    out: dict[tuple[int, int | None], list[Piece]] = {}
    for piece in pieces:
        out.setdefault((piece.type_id, piece.child_id), []).append(piece)
    return out


def slot_for(piece_type: PieceType, child: Child | None, grouped: dict, today: date) -> Slot:
    key = (piece_type.id, child.id if piece_type.for_child and child is not None else None)
    state, piece, newer = _state(grouped.get(key, []), today)
    return Slot(type=piece_type, child=child if piece_type.for_child else None, piece=piece, newer=newer,
                state=state)


def requirements(family_id: int, activity: Activity, children: list[Child], *, today: date | None = None,
                 pieces: list[Piece] | None = None, piece_types: list[PieceType] | None = None) -> list[Slot]:
    """The pieces an inscription of `children` to `activity` needs, and where each stands today."""
    today = today or clock.today()
    grouped = _group(family_pieces(family_id) if pieces is None else pieces)
    out = []
    for piece_type in (types() if piece_types is None else piece_types):
        if not piece_type.requires(activity.code):
            continue
        for child in (children if piece_type.for_child else [None]):
            slot = slot_for(piece_type, child, grouped, today)
            slot.required_by.append(activity.name)
            out.append(slot)
    return out


def missing(family_id: int, activity: Activity, children: list[Child], *, today: date | None = None) -> list[Slot]:
    """What still stops the inscription: every needed piece that is not validated and valid today."""
    return [s for s in requirements(family_id, activity, children, today=today) if not s.satisfied]


def missing_text(slots: list[Slot]) -> str:
    return ", ".join(f"{s.label} ({str(STATE_WORDS[s.state]).lower()})" for s in slots)


def family_space(family: Family, *, today: date | None = None) -> list[Slot]:
    """Every type the commune asks for, for the family and for each child, with what each activity
    the children are (or are being) inscribed in needs."""
    today = today or clock.today()
    children = list(db.session.scalars(select(Child).where(Child.family_id == family.id)
                                       .order_by(Child.birth_date, Child.id)))
    grouped = _group(family_pieces(family.id))
    inscriptions = list(db.session.scalars(select(Inscription).where(
        Inscription.child_id.in_([c.id for c in children] or [0]),
        Inscription.status.in_((INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED)))))
    activities = {a.id: a for a in db.session.scalars(select(Activity).where(
        Activity.id.in_({i.activity_id for i in inscriptions} or {0})))}
    out = []
    for piece_type in types():
        for child in (children if piece_type.for_child else [None]):
            slot = slot_for(piece_type, child, grouped, today)
            for ins in inscriptions:
                activity = activities[ins.activity_id]
                if activity.ends_on < today or not piece_type.requires(activity.code):
                    continue
                if child is not None and ins.child_id != child.id:
                    continue
                if activity.name not in slot.required_by:
                    slot.required_by.append(activity.name)
            out.append(slot)
    return out


def needed_now(family: Family, *, today: date | None = None) -> list[Slot]:
    """The family's pieces that an inscription in progress or current needs and that are not valid."""
    return [s for s in family_space(family, today=today) if s.required_by and not s.satisfied]


# ====================================================================== uploading

def _lock_family(family_id: int) -> None:
    lock_one(Family, family_id)


def upload(*, family: Family, user, piece_type: PieceType, child: Child | None, stream, filename: str | None,
           tenant_slug: str, declared_length: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Piece:
    """A family gives (or replaces) a piece.  Checked by its content, stored, "en attente de validation".

    A piece still waiting or refused for the same need is replaced (deleted after commit); a
    validated one keeps serving until the new one is validated.  Raises PieceError.
    """
    if piece_type is None or not piece_type.active:
        raise PieceError(_("Choisissez le type de pièce."), field="type")
    if piece_type.for_child:
        if child is None or child.family_id != family.id:
            raise PieceError(_("Choisissez l'enfant concerné par cette pièce."), field="child")
    else:
        child = None
    try:
        checked = check_upload(stream, max_bytes=max_bytes, declared_length=declared_length)
    except ContentError as err:
        raise PieceError(err.message, code=err.code, field="file") from err
    _lock_family(family.id)
    key = st.new_key(tenant_slug, checked.extension)
    try:
        st.get_storage().save(key, checked.file, checked.content_type)
    finally:
        checked.file.close()
    st.track_new(db.session, key)
    for old in db.session.scalars(select(Piece).where(
            Piece.family_id == family.id, Piece.type_id == piece_type.id,
            Piece.child_id.is_(None) if child is None else Piece.child_id == child.id,
            Piece.status.in_((PIECE_PENDING, PIECE_REFUSED)))):
        delete_piece(old)
    name = shown_filename(filename) or f"piece.{checked.extension}"
    piece = Piece(family_id=family.id, tenant_id=family.tenant_id, child_id=child.id if child else None,
                  type_id=piece_type.id, status=PIECE_PENDING, storage_key=key, filename=name,
                  content_type=checked.content_type, size=checked.size, sha256=checked.sha256,
                  uploaded_by_id=getattr(user, "id", None), uploaded_by=getattr(user, "display_name", ""))
    db.session.add(piece)
    db.session.flush()
    return piece


# Control characters (NUL: PostgreSQL refuses it in text, a 500) and the marks that reorder text
# ("facture\u202efdp.exe" shown as "facture" + "exe.pdf"): never in a name shown to agents.
_HIDDEN = {*map(chr, range(0x20)), "\x7f", "\u061c", "\u200e", "\u200f", *map(chr, range(0x202a, 0x202f)),
           *map(chr, range(0x2066, 0x206a)), "\ufeff"}


def shown_filename(filename: str | None) -> str:
    """The family's file name as shown (never used as a storage key): its last path segment, without
    control characters nor text-direction marks, 200 characters at most."""
    name = "".join(c for c in (filename or "") if c not in _HIDDEN)
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]


def delete_piece(piece: Piece) -> None:
    """The row now, its file after the commit."""
    st.remove_after_commit(db.session, piece.storage_key)
    db.session.delete(piece)


# ====================================================================== agents

def queue() -> list[Piece]:
    """Pieces waiting for the commune, oldest first."""
    return list(db.session.scalars(select(Piece).where(Piece.status == PIECE_PENDING)
                                   .order_by(Piece.uploaded_at, Piece.id)))


def pending_count() -> int:
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(Piece).where(Piece.status == PIECE_PENDING)) or 0


def proposed_end(piece: Piece) -> date | None:
    return default_end(piece.type, max(clock.today(), piece.uploaded_at.date()))


def _decided(piece_id: int) -> Piece:
    piece = lock_one(Piece, piece_id)
    if piece is None:
        raise PieceError(_("Cette pièce n'existe plus."), code="gone")
    if piece.status != PIECE_PENDING:
        raise PieceError(_("Cette pièce a déjà été traitée par quelqu'un d'autre."), code="decided")
    return piece


def validate(piece: Piece, *, agent, valid_until: date | None, links=None) -> Piece:
    """Validated until `valid_until` (required unless the type has no end); older pieces of the same
    need are deleted; an inscription that was only waiting for its pieces goes on."""
    today = clock.today()
    if valid_until is None and piece.type.validity != VALIDITY_UNLIMITED:
        raise PieceError(_("Indiquez la date de fin de validité."), field="valid_until")
    if valid_until is not None and valid_until < today:
        raise PieceError(_("La date de fin de validité ne peut pas être passée."), field="valid_until")
    piece = _decided(piece.id)
    piece.status = PIECE_VALIDATED
    piece.valid_until = valid_until
    piece.motif = None
    piece.decided_at = utcnow()
    piece.decided_by = agent.display_name
    for old in db.session.scalars(select(Piece).where(
            Piece.family_id == piece.family_id, Piece.type_id == piece.type_id, Piece.id != piece.id,
            Piece.child_id.is_(None) if piece.child_id is None else Piece.child_id == piece.child_id)):
        delete_piece(old)
    db.session.flush()
    release_waiting_inscriptions(piece.family_id, links=links)
    return piece


def refuse(piece: Piece, *, agent, motif: str | None) -> Piece:
    """Refused with a motif, mailed to the family."""
    motif = (motif or "").strip()
    if not motif:
        raise PieceError(_("Indiquez le motif du refus : il est envoyé à la famille."), field="motif")
    if len(motif) > MOTIF_MAX:
        raise PieceError(_("%(num)d caractères au maximum.", num=MOTIF_MAX), field="motif")
    piece = _decided(piece.id)
    piece.status = PIECE_REFUSED
    piece.motif = motif
    piece.valid_until = None
    piece.decided_at = utcnow()
    piece.decided_by = agent.display_name
    for member in members(piece.family_id):
        queue_mail(to=member.email, template="piece_refused", locale=member.locale, user=member,
                   context={"name": member.display_name, "piece": piece.type.label,
                            "piece_en": piece.type.label_en or piece.type.label,
                            "child": piece.child.first_name if piece.child else None,
                            "motif": motif, "path": "/pieces/"})
    return piece


def members(family_id: int) -> list[User]:
    return list(db.session.scalars(select(User).where(
        User.family_id == family_id, User.role == ROLE_PARENT, User.deactivated_at.is_(None)).order_by(User.id)))


class _PathLinks:
    """Links for mails when no request gives them (the commune's public URL)."""

    def demande(self, number: int) -> str:
        from core.mail import _base_url
        from tenants.context import require_tenant_id
        from tenants.models import Tenant

        tenant = db.session.get(Tenant, require_tenant_id())
        return f"{_base_url()}/{tenant.slug}/demandes/{number}"


def release_waiting_inscriptions(family_id: int, *, links=None) -> list[Demande]:
    """Inscriptions validated at once by their activity, held only for their pieces: accepted as
    soon as every piece they need is validated (the demande's decision mail follows)."""
    from core.demandes import decide

    rows = db.session.execute(
        select(Inscription, Activity, Demande)
        .join(Activity, Inscription.activity_id == Activity.id)
        .join(Demande, Inscription.demande_id == Demande.id)
        .join(Child, Inscription.child_id == Child.id)
        .where(Child.family_id == family_id, Inscription.status == INSCRIPTION_PENDING,
               Activity.inscription_validation == VALIDATION_IMMEDIATE, Demande.status.in_(DEMANDE_OPEN))
        .order_by(Demande.id)).all()
    ready: dict[int, set[int]] = {}
    demandes: dict[int, Demande] = {}
    for ins, activity, demande in rows:
        if missing(family_id, activity, [ins.child]):
            continue
        line_ids = {line.id for line in demande.lines if line.status == LINE_PENDING
                    and line.child_id == ins.child_id and line.activity_id == activity.id}
        if line_ids:
            ready.setdefault(demande.id, set()).update(line_ids)
            demandes[demande.id] = demande
    done = []
    for demande_id, line_ids in ready.items():
        done.append(decide(demandes[demande_id], accept=line_ids, refuse=set(), motif=None,
                           actor=str(_l("Traitement automatique")), links=links or _PathLinks()))
    return done


def family_needs(family: Family, *, today: date | None = None) -> list[Slot]:
    """For agents: per family, what its inscriptions (in progress or current) miss."""
    return needed_now(family, today=today)


def log_read(*, agent, piece: Piece, context: str) -> PieceAccessLog:
    row = PieceAccessLog(agent_id=agent.id if not getattr(agent, "is_support", False) else None,
                         agent_name=agent.display_name, piece_id=piece.id, family_id=piece.family_id,
                         child_id=piece.child_id, tenant_id=piece.tenant_id,
                         piece_label=f"{piece.type.label}" + (f" — {piece.child.first_name}" if piece.child else ""),
                         context=context)
    db.session.add(row)
    return row


def reads(family_id: int, limit: int = 20) -> list[PieceAccessLog]:
    return list(db.session.scalars(select(PieceAccessLog).where(PieceAccessLog.family_id == family_id)
                                   .order_by(PieceAccessLog.at.desc(), PieceAccessLog.id.desc()).limit(limit)))


# ====================================================================== expiry and retention

def expiring(family_id: int, *, today: date | None = None, days: int | None = None, tenant=None) -> list[Piece]:
    """The family's valid pieces whose end comes within the announce period (dashboard)."""
    today = today or clock.today()
    if days is None:
        days = settings_of(tenant).announce_days if tenant is not None else 30
    return list(db.session.scalars(select(Piece).where(
        Piece.family_id == family_id, Piece.status == PIECE_VALIDATED, Piece.valid_until.is_not(None),
        Piece.valid_until >= today, Piece.valid_until <= today + timedelta(days=days))
        .order_by(Piece.valid_until, Piece.id)))


def announce_expiring(tenant, *, today: date | None = None) -> int:
    """Mail each family once per piece that expires within the announce period (in the commune's scope)."""
    today = today or clock.today()
    days = settings_of(tenant).announce_days
    pieces = list(db.session.scalars(select(Piece).where(
        Piece.status == PIECE_VALIDATED, Piece.valid_until.is_not(None), Piece.valid_until >= today,
        Piece.valid_until <= today + timedelta(days=days), Piece.expiry_notified_at.is_(None))
        .order_by(Piece.id).with_for_update(skip_locked=True)))
    for piece in pieces:
        # a newer validated piece of the same need makes the announcement pointless
        piece.expiry_notified_at = utcnow()
        for member in members(piece.family_id):
            queue_mail(to=member.email, template="piece_expiring", locale=member.locale, user=member,
                       context={"name": member.display_name, "piece": piece.type.label,
                                "piece_en": piece.type.label_en or piece.type.label,
                                "child": piece.child.first_name if piece.child else None,
                                "valid_until": piece.valid_until.isoformat(), "path": "/pieces/"})
    return len(pieces)


def purge(tenant, *, today: date | None = None) -> int:
    """Delete (file and row) the pieces past their retention: expired ones `days_after_expiry` after
    their end, refused ones `days_after_refusal` after the refusal.  In the commune's scope."""
    today = today or clock.today()
    settings = settings_of(tenant)
    expired_before = today - timedelta(days=settings.days_after_expiry)
    refused_before = utcnow() - timedelta(days=settings.days_after_refusal)
    rows = list(db.session.scalars(select(Piece).where(or_(
        (Piece.status == PIECE_VALIDATED) & Piece.valid_until.is_not(None) & (Piece.valid_until < expired_before),
        (Piece.status == PIECE_REFUSED) & (Piece.decided_at < refused_before)))))
    for piece in rows:
        delete_piece(piece)
    db.session.flush()
    return len(rows)


def purge_family(family_id: int) -> int:
    """Every piece of the family (its deletion request)."""
    rows = family_pieces(family_id)
    for piece in rows:
        delete_piece(piece)
    db.session.flush()
    return len(rows)


def export(family_id: int) -> list[dict]:
    """The family's pieces for its JSON export (what they are, never the files' keys)."""
    out = []
    for piece in family_pieces(family_id):
        out.append({
            "type": piece.type.label, "type_code": piece.type.code,
            "child_id": piece.child_id, "child": piece.child.first_name if piece.child else None,
            "filename": piece.filename, "content_type": piece.content_type, "size": piece.size,
            "sha256": piece.sha256, "status": piece.status, "uploaded_at": piece.uploaded_at.isoformat(),
            "decided_at": piece.decided_at.isoformat() if piece.decided_at else None,
            "valid_until": piece.valid_until.isoformat() if piece.valid_until else None, "motif": piece.motif,
        })
    return out


def readiness_messages(family: Family, child: Child, activities: list[Activity], *,
                       today: date | None = None, pieces: list[Piece] | None = None,
                       piece_types: list[PieceType] | None = None) -> list[str]:
    """For the readiness check: the pieces missing or expired for the child's activities."""
    today = today or clock.today()
    pieces = family_pieces(family.id) if pieces is None else pieces
    piece_types = types() if piece_types is None else piece_types
    out, seen = [], set()
    for activity in activities:
        for slot in requirements(family.id, activity, [child], today=today, pieces=pieces, piece_types=piece_types):
            if slot.satisfied or slot.key in seen:
                continue
            seen.add(slot.key)
            if slot.state == STATE_EXPIRED:
                out.append(_("Pièce justificative expirée : %(piece)s (%(activity)s).", piece=slot.label,
                             activity=activity.name))
            elif slot.state == STATE_PENDING:
                out.append(_("Pièce justificative en attente de validation : %(piece)s (%(activity)s).",
                             piece=slot.label, activity=activity.name))
            elif slot.state == STATE_REFUSED:
                out.append(_("Pièce justificative refusée, à remplacer : %(piece)s (%(activity)s).",
                             piece=slot.label, activity=activity.name))
            else:
                out.append(_("Pièce justificative manquante : %(piece)s (%(activity)s).", piece=slot.label,
                             activity=activity.name))
    return out

"""Services of the commune's back-office: queue of demandes, capacity effects, families, presence
lists (page and CSV), commune settings.  No request or HTML here; every query runs in the commune's
scope (the tenancy guard adds the filter)."""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from core.models import (
    DEMANDE_EN_COURS,
    DEMANDE_OPEN,
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    KIND_UNITS,
    LINE_PENDING,
    RES_ABSENT,
    RES_RESERVED,
    RES_WAITLIST,
    TYPE_INSCRIPTION,
    Activity,
    Child,
    Demande,
    DemandeLine,
    Family,
    Inscription,
    Reservation,
    Slot,
    User,
)
from core.reservations import online_remaining, slot_dates
from extensions import db

DEFAULT_REFUSAL_MOTIFS = ["Pièces manquantes au dossier", "Factures impayées"]  # (UNPAID_INVOICES_MOTIF)

# ---------------------------------------------------------------------------- demandes queue

STATUS_TODO = "a_traiter"
QUEUE_PAGE = 50


@dataclass
class QueueFilters:
    status: str = STATUS_TODO
    activity_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    type: str | None = None
    page: int = 1


def demandes_queue(filters: QueueFilters) -> tuple[list[Demande], int]:
    """Demandes, oldest first (the order they must be processed in), and how many match."""
    query = select(Demande)
    if filters.status == STATUS_TODO:
        query = query.where(Demande.status.in_(DEMANDE_OPEN))
    elif filters.status and filters.status != "toutes":
        query = query.where(Demande.status == filters.status)
    if filters.type:
        query = query.where(Demande.type == filters.type)
    if filters.activity_id:
        query = query.where(Demande.id.in_(select(DemandeLine.demande_id).where(
            DemandeLine.activity_id == filters.activity_id)))
    if filters.date_from:
        query = query.where(Demande.created_at >= _utc_midnight(filters.date_from))
    if filters.date_to:
        query = query.where(Demande.created_at < _utc_midnight(filters.date_to + timedelta(days=1)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.options(selectinload(Demande.family))
                              .order_by(Demande.created_at, Demande.id)
                              .offset((max(1, filters.page) - 1) * QUEUE_PAGE).limit(QUEUE_PAGE)).all()
    return rows, total


def _utc_midnight(day: date) -> datetime:
    """Midnight in the commune's time zone, as the naive UTC the database stores."""
    from datetime import UTC

    from core.calendar import PARIS

    return datetime.combine(day, time.min, tzinfo=PARIS).astimezone(UTC).replace(tzinfo=None)


def dashboard_counts() -> dict:
    open_by_status = dict(db.session.execute(select(Demande.status, func.count()).where(
        Demande.status.in_(DEMANDE_OPEN)).group_by(Demande.status)).all())
    inscriptions = db.session.scalar(select(func.count()).select_from(Inscription).where(
        Inscription.status == INSCRIPTION_PENDING)) or 0
    oldest = db.session.scalar(select(func.min(Demande.created_at)).where(Demande.status.in_(DEMANDE_OPEN)))
    return {
        "todo": sum(open_by_status.values()),
        "deposee": open_by_status.get("deposee", 0),
        "en_cours": open_by_status.get(DEMANDE_EN_COURS, 0),
        "inscriptions": inscriptions,
        "oldest": oldest,
    }


# ---------------------------------------------------------------------------- one demande

@dataclass
class LineView:
    line: DemandeLine
    slot: Slot | None
    capacity: int | None = None
    taken: int | None = None
    online_left: int | None = None
    waiting: int = 0
    reservation_status: str | None = None

    @property
    def pending(self) -> bool:
        return self.line.status == LINE_PENDING


def line_views(demande: Demande) -> list[LineView]:
    """Each line with its effect on capacity: places of the slot, taken (this line's pending
    place included), left online, and how many wait on the list (a refusal serves the first)."""
    slot_ids = {line.slot_id for line in demande.lines if line.slot_id}
    slots = {s.id: s for s in db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids or {0})))}
    activities = {a.id: a for a in db.session.scalars(select(Activity).where(
        Activity.id.in_({s.activity_id for s in slots.values()} or {0})))}
    waiting = dict(db.session.execute(select(Reservation.slot_id, func.count()).where(
        Reservation.slot_id.in_(slot_ids or {0}), Reservation.status == RES_WAITLIST)
        .group_by(Reservation.slot_id)).all())
    res_ids = [line.reservation_id for line in demande.lines if line.reservation_id]
    statuses = dict(db.session.execute(select(Reservation.id, Reservation.status).where(
        Reservation.id.in_(res_ids or [0]))).all())
    out = []
    for line in demande.lines:
        slot = slots.get(line.slot_id)
        view = LineView(line=line, slot=slot, reservation_status=statuses.get(line.reservation_id))
        if slot is not None:
            view.capacity = slot.capacity
            view.taken = slot.taken
            view.online_left = online_remaining(activities[slot.activity_id], slot)
            view.waiting = waiting.get(slot.id, 0)
        out.append(view)
    return out


def refusal_motifs(tenant) -> list[str]:
    motifs = tenant.setting("refusal_motifs", default=None)
    if motifs is None:
        return list(DEFAULT_REFUSAL_MOTIFS)
    return [str(m) for m in motifs if str(m).strip()]


UNPAID_INVOICES_MOTIF = "Factures impayées"


def unpaid_invoices_motif(tenant) -> str:
    """The commune's own wording of the motif "Factures impayées" (its list), else that one."""
    for motif in refusal_motifs(tenant):
        if motif.strip().casefold() == UNPAID_INVOICES_MOTIF.casefold():
            return motif
    return UNPAID_INVOICES_MOTIF


def compose_motif(choice: str | None, text: str | None) -> str:
    parts = [p.strip() for p in (choice, text) if p and p.strip()]
    return " — ".join(parts)


# ---------------------------------------------------------------------------- inscriptions

def inscriptions(status: str = INSCRIPTION_PENDING, activity_id: int | None = None) -> list[Inscription]:
    query = select(Inscription).options(selectinload(Inscription.child).selectinload(Child.family),
                                        selectinload(Inscription.activity))
    if status in (INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED, INSCRIPTION_REFUSED):
        query = query.where(Inscription.status == status)
    if activity_id:
        query = query.where(Inscription.activity_id == activity_id)
    return db.session.scalars(query.order_by(Inscription.created_at, Inscription.id).limit(500)).all()


def decide_inscription_without_demande(ins: Inscription, ok: bool) -> None:
    """Inscriptions entered by the commune (no demande behind them) are decided directly."""
    from core.clock import utcnow

    if ins.status != INSCRIPTION_PENDING:
        return
    ins.status = INSCRIPTION_ACCEPTED if ok else INSCRIPTION_REFUSED
    ins.decided_at = utcnow()


def inscription_demandes(demande_ids: set[int]) -> dict[int, Demande]:
    return {d.id: d for d in db.session.scalars(select(Demande).where(
        Demande.id.in_(demande_ids or {0}), Demande.type == TYPE_INSCRIPTION))}


# ---------------------------------------------------------------------------- families

def search_families(q: str, limit: int = 50) -> list[Family]:
    q = (q or "").strip()
    query = select(Family).options(selectinload(Family.children), selectinload(Family.members))
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(
            func.lower(Family.name).like(like),
            func.lower(Family.code).like(like),
            Family.id.in_(select(Child.family_id).where(or_(func.lower(Child.first_name).like(like),
                                                            func.lower(Child.last_name).like(like)))),
            Family.id.in_(select(User.family_id).where(or_(func.lower(User.email).like(like),
                                                           func.lower(User.last_name).like(like)))),
        ))
    return db.session.scalars(query.order_by(Family.name, Family.id).limit(limit)).all()


def family_demandes(family: Family) -> list[Demande]:
    return db.session.scalars(select(Demande).where(Demande.family_id == family.id)
                              .order_by(Demande.created_at.desc(), Demande.id.desc()).limit(200)).all()


def family_inscriptions(family: Family) -> list[Inscription]:
    child_ids = [c.id for c in family.children]
    return db.session.scalars(select(Inscription).where(Inscription.child_id.in_(child_ids or [0]))
                              .options(selectinload(Inscription.activity))
                              .order_by(Inscription.created_at.desc())).all()


# ---------------------------------------------------------------------------- presence lists

@dataclass
class PresenceRow:
    child: Child
    marks: dict  # column key -> "present" | "absent"
    health: str = ""
    contact: str = ""

    def mark(self, key) -> str:
        return self.marks.get(key, "")


@dataclass
class PresenceColumn:
    key: int
    label: str
    capacity: int
    present: int = 0
    absent: int = 0


@dataclass
class PresenceDay:
    day: date
    columns: list[PresenceColumn]
    rows: list[PresenceRow] = field(default_factory=list)


def health_flag(child: Child) -> str:
    """"PAI" / "Allergies" when the family file (another module) says so; nothing otherwise."""
    health = getattr(child, "health", None)
    if isinstance(health, list | tuple):
        health = health[0] if health else None
    if health is None:
        return ""
    flags = []
    if getattr(health, "pai", False):
        flags.append(str(_l("PAI")))
    if (getattr(health, "allergies", None) or "").strip():
        flags.append(str(_l("Allergies")))
    return " · ".join(flags)


def emergency_contact(child: Child, members: list[User]) -> str:
    """The child's emergency contact when the family file has one, else the family's account holders."""
    for attr in ("emergency_contacts", "contacts"):
        items = getattr(child, attr, None)
        if items:
            picked = [c for c in items if getattr(c, "emergency", True)] or list(items)
            c = picked[0]
            name = f"{getattr(c, 'first_name', '')} {getattr(c, 'last_name', '')}".strip()
            return f"{name} {getattr(c, 'phone', '') or ''}".strip()
    return ", ".join(f"{m.display_name} <{m.email}>" for m in members)


def presence(activity: Activity, start: date, end: date, unit_id: int | None = None) -> list[PresenceDay]:
    """The children present each day of [start, end]: reserved (or marked absent), per unit or session."""
    slots = db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.day <= end,
                                                  Slot.last_day >= start)
                               .options(selectinload(Slot.unit))).all()
    if unit_id:
        slots = [s for s in slots if s.unit_id == unit_id]
    res_rows = db.session.scalars(select(Reservation).where(
        Reservation.slot_id.in_([s.id for s in slots] or [0]),
        Reservation.status.in_((RES_RESERVED, RES_ABSENT)))).all()
    children = {c.id: c for c in db.session.scalars(select(Child).where(
        Child.id.in_({r.child_id for r in res_rows} or {0})))}
    members: dict[int, list[User]] = {}
    for user in db.session.scalars(select(User).where(User.family_id.in_(
            {c.family_id for c in children.values()} or {0})).order_by(User.id)):
        members.setdefault(user.family_id, []).append(user)
    by_slot: dict[int, list[Reservation]] = {}
    for r in res_rows:
        by_slot.setdefault(r.slot_id, []).append(r)
    days: dict[date, list[Slot]] = {}
    for slot in slots:
        for d in slot_dates(slot):
            if start <= d <= end:
                days.setdefault(d, []).append(slot)
    out = []
    for d in sorted(days):
        day_slots = days[d]
        if activity.kind == KIND_UNITS:
            day_slots.sort(key=lambda s: (s.unit.position if s.unit else 0, s.id))
        else:
            day_slots.sort(key=lambda s: (s.start_time or "", s.title, s.id))
        columns = [PresenceColumn(key=s.id, label=(s.unit.label if s.unit else s.title), capacity=s.capacity)
                   for s in day_slots]
        rows: dict[int, PresenceRow] = {}
        for col, slot in zip(columns, day_slots, strict=True):
            for r in by_slot.get(slot.id, []):
                child = children[r.child_id]
                row = rows.get(child.id)
                if row is None:
                    row = rows[child.id] = PresenceRow(child=child, marks={}, health=health_flag(child),
                                                       contact=emergency_contact(child, members.get(child.family_id, [])))
                absent = r.status == RES_ABSENT
                row.marks[col.key] = "absent" if absent else "present"
                if absent:
                    col.absent += 1
                else:
                    col.present += 1
        ordered = sorted(rows.values(), key=lambda r: (r.child.last_name.lower(), r.child.first_name.lower()))
        out.append(PresenceDay(day=d, columns=columns, rows=ordered))
    return out


def presence_csv(activity: Activity, days: list[PresenceDay]) -> bytes:
    """CSV that French Excel opens as is: UTF-8 with a BOM, ';' separator, CRLF line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    present, absent = str(_l("Présent")), str(_l("Absent"))
    units = activity.kind == KIND_UNITS
    unit_labels = []
    if units:
        for d in days:
            for col in d.columns:
                if col.label not in unit_labels:
                    unit_labels.append(col.label)
    header = [str(_l("Date")), str(_l("Nom")), str(_l("Prénom")), str(_l("Âge")), str(_l("Classe"))]
    header += unit_labels if units else [str(_l("Séances"))]
    header += [str(_l("Allergies / PAI")), str(_l("Contact d'urgence"))]
    writer.writerow(header)
    for d in days:
        for row in d.rows:
            child = row.child
            base = [d.day.strftime("%d/%m/%Y"), child.last_name, child.first_name, child.age_on(d.day),
                    child.class_name or ""]
            if units:
                marks = {col.label: row.mark(col.key) for col in d.columns}
                cells = [present if marks.get(label) == "present" else absent if marks.get(label) == "absent" else ""
                         for label in unit_labels]
            else:
                names = [col.label + (f" ({absent})" if row.mark(col.key) == "absent" else "")
                         for col in d.columns if row.mark(col.key)]
                cells = [", ".join(names)]
            writer.writerow(base + cells + [row.health, row.contact])
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------- activities

def booked_count(activity: Activity) -> int:
    """Reservations that keep an activity from being deleted (anything but a plain cancellation)."""
    return db.session.scalar(select(func.count()).select_from(Reservation).where(
        Reservation.activity_id == activity.id)) or 0


def activity_bookings(activity: Activity) -> dict:
    return {
        "reservations": booked_count(activity),
        "inscriptions": db.session.scalar(select(func.count()).select_from(Inscription).where(
            Inscription.activity_id == activity.id)) or 0,
        "lines": db.session.scalar(select(func.count()).select_from(DemandeLine).where(
            DemandeLine.activity_id == activity.id)) or 0,
    }


def delete_activity(activity: Activity) -> None:
    """Only for an activity that nobody ever booked (caller checked activity_bookings)."""
    from core.admin_models import AllocationRun
    from core.models import Cart, CartItem

    slot_ids = [s for s in db.session.scalars(select(Slot.id).where(Slot.activity_id == activity.id))]
    for item in db.session.scalars(select(CartItem).where(CartItem.slot_id.in_(slot_ids or [0]))):
        db.session.delete(item)
    for cart in db.session.scalars(select(Cart)):
        if activity.id in (cart.activity_ids or []):
            cart.activity_ids = [a for a in cart.activity_ids if a != activity.id]
    for run in db.session.scalars(select(AllocationRun).where(AllocationRun.activity_id == activity.id)):
        db.session.delete(run)
    for slot in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id)):
        db.session.delete(slot)
    db.session.flush()
    db.session.delete(activity)


# ---------------------------------------------------------------------------- commune settings

def update_settings(tenant, **changes) -> None:
    """Replace keys of Tenant.settings (JSON) in a new dict, so that the change is saved."""
    settings = copy.deepcopy(tenant.settings or {})
    settings.update(copy.deepcopy(changes))
    tenant.settings = settings

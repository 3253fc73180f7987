"""Mon agenda (planning des activités) and "Justifier une absence": services, no request, no HTML.

The agenda of a family over a period is read with a constant number of queries,
whatever the number of days or children: the family's children, the activities
they are inscribed in, and their reservations joined to slots, activities, units
and children for the period.  Held, cancelled and refused reservations are not
shown; a stage over several dates appears on each of its dates.

An absence is declared on a reserved slot: the reservation becomes "absent"
(it keeps its place), with its motif and optional document, and an "absence"
demande records it in the family's demandes, already processed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import calendar as cal
from core import clock
from core.clock import utcnow
from core.demandes import next_number
from core.dossier.records import family_children
from core.locking import lock_one
from core.models import (
    ACTION_ABSENCE,
    DEMANDE_ACCEPTEE,
    DEMANDE_DEPOSEE,
    INSCRIPTION_ACCEPTED,
    LINE_ACCEPTED,
    RES_ABSENT,
    RES_CANCELLED,
    RES_HELD,
    RES_PENDING,
    RES_REFUSED,
    RES_RESERVED,
    RES_WAITLIST,
    TYPE_ABSENCE,
    Activity,
    ActivityUnit,
    Child,
    Demande,
    DemandeEvent,
    DemandeLine,
    Inscription,
    Reservation,
    Slot,
    User,
)
from core.reservations import describe_slot, lifecycle, slot_dates
from extensions import db

# ====================================================================== statuses, views

SHOWN_STATUSES = (RES_RESERVED, RES_PENDING, RES_WAITLIST, RES_ABSENT)

STATUS_WORDS = {
    RES_RESERVED: _l("Réservé"),
    RES_PENDING: _l("En attente de validation"),
    RES_WAITLIST: _l("Liste d'attente"),
    RES_ABSENT: _l("Absent"),
}
# Statuses never shown in the agenda, but named on the absence page.
OTHER_STATUS_WORDS = {
    RES_HELD: _l("Non confirmé"),
    RES_CANCELLED: _l("Annulé"),
    RES_REFUSED: _l("Refusé"),
}
# The legend, in the words of the communes' tutorials.
STATUS_LEGEND = {
    RES_RESERVED: _l("Activité réservée ou enfant présent"),
    RES_PENDING: _l("Demande en attente de validation"),
    RES_WAITLIST: _l("Enfant en liste d'attente"),
    RES_ABSENT: _l("Enfant absent à cette activité"),
}

TIME_SLOT_WORDS = {
    "matin": _l("Matin"),
    "midi": _l("Midi"),
    "apres_midi": _l("Après-midi"),
    "soir": _l("Soir"),
    "journee": _l("Journée"),
}
_TIME_SLOT_ORDER = {"matin": 0, "midi": 1, "repas": 1, "apres_midi": 2, "soir": 3, "journee": -1}

VIEW_MONTH = "mois"
VIEW_WEEK = "semaine"
VIEW_WEEK5 = "semaine5"
VIEW_DAY = "jour"
VIEWS = (VIEW_MONTH, VIEW_WEEK, VIEW_WEEK5, VIEW_DAY)
VIEW_LABELS = {
    VIEW_MONTH: _l("Mois"),
    VIEW_WEEK: _l("Semaine de 7 jours"),
    VIEW_WEEK5: _l("Semaine de 5 jours"),
    VIEW_DAY: _l("Journée"),
}

MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2099, 12, 31)

# An absence may be justified for a booked day up to this many days after it.
ABSENCE_LOOKBACK_DAYS = 30

ABSENCE_TYPE_LABEL = _l("Justificatif d'absence")


def parse_view(raw: str | None) -> str:
    return raw if raw in VIEWS else VIEW_WEEK


def parse_day(raw: str | None, default: date) -> date:
    """A date from a query string; anything unreadable or out of range gives `default`."""
    try:
        day = date.fromisoformat((raw or "").strip()[:10])
    except ValueError:
        return default
    return min(max(day, MIN_DATE), MAX_DATE)


def default_day(view: str, today: date) -> date:
    """The day a view opens on when no date is asked: today, but on a Saturday or a Sunday the 5-day
    week is the coming one (the past Monday–Friday is not what a parent looks for at the weekend)."""
    if view == VIEW_WEEK5 and today.weekday() >= 5:
        return today + timedelta(days=7 - today.weekday())
    return today


def period(view: str, day: date) -> tuple[date, date]:
    """First and last day shown by a view around `day`."""
    if view == VIEW_MONTH:
        first = day.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if view == VIEW_WEEK:
        start = cal.week_start(day)
        return start, start + timedelta(days=6)
    if view == VIEW_WEEK5:
        start = cal.week_start(day)
        return start, start + timedelta(days=4)
    return day, day


def shift(view: str, day: date, step: int) -> date:
    """The date of the previous (step=-1) or next (step=1) period."""
    if view == VIEW_MONTH:
        first = day.replace(day=1)
        if step < 0:
            target = (first - timedelta(days=1)).replace(day=1)
        else:
            target = (first + timedelta(days=32)).replace(day=1)
    elif view in (VIEW_WEEK, VIEW_WEEK5):
        target = cal.week_start(day) + timedelta(days=7 * step)
    else:
        target = day + timedelta(days=step)
    return min(max(target, MIN_DATE), MAX_DATE)


# ====================================================================== reading the agenda

@dataclass
class AgendaItem:
    reservation_id: int
    day: date
    child_id: int
    child_name: str
    activity_id: int
    activity_name: str
    label: str                 # unit label (Matin, Repas…) or session title
    hours: str | None          # "09:30 – 12:00", or the time slot word
    status: str
    first_day: date
    last_day: date
    sort_key: tuple = ()
    can_justify: bool = False

    @property
    def status_word(self) -> str:
        return str(STATUS_WORDS.get(self.status) or OTHER_STATUS_WORDS.get(self.status, self.status))

    @property
    def multi_day(self) -> bool:
        return self.first_day != self.last_day


@dataclass
class Agenda:
    view: str
    day: date
    start: date
    end: date
    today: date
    children: list[Child]
    activities: list[Activity]
    shown_children: set[int]
    shown_activities: set[int]
    items_by_day: dict[date, list[AgendaItem]] = field(default_factory=dict)

    @property
    def days(self) -> list[date]:
        out, cursor = [], self.start
        while cursor <= self.end:
            out.append(cursor)
            cursor += timedelta(days=1)
        return out

    @property
    def weeks(self) -> list[list[date]]:
        """The month grid (Monday first), for the month view."""
        return cal.month_grid(self.day)

    def items(self, day: date) -> list[AgendaItem]:
        return self.items_by_day.get(day, [])

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.items_by_day.values())

    @property
    def previous(self) -> date:
        return shift(self.view, self.day, -1)

    @property
    def next(self) -> date:
        return shift(self.view, self.day, 1)


def _hours(slot: Slot, unit: ActivityUnit | None, label: str) -> str | None:
    if slot.start_time and slot.end_time:
        return f"{slot.start_time} – {slot.end_time}"
    if slot.start_time:
        return slot.start_time
    word = TIME_SLOT_WORDS.get(slot.time_slot or "")
    if word is not None and str(word) != label:
        return str(word)
    return None


def can_justify(status: str, last_day: date, today: date) -> bool:
    return status == RES_RESERVED and last_day >= today - timedelta(days=ABSENCE_LOOKBACK_DAYS)


def family_activities(family_id: int) -> list[Activity]:
    """The activities a child of the family is inscribed in (one query)."""
    inscribed = (select(Inscription.activity_id).join(Child, Inscription.child_id == Child.id)
                 .where(Child.family_id == family_id, Inscription.status == INSCRIPTION_ACCEPTED))
    return list(db.session.scalars(
        select(Activity).where(Activity.id.in_(inscribed)).order_by(Activity.position, Activity.name)))


def _rows(family_id: int, start: date, end: date, statuses=SHOWN_STATUSES):
    """The family's reservations touching [start, end], joined to what the page shows (one query)."""
    return db.session.execute(
        select(Reservation, Slot, Activity, ActivityUnit, Child)
        .join(Slot, Reservation.slot_id == Slot.id)
        .join(Activity, Slot.activity_id == Activity.id)
        .join(Child, Reservation.child_id == Child.id)
        .outerjoin(ActivityUnit, Slot.unit_id == ActivityUnit.id)
        .where(Reservation.family_id == family_id, Child.family_id == family_id,
               Reservation.status.in_(statuses), Slot.day <= end, Slot.last_day >= start)
        .order_by(Slot.day, Slot.id, Child.first_name)
    ).all()


def _item(res: Reservation, slot: Slot, activity: Activity, unit: ActivityUnit | None, child: Child,
          day: date, today: date) -> AgendaItem:
    label = (unit.label if unit is not None else slot.title) or activity.name
    dates = slot_dates(slot)
    order = _TIME_SLOT_ORDER.get(slot.time_slot or "", 5)
    return AgendaItem(
        reservation_id=res.id, day=day, child_id=child.id, child_name=child.first_name,
        activity_id=activity.id, activity_name=activity.name, label=label, hours=_hours(slot, unit, label),
        status=res.status, first_day=dates[0], last_day=dates[-1],
        sort_key=(order, slot.start_time or "", unit.position if unit is not None else 0, activity.position,
                  activity.name, label, child.first_name, res.id),
        can_justify=can_justify(res.status, dates[-1], today),
    )


def load_agenda(family_id: int, *, view: str, day: date, child_ids: set[int] | None = None,
                activity_ids: set[int] | None = None, today: date | None = None) -> Agenda:
    """The family's agenda for a view; `None` filters show everything.  Three queries."""
    today = today or clock.today()
    start, end = period(view, day)
    children = family_children(family_id)
    activities = family_activities(family_id)
    rows = _rows(family_id, start, end)
    known = {a.id for a in activities}
    for _res, _slot, activity, _unit, _child in rows:  # booked without a current inscription: still listed
        if activity.id not in known:
            activities.append(activity)
            known.add(activity.id)
    shown_children = {c.id for c in children} if child_ids is None else set(child_ids)
    shown_activities = set(known) if activity_ids is None else set(activity_ids)
    agenda = Agenda(view=view, day=day, start=start, end=end, today=today, children=children,
                    activities=activities, shown_children=shown_children, shown_activities=shown_activities)
    for res, slot, activity, unit, child in rows:
        if child.id not in shown_children or activity.id not in shown_activities:
            continue
        for when in slot_dates(slot):
            if start <= when <= end:
                agenda.items_by_day.setdefault(when, []).append(_item(res, slot, activity, unit, child, when, today))
    for items in agenda.items_by_day.values():
        items.sort(key=lambda i: i.sort_key)
    return agenda


def justifiable(family_id: int, *, today: date | None = None) -> tuple[list[AgendaItem], list[AgendaItem]]:
    """Booked slots of the family an absence may be declared on: (upcoming, recent past).  One query."""
    today = today or clock.today()
    start = today - timedelta(days=ABSENCE_LOOKBACK_DAYS)
    upcoming, past = [], []
    for res, slot, activity, unit, child in _rows(family_id, start, MAX_DATE, statuses=(RES_RESERVED,)):
        dates = slot_dates(slot)
        item = _item(res, slot, activity, unit, child, dates[0], today)
        (upcoming if dates[-1] >= today else past).append(item)
    key = lambda i: (i.first_day, i.sort_key)  # noqa: E731
    return sorted(upcoming, key=key), sorted(past, key=key, reverse=True)


def describe(res: Reservation) -> AgendaItem:
    """One reservation as the absence page shows it."""
    slot = db.session.get(Slot, res.slot_id)
    activity = db.session.get(Activity, slot.activity_id)
    unit = db.session.get(ActivityUnit, slot.unit_id) if slot.unit_id else None
    child = db.session.get(Child, res.child_id)
    return _item(res, slot, activity, unit, child, slot_dates(slot)[0], clock.today())


# ====================================================================== absences

ABSENCE_MAX_BYTES = 5 * 1024 * 1024

DOC_PDF = "pdf"
DOC_JPEG = "jpg"
DOC_PNG = "png"
DOC_MIMETYPES = {DOC_PDF: "application/pdf", DOC_JPEG: "image/jpeg", DOC_PNG: "image/png"}


class AbsenceError(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


def detect_document_type(head: bytes) -> str | None:
    """PDF, JPEG or PNG from the file's first bytes (its content, never its name or declared type)."""
    if head.startswith(b"%PDF-"):
        return DOC_PDF
    if head.startswith(b"\xff\xd8\xff"):
        return DOC_JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DOC_PNG
    return None


def store_document(data: bytes, kind: str, *, root: Path, tenant_slug: str) -> str:
    """Write the document under <root>/<tenant_slug>/absences/<random name>; return its relative path."""
    if kind not in DOC_MIMETYPES:
        raise ValueError(kind)
    folder = Path(root) / tenant_slug / "absences"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{kind}"
    (folder / name).write_bytes(data)
    return f"{tenant_slug}/absences/{name}"


def document_path(relative: str, *, root: Path, tenant_slug: str) -> Path | None:
    """The stored file of a reservation, only when it lies in this commune's absences folder."""
    base = (Path(root) / tenant_slug / "absences").resolve()
    target = (Path(root) / relative).resolve()
    if target.parent != base or not target.is_file():
        return None
    return target


def discard_document(relative: str | None, *, root: Path) -> None:
    if relative:
        (Path(root) / relative).unlink(missing_ok=True)


def absence_refusal(res: Reservation, today: date | None = None) -> str | None:
    """Why no absence can be declared on this reservation (a French message), or None."""
    today = today or clock.today()
    if res.status == RES_ABSENT:
        return str(_l("Une absence a déjà été déclarée pour cette réservation."))
    if res.status != RES_RESERVED:
        return str(_l("Une absence ne peut être déclarée que sur une journée réservée "
                      "(cette réservation n'est pas confirmée)."))
    slot = db.session.get(Slot, res.slot_id)
    if slot_dates(slot)[-1] < today - timedelta(days=ABSENCE_LOOKBACK_DAYS):
        return str(_l("Cette journée est trop ancienne pour justifier une absence en ligne : "
                      "contactez le service enfance."))
    return None


def declare_absence(res: Reservation, *, user: User, motif: str, document: str | None) -> Demande:
    """The reservation becomes "absent" (it keeps its place) and an absence demande records it.

    Locks the reservation and checks its status again under the lock: of two
    submissions, the second gets an AbsenceError.  The caller commits.
    """
    res = lock_one(Reservation, res.id)
    refusal = absence_refusal(res)
    if refusal:
        raise AbsenceError("status", refusal)
    slot = db.session.get(Slot, res.slot_id)
    activity = db.session.get(Activity, res.activity_id)
    child = db.session.get(Child, res.child_id)
    lifecycle.mark_absent(res)
    res.absence_motif = motif
    res.absence_document = document
    now = utcnow()
    automatic = str(_l("Traitement automatique"))
    demande = Demande(number=next_number(), type=TYPE_ABSENCE, family_id=res.family_id, requester_id=user.id,
                      status=DEMANDE_ACCEPTEE, motif=None, decided_at=now, decided_by=automatic,
                      summary=f"{activity.name} - {child.first_name}"[:300])
    db.session.add(demande)
    demande.lines.append(DemandeLine(
        tenant_id=res.tenant_id, position=0, action=ACTION_ABSENCE, child_id=child.id, activity_id=activity.id,
        slot_id=slot.id, reservation_id=res.id, status=LINE_ACCEPTED, motif=motif,
        label=f"{describe_slot(slot, activity)} — {child.first_name}"[:300]))
    demande.events.append(DemandeEvent(tenant_id=res.tenant_id, status=DEMANDE_DEPOSEE, at=now,
                                       actor=user.display_name, note=motif))
    demande.events.append(DemandeEvent(tenant_id=res.tenant_id, status=DEMANDE_ACCEPTEE,
                                       at=now + timedelta(microseconds=1), actor=automatic,
                                       note=str(_l("Absence enregistrée : la place reste attribuée."))))
    db.session.flush()
    return demande


# ====================================================================== calendar feed (read side)

FEED_STATUSES = (RES_RESERVED, RES_PENDING, RES_ABSENT)


@dataclass
class FeedItem:
    """One booked day of a child, as the family's calendar feed (core/calendar_feed.py) writes it."""

    reservation_id: int
    day: date
    child_name: str
    activity_name: str
    label: str
    hours: str | None
    start_time: str | None
    end_time: str | None
    time_slot: str | None
    place: str | None
    status: str

    @property
    def status_word(self) -> str:
        return str(STATUS_WORDS.get(self.status) or OTHER_STATUS_WORDS.get(self.status, self.status))


def feed_items(family_id: int, start: date, end: date) -> list[FeedItem]:
    """Public read function for the calendar feed: the family's reserved, pending and absent
    bookings touching [start, end], one item per date (a stage over several dates gives one per
    date), ordered by day.  Waiting-list places, held, cancelled and refused bookings are left out.
    One query, in the current commune's scope."""
    out = []
    for res, slot, activity, unit, child in _rows(family_id, start, end, statuses=FEED_STATUSES):
        label = (unit.label if unit is not None else slot.title) or activity.name
        for when in slot_dates(slot):
            if start <= when <= end:
                out.append(FeedItem(
                    reservation_id=res.id, day=when, child_name=child.first_name, activity_name=activity.name,
                    label=label, hours=_hours(slot, unit, label), start_time=slot.start_time,
                    end_time=slot.end_time, time_slot=slot.time_slot or (unit.code if unit is not None else None),
                    place=activity.structure, status=res.status))
    out.sort(key=lambda i: (i.day, i.start_time or "", i.label, i.child_name, i.reservation_id))
    return out

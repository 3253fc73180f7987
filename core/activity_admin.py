"""Configuring an activity from the back-office: checks, then ``core.activity_config.upsert_activity``.

The form gives plain values; ``check()`` answers the problems to show next to the fields (consistent
dates, no capacity under the places already taken, no removal of a unit or session that has
bookings, a code not already used); ``save()`` applies the spec (units and their per-day
capacities, sessions with their dates and places) and removes the rows asked for.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

from flask_babel import format_date, ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from core.activity_config import upsert_activity
from core.bounds import FIRST_DAY, LAST_DAY, MAX_SPAN_DAYS, day_in_range
from core.models import KIND_SESSIONS, KIND_UNITS, Activity, ActivityUnit, Reservation, Slot
from core.reservations import slot_dates
from extensions import db

MAX_PLACES = 10_000  # a unit's or a session's places, as the activity form allows them


@dataclass
class UnitInput:
    index: int
    id: int | None
    label: str
    capacity: int | None
    remove: bool = False
    code: str = ""


@dataclass
class SessionInput:
    index: int
    id: int | None
    title: str
    dates: list[date]
    time_slot: str | None
    start_time: str | None
    end_time: str | None
    places: int | None
    theme: str | None = None
    discipline: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    remove: bool = False


@dataclass
class Plan:
    """What the form asks for, and what is wrong with it: {field path: message}."""

    spec: dict
    units: list[UnitInput] = field(default_factory=list)
    sessions: list[SessionInput] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)

    def problem(self, path, message) -> None:
        self.problems.setdefault(path, str(message))


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "activite"


def _day(d: date) -> str:
    return format_date(d, "dd/MM/yyyy")


def parse_dates(text: str) -> list[date]:
    """"16/02/2027, 17/02/2027" or a period "16/02/2027-19/02/2027" (every day of it)."""
    from datetime import timedelta

    out: set[date] = set()
    for part in re.split(r"[,;\n]+", text or ""):
        part = part.strip()
        if not part:
            continue
        bounds = [p.strip() for p in re.split(r"\s+(?:-|au|à)\s+|(?<=\d)-(?=\d{1,2}/)", part) if p.strip()]
        if len(bounds) == 2:
            start, end = _one_date(bounds[0]), _one_date(bounds[1])
            if end < start:
                raise ValueError(str(_l("Période à l'envers : %(text)s", text=part)))
            if (end - start).days > MAX_SPAN_DAYS:
                raise ValueError(str(_l("Période trop longue : %(text)s (deux ans au plus).", text=part)))
            while start <= end:
                out.add(start)
                start += timedelta(days=1)
        else:
            out.add(_one_date(part))
    return sorted(out)


def _one_date(text: str) -> date:
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d/%m/%y"):
        try:
            day = datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
        if not day_in_range(day):
            raise ValueError(str(_l("Date hors limites : « %(text)s » (entre %(first)s et %(last)s).", text=text.strip(),
                                    first=FIRST_DAY.strftime("%d/%m/%Y"), last=LAST_DAY.strftime("%d/%m/%Y"))))
        return day
    raise ValueError(str(_l("Date illisible : « %(text)s » (attendu JJ/MM/AAAA).", text=text.strip())))


def parse_overrides(text: str, units: list[UnitInput]) -> tuple[dict, str | None]:
    """Lines "24/12/2026 ; Repas ; 12" -> {"2026-12-24": {"repas": 12}}; the first error, if any."""
    by_name = {}
    for u in units:
        if u.remove or not u.label:
            continue
        by_name[u.label.strip().lower()] = u.code
        by_name[u.code] = u.code
    out: dict = {}
    for n, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip() for p in re.split(r"\s*;\s*", line)]
        if len(parts) != 3:
            return out, str(_l("Ligne %(n)d : écrivez « JJ/MM/AAAA ; unité ; places ».", n=n))
        try:
            day = _one_date(parts[0])
        except ValueError as err:
            return out, str(_l("Ligne %(n)d : %(error)s", n=n, error=str(err)))
        code = by_name.get(parts[1].lower())
        if code is None:
            return out, str(_l("Ligne %(n)d : unité inconnue « %(unit)s ».", n=n, unit=parts[1]))
        places = int(parts[2]) if parts[2].isascii() and parts[2].isdigit() and len(parts[2]) <= 5 else None
        if places is None or places > MAX_PLACES:
            return out, str(_l("Ligne %(n)d : le nombre de places doit être un entier entre 0 et %(max)d.", n=n,
                               max=MAX_PLACES))
        out.setdefault(day.isoformat(), {})[code] = places
    return out, None


def parse_closed_dates(text: str) -> tuple[list[str], str | None]:
    out = set()
    for raw in re.split(r"[\n,;]+", text or ""):
        if not raw.strip():
            continue
        try:
            out.add(_one_date(raw).isoformat())
        except ValueError as err:
            return [], str(err)
    return sorted(out), None


# ---------------------------------------------------------------------------- reading an activity

def current_overrides(activity: Activity) -> dict:
    """Days whose capacity differs from their unit's default ({iso: {code: capacity}})."""
    units = {u.id: u for u in activity.units}
    out: dict = {}
    for slot in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.unit_id.is_not(None))
                                   .order_by(Slot.day)):
        unit = units.get(slot.unit_id)
        if unit is not None and slot.capacity != unit.capacity:
            out.setdefault(slot.day.isoformat(), {})[unit.code] = slot.capacity
    return out


def overrides_text(activity: Activity, overrides: dict) -> str:
    labels = {u.code: u.label for u in activity.units}
    lines = []
    for iso in sorted(overrides):
        for code, places in overrides[iso].items():
            lines.append(f"{date.fromisoformat(iso).strftime('%d/%m/%Y')} ; {labels.get(code, code)} ; {places}")
    return "\n".join(lines)


def sessions_of(activity: Activity) -> list[Slot]:
    return db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.unit_id.is_(None))
                              .order_by(Slot.day, Slot.start_time, Slot.title, Slot.id)).all()


def dates_text(slot: Slot) -> str:
    return ", ".join(d.strftime("%d/%m/%Y") for d in slot_dates(slot))


def _reservations_on(slot_ids) -> int:
    if not slot_ids:
        return 0
    return db.session.scalar(select(func.count()).select_from(Reservation).where(
        Reservation.slot_id.in_(list(slot_ids)))) or 0


# ---------------------------------------------------------------------------- checking

def check(activity: Activity | None, plan: Plan) -> Plan:
    spec = plan.spec
    if spec.get("starts_on") and spec.get("ends_on") and spec["ends_on"] < spec["starts_on"]:
        plan.problem("ends_on", _l("La date de fin doit être après la date de début."))
    elif spec.get("starts_on") and spec.get("ends_on") and (spec["ends_on"] - spec["starts_on"]).days > MAX_SPAN_DAYS:
        plan.problem("ends_on", _l("Une activité dure au plus deux ans : créez-en une par saison."))
    ages = spec.get("ages") or [None, None]
    if ages[0] is not None and ages[1] is not None and ages[1] < ages[0]:
        plan.problem("age_max", _l("L'âge maximum doit être supérieur ou égal à l'âge minimum."))
    if spec.get("validation") == "prereservation":
        until = spec.get("prereservation_until")
        if until is None:
            plan.problem("prereservation_until", _l("Indiquez la fin de la période de pré-réservation."))
        elif spec.get("ends_on") and until > spec["ends_on"]:
            plan.problem("prereservation_until", _l("La pré-réservation doit se terminer avant la fin de l'activité."))
    opening = spec.get("opening_at")
    if opening and spec.get("ends_on") and opening.date() > spec["ends_on"]:
        plan.problem("opening_at", _l("L'ouverture des réservations doit précéder la fin de l'activité."))
    if not (spec.get("calendar") or {}).get("weekdays"):
        plan.problem("weekdays", _l("Cochez au moins un jour d'ouverture."))

    if activity is None:
        taken = db.session.scalar(select(Activity.id).where(Activity.code == spec["code"]))
        if taken is not None:
            plan.problem("code", _l("Ce code est déjà utilisé par une autre activité."))
    elif spec["kind"] != activity.kind and db.session.scalar(
            select(func.count()).select_from(Slot).where(Slot.activity_id == activity.id)):
        plan.problem("kind", _l("Le type d'une activité qui a déjà des dates ne peut plus changer : "
                                "créez une nouvelle activité."))

    if spec["kind"] == KIND_UNITS:
        _check_units(activity, plan)
    else:
        _check_sessions(activity, plan)
    return plan


def _check_units(activity: Activity | None, plan: Plan) -> None:
    kept = [u for u in plan.units if not u.remove and (u.label or u.capacity is not None)]
    if not kept:
        plan.problem("units", _l("Ajoutez au moins une unité (par exemple Matin, 24 places)."))
    seen = set()
    for u in plan.units:
        if u.remove:
            continue
        if not u.label and u.capacity is None:
            continue
        if not u.label:
            plan.problem(("units", u.index, "label"), _l("Donnez un nom à l'unité."))
        if u.capacity is None:
            plan.problem(("units", u.index, "capacity"), _l("Indiquez la capacité de l'unité."))
        if u.label and u.label.strip().lower() in seen:
            plan.problem(("units", u.index, "label"), _l("Deux unités portent le même nom."))
        seen.add((u.label or "").strip().lower())
    if activity is None:
        return
    existing = {u.id: u for u in activity.units}
    slots_by_unit: dict[int, list[Slot]] = {}
    for slot in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id, Slot.unit_id.is_not(None))):
        slots_by_unit.setdefault(slot.unit_id, []).append(slot)
    for u in plan.units:
        unit = existing.get(u.id)
        if unit is None:
            continue
        slots = slots_by_unit.get(unit.id, [])
        if u.remove:
            n = _reservations_on([s.id for s in slots])
            if n:
                plan.problem(("units", u.index, "remove"), ngettext(
                    "L'unité « %(unit)s » a %(num)d réservation : elle ne peut pas être supprimée.",
                    "L'unité « %(unit)s » a %(num)d réservations : elle ne peut pas être supprimée.",
                    n, unit=unit.label))
            continue
        if u.capacity is None:
            continue
        worst_default, worst_override = None, None
        for slot in slots:
            override = plan.overrides.get(slot.day.isoformat(), {}).get(unit.code)
            capacity = override if override is not None else u.capacity
            if slot.taken > capacity:
                if override is None and (worst_default is None or slot.taken > worst_default.taken):
                    worst_default = slot
                if override is not None and (worst_override is None or slot.taken > worst_override.taken):
                    worst_override = slot
        if worst_default is not None:
            plan.problem(("units", u.index, "capacity"), ngettext(
                "%(num)d place est déjà réservée le %(day)s : la capacité ne peut pas descendre sous %(num)d.",
                "%(num)d places sont déjà réservées le %(day)s : la capacité ne peut pas descendre sous %(num)d.",
                worst_default.taken, day=_day(worst_default.day)))
        if worst_override is not None:
            plan.problem("overrides", ngettext(
                "%(unit)s le %(day)s : %(num)d place est déjà réservée, la capacité ne peut pas descendre sous %(num)d.",
                "%(unit)s le %(day)s : %(num)d places sont déjà réservées, la capacité ne peut pas descendre sous %(num)d.",
                worst_override.taken, unit=unit.label, day=_day(worst_override.day)))


def _check_sessions(activity: Activity | None, plan: Plan) -> None:
    kept = [s for s in plan.sessions if not s.remove and (s.title or s.dates or s.places is not None)]
    if not kept:
        plan.problem("sessions", _l("Ajoutez au moins une séance (intitulé, dates et places)."))
    start, end = plan.spec.get("starts_on"), plan.spec.get("ends_on")
    seen = set()
    for s in kept:
        if not s.title:
            plan.problem(("sessions", s.index, "title"), _l("Donnez un intitulé à la séance."))
        if not s.dates:
            plan.problem(("sessions", s.index, "dates"), _l("Indiquez au moins une date."))
        elif start and end and (s.dates[0] < start or s.dates[-1] > end):
            plan.problem(("sessions", s.index, "dates"), _l(
                "Les dates doivent être comprises dans la période de l'activité (du %(start)s au %(end)s).",
                start=_day(start), end=_day(end)))
        if s.places is None:
            plan.problem(("sessions", s.index, "places"), _l("Indiquez le nombre de places."))
        if s.start_time and s.end_time and s.end_time <= s.start_time:
            plan.problem(("sessions", s.index, "end_time"), _l("L'heure de fin doit être après l'heure de début."))
        if s.age_min is not None and s.age_max is not None and s.age_max < s.age_min:
            plan.problem(("sessions", s.index, "age_max"), _l("L'âge maximum doit être supérieur ou égal à l'âge minimum."))
        if s.dates and s.title:
            key = (s.dates[0], s.title.strip().lower())
            if key in seen:
                plan.problem(("sessions", s.index, "title"), _l("Deux séances ont le même intitulé le même jour."))
            seen.add(key)
    if activity is None:
        return
    existing = {s.id: s for s in sessions_of(activity)}
    for s in plan.sessions:
        slot = existing.get(s.id)
        if slot is None:
            continue
        if s.remove:
            n = _reservations_on([slot.id])
            if n:
                plan.problem(("sessions", s.index, "remove"), ngettext(
                    "La séance « %(title)s » a %(num)d réservation : elle ne peut pas être supprimée.",
                    "La séance « %(title)s » a %(num)d réservations : elle ne peut pas être supprimée.",
                    n, title=slot.title))
        elif s.places is not None and s.places < slot.taken:
            plan.problem(("sessions", s.index, "places"), ngettext(
                "%(num)d place est déjà réservée : le nombre de places ne peut pas descendre sous %(num)d.",
                "%(num)d places sont déjà réservées : le nombre de places ne peut pas descendre sous %(num)d.",
                slot.taken))


# ---------------------------------------------------------------------------- saving

def save(activity: Activity | None, plan: Plan, *, zone: str) -> Activity:
    """Apply a checked plan (no problems) in the current transaction (caller commits)."""
    spec = dict(plan.spec)
    opening_at = spec.pop("opening_at", None)
    if activity is not None:
        _remove_rows(activity, plan)
    if spec["kind"] == KIND_UNITS:
        spec["units"] = [{"code": u.code, "label": u.label.strip(), "capacity": u.capacity}
                         for u in plan.units if not u.remove and u.label and u.capacity is not None]
        spec["capacity_overrides"] = plan.overrides
    else:
        if activity is not None:
            _rename_sessions(activity, plan)
        spec["sessions"] = [{
            "dates": s.dates, "title": s.title.strip(), "time_slot": s.time_slot or None,
            "start_time": s.start_time or None, "end_time": s.end_time or None, "places": s.places,
            "theme": s.theme or None, "discipline": s.discipline or None, "ages": [s.age_min, s.age_max],
        } for s in plan.sessions if not s.remove and s.title and s.dates and s.places is not None]
    saved = upsert_activity(spec, zone=zone)
    saved.opening_at = opening_at
    db.session.flush()
    return saved


def _remove_rows(activity: Activity, plan: Plan) -> None:
    units = {u.id: u for u in activity.units}
    for u in plan.units:
        if u.remove and u.id in units:
            unit = units[u.id]
            for slot in db.session.scalars(select(Slot).where(Slot.unit_id == unit.id)):
                db.session.delete(slot)
            db.session.flush()
            activity.units.remove(unit)
    sessions = {s.id: s for s in sessions_of(activity)}
    for s in plan.sessions:
        if s.remove and s.id in sessions:
            db.session.delete(sessions[s.id])
    db.session.flush()


def _rename_sessions(activity: Activity, plan: Plan) -> None:
    """A session edited in place keeps its row (and its bookings): upsert_activity matches on (first date, title)."""
    sessions = {s.id: s for s in sessions_of(activity)}
    for s in plan.sessions:
        slot = sessions.get(s.id)
        if slot is None or s.remove or not s.title or not s.dates:
            continue
        slot.day = s.dates[0]
        slot.title = s.title.strip()
    db.session.flush()


def unit_code(label: str, taken: set[str]) -> str:
    base = slugify(label).replace("-", "_")[:36] or "unite"
    code, n = base, 2
    while code in taken:
        code = f"{base}_{n}"
        n += 1
    taken.add(code)
    return code


def existing_unit_codes(activity: Activity | None) -> dict[int, str]:
    if activity is None:
        return {}
    return {u.id: u.code for u in db.session.scalars(select(ActivityUnit).where(ActivityUnit.activity_id == activity.id))}


__all__ = ["KIND_SESSIONS", "KIND_UNITS", "Plan", "SessionInput", "UnitInput", "check", "save"]

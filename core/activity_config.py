"""Activities from configuration (a commune folder's activities.toml, later the back-office).

    [[activities]]
    code = "kids"                      # unique in the commune
    name = "Accueil de loisirs Petites vacances Kids"
    kind = "units"                     # or "sessions"
    structure = "Accueil de Loisirs Arlequin"
    season = "2026/2027"
    starts_on = 2026-12-19
    ends_on = 2027-03-07
    ages = [3, 7]
    validation = "commune"             # immediate | commune | prereservation
    prereservation_until = 2027-01-31  # with validation = "prereservation"
    inscription_validation = "commune" # immediate | commune
    online_quota_pct = 100
    one_per_time_slot = false
    hold_minutes = 20
    booking_deadline = { kind = "days_before", days = 2, time = "12:00", skip_weekends = true }
    cancel_deadline = { kind = "days_before", days = 2, time = "12:00", skip_weekends = true }
    calendar = { weekdays = [0,1,2,3,4], public_holidays = "closed", school_holidays = "only" }
    units = [ { code = "matin", label = "Matin", capacity = 24 }, ... ]
    capacity_overrides = { "2026-12-24" = { repas = 12 } }

    [[activities.sessions]]            # kind = "sessions"
    dates = [2027-02-16, 2027-02-17]   # or date = 2026-12-21
    title = "Stage de roller"
    time_slot = "matin"                # matin | midi | apres_midi | journee
    start_time = "08:00"
    end_time = "18:00"
    places = 8
    theme = "Sport"
    discipline = "Roller"
    ages = [7, 9]
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core import calendar as cal
from core.models import KIND_UNITS, Activity, ActivityUnit, Slot
from extensions import db

TIME_SLOTS = {"matin": "Matin", "midi": "Midi", "apres_midi": "Après-midi", "soir": "Soir", "journee": "Journée"}


def _d(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _iso(value):
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def upsert_activity(spec: dict, *, zone: str) -> Activity:
    """Create (or update, when its code exists) an activity and its slots from a spec."""
    activity = db.session.scalars(select(Activity).where(Activity.code == spec["code"])).first()
    if activity is None:
        activity = Activity(code=spec["code"])
        db.session.add(activity)
    ages = spec.get("ages") or [None, None]
    activity.name = spec["name"]
    activity.kind = spec.get("kind", KIND_UNITS)
    activity.structure = spec.get("structure")
    activity.season = spec.get("season", "")
    activity.starts_on = _d(spec["starts_on"])
    activity.ends_on = _d(spec["ends_on"])
    activity.age_min, activity.age_max = ages[0], ages[1]
    activity.validation_mode = spec.get("validation", "commune")
    activity.prereservation_until = _d(spec["prereservation_until"]) if spec.get("prereservation_until") else None
    activity.inscription_validation = spec.get("inscription_validation", "commune")
    activity.inscription_open = spec.get("inscription_open", True)
    activity.online_quota_pct = int(spec.get("online_quota_pct", 100))
    activity.one_per_time_slot = bool(spec.get("one_per_time_slot", False))
    activity.hold_minutes = int(spec.get("hold_minutes", 20))
    activity.booking_deadline = _iso(spec.get("booking_deadline", {"kind": "none"}))
    activity.cancel_deadline = _iso(spec.get("cancel_deadline", spec.get("booking_deadline", {"kind": "none"})))
    activity.calendar = _iso(spec.get("calendar", {}))
    activity.position = int(spec.get("position", 0))
    db.session.flush()
    if activity.kind == KIND_UNITS:
        _sync_units(activity, spec.get("units", []))
        generate_unit_slots(activity, zone=zone, overrides=spec.get("capacity_overrides", {}))
    else:
        _sync_sessions(activity, spec.get("sessions", []))
    return activity


def _sync_units(activity: Activity, units: list[dict]) -> None:
    existing = {u.code: u for u in activity.units}
    for position, spec in enumerate(units):
        unit = existing.get(spec["code"])
        if unit is None:
            unit = ActivityUnit(tenant_id=activity.tenant_id, code=spec["code"])
            activity.units.append(unit)
        unit.label = spec["label"]
        unit.capacity = int(spec["capacity"])
        unit.position = position
    db.session.flush()


def generate_unit_slots(activity: Activity, *, zone: str, overrides: dict | None = None) -> int:
    """One slot per open day and unit (never removes a slot that has bookings)."""
    overrides = {str(k): v for k, v in (overrides or {}).items()}
    have = {(s.unit_id, s.day): s for s in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id))}
    created = 0
    for day in cal.open_days(activity.calendar or {}, activity.starts_on, activity.ends_on, zone=zone):
        for unit in activity.units:
            capacity = int(overrides.get(day.isoformat(), {}).get(unit.code, unit.capacity))
            slot = have.get((unit.id, day))
            if slot is None:
                db.session.add(Slot(tenant_id=activity.tenant_id, activity_id=activity.id, unit_id=unit.id, day=day,
                                    last_day=day, dates=[day.isoformat()], title="", time_slot=unit.code,
                                    capacity=capacity))
                created += 1
            else:
                slot.capacity = max(capacity, slot.taken)
    db.session.flush()
    return created


def _sync_sessions(activity: Activity, sessions: list[dict]) -> None:
    have = {(s.day, s.title): s for s in db.session.scalars(select(Slot).where(Slot.activity_id == activity.id))}
    for spec in sessions:
        dates = sorted(_d(d) for d in (spec.get("dates") or [spec["date"]]))
        key = (dates[0], spec["title"])
        slot = have.get(key)
        if slot is None:
            slot = Slot(tenant_id=activity.tenant_id, activity_id=activity.id, unit_id=None, day=dates[0],
                        title=spec["title"], capacity=int(spec["places"]), taken=0)
            db.session.add(slot)
        ages = spec.get("ages") or [None, None]
        slot.last_day = dates[-1]
        slot.dates = [d.isoformat() for d in dates]
        slot.time_slot = spec.get("time_slot")
        slot.start_time = spec.get("start_time")
        slot.end_time = spec.get("end_time")
        slot.theme = spec.get("theme")
        slot.discipline = spec.get("discipline")
        slot.age_min, slot.age_max = ages[0], ages[1]
        slot.capacity = max(int(spec["places"]), slot.taken)
    db.session.flush()


def load_activities(data: dict, *, zone: str) -> list[Activity]:
    return [upsert_activity(spec, zone=zone) for spec in data.get("activities", [])]

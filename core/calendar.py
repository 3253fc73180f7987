"""Open days, closed days and deadlines of an activity: pure functions of its configuration.

Activity.calendar (JSON):
    weekdays          open weekdays, 0 = Monday (default Monday–Friday)
    public_holidays   "closed" (default) or "open"
    school_holidays   "closed" (periscolaire, mercredis), "only" (holiday clubs) or "ignore"
    zone              school-holiday zone A/B/C (default: the commune's zone_vacances)
    closed_dates      extra closed dates (ISO)

Deadlines (Activity.booking_deadline / cancel_deadline, JSON):
    {"kind": "none"}
    {"kind": "days_before", "days": 2, "time": "12:00", "skip_weekends": true}
        -> until D-2 at 12:00, weekends not counted
    {"kind": "weekday_before_week", "weekday": 1, "time": "23:59"}
        -> until Tuesday 23:59 of the week before
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays as holidays_lib

from core.clock import PARIS, now_local  # noqa: F401  (the one clock; re-exported for callers)

CLOSED_WEEKDAY = "weekday"
CLOSED_PUBLIC_HOLIDAY = "public_holiday"
CLOSED_SCHOOL_HOLIDAY = "school_holiday"
CLOSED_NOT_HOLIDAY = "not_school_holiday"
CLOSED_DATE = "closed_date"
CLOSED_OUTSIDE = "outside_period"


@lru_cache(maxsize=16)
def _public_holidays(year: int):
    return holidays_lib.France(years=year)


def is_public_holiday(day: date) -> bool:
    return day in _public_holidays(day.year)


@lru_cache(maxsize=1)
def _school_dates():
    from vacances_scolaires_france import SchoolHolidayDates

    return SchoolHolidayDates()


@lru_cache(maxsize=4096)
def is_school_holiday(day: date, zone: str) -> bool:
    try:
        return bool(_school_dates().is_holiday_for_zone(day, zone))
    except Exception:  # noqa: BLE001 - a date beyond the shipped calendar counts as a school day
        return False


def closed_reason(calendar: dict, day: date, *, zone: str = "A", starts_on: date | None = None,
                  ends_on: date | None = None) -> str | None:
    """Why an activity is closed on `day`, or None when it is open."""
    if (starts_on and day < starts_on) or (ends_on and day > ends_on):
        return CLOSED_OUTSIDE
    weekdays = calendar.get("weekdays", [0, 1, 2, 3, 4])
    if day.weekday() not in weekdays:
        return CLOSED_WEEKDAY
    if day.isoformat() in set(calendar.get("closed_dates", [])):
        return CLOSED_DATE
    if calendar.get("public_holidays", "closed") == "closed" and is_public_holiday(day):
        return CLOSED_PUBLIC_HOLIDAY
    mode = calendar.get("school_holidays", "ignore")
    if mode != "ignore":
        holiday = is_school_holiday(day, calendar.get("zone") or zone)
        if mode == "closed" and holiday:
            return CLOSED_SCHOOL_HOLIDAY
        if mode == "only" and not holiday:
            return CLOSED_NOT_HOLIDAY
    return None


def open_days(calendar: dict, start: date, end: date, *, zone: str = "A") -> list[date]:
    out, day = [], start
    while day <= end:
        if closed_reason(calendar, day, zone=zone) is None:
            out.append(day)
        day += timedelta(days=1)
    return out


def _at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(x) for x in (hhmm or "23:59").split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def deadline_for(rule: dict | None, day: date) -> datetime | None:
    """The last moment (Europe/Paris) a booking or cancellation for `day` is accepted."""
    rule = rule or {}
    kind = rule.get("kind", "none")
    if kind == "none":
        return None
    if kind == "days_before":
        remaining, cursor = int(rule.get("days", 0)), day
        while remaining > 0:
            cursor -= timedelta(days=1)
            if rule.get("skip_weekends", False) and cursor.weekday() >= 5:
                continue
            remaining -= 1
        return _at(cursor, rule.get("time", "23:59"))
    if kind == "weekday_before_week":
        monday = day - timedelta(days=day.weekday())
        target = monday - timedelta(days=7) + timedelta(days=int(rule.get("weekday", 1)))
        return _at(target, rule.get("time", "23:59"))
    raise ValueError(f"unknown deadline kind {kind!r}")


def is_past_deadline(rule: dict | None, day: date, now: datetime | None = None) -> bool:
    limit = deadline_for(rule, day)
    if limit is None:
        return (now or now_local()).date() > day
    return (now or now_local()) > limit


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_grid(day: date) -> list[list[date]]:
    """Weeks (Monday first) covering the month of `day`."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    start = week_start(first)
    weeks = []
    while start < nxt:
        weeks.append([start + timedelta(days=i) for i in range(7)])
        start += timedelta(days=7)
    return weeks

"""Dates as the pages write them (French by default): the `date_long`, `date_dm` and
`weekday_name` template filters and the planning grid use these, one implementation.

Babel's `format_date` costs ~20 µs a call, and a month grid writes hundreds of dates: the day
names come from Babel's locale data once per language, the rest is plain formatting of the
same patterns (EEEE dd/MM/yyyy, dd/MM, EEEE; a test compares them with Babel in fr and en).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from babel.dates import get_day_names
from flask_babel import get_locale


def weekday_names() -> tuple[str, ...]:
    """Monday..Sunday in the current language (EEEE)."""
    return _weekday_names(str(get_locale() or "fr"))


@lru_cache(maxsize=8)
def _weekday_names(locale: str) -> tuple[str, ...]:
    names = get_day_names("wide", "format", locale)
    return tuple(names[i] for i in range(7))


def weekday_name(day: date) -> str:
    return weekday_names()[day.weekday()]


def date_dm(day: date) -> str:
    """dd/MM"""
    return f"{day.day:02d}/{day.month:02d}"


def date_long(day: date, names: tuple[str, ...] | None = None) -> str:
    """EEEE dd/MM/yyyy; `names` from weekday_names() when writing many."""
    names = names or weekday_names()
    return f"{names[day.weekday()]} {day.day:02d}/{day.month:02d}/{day.year:04d}"

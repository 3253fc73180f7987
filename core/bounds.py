"""What the application accepts from outside (a URL, a form field, a tampered hidden input).

Ids: read as the database's INTEGER keys can hold them, or not at all.  A number the column cannot
hold made SQLite raise OverflowError and PostgreSQL "integer out of range" (a 500); a number that is
not one (``"²"``, ``"١٢"``, 5,000 digits) made ``int()`` raise.  Such an id names nothing: the caller
answers as for an unknown id (404, or the field's message).

Dates: a commune's calendar lives between FIRST_DAY and LAST_DAY; a day typed outside (year 1, year
9999) is refused with a message rather than reaching date arithmetic that overflows, and an activity
or a period cannot span more than MAX_SPAN_DAYS (each of its days becomes rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

MAX_ID = 2**31 - 1  # INTEGER (PostgreSQL int4): every primary key and demande number
_MAX_DIGITS = len(str(MAX_ID))


def as_id(value) -> int | None:
    """A positive id the database can hold, from an int or a string of ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = value.strip() if isinstance(value, str) else ""
        if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
            return None
        number = int(text)
    return number if 0 < number <= MAX_ID else None


def as_ids(values: Iterable) -> list[int]:
    """Every value that is an id (see `as_id`), in order, each once; the others are ignored."""
    out: dict[int, None] = {}
    for value in values:
        number = as_id(value)
        if number is not None:
            out[number] = None
    return list(out)


FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
MAX_SPAN_DAYS = 731  # two school years


def day_in_range(day: date) -> bool:
    return FIRST_DAY <= day <= LAST_DAY

"""The one clock of the portal: every date-dependent behaviour (today, deadlines, holidays,
holds, opening times, ages, mails' retry times) asks it.

It reads the system clock, so the tests move the whole application (web server thread, jobs,
CLI) to another day with time-machine (``PORTAIL_TODAY=2026-12-05 make test``, see
tests/conftest.py); nothing here is patched by hand.  Europe/Paris is the portal's local time
(deadlines, "today", the days of the planning); the database stores naive UTC timestamps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from time import time as _epoch
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def utcnow() -> datetime:
    """Naive UTC 'now' (the database stores naive UTC timestamps)."""
    return datetime.now(UTC).replace(tzinfo=None)


def now_local() -> datetime:
    """Aware 'now' in Europe/Paris."""
    return datetime.now(PARIS)


def today() -> date:
    """Today in Europe/Paris: the day a parent sees on the planning."""
    return now_local().date()


def epoch_ms() -> int:
    """Milliseconds since the epoch (the waiting room's scores in Redis)."""
    return int(_epoch() * 1000)

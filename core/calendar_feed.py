"""The family's calendar feed (ICS): a private URL per family, revocable, with its children's
booked units, sessions and stages.

The URL carries the feed's id and a token derived from the application's secret and a random
nonce kept in the database (HMAC-SHA256): the database alone does not give the token away, and
revoking (a new nonce, or none) makes every earlier URL answer 404.  The bookings are read through
``core.agenda.feed_items`` (the reservation core's read side), never from the tables here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

# What the feed covers around today: recent past (a calendar keeps what happened) and the future.
PAST_DAYS = 60
FUTURE_DAYS = 400


class CalendarFeed(TenantScoped, db.Model):
    """A family's private calendar URL; revoked_at set = the URL answers 404 from then on."""

    __tablename__ = "calendar_feed"
    __table_args__ = (UniqueConstraint("tenant_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None]
    last_read_at: Mapped[datetime | None]


# ====================================================================== tokens

def _token(feed: CalendarFeed) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    msg = f"ics:{feed.tenant_id}:{feed.family_id}:{feed.id}:{feed.nonce}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:40]


def feed_name(feed: CalendarFeed) -> str:
    """The last segment of the private URL: '<id>-<token>'."""
    return f"{feed.id}-{_token(feed)}"


def active_feed(family_id: int) -> CalendarFeed | None:
    return db.session.scalars(select(CalendarFeed).where(
        CalendarFeed.family_id == family_id, CalendarFeed.revoked_at.is_(None))
        .order_by(CalendarFeed.id.desc())).first()


def create_feed(family_id: int, user) -> CalendarFeed:
    """A new private URL for the family; the previous one stops working (revoked)."""
    revoke(family_id)
    feed = CalendarFeed(family_id=family_id, nonce=secrets.token_hex(32), created_by_id=getattr(user, "id", None))
    db.session.add(feed)
    db.session.flush()
    return feed


def revoke(family_id: int) -> int:
    count = 0
    for feed in db.session.scalars(select(CalendarFeed).where(CalendarFeed.family_id == family_id,
                                                              CalendarFeed.revoked_at.is_(None))):
        feed.revoked_at = utcnow()
        count += 1
    return count


def find_feed(name: str) -> CalendarFeed | None:
    """The active feed of a URL segment '<id>-<token>' in the current commune, else None."""
    raw_id, _sep, token = (name or "").partition("-")
    if not raw_id.isdigit() or len(token) != 40:
        return None
    from tenants.scoping import get_scoped

    feed = get_scoped(db.session, CalendarFeed, int(raw_id))
    if feed is None or feed.revoked_at is not None:
        return None
    if not hmac.compare_digest(_token(feed), token):
        return None
    return feed


# ====================================================================== the calendar

@dataclass
class _Event:
    uid: str
    summary: str
    description: str
    location: str
    start: datetime | date
    end: datetime | date
    status: str


def _times(day: date, start: str | None, end: str | None, time_slot: str | None):
    """Start and end of one booked day: its hours when known, else the time slot's usual hours,
    else the whole day."""
    usual = {"matin": ("08:30", "12:00"), "midi": ("12:00", "13:30"), "repas": ("12:00", "13:30"),
             "apres_midi": ("13:30", "17:30"), "soir": ("16:30", "18:30")}
    if not start and time_slot in usual:
        start, end = usual[time_slot]
    if not start:
        return day, day + timedelta(days=1)
    begin = datetime.combine(day, time.fromisoformat(start), tzinfo=clock.PARIS)
    finish = datetime.combine(day, time.fromisoformat(end), tzinfo=clock.PARIS) if end else begin + timedelta(hours=1)
    if finish <= begin:
        finish = begin + timedelta(hours=1)
    return begin, finish


def build_ics(feed: CalendarFeed, tenant, *, today: date | None = None) -> bytes:
    """The family's calendar: one event per booked day of each child (title, child, time, place, status)."""
    from flask_babel import gettext as _
    from icalendar import Calendar, Event

    from core.agenda import feed_items

    today = today or clock.today()
    items = feed_items(feed.family_id, today - timedelta(days=PAST_DAYS), today + timedelta(days=FUTURE_DAYS))
    cal = Calendar()
    cal.add("prodid", "-//Portail famille//Agenda//FR")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"{tenant.name} — {_('Mon agenda')}")
    cal.add("x-wr-timezone", "Europe/Paris")
    cal.add("refresh-interval", timedelta(hours=6), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT6H")
    host = (current_app.config.get("PUBLIC_URL") or "portail").split("//")[-1].split("/")[0] or "portail"
    stamp = clock.utcnow().replace(tzinfo=UTC)
    for item in items:
        start, end = _times(item.day, item.start_time, item.end_time, item.time_slot)
        event = Event()
        event.add("uid", f"{tenant.slug}-res{item.reservation_id}-{item.day.isoformat()}@{host}")
        event.add("dtstamp", stamp)
        event.add("summary", f"{item.label} — {item.child_name}" if item.label != item.activity_name
                  else f"{item.activity_name} — {item.child_name}")
        lines = [item.activity_name, _("Enfant : %(name)s", name=item.child_name),
                 _("Statut : %(status)s", status=item.status_word)]
        if item.hours:
            lines.insert(1, _("Horaires : %(hours)s", hours=item.hours))
        event.add("description", "\n".join(lines))
        if item.place:
            event.add("location", item.place)
        event.add("dtstart", start)
        event.add("dtend", end)
        event.add("status", {"reserved": "CONFIRMED", "absent": "CANCELLED"}.get(item.status, "TENTATIVE"))
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return cal.to_ical()


def touch(feed: CalendarFeed) -> None:
    feed.last_read_at = utcnow()

"""Opening-day waiting room: parents book a few at a time, admitted in arrival order.

An activity may have an opening time (``Activity.opening_at``, naive UTC) and a waiting
room (``Activity.rush_concurrent`` parents booking at once, each for ``rush_minutes``).
From the opening, every wizard page asks ``check()``: a parent already admitted goes on;
the others join the queue (once: their arrival keeps its rank) and wait.  Whoever asks,
the room first drops admissions whose time is over, then admits the first in line while
there is room, so admission follows arrival order whichever worker or machine serves
the request.  An admitted parent has ``GRACE_SECONDS`` to show up, then, from their first
wizard page, ``rush_minutes`` to finish; "Valider" or "Annuler la démarche" frees the
place at once (``leave()``).

Two backends with the same behaviour, no state in the process:
* Redis (when REDIS_URL is set): per activity a sorted set of arrivals (score = an
  INCR sequence), a sorted set of admissions (score = deadline, ms) and a hash of start
  times; one Lua script does the whole check atomically, with the portal's clock (core.clock:
  web servers and workers keep their clocks in step with NTP).
* the database (``WaitingTicket`` rows) otherwise, so that `make run` works on SQLite:
  the same steps in a short transaction of its own, serialised per activity by a row lock
  on PostgreSQL.

No request, no HTML here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, func, insert, or_, select, update

from core import clock
from core.clock import utcnow
from core.models import Activity, WaitingTicket
from extensions import db

log = logging.getLogger(__name__)

GRACE_SECONDS = 180          # an admitted parent must show up within this time (> the longest poll)
DEFAULT_MINUTES = 10         # then has this long to finish (Activity.rush_minutes overrides)
KEY_TTL_SECONDS = 3 * 86400  # Redis keys of a room vanish a few days after its last use

OPEN = "open"          # no waiting room now: go on
ADMITTED = "admitted"  # in the room's booking places: go on until the deadline
WAITING = "waiting"    # in the queue, at `position`
OUT = "out"            # not in the queue (only asked, enter=False)


@dataclass
class Ticket:
    state: str
    position: int = 0               # 1 = next to be admitted
    waiting: int = 0                # people in the queue
    deadline: datetime | None = None  # admitted: until when (naive UTC)

    @property
    def may_book(self) -> bool:
        return self.state in (OPEN, ADMITTED)


# ---------------------------------------------------------------- configuration

def is_configured(activity: Activity) -> bool:
    return bool(activity.rush_concurrent and activity.rush_concurrent > 0)


def is_active(activity: Activity, now: datetime | None = None) -> bool:
    """The room filters parents from the opening on (before it, the planning counts down)."""
    if not is_configured(activity):
        return False
    return activity.opening_at is None or (now or utcnow()) >= activity.opening_at


def seconds_until_opening(activity: Activity, now: datetime | None = None) -> int | None:
    """Whole seconds before the opening, or None when it is open (or has no opening time)."""
    if activity.opening_at is None:
        return None
    left = (activity.opening_at - (now or utcnow())).total_seconds()
    return int(left) + (1 if left % 1 else 0) if left > 0 else None


def minutes_for(activity: Activity) -> int:
    return int(activity.rush_minutes or DEFAULT_MINUTES)


def configure(activity: Activity, *, opening_at: datetime | None, concurrent: int,
              minutes: int | None = None) -> None:
    """Set the opening (naive UTC) and the waiting room; the caller commits."""
    if concurrent < 0:
        raise ValueError("concurrent must be >= 0")
    activity.opening_at = opening_at
    activity.rush_concurrent = concurrent or None
    activity.rush_minutes = minutes


def online_places_left(activity: Activity) -> int:
    """Places still offered online in the activity's coming slots (what the waiting room announces)."""
    from core.models import Slot

    online = (Slot.capacity * max(0, min(100, activity.online_quota_pct))) / 100
    left = func.greatest(func.floor(online) - Slot.taken, 0) if db.session.get_bind().dialect.name == "postgresql" \
        else func.max(func.cast(online, db.Integer) - Slot.taken, 0)
    return int(db.session.scalar(select(func.coalesce(func.sum(left), 0)).where(
        Slot.activity_id == activity.id, Slot.last_day >= clock.today())) or 0)


def to_naive_utc(moment: datetime) -> datetime:
    """An aware moment (any zone) as stored in the database; a naive one is taken as UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# ---------------------------------------------------------------- the room

def check(activity: Activity, user_id: int, *, enter: bool = True, start: bool = False) -> Ticket:
    """Where this parent stands.  `enter` joins the queue when not in it; `start` (a wizard
    page) starts the admitted parent's booking time on first use."""
    if not is_active(activity):
        return Ticket(OPEN)
    room = backend()
    try:
        return room.check(activity.tenant_id, activity.id, int(user_id), limit=int(activity.rush_concurrent),
                          grace=GRACE_SECONDS, session=minutes_for(activity) * 60, enter=enter, start=start)
    except Exception as exc:  # noqa: BLE001 - Redis unreachable: let parents book (the row locks keep
        if not isinstance(room, RedisRoom):  # every place safe), and say it in the logs
            raise
        log.warning("salle d'attente indisponible (%s) : les familles passent sans attendre", exc)
        return Ticket(OPEN)


def leave(activity: Activity, user_id: int) -> None:
    """The parent is done ("Valider", "Annuler la démarche"): the next in line may come in."""
    if is_configured(activity):
        backend().leave(activity.tenant_id, activity.id, int(user_id))


def reset(activity: Activity) -> None:
    """Empty the room (queue and admissions)."""
    backend().reset(activity.tenant_id, activity.id)


def admission_order(activity: Activity) -> list[int]:
    """User ids in the order they were admitted (for the bench's fairness figure)."""
    return backend().admission_order(activity.tenant_id, activity.id)


def backend():
    url = current_app.config.get("REDIS_URL")
    prefix = current_app.config.get("WAITING_ROOM_PREFIX", "portail:wr")
    if url:
        return _redis_room(url, prefix)
    return DbRoom()


_ROOMS: dict = {}


def _redis_room(url: str, prefix: str) -> RedisRoom:
    key = (url, prefix)
    room = _ROOMS.get(key)  # a connection pool per process, no room state
    if room is None:
        from redis import Redis

        room = _ROOMS[key] = RedisRoom(Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5), prefix)
    return room


def _from_ms(ms) -> datetime | None:
    ms = int(float(ms or 0))
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None) if ms else None


# ---------------------------------------------------------------- Redis

CHECK_LUA = """
local q, a, started, seq, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, limit = ARGV[1], tonumber(ARGV[2])
local grace, session = tonumber(ARGV[3]), tonumber(ARGV[4])
local enter, start, ttl = ARGV[5] == '1', ARGV[6] == '1', tonumber(ARGV[7])
local now = tonumber(ARGV[8])
-- admissions whose time is over leave the room
local expired = redis.call('ZRANGEBYSCORE', a, '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', a, '-inf', now)
  for _, u in ipairs(expired) do redis.call('HDEL', started, u) end
end
-- join the queue once (the arrival keeps its rank)
if enter and not redis.call('ZSCORE', a, user) and not redis.call('ZSCORE', q, user) then
  redis.call('ZADD', q, redis.call('INCR', seq), user)
end
-- admit the first in line while there is room
local free = limit - redis.call('ZCARD', a)
if free > 0 then
  local first = redis.call('ZRANGE', q, 0, free - 1)
  for _, u in ipairs(first) do
    redis.call('ZADD', a, now + grace, u)
    redis.call('ZREM', q, u)
    redis.call('RPUSH', log, u)
  end
end
local state, position, deadline = 'out', 0, redis.call('ZSCORE', a, user)
if deadline then
  state = 'admitted'
  if start and redis.call('HSETNX', started, user, now) == 1 then
    deadline = now + session
    redis.call('ZADD', a, deadline, user)
  end
else
  deadline = 0
  local rank = redis.call('ZRANK', q, user)
  if rank then state, position = 'waiting', rank + 1 end
end
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
return {state, tostring(deadline), position, redis.call('ZCARD', q)}
"""

LEAVE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


class RedisRoom:
    def __init__(self, client, prefix: str = "portail:wr"):
        self.client = client
        self.prefix = prefix
        self._check = client.register_script(CHECK_LUA)
        self._leave = client.register_script(LEAVE_LUA)

    def keys(self, tenant_id: int, activity_id: int) -> list[str]:
        base = f"{self.prefix}:{tenant_id}:{activity_id}"
        return [f"{base}:queue", f"{base}:admitted", f"{base}:started", f"{base}:seq", f"{base}:log"]

    def check(self, tenant_id, activity_id, user_id, *, limit, grace, session, enter, start) -> Ticket:
        state, deadline, position, waiting = self._check(
            keys=self.keys(tenant_id, activity_id),
            args=[user_id, limit, grace * 1000, session * 1000, int(enter), int(start), KEY_TTL_SECONDS,
                  clock.epoch_ms()])
        state = state.decode() if isinstance(state, bytes) else state
        return Ticket(state, position=int(position), waiting=int(waiting),
                      deadline=_from_ms(deadline.decode() if isinstance(deadline, bytes) else deadline))

    def leave(self, tenant_id, activity_id, user_id) -> None:
        self._leave(keys=self.keys(tenant_id, activity_id)[:3], args=[user_id])

    def reset(self, tenant_id, activity_id) -> None:
        self.client.delete(*self.keys(tenant_id, activity_id))

    def admission_order(self, tenant_id, activity_id) -> list[int]:
        return [int(u) for u in self.client.lrange(self.keys(tenant_id, activity_id)[4], 0, -1)]


# ---------------------------------------------------------------- database fallback

class DbRoom:
    """The same room in the `waiting_ticket` table, in a short transaction of its own
    (never the request's): nothing else the request does is committed with it.

    A ticket waits (admitted_at NULL, ranked by arrived_at then id), is in the room
    (expires_at in the future) or is over (expires_at past: kept as the admission log,
    put back at the end of the queue if the parent comes again)."""

    table = WaitingTicket.__table__

    def _where(self, tenant_id, activity_id):
        t = self.table
        return (t.c.tenant_id == tenant_id, t.c.activity_id == activity_id)

    def check(self, tenant_id, activity_id, user_id, *, limit, grace, session, enter, start) -> Ticket:
        t, now = self.table, utcnow()
        where = self._where(tenant_id, activity_id)
        inside = (t.c.admitted_at.is_not(None), t.c.expires_at > now)
        waiting_q = (*where, t.c.admitted_at.is_(None))
        with db.engine.connect() as conn:  # read-only fast path: an admitted parent going on
            mine = conn.execute(select(t).where(*where, t.c.user_id == user_id)).first()
        if mine is not None and mine.admitted_at is not None and mine.expires_at > now \
                and (mine.started_at is not None or not start):
            return Ticket(ADMITTED, deadline=mine.expires_at)
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one admission round at a time per activity
                conn.execute(select(Activity.__table__.c.id).where(Activity.__table__.c.id == activity_id)
                             .with_for_update(key_share=True))
            mine = conn.execute(select(t).where(*where, t.c.user_id == user_id)).first()
            over = mine is not None and mine.admitted_at is not None and mine.expires_at <= now
            if enter and mine is None:
                conn.execute(insert(t).values(tenant_id=tenant_id, activity_id=activity_id, user_id=user_id,
                                              arrived_at=now))
            elif enter and over:  # time over, or done: back at the end of the queue
                conn.execute(update(t).where(t.c.id == mine.id).values(arrived_at=now, admitted_at=None,
                                                                       expires_at=None, started_at=None))
            admitted = conn.scalar(select(func.count()).select_from(t).where(*where, *inside))
            free = limit - admitted
            if free > 0:
                first = conn.scalars(select(t.c.id).where(*waiting_q).order_by(t.c.arrived_at, t.c.id)
                                     .limit(free)).all()
                if first:
                    conn.execute(update(t).where(t.c.id.in_(first))
                                 .values(admitted_at=now, expires_at=now + timedelta(seconds=grace)))
            mine = conn.execute(select(t).where(*where, t.c.user_id == user_id)).first()
            waiting = conn.scalar(select(func.count()).select_from(t).where(*waiting_q))
            if mine is None or (mine.admitted_at is not None and mine.expires_at <= now):
                return Ticket(OUT, waiting=waiting)
            if mine.admitted_at is not None:
                deadline = mine.expires_at
                if start and mine.started_at is None:
                    deadline = now + timedelta(seconds=session)
                    conn.execute(update(t).where(t.c.id == mine.id).values(started_at=now, expires_at=deadline))
                return Ticket(ADMITTED, deadline=deadline, waiting=waiting)
            position = conn.scalar(select(func.count()).select_from(t).where(*waiting_q, or_(
                t.c.arrived_at < mine.arrived_at, and_(t.c.arrived_at == mine.arrived_at, t.c.id <= mine.id))))
            return Ticket(WAITING, position=position, waiting=waiting)

    def leave(self, tenant_id, activity_id, user_id) -> None:
        t, now = self.table, utcnow()
        mine = (*self._where(tenant_id, activity_id), t.c.user_id == user_id)
        with db.engine.begin() as conn:
            conn.execute(update(t).where(*mine, t.c.admitted_at.is_not(None), t.c.expires_at > now)
                         .values(expires_at=now))
            conn.execute(delete(t).where(*mine, t.c.admitted_at.is_(None)))

    def reset(self, tenant_id, activity_id) -> None:
        with db.engine.begin() as conn:
            conn.execute(delete(self.table).where(*self._where(tenant_id, activity_id)))

    def admission_order(self, tenant_id, activity_id) -> list[int]:
        t = self.table
        with db.engine.connect() as conn:
            return list(conn.scalars(select(t.c.user_id).where(*self._where(tenant_id, activity_id),
                                                               t.c.admitted_at.is_not(None))
                                     .order_by(t.c.admitted_at, t.c.id)))

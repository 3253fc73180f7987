"""Opening-day waiting room: countdown, arrival order, limited time, htmx polling, CLI.

The room has two backends with one behaviour: Redis (a Lua script) and the database
(the fallback without REDIS_URL).  Each scenario runs on both; the Redis one needs
TEST_REDIS_URL (skipped on a laptop, failed in CI).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import waiting_room
from core.clock import utcnow
from core.models import ROLE_PARENT, Activity, User
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today, require


def _users(app, tenant_id, n):
    tag = uuid.uuid4().hex[:6]
    with app.app_context(), tenant_scope(tenant_id):
        users = [User(email=f"wr{tag}{i}@auray.test", first_name="P", last_name="W", password_hash="x",
                      role=ROLE_PARENT) for i in range(n)]
        db.session.add_all(users)
        db.session.commit()
        ids = [u.id for u in users]
        db.session.remove()
    return ids


@pytest.fixture(params=["database", "redis"])
def room_app(request, app):
    """The app with the room on the database, or on a real Redis (own key prefix, cleaned)."""
    if request.param == "database":
        yield app, "database"
        return
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        require("Redis", "définissez TEST_REDIS_URL (par exemple redis://127.0.0.1:6379/15)")
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        require("Redis", f"{url} ne répond pas ({exc})")
    prefix = f"test-wr-{uuid.uuid4().hex[:8]}"
    old = (app.config.get("REDIS_URL"), app.config.get("WAITING_ROOM_PREFIX"))
    app.config.update(REDIS_URL=url, WAITING_ROOM_PREFIX=prefix)
    yield app, "redis"
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    app.config.update(REDIS_URL=old[0], WAITING_ROOM_PREFIX=old[1])


def _room(app, make_activity, concurrent, *, opening_in_minutes=-1, minutes=None):
    act = make_activity("auray", starts_in=10, days=5)
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        waiting_room.configure(activity, opening_at=utcnow() + timedelta(minutes=opening_in_minutes),
                               concurrent=concurrent, minutes=minutes)
        db.session.commit()
        db.session.remove()
    return act


def _check(app, act, user_id, **kw):
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        db.session.expunge(activity)
        db.session.rollback()  # like a request between two pages: one connection at a time
        ticket = waiting_room.check(activity, user_id, **kw)
        db.session.remove()
    return ticket


def _leave(app, act, user_id):
    with app.app_context(), tenant_scope(act["tenant_id"]):
        waiting_room.leave(db.session.get(Activity, act["id"]), user_id)
        db.session.remove()


def test_parents_are_admitted_in_arrival_order(room_app, make_activity, tenants):
    app, _kind = room_app
    act = _room(app, make_activity, concurrent=2)
    users = _users(app, tenants["auray"], 5)
    tickets = [_check(app, act, u) for u in users]
    assert [t.state for t in tickets] == ["admitted", "admitted", "waiting", "waiting", "waiting"]
    assert [t.position for t in tickets[2:]] == [1, 2, 3]
    assert _check(app, act, users[4]).position == 3  # asking again keeps the rank
    _leave(app, act, users[0])  # the first one validated: the next in line comes in, whoever asks
    assert _check(app, act, users[4]).position == 2
    assert _check(app, act, users[2]).state == "admitted"
    with app.app_context(), tenant_scope(act["tenant_id"]):
        assert waiting_room.admission_order(db.session.get(Activity, act["id"])) == users[:3]
        db.session.remove()


def test_before_the_opening_and_without_a_room_everyone_goes_on(room_app, make_activity, tenants):
    app, _kind = room_app
    act = _room(app, make_activity, concurrent=1, opening_in_minutes=30)
    users = _users(app, tenants["auray"], 3)
    assert {_check(app, act, u).state for u in users} == {"open"}
    plain = make_activity("auray", code="plain", starts_in=10, days=5)
    assert _check(app, plain, users[0]).state == "open"


def test_concurrent_arrivals_never_admit_more_than_the_limit(room_app, make_activity, tenants, is_postgres):
    app, kind = room_app
    if kind == "database" and not is_postgres:
        pytest.skip("SQLite sérialise les écritures : ce scénario concerne PostgreSQL et Redis")
    act = _room(app, make_activity, concurrent=7)
    users = _users(app, tenants["auray"], 40)
    barrier = threading.Barrier(len(users))
    states: list = [None] * len(users)

    def arrive(i):
        barrier.wait(timeout=30)
        states[i] = _check(app, act, users[i]).state

    threads = [threading.Thread(target=arrive, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert states.count("admitted") == 7 and states.count("waiting") == 33
    positions = sorted(_check(app, act, u).position for u, s in zip(users, states, strict=True) if s == "waiting")
    assert positions == list(range(1, 34))


def test_an_admitted_parent_has_a_limited_time(app, make_activity, tenants, monkeypatch):
    act = _room(app, make_activity, concurrent=1, minutes=10)
    first, second = _users(app, tenants["auray"], 2)
    ticket = _check(app, act, first, start=True)
    assert ticket.state == "admitted" and ticket.deadline > utcnow() + timedelta(minutes=9)
    assert _check(app, act, second).position == 1
    later = utcnow() + timedelta(minutes=11)
    monkeypatch.setattr(waiting_room, "utcnow", lambda: later)
    assert _check(app, act, second).state == "admitted"  # the first one's time is over
    assert _check(app, act, first).position == 1           # back in the queue, at its end


def test_an_admitted_parent_who_never_shows_up_loses_the_turn(app, make_activity, tenants, monkeypatch):
    act = _room(app, make_activity, concurrent=1)
    first, second = _users(app, tenants["auray"], 2)
    assert _check(app, act, first).state == "admitted"  # admitted while waiting, never came to the planning
    assert _check(app, act, second).state == "waiting"
    later = utcnow() + timedelta(seconds=waiting_room.GRACE_SECONDS + 1)
    monkeypatch.setattr(waiting_room, "utcnow", lambda: later)
    assert _check(app, act, second).state == "admitted"


# ---------------------------------------------------------------- over HTTP

def test_the_waiting_room_page_polls_and_lets_the_parent_in(app, web, make_web, make_family, make_activity, inscribe,
                                                            tenants):
    from tests.test_reservations_web import start_wizard, tick

    act = _room(app, make_activity, concurrent=1)
    first = make_family("auray", children=[("Maël", "2021-04-12")])
    second = make_family("auray", children=[("Lilou", "2020-09-01")])
    inscribe(act, first["child_ids"] + second["child_ids"])
    cart = start_wizard(web, first, act)  # admitted: goes straight on
    other = make_web()
    other.login("auray", second["email"])
    res = other.get(f"/auray/reservations/{act['id']}")
    assert res.status_code == 303 and f"/auray/attente/{act['id']}" in res.headers["Location"]
    page = other.get(res.headers["Location"]).get_data(as_text=True)
    assert "Salle d'attente" in page and "Votre position dans la file : 1" in page
    assert re.search(r'hx-trigger="every \d+s"', page) and 'http-equiv="refresh"' in page  # htmx, or a refresh
    poll = other.get(res.headers["Location"], headers={"HX-Request": "true"})
    assert "<html" not in poll.get_data(as_text=True) and "Votre position dans la file : 1" in poll.get_data(as_text=True)
    # a tick of the waiting parent is sent to the waiting room too (htmx: HX-Redirect)
    tick(web, cart, first["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())])
    web.post(f"/auray/demarches/{cart}/valider", page=f"/auray/demarches/{cart}/recapitulatif")
    poll = other.get(res.headers["Location"], headers={"HX-Request": "true"})
    assert poll.headers.get("HX-Redirect", "").endswith(f"/auray/reservations/{act['id']}")
    assert other.get(f"/auray/reservations/{act['id']}").status_code == 200
    assert "C'est votre tour" in other.get(
        f"/auray/demarches/{start_wizard(other, second, act)}/planning").get_data(as_text=True)


def test_a_tick_from_a_parent_who_must_wait_is_redirected_by_htmx(app, make_web, make_family, make_activity, inscribe,
                                                                  tenants):
    from tests.test_reservations_web import start_wizard

    act = _room(app, make_activity, concurrent=5)
    fams = [make_family("auray", children=[("Maël", "2021-04-12")]) for _ in range(2)]
    for fam in fams:
        inscribe(act, fam["child_ids"])
    webs = [make_web() for _ in fams]
    carts = [start_wizard(w, f, act) for w, f in zip(webs, fams, strict=True)]
    with app.app_context(), tenant_scope(tenants["auray"]):  # the room shrinks to one family at a time
        db.session.get(Activity, act["id"]).rush_concurrent = 1
        db.session.commit()
        users = [db.session.scalars(select(User.id).where(User.email == f["email"])).one() for f in fams]
        db.session.remove()
    _leave(app, act, users[0])  # the first one left; the second one is still booking
    kid, slot = fams[0]["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())]
    res = webs[0].post(f"/auray/demarches/{carts[0]}/choix", {"child": kid, "slot": slot, f"c-{kid}-{slot}": "1"},
                       page="/auray/reservations", headers={"HX-Request": "true"})
    assert res.status_code == 200 and "/auray/attente/" in res.headers.get("HX-Redirect", "")


def test_before_the_opening_the_planning_counts_down(app, web, make_family, make_activity, inscribe, tenants):
    from tests.test_reservations_web import start_wizard, tick

    act = _room(app, make_activity, concurrent=10, opening_in_minutes=30)
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    page = web.get(f"/auray/demarches/{cart}/planning").get_data(as_text=True)
    assert "Ouverture dans" in page and re.search(r"00:(29|30):\d\d", page)
    assert "Actualiser" in page  # without JavaScript
    html = tick(web, cart, fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())]) \
        .get_data(as_text=True)
    assert "pas encore ouvertes" in html and "checked" not in html


def test_flask_rush_open_sets_the_opening_and_the_room(app, make_activity, tenants):
    act = make_activity("auray", code="kids", starts_in=10, days=5)
    runner = app.test_cli_runner()
    res = runner.invoke(args=["rush", "open", "--tenant", "auray", "--activity", "kids", "--at", "2027-01-05T08:30",
                              "--concurrent", "150", "--minutes", "15"])
    assert res.exit_code == 0, res.output
    with app.app_context(), tenant_scope(act["tenant_id"]):
        activity = db.session.get(Activity, act["id"])
        assert activity.opening_at.isoformat() == "2027-01-05T07:30:00"  # 08:30 in Paris, stored as UTC
        assert (activity.rush_concurrent, activity.rush_minutes) == (150, 15)
        db.session.remove()
    res = runner.invoke(args=["rush", "open", "--tenant", "auray", "--activity", "nope", "--at", "2027-01-05T08:30",
                              "--concurrent", "1"])
    assert res.exit_code != 0 and "Activité inconnue" in res.output
    res = runner.invoke(args=["rush", "close", "--tenant", "auray", "--activity", "kids"])
    assert res.exit_code == 0
    with app.app_context(), tenant_scope(act["tenant_id"]):
        assert db.session.get(Activity, act["id"]).rush_concurrent is None
        db.session.remove()


def test_the_waiting_room_says_when_every_online_place_is_taken(app, make_web, make_family, make_activity, inscribe,
                                                                tenants):
    from core.models import Slot

    act = _room(app, make_activity, concurrent=1)
    fams = [make_family("auray", children=[("Maël", "2021-04-12")]) for _ in range(2)]
    webs = [make_web() for _ in fams]
    for w, f in zip(webs, fams, strict=True):
        inscribe(act, f["child_ids"])
        w.login("auray", f["email"])
    assert webs[0].get(f"/auray/reservations/{act['id']}").status_code == 200  # admitted: the only place in the room
    room = webs[1].get(f"/auray/reservations/{act['id']}").headers["Location"]
    assert "Il reste 30 places proposées en ligne." in webs[1].get(room).get_data(as_text=True)  # 5 days x 3 units x 2
    with app.app_context(), tenant_scope(tenants["auray"]):
        for slot in db.session.scalars(select(Slot).where(Slot.activity_id == act["id"])):
            slot.taken = slot.capacity
        db.session.commit()
        db.session.remove()
    poll = webs[1].get(room, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Complet" in poll and "Votre position dans la file : 1" in poll


def test_the_waiting_room_asks_to_log_in_first(app, make_web, make_activity):
    act = _room(app, make_activity, concurrent=1)
    res = make_web().get(f"/auray/attente/{act['id']}")
    assert res.status_code == 302 and "/auray/connexion" in res.headers["Location"]


def test_without_redis_the_room_lets_parents_book(app, make_activity, tenants):
    """Redis unreachable on the morning: no waiting room, but booking goes on (row locks keep places safe)."""
    act = _room(app, make_activity, concurrent=1)
    users = _users(app, tenants["auray"], 2)
    old = app.config.get("REDIS_URL")
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        assert [_check(app, act, u).state for u in users] == ["open", "open"]
    finally:
        app.config["REDIS_URL"] = old

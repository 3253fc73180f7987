"""Opening-day rush on a real PostgreSQL: many parallel connections at the last places.

Each attempt runs in its own thread, with its own app context, session and connection
(a pool of RACE_POOL real connections), its own family and démarche; a Barrier starts
them together.  Skipped on SQLite (it serialises writers by itself), failed in CI.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

import core.locking
from app import create_app
from core import reservations as booking
from core.clock import utcnow
from core.demandes import AlreadyDecided, cancel_demande, decide, submit_cart
from core.locking import Busy
from core.models import (
    INSCRIPTION_ACCEPTED,
    RES_TAKING_PLACE,
    RES_WAITLIST,
    ROLE_PARENT,
    Activity,
    Cart,
    Child,
    Demande,
    DemandeLine,
    Family,
    Inscription,
    Reservation,
    Slot,
    User,
)
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import app_settings, days_from_today, require

pytestmark = pytest.mark.postgres

ATTEMPTS = 200
RACE_POOL = 24


@pytest.fixture
def race_app(is_postgres, database_url, app_database_url, outbox_dir):
    if not is_postgres:
        require("PostgreSQL", "ces tests de concurrence demandent TEST_DATABASE_URL (PostgreSQL)")
    application = create_app("testing", **app_settings(database_url, app_database_url), OUTBOX_DIR=str(outbox_dir),
                             SQLALCHEMY_ENGINE_OPTIONS={"pool_size": RACE_POOL, "max_overflow": 0,
                                                        "pool_timeout": 120})
    yield application
    with application.app_context():
        db.engine.dispose()


class Links:
    def demande(self, number):
        return f"http://portail.test/demandes/{number}"


# ---------------------------------------------------------------- helpers

def bulk_families(app, tenant_id, activity_id, n, *, birth="2016-01-01", open_carts=True):
    """n families of one child inscribed to the activity, each with an open démarche (fast: no scrypt)."""
    tag = uuid.uuid4().hex[:6]
    with app.app_context(), tenant_scope(tenant_id):
        from datetime import date

        families = [Family(name="RUSH", code=f"R{tag}{i}") for i in range(n)]
        db.session.add_all(families)
        db.session.flush()
        children = [Child(family_id=f.id, first_name=f"K{i}", last_name="Rush", birth_date=date.fromisoformat(birth))
                    for i, f in enumerate(families)]
        users = [User(email=f"rush{tag}{i}@auray.test", first_name="P", last_name="Rush", password_hash="x",
                      role=ROLE_PARENT, family_id=f.id, activated_at=utcnow(), cgu_accepted_at=utcnow())
                 for i, f in enumerate(families)]
        db.session.add_all(children + users)
        db.session.flush()
        db.session.add_all([Inscription(child_id=c.id, activity_id=activity_id, status=INSCRIPTION_ACCEPTED)
                            for c in children])
        carts = []
        if open_carts:
            carts = [Cart(family_id=f.id, user_id=u.id, activity_ids=[activity_id], child_ids=[c.id],
                          expires_at=utcnow() + timedelta(minutes=20), token=uuid.uuid4().hex[:16])
                     for f, u, c in zip(families, users, children, strict=True)]
            db.session.add_all(carts)
            db.session.flush()
        out = [{"family_id": f.id, "user_id": u.id, "child_id": c.id, "cart_id": carts[i].id if carts else None}
               for i, (f, u, c) in enumerate(zip(families, users, children, strict=True))]
        db.session.commit()
        db.session.remove()
    return out


def context_for(cart, slot_ids):
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(cart.activity_ids))).all()
    children = db.session.scalars(select(Child).where(Child.id.in_(cart.child_ids))).all()
    slots = db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids))).all()
    return booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone="A")


def retrying(fn, attempts=60):
    """What a parent does on "Réessayez dans un instant": try again."""
    for _ in range(attempts):
        try:
            out = fn()
            db.session.commit()
            return out
        except Busy:
            db.session.rollback()
            time.sleep(0.05)
    raise AssertionError("toujours occupé après de nombreux essais")


def tick(cart_id, wishes, *, waitlist=False):
    def go():
        cart = db.session.get(Cart, cart_id, populate_existing=True)
        return booking.set_choices(context_for(cart, {s for _c, s, _w in wishes}), wishes, waitlist=waitlist)
    return retrying(go)


def race(app, tenant_id, n, fn):
    """Run fn(i) in n threads started together; returns results (or the exceptions raised)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        with app.app_context(), tenant_scope(tenant_id):
            try:
                barrier.wait(timeout=60)
                results[i] = fn(i)
            except Exception as exc:  # noqa: BLE001 - reported by the assertions
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "un essai ne s'est pas terminé"
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:3]
    return results


def counts(app, tenant_id, slot_id):
    """(Slot.taken, reservations taking a place, waiting list) as committed."""
    with app.app_context(), tenant_scope(tenant_id):
        slot = db.session.get(Slot, slot_id)
        taking = db.session.scalar(select(func.count(Reservation.id)).where(
            Reservation.slot_id == slot_id, Reservation.status.in_(RES_TAKING_PLACE)))
        waiting = db.session.scalar(select(func.count(Reservation.id)).where(
            Reservation.slot_id == slot_id, Reservation.status == RES_WAITLIST))
        out = (slot.taken, taking, waiting)
        db.session.remove()
    return out


def fill(app, tenant_id, activity_id, slot_id, n):
    """n places already taken (validated demandes) before the rush."""
    for fam in bulk_families(app, tenant_id, activity_id, n):
        with app.app_context(), tenant_scope(tenant_id):
            tick(fam["cart_id"], [(fam["child_id"], slot_id, True)])
            cart = db.session.get(Cart, fam["cart_id"])
            submit_cart(cart, db.session.get(User, fam["user_id"]), links=None)
            db.session.commit()
            db.session.remove()


def rush_at(race_app, tenant_id, activity_id, slot_id):
    """ATTEMPTS parents tick the same cell at once; one in two asks for the waiting list when full,
    then everyone validates."""
    fams = bulk_families(race_app, tenant_id, activity_id, ATTEMPTS)

    def attempt(i):
        fam = fams[i]
        cell = tick(fam["cart_id"], [(fam["child_id"], slot_id, True)])[(fam["child_id"], slot_id)]
        state = cell.state
        if state == booking.FULL and i % 2:
            state = tick(fam["cart_id"], [(fam["child_id"], slot_id, True)], waitlist=True)[
                (fam["child_id"], slot_id)].state
        if state in (booking.HELD, booking.WAITLIST):
            retrying(lambda: submit_cart(db.session.get(Cart, fam["cart_id"]),
                                         db.session.get(User, fam["user_id"]), links=None))
        return state

    return race(race_app, tenant_id, ATTEMPTS, attempt)


# ---------------------------------------------------------------- the last places

KLUB = dict(code="klub", name="Klub", kind="sessions", ages=[8, 12], validation="commune", one_per_time_slot=True)


def test_200_parents_at_the_last_8_places_of_a_klub_session(race_app, app, make_activity, tenants):
    day = days_from_today(12)
    act = make_activity("auray", **KLUB, sessions=[{"date": day, "title": "Fun Archery", "time_slot": "matin",
                                                    "places": 20}])
    slot = act["slots"][("Fun Archery", day.isoformat())]
    fill(race_app, act["tenant_id"], act["id"], slot, 12)
    states = rush_at(race_app, act["tenant_id"], act["id"], slot)
    assert states.count(booking.HELD) == 8
    assert set(states) == {booking.HELD, booking.FULL, booking.WAITLIST}
    taken, taking, waiting = counts(race_app, act["tenant_id"], slot)
    assert taken == taking == 20
    assert waiting == states.count(booking.WAITLIST) > 0  # those who asked for it, once "Complet"


def test_200_parents_at_the_last_8_places_of_a_day_unit(race_app, app, make_activity, tenants):
    act = make_activity("auray", code="kids-rush", ages=[3, 12], units=[{"code": "matin", "label": "Matin", "capacity": 10}])
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    fill(race_app, act["tenant_id"], act["id"], slot, 2)
    states = rush_at(race_app, act["tenant_id"], act["id"], slot)
    assert states.count(booking.HELD) == 8
    assert set(states) <= {booking.HELD, booking.FULL, booking.WAITLIST}
    taken, taking, _waiting = counts(race_app, act["tenant_id"], slot)
    assert taken == taking == 10


def test_200_parents_at_the_online_quota(race_app, app, make_activity, tenants):
    day = days_from_today(12)
    act = make_activity("auray", **{**KLUB, "code": "klub-quota"}, online_quota_pct=50,
                        sessions=[{"date": day, "title": "Roller-skate", "time_slot": "matin", "places": 16}])
    slot = act["slots"][("Roller-skate", day.isoformat())]
    states = rush_at(race_app, act["tenant_id"], act["id"], slot)
    assert states.count(booking.HELD) == 8  # 16 places, half of them online
    taken, taking, _waiting = counts(race_app, act["tenant_id"], slot)
    assert taken == taking == 8


def test_a_four_day_stage_is_never_half_booked(race_app, app, make_activity, tenants):
    days = [days_from_today(20 + i) for i in range(4)]
    act = make_activity("auray", **{**KLUB, "code": "stage"}, days=20,
                        sessions=[{"dates": days, "title": "Stage de roller", "time_slot": "journee", "places": 8}])
    stage = act["slots"][("Stage de roller", days[0].isoformat())]
    states = rush_at(race_app, act["tenant_id"], act["id"], stage)
    assert states.count(booking.HELD) == 8
    taken, taking, _waiting = counts(race_app, act["tenant_id"], stage)
    assert taken == taking == 8
    with race_app.app_context(), tenant_scope(act["tenant_id"]):
        assert db.session.get(Slot, stage).dates == [d.isoformat() for d in days]
        db.session.remove()


def test_four_days_ticked_together_are_all_or_nothing(race_app, app, make_activity, tenants):
    """"Tout cocher" on four days at once, every family in a different order: the locks are
    taken in id order, so no deadlock, and each family gets the four days or none."""
    act = make_activity("auray", code="kids-week", days=4, ages=[3, 12], units=[{"code": "matin", "label": "Matin", "capacity": 8}])
    slots = [act["slots"][("matin", days_from_today(10 + i).isoformat())] for i in range(4)]
    fams = bulk_families(race_app, act["tenant_id"], act["id"], 60)

    def attempt(i):
        fam = fams[i]
        order = slots[i % 4:] + slots[:i % 4]
        cells = tick(fam["cart_id"], [(fam["child_id"], s, True) for s in order])
        return sorted(c.state for c in cells.values())

    results = race(race_app, act["tenant_id"], len(fams), attempt)
    assert results.count([booking.HELD] * 4) == 8
    assert all(r in ([booking.HELD] * 4, [booking.FULL] * 4) for r in results), results
    for s in slots:
        taken, taking, _waiting = counts(race_app, act["tenant_id"], s)
        assert taken == taking == 8


# ---------------------------------------------------------------- validation and decisions

def test_the_first_demandes_of_a_commune_validated_at_once_get_distinct_numbers(race_app, app, make_activity, tenants):
    """No demande yet in the commune (no counter row): 30 "Valider" at once all succeed, numbered 1 to 30."""
    act = make_activity("saint-loubes", code="peri-first", ages=[3, 12], days=30,
                        units=[{"code": "matin", "label": "Matin", "capacity": 60}])
    slots = sorted(act["slots"].values())  # one slot each: nothing else makes them wait for each other
    fams = bulk_families(race_app, act["tenant_id"], act["id"], 30)
    for fam, slot in zip(fams, slots, strict=True):
        with race_app.app_context(), tenant_scope(act["tenant_id"]):
            tick(fam["cart_id"], [(fam["child_id"], slot, True)])
            db.session.remove()

    def valider(i):
        return retrying(lambda: submit_cart(db.session.get(Cart, fams[i]["cart_id"]),
                                            db.session.get(User, fams[i]["user_id"]), links=None).number)

    numbers = race(race_app, act["tenant_id"], len(fams), valider)
    assert sorted(numbers) == list(range(1, 31))


def test_two_concurrent_valider_of_the_same_demarche_make_one_demande(race_app, app, make_family, make_activity,
                                                                     inscribe, make_web, tenants):
    from tests.test_reservations_web import start_wizard
    from tests.test_reservations_web import tick as web_tick

    act = make_activity("auray", starts_in=10, days=5)
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    first = make_web()
    cart = start_wizard(first, fam, act)
    web_tick(first, cart, fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())])
    second = make_web()
    second.login("auray", fam["email"])
    webs = [first, second]
    tokens = [w.csrf_for(f"/auray/demarches/{cart}/recapitulatif") for w in webs]
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def valider(i):
        barrier.wait(timeout=30)
        answers[i] = webs[i].post(f"/auray/demarches/{cart}/valider", {"csrf_token": tokens[i]})

    threads = [threading.Thread(target=valider, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.scalar(select(func.count(Demande.id)).where(Demande.cart_id == cart)) == 1
        db.session.remove()


def test_an_agent_decision_racing_the_parents_cancellations_keeps_counts_consistent(race_app, app, make_activity,
                                                                                    tenants):
    """Ten pending demandes on a full session and five families on its waiting list.  The agent
    refuses or accepts each demande while its family cancels it (the demande itself, or the
    booking through a new démarche): whoever wins, Slot.taken stays the number of places taken."""
    day = days_from_today(12)
    act = make_activity("auray", **{**KLUB, "code": "klub-decide"},
                        sessions=[{"date": day, "title": "Handball", "time_slot": "matin", "places": 10}])
    tid, slot = act["tenant_id"], act["slots"][("Handball", day.isoformat())]
    fams = bulk_families(race_app, tid, act["id"], 15)
    numbers = {}
    for i, fam in enumerate(fams):
        with race_app.app_context(), tenant_scope(tid):
            tick(fam["cart_id"], [(fam["child_id"], slot, True)], waitlist=i >= 10)
            demande = submit_cart(db.session.get(Cart, fam["cart_id"]), db.session.get(User, fam["user_id"]),
                                  links=None)
            db.session.commit()
            numbers[i] = demande.id
            db.session.remove()
    assert counts(race_app, tid, slot)[:2] == (10, 10)
    # a second démarche for the families that will cancel their booking through it
    with race_app.app_context(), tenant_scope(tid):
        new_carts = {}
        for i in range(5, 10):
            fam = fams[i]
            cart = Cart(family_id=fam["family_id"], user_id=fam["user_id"], activity_ids=[act["id"]],
                        child_ids=[fam["child_id"]], expires_at=utcnow() + timedelta(minutes=20), token="c")
            db.session.add(cart)
            db.session.flush()
            new_carts[i] = cart.id
            booking.set_choices(context_for(cart, {slot}), [(fam["child_id"], slot, False)])
        db.session.commit()
        db.session.remove()

    def agent(i):
        def go():
            demande = db.session.get(Demande, numbers[i])
            lines = {line.id for line in demande.lines}
            try:
                decide(demande, accept=lines if i % 2 else set(), refuse=set() if i % 2 else lines,
                       motif="Complet", actor="Agent")
            except AlreadyDecided:
                return "already"
            return "decided"
        return retrying(go)

    def parent(i):
        fam = fams[i]
        if i < 5:
            def go():
                try:
                    cancel_demande(db.session.get(Demande, numbers[i]), db.session.get(User, fam["user_id"]))
                except AlreadyDecided:
                    return "already"
                return "cancelled"
            return retrying(go)
        return retrying(lambda: submit_cart(db.session.get(Cart, new_carts[i]), db.session.get(User, fam["user_id"]),
                                            links=None)) and "cancelled"

    results = race(race_app, tid, 20, lambda k: agent(k // 2) if k % 2 == 0 else parent(k // 2))
    assert set(results) <= {"decided", "already", "cancelled"}
    taken, taking, waiting = counts(race_app, tid, slot)
    assert taken == taking <= 10
    with race_app.app_context(), tenant_scope(tid):
        # a place freed went to the waiting list, in order, as long as there was one
        assert taken == 10 or waiting == 0
        lines = db.session.scalars(select(DemandeLine).where(DemandeLine.slot_id == slot)).all()
        assert lines
        db.session.remove()


# ---------------------------------------------------------------- lock timeout: "Réessayez dans un instant", never a 500

@pytest.fixture
def short_lock_timeout(monkeypatch):
    monkeypatch.setattr(core.locking, "LOCK_TIMEOUT", "300ms")


def _hold(database_url, sql, params):
    engine = create_engine(database_url)
    conn = engine.connect()
    trans = conn.begin()
    conn.execute(text(sql), params)
    return engine, conn, trans


def test_a_lock_timeout_answers_retry_in_the_cell_and_the_page(race_app, app, database_url, make_family, make_activity,
                                                              inscribe, web, short_lock_timeout):
    from tests.test_reservations_web import start_wizard
    from tests.test_reservations_web import tick as web_tick

    act = make_activity("auray", starts_in=10, days=5)
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    kid, slot = fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())]
    engine, conn, trans = _hold(database_url, "SELECT id FROM slot WHERE id = :id FOR UPDATE", {"id": slot})
    try:
        res = web_tick(web, cart, kid, slot)  # htmx: the cell, unticked, and the message
        html = res.get_data(as_text=True)
        assert res.status_code == 200 and "Réessayez dans un instant" in html
        assert f'id="cell-{kid}-{slot}"' in html and "checked" not in html
        res = web.post(f"/auray/demarches/{cart}/planning",  # without JavaScript: the page says it
                       {"shown": [f"{kid}-{slot}"], f"c-{kid}-{slot}": "1"}, page=f"/auray/demarches/{cart}/planning")
        assert res.status_code in (302, 303)
        page = web.get(res.headers["Location"]).get_data(as_text=True)
        assert "Réessayez dans un instant" in page
    finally:
        trans.rollback()
        conn.close()
        engine.dispose()
    assert "checked" in web_tick(web, cart, kid, slot).get_data(as_text=True)  # the lock is gone: it works


def test_a_lock_timeout_anywhere_else_is_never_a_500(race_app, app, database_url, make_family, make_activity, inscribe,
                                                    web, tenants, short_lock_timeout):
    """An abandoned démarche is released on the next visit; if its row is locked right then,
    the parent reads "Réessayez dans un instant" (a 503 page, or the grid message for htmx)."""
    from tests.test_reservations_web import start_wizard
    from tests.test_reservations_web import tick as web_tick

    act = make_activity("auray", starts_in=10, days=5)
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    with app.app_context(), tenant_scope(tenants["auray"]):
        db.session.get(Cart, cart).expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        db.session.remove()
    engine, conn, trans = _hold(database_url, "SELECT id FROM cart WHERE id = :id FOR UPDATE", {"id": cart})
    try:
        page = web.get(f"/auray/demarches/{cart}/planning")
        assert page.status_code == 503 and "Réessayez dans un instant" in page.get_data(as_text=True)
        res = web_tick(web, cart, fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())])
        assert res.status_code == 200 and res.headers.get("HX-Reswap") == "none"
        assert re.search(r'id="grid-message"[^>]*hx-swap-oob="true"[^>]*>Réessayez dans un instant', res.get_data(as_text=True))
    finally:
        trans.rollback()
        conn.close()
        engine.dispose()
    assert web.get(f"/auray/demarches/{cart}/planning").status_code == 302  # released now: "Recommencez"


def test_one_activity_per_time_slot_holds_when_the_same_child_ticks_from_eight_tabs_at_once(race_app, app,
                                                                                             make_activity, tenants):
    """Klub: one activity per time slot. Eight démarches of the same family (eight tabs) tick eight
    different sessions of the same morning at the same moment: one is held, seven say why not."""
    day = days_from_today(12)
    titles = [f"Atelier {k}" for k in range(8)]
    act = make_activity("auray", **{**KLUB, "code": "klub-slot"},
                        sessions=[{"date": day, "title": t, "time_slot": "matin", "places": 20} for t in titles])
    slots = [act["slots"][(t, day.isoformat())] for t in titles]
    fam = bulk_families(race_app, act["tenant_id"], act["id"], 1, open_carts=False)[0]
    with race_app.app_context(), tenant_scope(act["tenant_id"]):
        carts = [Cart(family_id=fam["family_id"], user_id=fam["user_id"], activity_ids=[act["id"]],
                      child_ids=[fam["child_id"]], expires_at=utcnow() + timedelta(minutes=20),
                      token=uuid.uuid4().hex[:16]) for _ in slots]
        db.session.add_all(carts)
        db.session.commit()
        cart_ids = [c.id for c in carts]
        db.session.remove()

    def attempt(i):
        cell = tick(cart_ids[i], [(fam["child_id"], slots[i], True)])[(fam["child_id"], slots[i])]
        return cell.state, cell.reason

    results = race(race_app, act["tenant_id"], len(slots), attempt)
    assert [s for s, _r in results].count(booking.HELD) == 1
    assert sorted(r for s, r in results if s != booking.HELD) == ["time_slot"] * 7
    assert sum(counts(race_app, act["tenant_id"], s)[0] for s in slots) == 1
    assert all(counts(race_app, act["tenant_id"], s)[0] == counts(race_app, act["tenant_id"], s)[1] for s in slots)

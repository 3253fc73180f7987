"""The reservation core: availability, quotas, deadlines, time slots, stages, holds, waiting list."""

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from core import calendar as cal
from core import reservations as booking
from core.demandes import decide, submit_cart
from core.models import (
    Activity,
    Cart,
    Child,
    Demande,
    Reservation,
    Slot,
    User,
)
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today


class Links:
    def demande(self, number):
        return f"http://portail.test/demandes/{number}"


def _ctx(cart, slot_ids, zone="A"):
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(cart.activity_ids))).all()
    children = db.session.scalars(select(Child).where(Child.id.in_(cart.child_ids))).all()
    slots = db.session.scalars(select(Slot).where(Slot.id.in_(slot_ids))).all()
    return booking.Context.load(cart=cart, activities=activities, children=children, slots=slots, zone=zone)


def _cart(family, activity, child_ids):
    user = db.session.scalars(select(User).where(User.family_id == family["family_id"])).first()
    return booking.open_cart(user=user, family=user.family, activity_ids=[activity["id"]], child_ids=child_ids,
                             hold_minutes=20), user


@pytest.fixture
def world(app, tenants, make_family, make_activity, inscribe):
    fam = make_family("auray", children=[("Lou", "2021-03-01"), ("Noé", "2020-06-01")])
    act = make_activity("auray")
    inscribe(act, fam["child_ids"])
    return fam, act


def _tick(cart, wishes, **kw):
    ctx = _ctx(cart, {s for _c, s, _w in wishes})
    out = booking.set_choices(ctx, wishes, **kw)
    db.session.commit()
    return out


def test_ticking_holds_the_place_and_capacity_is_never_exceeded(ctx, world, make_family, inscribe, tenants):
    fam, act = world
    other = make_family("auray", children=[("Zoé", "2021-01-01")])
    inscribe(act, other["child_ids"])
    slot_id = act["slots"][("matin", days_from_today(10).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart1, _u = _cart(fam, act, fam["child_ids"])
        cells = _tick(cart1, [(c, slot_id, True) for c in fam["child_ids"]])
        assert [c.state for c in cells.values()] == ["held", "held"]
        assert db.session.get(Slot, slot_id).taken == 2
        cart2, _u = _cart(other, act, other["child_ids"])
        cells = _tick(cart2, [(other["child_ids"][0], slot_id, True)])
        assert list(cells.values())[0].state == "full"
        assert db.session.get(Slot, slot_id).taken == 2
        # the waiting list is offered instead
        cells = _tick(cart2, [(other["child_ids"][0], slot_id, True)], waitlist=True)
        assert list(cells.values())[0].state == "waitlist"


def test_a_doubled_tick_is_harmless(ctx, world, tenants):
    fam, act = world
    slot_id = act["slots"][("repas", days_from_today(11).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart, _u = _cart(fam, act, fam["child_ids"][:1])
        _tick(cart, [(fam["child_ids"][0], slot_id, True)])
        _tick(cart, [(fam["child_ids"][0], slot_id, True)])
        assert db.session.get(Slot, slot_id).taken == 1
        _tick(cart, [(fam["child_ids"][0], slot_id, False)])
        _tick(cart, [(fam["child_ids"][0], slot_id, False)])
        assert db.session.get(Slot, slot_id).taken == 0


def test_online_quota_keeps_half_of_the_places_for_on_site(ctx, make_family, make_activity, inscribe, tenants):
    act = make_activity("auray", code="klub", kind="sessions", ages=[8, 12], online_quota_pct=50, one_per_time_slot=True,
                        sessions=[{"date": days_from_today(12), "title": "Danse latine", "time_slot": "matin", "places": 4},
                                  {"date": days_from_today(12), "title": "Fun Archery", "time_slot": "matin", "places": 6}])
    fams = [make_family("auray", children=[(f"K{i}", "2016-01-01")]) for i in range(3)]
    for f in fams:
        inscribe(act, f["child_ids"])
    danse = act["slots"][("Danse latine", days_from_today(12).isoformat())]
    with tenant_scope(tenants["auray"]):
        states = []
        for f in fams:
            cart, _u = _cart(f, act, f["child_ids"])
            states.append(list(_tick(cart, [(f["child_ids"][0], danse, True)]).values())[0].state)
        assert states == ["held", "held", "full"]  # 4 places, 2 online


def test_one_activity_per_time_slot(ctx, make_family, make_activity, inscribe, tenants):
    day = days_from_today(12).isoformat()
    act = make_activity("auray", code="klub", kind="sessions", ages=[8, 12], one_per_time_slot=True,
                        sessions=[{"date": day, "title": "Danse latine", "time_slot": "matin", "places": 8},
                                  {"date": day, "title": "Multisports", "time_slot": "matin", "places": 8},
                                  {"date": day, "title": "Repas", "time_slot": "midi", "places": 8}])
    fam = make_family("auray", children=[("Thaïs", "2016-01-01")])
    inscribe(act, fam["child_ids"])
    kid = fam["child_ids"][0]
    with tenant_scope(tenants["auray"]):
        cart, _u = _cart(fam, act, [kid])
        _tick(cart, [(kid, act["slots"][("Danse latine", day)], True)])
        cell = list(_tick(cart, [(kid, act["slots"][("Multisports", day)], True)]).values())[0]
        assert cell.state == "blocked" and cell.reason == "time_slot"
        assert list(_tick(cart, [(kid, act["slots"][("Repas", day)], True)]).values())[0].state == "held"
        # changing one's mind frees the time slot
        _tick(cart, [(kid, act["slots"][("Danse latine", day)], False)])
        assert list(_tick(cart, [(kid, act["slots"][("Multisports", day)], True)]).values())[0].state == "held"


def test_a_multi_date_stage_is_booked_whole_or_not_at_all(ctx, make_family, make_activity, inscribe, tenants):
    dates = [days_from_today(20 + i) for i in range(4)]
    act = make_activity("saint-aubin-de-medoc", days=30, code="stages", kind="sessions", ages=[6, 12],
                        validation="prereservation", prereservation_until=days_from_today(15),
                        sessions=[{"dates": dates, "title": "Stage de roller", "time_slot": "journee", "places": 1,
                                   "ages": [7, 9]}])
    fam = make_family("saint-aubin-de-medoc", children=[("Timéo", "2018-02-08"), ("Lina", "2018-03-01")])
    inscribe(act, fam["child_ids"])
    (slot_id,) = act["slots"].values()
    with tenant_scope(tenants["saint-aubin-de-medoc"]):
        cart, user = _cart(fam, act, fam["child_ids"])
        cells = _tick(cart, [(c, slot_id, True) for c in fam["child_ids"]])
        assert sorted(c.state for c in cells.values()) == ["full", "held"]
        slot = db.session.get(Slot, slot_id)
        assert slot.dates == [d.isoformat() for d in dates] and slot.taken == 1
        demande = submit_cart(cart, user, links=Links())
        db.session.commit()
        assert demande.status == "deposee"  # a pre-reservation: the lists come later
        assert len(demande.lines) == 1 and "→" in demande.lines[0].label


def test_age_filter_and_inscription_are_required(ctx, make_family, make_activity, inscribe, tenants):
    act = make_activity("auray")
    fam = make_family("auray", children=[("Grand", "2012-01-01"), ("Petit", "2021-01-01"), ("Sans", "2021-02-01")])
    inscribe(act, fam["child_ids"][:2])
    slot_id = act["slots"][("matin", days_from_today(10).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart, _u = _cart(fam, act, fam["child_ids"])
        cells = _tick(cart, [(c, slot_id, True) for c in fam["child_ids"]])
        reasons = [cells[(c, slot_id)].reason for c in fam["child_ids"]]
        assert reasons == ["age", None, "not_inscribed"]


def test_deadline_d_minus_2_noon_weekends_not_counted():
    rule = {"kind": "days_before", "days": 2, "time": "12:00", "skip_weekends": True}
    monday = date(2026, 10, 19)
    limit = cal.deadline_for(rule, monday)
    assert limit.date() == date(2026, 10, 15) and limit.hour == 12  # Thursday before
    assert cal.is_past_deadline(rule, monday, datetime(2026, 10, 15, 11, 59, tzinfo=cal.PARIS)) is False
    assert cal.is_past_deadline(rule, monday, datetime(2026, 10, 15, 12, 1, tzinfo=cal.PARIS)) is True


def test_deadline_tuesday_for_next_week():
    rule = {"kind": "weekday_before_week", "weekday": 1, "time": "23:59"}
    thursday = date(2026, 11, 26)
    assert cal.deadline_for(rule, thursday) == datetime(2026, 11, 17, 23, 59, tzinfo=cal.PARIS)


def test_closed_days_weekends_public_and_school_holidays():
    peri = {"weekdays": [0, 1, 3, 4], "public_holidays": "closed", "school_holidays": "closed", "zone": "A"}
    assert cal.closed_reason(peri, date(2026, 11, 11)) == cal.CLOSED_WEEKDAY  # a Wednesday
    assert cal.closed_reason(peri, date(2026, 12, 25)) == cal.CLOSED_PUBLIC_HOLIDAY  # Christmas, a Friday
    assert cal.closed_reason(peri, date(2026, 11, 30)) is None            # a school Monday
    assert cal.closed_reason(peri, date(2026, 12, 21)) == cal.CLOSED_SCHOOL_HOLIDAY
    assert cal.closed_reason(peri, date(2027, 3, 29)) == cal.CLOSED_PUBLIC_HOLIDAY  # Easter Monday
    kids = {"weekdays": [0, 1, 2, 3, 4], "school_holidays": "only", "zone": "B"}
    assert cal.closed_reason(kids, date(2026, 12, 21)) is None
    assert cal.closed_reason(kids, date(2026, 12, 25)) == cal.CLOSED_PUBLIC_HOLIDAY
    assert cal.closed_reason(kids, date(2026, 11, 30)) == cal.CLOSED_NOT_HOLIDAY


@settings(max_examples=200, deadline=None)
@given(day=st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 6, 30)),
       days=st.integers(min_value=0, max_value=10), skip=st.booleans())
def test_property_deadlines_are_before_the_day_and_skip_weekends(day, days, skip):
    rule = {"kind": "days_before", "days": days, "time": "12:00", "skip_weekends": skip}
    limit = cal.deadline_for(rule, day)
    assert limit.date() <= day
    if days:
        assert limit.date() < day
        if skip:
            assert limit.date().weekday() < 5
            business = sum(1 for i in range(1, (day - limit.date()).days) if (limit.date() + timedelta(days=i)).weekday() < 5)
            assert business == days - 1
        else:
            assert (day - limit.date()).days == days


@settings(max_examples=100, deadline=None)
@given(start=st.dates(min_value=date(2026, 9, 1), max_value=date(2027, 6, 1)),
       length=st.integers(min_value=0, max_value=60),
       weekdays=st.sets(st.integers(min_value=0, max_value=6), min_size=1))
def test_property_open_days_match_the_periodicity(start, length, weekdays):
    rules = {"weekdays": sorted(weekdays), "public_holidays": "closed", "school_holidays": "closed", "zone": "A"}
    end = start + timedelta(days=length)
    days = cal.open_days(rules, start, end)
    assert all(start <= d <= end and d.weekday() in weekdays for d in days)
    assert all(not cal.is_public_holiday(d) and not cal.is_school_holiday(d, "A") for d in days)
    expected = [start + timedelta(days=i) for i in range(length + 1)]
    expected = [d for d in expected if d.weekday() in weekdays and not cal.is_public_holiday(d)
                and not cal.is_school_holiday(d, "A")]
    assert days == expected


def test_holds_expire_and_free_the_place(ctx, world, make_family, inscribe, tenants):
    fam, act = world
    other = make_family("auray", children=[("Zoé", "2021-01-01")])
    inscribe(act, other["child_ids"])
    slot_id = act["slots"][("apres_midi", days_from_today(10).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart1, _u = _cart(fam, act, fam["child_ids"])
        _tick(cart1, [(c, slot_id, True) for c in fam["child_ids"]])
        # the family abandons the wizard: its holds expire
        cart1.expires_at = datetime(2000, 1, 1)
        for res in db.session.scalars(select(Reservation).where(Reservation.cart_id == cart1.id)):
            res.held_until = datetime(2000, 1, 1)
        db.session.commit()
        cart2, _u = _cart(other, act, other["child_ids"])
        cell = list(_tick(cart2, [(other["child_ids"][0], slot_id, True)]).values())[0]
        assert cell.state == "held"
        assert db.session.get(Slot, slot_id).taken == 1
        assert booking.expire_abandoned_carts() == 1
        db.session.commit()
        assert db.session.get(Cart, cart1.id).status == "expired"


def test_cancel_cart_releases_everything(ctx, world, tenants):
    fam, act = world
    ids = [act["slots"][(u, days_from_today(10).isoformat())] for u in ("matin", "repas", "apres_midi")]
    with tenant_scope(tenants["auray"]):
        cart, _u = _cart(fam, act, fam["child_ids"])
        _tick(cart, [(fam["child_ids"][0], s, True) for s in ids])
        booking.cancel_cart(cart)
        db.session.commit()
        assert db.session.scalar(select(func.sum(Slot.taken)).where(Slot.id.in_(ids))) == 0


def test_cancel_cart_gives_the_freed_place_to_the_waiting_list(ctx, world, make_family, inscribe, tenants, outbox):
    fam, act = world
    other = make_family("auray", children=[("Zoé", "2021-01-01")])
    inscribe(act, other["child_ids"])
    slot_id = act["slots"][("matin", days_from_today(12).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart1, _u1 = _cart(fam, act, fam["child_ids"])
        _tick(cart1, [(c, slot_id, True) for c in fam["child_ids"]])  # the two places held
        cart2, user2 = _cart(other, act, other["child_ids"])
        _tick(cart2, [(other["child_ids"][0], slot_id, True)], waitlist=True)
        d2 = submit_cart(cart2, user2, links=Links())
        db.session.commit()
        booking.cancel_cart(cart1)
        db.session.commit()
        assert db.session.get(Cart, cart1.id).status == "cancelled"
        assert db.session.get(Cart, cart1.id).items == []
        statuses = db.session.execute(select(Reservation.child_id, Reservation.status)
                                      .where(Reservation.slot_id == slot_id)).all()
        assert sorted(statuses) == sorted([(c, "cancelled") for c in fam["child_ids"]]
                                          + [(other["child_ids"][0], "pending")])
        assert db.session.get(Slot, slot_id).taken == 1
        assert db.session.get(Demande, d2.id).lines[0].status == "pending"
    assert any("Zoé" in outbox.text(m) for m in outbox.to(other["email"]))


def test_refusal_promotes_the_waiting_list_and_mails_the_family(ctx, world, make_family, inscribe, tenants, outbox):
    fam, act = world
    other = make_family("auray", children=[("Zoé", "2021-01-01")])
    inscribe(act, other["child_ids"])
    slot_id = act["slots"][("matin", days_from_today(12).isoformat())]
    with tenant_scope(tenants["auray"]):
        cart1, user1 = _cart(fam, act, fam["child_ids"])
        _tick(cart1, [(c, slot_id, True) for c in fam["child_ids"]])
        d1 = submit_cart(cart1, user1, links=Links())
        db.session.commit()
        cart2, user2 = _cart(other, act, other["child_ids"])
        _tick(cart2, [(other["child_ids"][0], slot_id, True)], waitlist=True)
        d2 = submit_cart(cart2, user2, links=Links())
        db.session.commit()
        assert [line.status for line in d2.lines] == ["waitlist"]
        refused = {d1.lines[0].id}
        decide(d1, accept={d1.lines[1].id}, refuse=refused, motif="Pièces manquantes au dossier", actor="Agent",
               links=Links())
        db.session.commit()
        assert d1.status == "partielle"
        res = db.session.scalars(select(Reservation).where(Reservation.child_id == other["child_ids"][0])).one()
        assert res.status == "pending"  # Auray's commune decides: promoted to "en attente de validation"
        assert db.session.get(Slot, slot_id).taken == 2
        assert db.session.get(Demande, d2.id).lines[0].status == "pending"
    promoted = outbox.to(other["email"])
    assert any("Zoé" in outbox.text(m) for m in promoted)


def test_taken_always_matches_the_bookings(ctx, world, tenants):
    """The counter the locks protect equals the rows that take a place."""
    fam, act = world
    day = days_from_today(13).isoformat()
    ids = [act["slots"][(u, day)] for u in ("matin", "repas")]
    with tenant_scope(tenants["auray"]):
        cart, user = _cart(fam, act, fam["child_ids"])
        _tick(cart, [(c, s, True) for c in fam["child_ids"] for s in ids])
        _tick(cart, [(fam["child_ids"][0], ids[0], False)])
        submit_cart(cart, user, links=Links())
        db.session.commit()
        for slot in db.session.scalars(select(Slot).where(Slot.id.in_(ids))):
            rows = db.session.scalar(select(func.count(Reservation.id)).where(
                Reservation.slot_id == slot.id, Reservation.status.in_(booking.RES_TAKING_PLACE)))
            assert slot.taken == rows


def test_every_tick_keeps_the_holds_alive_to_the_minute(ctx, world, tenants):
    fam, act = world
    day = days_from_today(10).isoformat()
    matin, repas, soir = (act["slots"][(u, day)] for u in ("matin", "repas", "apres_midi"))
    kid = fam["child_ids"][0]
    with tenant_scope(tenants["auray"]):
        cart, _u = _cart(fam, act, fam["child_ids"])
        _tick(cart, [(kid, matin, True)])
        first = db.session.get(Cart, cart.id).expires_at
        _tick(cart, [(kid, repas, True)])  # seconds later: nothing to rewrite
        assert db.session.get(Cart, cart.id).expires_at == first
        # five minutes pass: the parent is still there, the next tick gives everything its time again
        cart.expires_at = first - timedelta(minutes=5)
        for res in db.session.scalars(select(Reservation).where(Reservation.cart_id == cart.id)):
            res.held_until = first - timedelta(minutes=5)
        db.session.commit()
        _tick(cart, [(kid, soir, True)])
        renewed = db.session.get(Cart, cart.id).expires_at
        assert renewed > first - timedelta(minutes=1)
        holds = db.session.scalars(select(Reservation).where(Reservation.cart_id == cart.id)).all()
        assert len(holds) == 3
        assert {r.held_until for r in holds} == {renewed}


def test_a_freed_place_skips_a_child_already_booked_in_the_same_time_slot(ctx, make_family, make_activity, inscribe,
                                                                          tenants):
    """Klub: one activity per time slot. Zoé waits for "Danse" while booked in "Archery", the same
    morning: when a "Danse" place frees up, it goes to the next in line, not to her."""
    day = days_from_today(12)
    act = make_activity("auray", code="klub", name="Klub", kind="sessions", ages=[8, 12], validation="commune",
                        one_per_time_slot=True,
                        sessions=[{"date": day, "title": "Danse", "time_slot": "matin", "places": 1},
                                  {"date": day, "title": "Archery", "time_slot": "matin", "places": 10}])
    danse, archery = (act["slots"][(t, day.isoformat())] for t in ("Danse", "Archery"))
    first = make_family("auray", children=[("Lina", "2016-01-01")])
    zoe = make_family("auray", children=[("Zoé", "2016-02-01")])
    third = make_family("auray", children=[("Noa", "2016-03-01")])
    for fam in (first, zoe, third):
        inscribe(act, fam["child_ids"])
    with tenant_scope(tenants["auray"]):
        cart, user = _cart(first, act, first["child_ids"])
        _tick(cart, [(first["child_ids"][0], danse, True)])
        d1 = submit_cart(cart, user, links=Links())
        db.session.commit()
        for fam in (zoe, third):  # both wait for "Danse"
            cart, user = _cart(fam, act, fam["child_ids"])
            _tick(cart, [(fam["child_ids"][0], danse, True)], waitlist=True)
            submit_cart(cart, user, links=Links())
            db.session.commit()
        cart, user = _cart(zoe, act, zoe["child_ids"])  # Zoé takes "Archery" meanwhile (a waiting list holds no place)
        assert list(_tick(cart, [(zoe["child_ids"][0], archery, True)]).values())[0].state == "held"
        submit_cart(cart, user, links=Links())
        db.session.commit()

        decide(d1, accept=set(), refuse={d1.lines[0].id}, motif="Pièces manquantes au dossier", actor="Agent",
               links=Links())
        db.session.commit()

        def morning(child_id):
            return sorted(db.session.scalars(select(Reservation.status).where(
                Reservation.child_id == child_id, Reservation.slot_id.in_([danse, archery]))).all())

        assert morning(zoe["child_ids"][0]) == ["pending", "waitlist"]  # Archery booked, still waiting for Danse
        assert morning(third["child_ids"][0]) == ["pending"]  # the place went to the next in line
        assert db.session.get(Slot, danse).taken == 1


def test_without_a_worker_a_tick_frees_the_expired_holds_of_its_slot(ctx, app, world, make_family, inscribe, tenants,
                                                                      monkeypatch):
    """The newcomer's embedded mode has no worker to sweep abandoned holds: the next tick on the
    slot frees them, so "Places : N" does not stay low.  With a worker, that is the sweep's job."""
    fam, act = world
    kid = fam["child_ids"][0]
    with tenant_scope(tenants["auray"]):
        for k, with_worker in enumerate((True, False)):
            slot_id = act["slots"][("repas", days_from_today(11 + k).isoformat())]
            monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0" if with_worker else None)
            gone = make_family("auray", children=[("Eliott", "2021-02-02")])
            inscribe(act, gone["child_ids"])
            cart, _u = _cart(gone, act, gone["child_ids"])
            _tick(cart, [(gone["child_ids"][0], slot_id, True)])
            cart.expires_at = datetime(2000, 1, 1)  # abandoned
            db.session.execute(update(Reservation).where(Reservation.cart_id == cart.id)
                               .values(held_until=datetime(2000, 1, 1)))
            db.session.commit()
            assert db.session.get(Slot, slot_id).taken == 1
            mine, _u = _cart(fam, act, fam["child_ids"])
            _tick(mine, [(kid, slot_id, True)])
            # with a worker the abandoned hold waits for the sweep; without, this tick freed it
            assert db.session.get(Slot, slot_id).taken == (2 if with_worker else 1)

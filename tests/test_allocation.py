"""Pre-reservation lists: reproducible lottery, priorities, capacity, publication and its mails."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core import allocation as alloc
from core.admin_models import AllocationRun
from core.models import Activity, Demande, Family, Reservation, Slot
from extensions import db
from tenants.context import tenant_scope
from tests.admin_helpers import book, keep_tenant_settings  # noqa: F401 (fixture)
from tests.conftest import days_from_today

pytestmark = pytest.mark.usefixtures("keep_tenant_settings")

# ---------------------------------------------------------------------------- the pure allocation

candidates_st = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(0, 2), st.booleans()),  # slot, family, child#, resident
    min_size=0, max_size=40)


def _candidates(raw):
    seen, out = set(), []
    for n, (slot, family, child, resident) in enumerate(raw):
        child_id = family * 10 + child
        if (slot, child_id) in seen:
            continue
        seen.add((slot, child_id))
        out.append(alloc.Candidate(line_id=n + 1, slot_id=slot, child_id=child_id, family_id=family,
                                   resident=resident if family % 2 else not resident, order=(n, 0)))
    # a family is resident or not, whatever the line
    residency = {c.family_id: c.resident for c in out}
    return [alloc.Candidate(c.line_id, c.slot_id, c.child_id, c.family_id, residency[c.family_id], c.order) for c in out]


@settings(max_examples=150, deadline=None)
@given(raw=candidates_st, free=st.lists(st.integers(0, 6), min_size=3, max_size=3), seed=st.integers(0, 10**9),
       method=st.sampled_from(["lottery", "fcfs"]), siblings=st.booleans(), residents=st.booleans(),
       unplaced=st.booleans(), losers=st.sampled_from(["waitlist", "refused"]))
def test_property_lists_never_exceed_capacity_keep_siblings_and_are_reproducible(
        raw, free, seed, method, siblings, residents, unplaced, losers):
    cands = _candidates(raw)
    rules = alloc.Rules(method=method, siblings_together=siblings, residents_first=residents, unplaced_first=unplaced,
                        losers=losers)
    slots = [(1, free[0]), (2, free[1]), (3, free[2])]
    first = alloc.compute(slots=slots, candidates=cands, rules=rules, seed=seed)
    again = alloc.compute(slots=slots, candidates=list(reversed(cands)), rules=rules, seed=seed)
    assert first == again  # same seed, same lists (whatever order the rows came in)
    assert sorted(o.line_id for o in first) == sorted(c.line_id for c in cands)  # everyone has an answer
    for slot_id, places in slots:
        mine = [o for o in first if o.slot_id == slot_id]
        assert sum(o.outcome == "accepted" for o in mine) <= places
        assert sorted(o.rank for o in mine) == list(range(1, len(mine) + 1))
        assert {o.outcome for o in mine} <= {"accepted", losers if losers == "refused" else "waitlist"}
        if siblings:
            by_family = {}
            for o in mine:
                by_family.setdefault(o.family_id, set()).add(o.outcome)
            assert all(len(outcomes) == 1 for outcomes in by_family.values())
        if residents and not unplaced and not siblings:
            resident_families = {c.family_id for c in cands if c.resident}
            accepted_outsiders = [o for o in mine if o.outcome == "accepted" and o.family_id not in resident_families]
            refused_residents = [o for o in mine if o.outcome != "accepted" and o.family_id in resident_families]
            assert not (accepted_outsiders and refused_residents)


def test_a_recorded_seed_replays_the_same_lottery_and_another_seed_draws_again():
    cands = [alloc.Candidate(line_id=i, slot_id=1, child_id=i, family_id=i, resident=False, order=(i, 0))
             for i in range(1, 21)]
    rules = alloc.Rules(method="lottery", residents_first=False, unplaced_first=False)
    lists = {seed: [o.child_id for o in sorted(alloc.compute(slots=[(1, 5)], candidates=cands, rules=rules, seed=seed),
                                               key=lambda o: o.rank)] for seed in (1, 2, 3)}
    assert lists[1] == [o.child_id for o in sorted(alloc.compute(slots=[(1, 5)], candidates=cands, rules=rules,
                                                                 seed=1), key=lambda o: o.rank)]
    assert len({tuple(v) for v in lists.values()}) > 1  # 20! orders: three seeds do not all agree


def test_first_come_first_served_follows_the_demande_numbers():
    cands = [alloc.Candidate(line_id=i, slot_id=1, child_id=i, family_id=i, resident=False, order=(10 - i, 0))
             for i in range(1, 6)]
    out = alloc.compute(slots=[(1, 2)], candidates=cands, rules=alloc.Rules(method="fcfs", residents_first=False,
                                                                            unplaced_first=False), seed=0)
    assert {o.child_id for o in out if o.outcome == "accepted"} == {5, 4}


def test_siblings_together_and_children_without_a_place_first():
    # family 1: two siblings; family 2 and 3: one child each.  Two places.
    cands = [alloc.Candidate(1, 1, 11, 1, False, (1, 0)), alloc.Candidate(2, 1, 12, 1, False, (1, 1)),
             alloc.Candidate(3, 1, 21, 2, False, (2, 0)), alloc.Candidate(4, 1, 31, 3, False, (3, 0))]
    fcfs = alloc.Rules(method="fcfs", residents_first=False, unplaced_first=True, siblings_together=True)
    out = {o.child_id: o.outcome for o in alloc.compute(slots=[(1, 2)], candidates=cands, rules=fcfs, seed=0)}
    assert out == {11: "accepted", 12: "accepted", 21: "waitlist", 31: "waitlist"}
    # with one place the siblings stay together on the waiting list and the next single child gets it
    out = {o.child_id: o.outcome for o in alloc.compute(slots=[(1, 1)], candidates=cands, rules=fcfs, seed=0)}
    assert out == {11: "waitlist", 12: "waitlist", 21: "accepted", 31: "waitlist"}
    # child 21 already has a place elsewhere: 31, who has none, goes first
    out = {o.child_id: o.outcome for o in alloc.compute(slots=[(1, 1)], candidates=cands, rules=fcfs, seed=0,
                                                        placed_before={21})}
    assert out[31] == "accepted" and out[21] == "waitlist"


# ---------------------------------------------------------------------------- on the database

@pytest.fixture
def stage(app, make_activity, make_family, inscribe, make_agent, tenants):
    """Saint-Aubin: a roller stage of 3 places, pre-reserved by 5 families (one with two siblings)."""
    first = days_from_today(30)
    act = make_activity("saint-aubin-de-medoc", starts_in=20, days=40, code="sejours-stages", name="Séjours & Stages",
                        kind="sessions", validation="prereservation", ages=[6, 12],
                        prereservation_until=days_from_today(5).isoformat(),
                        sessions=[{"dates": [(first + timedelta(days=i)).isoformat() for i in range(4)],
                                   "title": "Stage de roller", "places": 3, "ages": [6, 12]}])
    slot = act["slots"][("Stage de roller", first.isoformat())]
    families = []
    for i, name in enumerate(["ARNAUD", "BERNARD", "COLIN", "DUPUY"]):
        fam = make_family("saint-aubin-de-medoc", name=name, children=[(f"Enfant{name.title()}", "2017-0%d-01" % (i + 1))])
        families.append(fam)
    siblings = make_family("saint-aubin-de-medoc", name="CASTAING",
                           children=[("Timéo", "2018-02-08"), ("Léna", "2016-05-05")])
    families.append(siblings)
    for fam in families:
        inscribe(act, fam["child_ids"])
        book(app, fam, act, [(c, slot) for c in fam["child_ids"]], waitlist=True)
    make_agent("saint-aubin-de-medoc")
    return {"act": act, "slot": slot, "families": families, "siblings": siblings, "tid": tenants["saint-aubin-de-medoc"]}


def _close_period(app, stage):
    with app.app_context(), tenant_scope(stage["tid"]):
        db.session.get(Activity, stage["act"]["id"]).prereservation_until = days_from_today(-1)
        db.session.commit()
        db.session.remove()


def _preview(app, stage, seed, **rules):
    with app.test_request_context("/saint-aubin-de-medoc/"), tenant_scope(stage["tid"]):
        run = alloc.preview(db.session.get(Activity, stage["act"]["id"]), alloc.Rules(**rules), seed=seed, actor="Agent")
        db.session.commit()
        out = {"id": run.id, "result": sorted((r["child_id"], r["outcome"], r["rank"]) for r in run.result)}
        db.session.remove()
    return out


def test_the_same_seed_gives_the_same_lists_twice(app, stage):
    one = _preview(app, stage, 123456)
    two = _preview(app, stage, 123456)
    assert one["result"] == two["result"] and one["id"] != two["id"]
    assert sum(1 for _c, o, _r in one["result"] if o == "accepted") <= 3


def test_publishing_applies_the_lists_keeps_taken_consistent_and_mails_each_family_once(app, web, stage, outbox):
    _close_period(app, stage)
    run = _preview(app, stage, 42, siblings_together=True, residents_first=False)
    web.login("saint-aubin-de-medoc", "agent@saint-aubin-de-medoc.test")
    html = web.get(f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}").get_data(as_text=True)
    assert "Aperçu des listes" in html and "42" in html and "Stage de roller" in html
    res = web.post(f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}/publier", {},
                   page=f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}")
    assert res.status_code == 303
    assert "Les listes de Séjours &amp; Stages sont publiées" in web.get(res.headers["Location"]).get_data(as_text=True)
    with app.app_context(), tenant_scope(stage["tid"]):
        slot = db.session.get(Slot, stage["slot"])
        statuses = dict(db.session.execute(select(Reservation.child_id, Reservation.status).where(
            Reservation.slot_id == slot.id)).all())
        reserved = sum(1 for s in statuses.values() if s == "reserved")
        assert slot.taken == reserved <= slot.capacity == 3
        assert set(statuses.values()) <= {"reserved", "waitlist"}
        published = {r["child_id"]: r["outcome"] for r in db.session.get(AllocationRun, run["id"]).result}
        assert {c: ("reserved" if o == "accepted" else o) for c, o in published.items()} == statuses
        sib = stage["siblings"]["child_ids"]
        assert statuses[sib[0]] == statuses[sib[1]]  # kept together
        demandes = {d.family_id: d.status for d in db.session.scalars(select(Demande))}
        db.session.remove()
    for fam in stage["families"]:
        mails = [m for m in outbox.to(fam["email"]) if "Les listes sont établies" in m["Subject"]]
        assert len(mails) == 1, fam["email"]
        text = outbox.text(mails[0])
        assert "Séjours & Stages" in text and "Stage de roller" in text
        expected = "Retenu" if statuses[fam["child_ids"][0]] == "reserved" else "Liste d'attente"
        assert expected in text
        assert demandes[fam["family_id"]] == ("acceptee" if expected == "Retenu" else "attente")
    # the family reads "Liste d'attente" or "Traitée positivement" on its demande page
    waiting = next(f for f in stage["families"] if demandes[f["family_id"]] == "attente")
    parent = type(web)(app.test_client())
    parent.login("saint-aubin-de-medoc", waiting["email"])
    html = parent.get("/saint-aubin-de-medoc/demandes/").get_data(as_text=True)
    assert "status--attente\">Liste d'attente<" in html
    # publishing twice is refused
    res = web.post(f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}/publier", {},
                   page=f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}")
    assert "déjà été publiées" in web.get(res.headers["Location"]).get_data(as_text=True)


def test_residents_first_and_refusal_of_the_others(app, stage, outbox):
    _close_period(app, stage)
    residents = stage["families"][3:]  # DUPUY and the two CASTAING siblings: exactly 3 places
    with app.app_context(), tenant_scope(stage["tid"]):
        for fam in residents:
            db.session.get(Family, fam["family_id"]).resident = True
        db.session.commit()
        db.session.remove()
    run = _preview(app, stage, 7, method="lottery", residents_first=True, losers="refused",
                   motif="Plus de place disponible")
    accepted = {c for c, o, _r in run["result"] if o == "accepted"}
    assert accepted == {c for fam in residents for c in fam["child_ids"]}
    with app.test_request_context("/saint-aubin-de-medoc/"), tenant_scope(stage["tid"]):
        alloc.publish(db.session.get(AllocationRun, run["id"]), actor="Agent")
        db.session.commit()
        refused = db.session.scalar(select(func.count()).select_from(Reservation).where(
            Reservation.status == "refused"))
        assert refused == 3 and db.session.get(Slot, stage["slot"]).taken == 3
        db.session.remove()
    (mail,) = [m for m in outbox.to(stage["families"][0]["email"]) if "Les listes sont établies" in m["Subject"]]
    assert "Refusé (Plus de place disponible)" in outbox.text(mail)


def test_publishing_refuses_lists_that_changed_since_the_preview(app, web, stage):
    _close_period(app, stage)
    run = _preview(app, stage, 99)
    with app.app_context(), tenant_scope(stage["tid"]):  # a family's demande disappears (cancelled by the commune)
        demande = db.session.scalars(select(Demande).where(Demande.family_id == stage["families"][0]["family_id"])).one()
        for line in demande.lines:
            line.status = "cancelled"
            res = db.session.get(Reservation, line.reservation_id)
            if res.status == "pending":
                db.session.get(Slot, res.slot_id).taken -= 1
            res.status = "cancelled"
        demande.status = "annulee"
        db.session.commit()
        db.session.remove()
    web.login("saint-aubin-de-medoc", "agent@saint-aubin-de-medoc.test")
    url = f"/saint-aubin-de-medoc/admin/pre-reservations/tirages/{run['id']}"
    res = web.post(url + "/publier", {}, page=url)
    fresh = web.get(res.headers["Location"])
    assert "ont changé depuis l&#39;aperçu" in fresh.get_data(as_text=True)
    assert res.headers["Location"] != url  # a new preview to check
    with app.app_context(), tenant_scope(stage["tid"]):
        assert db.session.scalar(select(func.count()).select_from(Reservation).where(
            Reservation.status == "reserved")) == 0
        db.session.remove()


def test_the_allocation_form_and_the_period(app, web, stage):
    web.login("saint-aubin-de-medoc", "agent@saint-aubin-de-medoc.test")
    html = web.get("/saint-aubin-de-medoc/admin/pre-reservations").get_data(as_text=True)
    assert "Séjours &amp; Stages" in html and ">6<" in html  # 6 pre-reservations to allocate
    url = f"/saint-aubin-de-medoc/admin/pre-reservations/{stage['act']['id']}"
    res = web.post(url, {"method": "lottery", "losers": "waitlist", "seed": "abc"}, page=url)
    assert res.status_code == 200 and "Saisissez un nombre entier." in res.get_data(as_text=True)
    assert 'value="abc"' in res.get_data(as_text=True)
    res = web.post(url, {"method": "lottery", "losers": "waitlist", "siblings_together": "y", "seed": "2024"}, page=url)
    assert res.status_code == 303
    run_url = res.headers["Location"]
    html = web.get(run_url).get_data(as_text=True)
    assert "<strong>2024</strong>" in html and "frères et sœurs ensemble" in html
    assert "la publication sera possible ensuite" in html  # the period is not over yet
    res = web.post(run_url + "/publier", {}, page=run_url)
    assert "La période de pré-réservation n&#39;est pas terminée" in web.get(res.headers["Location"]).get_data(as_text=True)
    # the rules chosen become the commune's
    from tenants.models import Tenant

    with app.app_context():
        rules = db.session.get(Tenant, stage["tid"]).settings["allocation"]
        db.session.remove()
    assert rules["siblings_together"] is True and rules["residents_first"] is False

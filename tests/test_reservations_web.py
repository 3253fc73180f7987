"""The wizard over HTTP: htmx fragments, CSRF, bad input, one demande, constant queries."""

import re

import pytest
from sqlalchemy import select

from core.models import Demande, Slot
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today
from tests.sql_count import statements


@pytest.fixture
def family_with_kids(make_family, make_activity, inscribe):
    act = make_activity("auray", starts_in=10, days=28)
    fam = make_family("auray", children=[("Maël", "2021-04-12"), ("Lilou", "2020-09-01"), ("Yann", "2022-01-01")])
    inscribe(act, fam["child_ids"])
    return fam, act


def start_wizard(web, fam, act, children=None):
    web.login("auray", fam["email"])
    data = {"enfants": [str(c) for c in (children or fam["child_ids"])]}
    res = web.post(f"/auray/reservations/{act['id']}", data)
    assert res.status_code == 302, res.get_data(as_text=True)[:500]
    return int(re.search(r"/demarches/(\d+)/planning", res.headers["Location"]).group(1))


def tick(web, cart_id, child, slot, want=True, htmx=True, **extra):
    data = {"child": child, "slot": slot, **extra}
    if want:
        data[f"c-{child}-{slot}"] = "1"
    headers = {"HX-Request": "true"} if htmx else {}
    return web.post(f"/auray/demarches/{cart_id}/choix", data, page=f"/auray/demarches/{cart_id}/planning",
                    headers=headers)


def test_the_same_url_answers_the_page_or_the_fragment(web, family_with_kids):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    full = web.get(f"/auray/demarches/{cart}/planning")
    frag = web.get(f"/auray/demarches/{cart}/planning", headers={"HX-Request": "true"})
    assert "<html" in full.get_data(as_text=True) and "<html" not in frag.get_data(as_text=True)
    assert 'id="planning"' in frag.get_data(as_text=True)
    assert "HX-Request" in full.headers["Vary"] and "HX-Request" in frag.headers["Vary"]


def test_a_tick_answers_the_cell_and_the_counter(web, family_with_kids):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    res = tick(web, cart, fam["child_ids"][0], slot)
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and "<html" not in html
    assert f'id="cell-{fam["child_ids"][0]}-{slot}"' in html and "checked" in html
    assert re.search(r'id="cart-count"[^>]*hx-swap-oob="true"', html) and "1 modification dans cette démarche" in html
    # unticking the same cell releases it
    html = tick(web, cart, fam["child_ids"][0], slot, want=False).get_data(as_text=True)
    assert "0 modification dans cette démarche" in html


def test_a_post_without_csrf_token_is_refused(web, family_with_kids):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    res = web.post(f"/auray/demarches/{cart}/choix", {"child": fam["child_ids"][0], "slot": slot, "want": "1"},
                   csrf=False, headers={"HX-Request": "true"})
    assert res.status_code == 400


def test_without_javascript_the_grid_form_still_submits(web, family_with_kids, app, tenants):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act, children=fam["child_ids"][:1])
    kid = fam["child_ids"][0]
    day = days_from_today(10).isoformat()
    s1, s2 = act["slots"][("matin", day)], act["slots"][("repas", day)]
    res = web.post(f"/auray/demarches/{cart}/planning",
                   {"shown": [f"{kid}-{s1}", f"{kid}-{s2}"], f"c-{kid}-{s1}": "1", "go": "recap"},
                   page=f"/auray/demarches/{cart}/planning")
    assert res.status_code == 303 and res.headers["Location"].endswith("/recapitulatif")
    recap = web.get(f"/auray/demarches/{cart}/recapitulatif").get_data(as_text=True)
    assert "Matin — " in recap and "Repas — " not in recap


def test_foreign_child_slot_or_cart_answers_404(web, family_with_kids, make_family, make_activity, inscribe):
    fam, act = family_with_kids
    other = make_family("auray", children=[("Autre", "2021-01-01")])
    loubes = make_activity("saint-loubes", code="peri", starts_in=10, days=3)
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    assert tick(web, cart, other["child_ids"][0], slot).status_code == 404
    foreign_slot = next(iter(loubes["slots"].values()))
    assert tick(web, cart, fam["child_ids"][0], foreign_slot).status_code == 404
    # another family's démarche
    web2_cart = None
    from tests.conftest import Web

    other_web = Web(web.client.application.test_client())
    inscribe(act, other["child_ids"])
    web2_cart = start_wizard(other_web, other, act)
    assert web.get(f"/auray/demarches/{web2_cart}/planning").status_code == 404
    assert web.get("/auray/demarches/999999/planning").status_code == 404
    assert web.get("/auray/reservations/999999").status_code == 404


def test_past_closed_or_forged_dates_change_nothing(web, make_family, make_activity, inscribe, app, tenants):
    act = make_activity("auray", starts_in=-3, days=10,
                        calendar={"weekdays": [0, 1, 2, 3, 4, 5, 6], "public_holidays": "open"},
                        booking_deadline={"kind": "days_before", "days": 2, "time": "12:00"})
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    kid = fam["child_ids"][0]
    for offset in (-2, 0, 1):
        slot = act["slots"][("matin", days_from_today(offset).isoformat())]
        html = tick(web, cart, kid, slot).get_data(as_text=True)
        assert "disabled" in html and "(i)" in html, offset
        assert "délai de réservation est dépassé" in html
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert sum(s.taken for s in db.session.scalars(select(Slot))) == 0
    for bad in ("2026-99-99", "hier", "0001-01-01"):
        assert web.get(f"/auray/demarches/{cart}/planning?date={bad}").status_code == 200
    res = web.post(f"/auray/demarches/{cart}/periodicite",
                   {"du": "2026-13-01", "au": "x", "jours": ["9", "0"], "unites": ["piscine"]},
                   page=f"/auray/demarches/{cart}/planning")
    assert res.status_code == 303
    page = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "Indiquez les dates de début et de fin" in page


def test_a_tampered_unit_name_books_nothing(web, family_with_kids, app, tenants):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    res = web.post(f"/auray/demarches/{cart}/periodicite",
                   {"du": days_from_today(10).isoformat(), "au": days_from_today(20).isoformat(),
                    "jours": ["0", "1"], "unites": ["piscine"], "want": "1"},
                   page=f"/auray/demarches/{cart}/planning")
    page = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "Aucune case ne correspond à ce choix." in page
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert sum(s.taken for s in db.session.scalars(select(Slot))) == 0


def test_a_double_click_on_valider_makes_one_demande(web, family_with_kids, app, tenants, outbox):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    tick(web, cart, fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())])
    token = web.csrf_for(f"/auray/demarches/{cart}/recapitulatif")
    first = web.post(f"/auray/demarches/{cart}/valider", {"csrf_token": token})
    second = web.post(f"/auray/demarches/{cart}/valider", {"csrf_token": token})
    assert first.headers["Location"] == second.headers["Location"]
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert len(db.session.scalars(select(Demande)).all()) == 1
    assert len(outbox.to(fam["email"])) == 1
    page = web.get(first.headers["Location"]).get_data(as_text=True)
    assert "Nous avons bien enregistré votre demande" in page and "Déposée" in page


def test_an_empty_demande_is_refused_with_a_message(web, family_with_kids):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    res = web.post(f"/auray/demarches/{cart}/valider", page=f"/auray/demarches/{cart}/recapitulatif")
    page = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "Votre demande est vide" in page


def test_annuler_la_demarche_releases_the_holds(web, family_with_kids, app, tenants):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    tick(web, cart, fam["child_ids"][0], slot)
    res = web.post(f"/auray/demarches/{cart}/annuler", page=f"/auray/demarches/{cart}/planning")
    assert res.status_code == 302
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Slot, slot).taken == 0
    assert web.get(f"/auray/demarches/{cart}/planning").status_code == 302  # closed démarche


def test_effectuer_la_meme_demande_pour_another_child(web, family_with_kids):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act, children=fam["child_ids"][:1])
    day = days_from_today(11).isoformat()
    tick(web, cart, fam["child_ids"][0], act["slots"][("repas", day)])
    recap = web.get(f"/auray/demarches/{cart}/recapitulatif").get_data(as_text=True)
    assert "Effectuer la même demande pour" in recap and "Lilou" in recap
    web.post(f"/auray/demarches/{cart}/meme-demande", {"enfant": fam["child_ids"][1]},
             page=f"/auray/demarches/{cart}/recapitulatif")
    recap = web.get(f"/auray/demarches/{cart}/recapitulatif").get_data(as_text=True)
    assert re.search(r"Repas — \w+ \d\d/\d\d/\d{4} — Lilou", recap)


def test_a_pending_demande_can_be_cancelled_before_the_decision(web, family_with_kids, app, tenants):
    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    tick(web, cart, fam["child_ids"][0], slot)
    loc = web.post(f"/auray/demarches/{cart}/valider", page=f"/auray/demarches/{cart}/recapitulatif").headers["Location"]
    number = int(re.search(r"/demandes/(\d+)", loc).group(1))
    res = web.post(f"/auray/demandes/{number}/annuler", page=f"/auray/demandes/{number}")
    page = web.get(res.headers["Location"]).get_data(as_text=True)
    assert "Annulée" in page
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Slot, slot).taken == 0
    assert "Dernières demandes" in web.get("/auray/demandes/").get_data(as_text=True)


def _count_queries(app, fn):
    return len(statements(app, fn))


def test_queries_per_planning_page_do_not_grow_with_days_or_children(web, make_family, make_activity, inscribe, app):
    act = make_activity("auray", starts_in=10, days=40)
    fam = make_family("auray", children=[("A", "2021-01-01"), ("B", "2021-02-01"), ("C", "2021-03-01")])
    inscribe(act, fam["child_ids"])
    web.login("auray", fam["email"])
    carts = []
    for kids in (fam["child_ids"][:1], fam["child_ids"]):
        res = web.post(f"/auray/reservations/{act['id']}", {"enfants": [str(c) for c in kids]})
        carts.append(int(re.search(r"/demarches/(\d+)/", res.headers["Location"]).group(1)))
    anchor = days_from_today(14).isoformat()
    # the first page of the process reads the commune's activities; the next ones find them kept
    cold = _count_queries(app, lambda: web.get(f"/auray/demarches/{carts[0]}/planning?vue=semaine&date={anchor}"))
    week_one = _count_queries(app, lambda: web.get(f"/auray/demarches/{carts[0]}/planning?vue=semaine&date={anchor}"))
    month_one = _count_queries(app, lambda: web.get(f"/auray/demarches/{carts[0]}/planning?vue=mois&date={anchor}"))
    month_three = _count_queries(app, lambda: web.get(f"/auray/demarches/{carts[1]}/planning?vue=mois&date={anchor}"))
    assert week_one == month_one == month_three
    # the commune (not cached in tests), the user, the démarche with its items, the version of the
    # commune's activities and its children with their inscriptions, the slots with their bookings
    assert month_three <= 4  # the issue asks for at most 12
    assert cold == month_three + 1  # + the activities with their units


def test_the_planning_writes_dates_as_babel_does(app):
    """The grid and the date filters compute day labels without calling Babel for every cell:
    they must write what Babel's patterns write."""
    from datetime import date, timedelta

    from flask_babel import force_locale, format_date

    from web import dates

    filters = app.jinja_env.filters
    for lang in ("fr", "en"):
        with app.test_request_context("/"), force_locale(lang):
            names = dates.weekday_names()
            for n in range(0, 800, 3):
                day = date(2026, 1, 1) + timedelta(days=n)
                assert dates.date_long(day, names) == format_date(day, "EEEE dd/MM/yyyy") == filters["date_long"](day)
                assert dates.date_dm(day) == format_date(day, "dd/MM") == filters["date_dm"](day)
                assert names[day.weekday()] == format_date(day, "EEEE") == filters["weekday_name"](day)


def test_unticking_a_booked_day_is_a_cancellation_subject_to_the_deadline(web, make_family, make_activity, inscribe,
                                                                          app, tenants):
    act = make_activity("saint-loubes", code="peri", starts_in=1, days=20, validation="immediate", ages=None,
                        booking_deadline={"kind": "days_before", "days": 3, "time": "12:00"},
                        cancel_deadline={"kind": "days_before", "days": 3, "time": "12:00"})
    fam = make_family("saint-loubes", children=[("Inès", "2018-05-21")])
    inscribe(act, fam["child_ids"])
    kid = fam["child_ids"][0]
    web.login("saint-loubes", fam["email"])

    def wizard():
        res = web.post(f"/saint-loubes/reservations/{act['id']}", {"enfants": [str(kid)]})
        return int(re.search(r"/demarches/(\d+)/", res.headers["Location"]).group(1))

    def tick_here(cart, slot, want):
        data = {"child": kid, "slot": slot}
        if want:
            data[f"c-{kid}-{slot}"] = "1"
        return web.post(f"/saint-loubes/demarches/{cart}/choix", data, headers={"HX-Request": "true"},
                        page=f"/saint-loubes/demarches/{cart}/planning").get_data(as_text=True)

    far = act["slots"][("matin", days_from_today(15).isoformat())]
    cart = wizard()
    tick_here(cart, far, True)
    web.post(f"/saint-loubes/demarches/{cart}/valider", page=f"/saint-loubes/demarches/{cart}/recapitulatif")
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        assert db.session.get(Slot, far).taken == 1
    cart = wizard()
    html = tick_here(cart, far, False)
    assert "annulation" in html
    recap = web.get(f"/saint-loubes/demarches/{cart}/recapitulatif").get_data(as_text=True)
    assert "Annulation" in recap
    res = web.post(f"/saint-loubes/demarches/{cart}/valider", page=f"/saint-loubes/demarches/{cart}/recapitulatif")
    assert "Traitée positivement" in web.get(res.headers["Location"]).get_data(as_text=True)
    with app.app_context(), tenant_scope(tenants["saint-loubes"]):
        assert db.session.get(Slot, far).taken == 0
        # a day inside the cancellation deadline stays booked
        near = act["slots"][("matin", days_from_today(2).isoformat())]
        from core.models import Child, Reservation

        child = db.session.get(Child, kid)
        db.session.add(Reservation(child_id=kid, slot_id=near, activity_id=act["id"], family_id=child.family_id,
                                   status="reserved"))
        db.session.get(Slot, near).taken = 1
        db.session.commit()
    cart = wizard()
    html = tick_here(cart, near, False)
    assert "checked" in html and "délai d&#39;annulation est dépassé" in html


def test_an_agent_s_change_to_the_activity_applies_to_the_next_tick_at_once(web, family_with_kids, app, tenants):
    """The planning and the ticks keep the commune's activities per process: a change written by
    the back-office gives the commune a new version, so the very next tick judges with it."""
    from datetime import timedelta

    from core.clock import utcnow
    from core.models import Activity

    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    kid = fam["child_ids"][0]
    day = days_from_today(12).isoformat()
    matin, soir = act["slots"][("matin", day)], act["slots"][("apres_midi", day)]
    assert "cell--held" in tick(web, cart, kid, matin).get_data(as_text=True)  # the activities are now kept

    def reads_activities(fn):
        answers = []

        def request():
            answers.append(fn())
            return answers[-1]

        sent = statements(app, request)
        return any(re.search(r"\bFROM activity\b", q) for q in sent), answers[0].get_data(as_text=True)

    assert reads_activities(lambda: tick(web, cart, kid, matin, want=False))[0] is False  # kept: not read again
    with app.app_context(), tenant_scope(tenants["auray"]):
        db.session.get(Activity, act["id"]).opening_at = utcnow() + timedelta(days=2)  # as the settings form does
        db.session.commit()
    read, answer = reads_activities(lambda: tick(web, cart, kid, soir))
    assert read is True  # changed: read again, and judged with the change
    assert "cell--held" not in answer and "Les réservations ne sont pas encore ouvertes." in answer
    with app.app_context(), tenant_scope(tenants["auray"]):
        db.session.get(Activity, act["id"]).opening_at = None
        db.session.commit()
    assert "cell--held" in tick(web, cart, kid, soir).get_data(as_text=True)


def _bookable_cells(html: str) -> list[str]:
    """Ids of the planning's checkboxes a parent can tick (not locked)."""
    tags = re.findall(r'<input type="checkbox" id="c-(\d+-\d+)"([^>]*)>', html)
    return [key for key, attributes in tags if " disabled" not in attributes]


def test_the_planning_opens_on_the_first_week_with_something_to_book(web, make_family, make_activity, inscribe):
    """Whatever the day (a Saturday: next week's cells are past "Tuesday 23:59 for next week"), the
    first page shows a week where a cell can be ticked, without guessing to press ›."""
    act = make_activity("auray", starts_in=0, days=35, calendar={"weekdays": [0, 1, 2, 3, 4]},
                        booking_deadline={"kind": "weekday_before_week", "weekday": 1, "time": "23:59"})
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    html = web.get(f"/auray/demarches/{cart}/planning").get_data(as_text=True)
    assert _bookable_cells(html), "la première semaine affichée n'a rien à réserver"
    assert "n'est ouverte à la réservation" not in html


def test_the_planning_says_so_when_nothing_is_open_any_more(web, make_family, make_activity, inscribe):
    act = make_activity("auray", starts_in=1, days=3,
                        booking_deadline={"kind": "days_before", "days": 7, "time": "12:00"})
    fam = make_family("auray", children=[("Maël", "2021-04-12")])
    inscribe(act, fam["child_ids"])
    cart = start_wizard(web, fam, act)
    html = web.get(f"/auray/demarches/{cart}/planning").get_data(as_text=True)
    assert _bookable_cells(html) == []
    assert "Aucune date de cette activité" in html and "ouverte à la réservation pour le moment" in html


def test_a_demarche_past_its_time_releases_its_places_and_says_so(web, family_with_kids, app, tenants):
    """The family comes back after the hold time: the page says why, the held place is free again for
    others, and the démarche is closed (its recap and its ticks no longer answer as if open)."""
    from datetime import timedelta

    from core.clock import utcnow
    from core.models import Cart

    fam, act = family_with_kids
    cart = start_wizard(web, fam, act)
    slot = act["slots"][("matin", days_from_today(10).isoformat())]
    assert tick(web, cart, fam["child_ids"][0], slot).status_code == 200
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Slot, slot).taken == 1
        db.session.get(Cart, cart).expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    res = web.get(f"/auray/demarches/{cart}/recapitulatif")
    assert res.status_code == 302 and res.headers["Location"].endswith("/auray/reservations")
    page = web.get("/auray/reservations").get_data(as_text=True)
    assert "Le temps de votre démarche est écoulé" in page
    with app.app_context(), tenant_scope(tenants["auray"]):
        assert db.session.get(Slot, slot).taken == 0
        assert db.session.get(Cart, cart).status == "expired"
    assert web.get(f"/auray/demarches/{cart}/planning").status_code == 302

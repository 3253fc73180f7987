"""core/hotsql.py runs the hot statements on PostgreSQL through psycopg: the rows must be the ones
SQLAlchemy gives for the same statement (values and types), whatever the number of ids."""

import re
from datetime import date, timedelta

from core import booking, hotsql
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today, require


def test_the_hot_statements_give_the_rows_sqlalchemy_gives(web, app, is_postgres, tenants, make_family,
                                                            make_activity, inscribe):
    if not is_postgres:
        require("PostgreSQL", "le chemin direct de core/hotsql.py ne sert que PostgreSQL")
    act = make_activity("auray", starts_in=10, days=12)
    fam = make_family("auray", children=[("Lou", "2021-03-01"), ("Noé", "2020-06-01")])
    inscribe(act, fam["child_ids"])
    web.login("auray", fam["email"])
    res = web.post(f"/auray/reservations/{act['id']}", {"enfants": [str(c) for c in fam["child_ids"]]})
    cart = int(re.search(r"/demarches/(\d+)/", res.headers["Location"]).group(1))
    kid, other = fam["child_ids"]
    slots = [act["slots"][(u, days_from_today(12).isoformat())] for u in ("matin", "repas", "apres_midi")]
    for slot in slots[:2]:  # a held place and a démarche item, so every join has something to find
        web.post(f"/auray/demarches/{cart}/choix", {"child": kid, "slot": slot, f"c-{kid}-{slot}": "1"},
                 headers={"HX-Request": "true"})
    first, last = date.today(), date.today() + timedelta(days=40)
    with app.app_context(), tenant_scope(tenants["auray"]):
        tid = tenants["auray"]
        cases = [
            (booking._LOCK_CART_AND_SLOTS, {"cart_id": cart, "slot_ids": slots[:1], "child_ids": [kid], "tenant": tid}),
            (booking._LOCK_CART_AND_SLOTS, {"cart_id": cart, "slot_ids": slots, "child_ids": [kid, other],
                                            "tenant": tid}),
            (booking._CART_AND_CHILDREN, {"cart_id": cart, "tenant": tid}),
            (booking._SLOTS_IN_RANGE, {"activity_id": act["id"], "first": first, "last": last,
                                       "child_ids": [kid, other], "tenant": tid}),
            (booking._ACTIVITIES_WITH_UNITS, {"activity_ids": [act["id"]], "tenant": tid}),
            (booking._BUSY, {"child_ids": [kid], "activity_ids": [act["id"]], "days": [days_from_today(12)],
                             "tenant": tid}),
        ]
        for stmt, params in cases:
            fast = hotsql.rows(stmt, dict(params))
            usual = [tuple(row) for row in db.session.connection().execute(stmt, dict(params)).all()]
            assert fast and [tuple(row) for row in fast] == usual, stmt
            assert [[type(v) for v in row] for row in fast] == [[type(v) for v in row] for row in usual]
        db.session.rollback()

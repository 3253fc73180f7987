"""core/fastsql.py runs the hot statements on PostgreSQL from their text compiled once (SQLAlchemy's
public `construct_expanded_state`, run on the session connection's DBAPI cursor): the rows must be the ones SQLAlchemy gives
for the same statement through `Connection.execute` (values, types and column names), whatever the
number of ids; the engine's cursor events see each statement."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from core import clock, fastsql
from core.reservations import store
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today, require

pytestmark = pytest.mark.postgres


def test_the_hot_statements_give_the_rows_sqlalchemy_gives(web, app, is_postgres, tenants, make_family,
                                                            make_activity, inscribe):
    if not is_postgres:
        require("PostgreSQL", "le chemin direct de core/fastsql.py ne sert que PostgreSQL")
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
    first, last = clock.today(), clock.today() + timedelta(days=40)
    with app.app_context(), tenant_scope(tenants["auray"]):
        tid = tenants["auray"]
        cases = [
            (store._LOCK_CART_AND_SLOTS, {"cart_id": cart, "slot_ids": slots[:1], "child_ids": [kid], "tenant": tid}),
            (store._LOCK_CART_AND_SLOTS, {"cart_id": cart, "slot_ids": slots, "child_ids": [kid, other],
                                          "tenant": tid}),
            (store._CART_AND_CHILDREN, {"cart_id": cart, "tenant": tid}),
            (store._SLOTS_IN_RANGE, {"activity_id": act["id"], "first": first, "last": last,
                                     "child_ids": [kid, other], "tenant": tid}),
            (store._ACTIVITIES_WITH_UNITS, {"activity_ids": [act["id"]], "tenant": tid}),
            (store._BUSY, {"child_ids": [kid], "activity_ids": [act["id"]], "days": [days_from_today(12)],
                           "tenant": tid}),
        ]
        seen = []

        def count(_conn, _cursor, statement, *_a):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            for stmt, params in cases:
                before = len(seen)
                fast = fastsql.rows(stmt, dict(params))
                assert len(seen) == before + 1  # the engine's listeners saw it (the statement counts)
                result = db.session.connection().execute(stmt.stmt, dict(params))
                usual = [tuple(row) for row in result.all()]
                assert fast and [tuple(row) for row in fast] == usual, stmt.stmt
                assert [[type(v) for v in row] for row in fast] == [[type(v) for v in row] for row in usual]
                assert list(fast[0]._fields) == list(result.keys())  # read by name, as SQLAlchemy names them
            # an empty list answers no row (as SQLAlchemy renders an empty IN)
            assert fastsql.rows(store._BUSY, {"child_ids": [], "activity_ids": [act["id"]],
                                              "days": [days_from_today(12)], "tenant": tid}) == []
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        db.session.rollback()


def test_a_driver_error_on_the_fast_path_is_sqlalchemy_s_and_the_session_goes_on(app, is_postgres, tenants):
    """A statement PostgreSQL refuses raises SQLAlchemy's error (the driver's as `.orig`, as
    `Connection.execute` raises it: core/locking.py reads lock timeouts from it); after the rollback
    the session works again."""
    if not is_postgres:
        require("PostgreSQL", "le chemin direct de core/fastsql.py ne sert que PostgreSQL")
    from sqlalchemy import bindparam, func, select
    from sqlalchemy.exc import DBAPIError

    divide = fastsql.Hot(select((bindparam("a") / bindparam("b")).label("q")))
    with app.app_context(), tenant_scope(tenants["auray"]):
        try:
            assert fastsql.rows(divide, {"a": 6, "b": 3})[0].q == 2
            with pytest.raises(DBAPIError) as refused:
                fastsql.rows(divide, {"a": 1, "b": 0})
            assert "division by zero" in str(refused.value.orig)
            db.session.rollback()
            now = fastsql.Hot(select(func.current_setting("app.tenant_id", True).label("tenant")))
            assert fastsql.rows(now, {})[0].tenant == str(tenants["auray"])
        finally:
            db.session.remove()

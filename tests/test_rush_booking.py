"""Booking decisions are taken on what the database holds under the locks, not on what a
request read before them (two parents of one family booking the same child at once)."""

from datetime import timedelta

from sqlalchemy import select

from core import reservations as booking
from core.clock import utcnow
from core.models import Activity, Cart, Child, Reservation, Slot
from extensions import db
from tenants.context import tenant_scope
from tests.conftest import days_from_today


def _context(cart_id, slot_id):
    cart = db.session.get(Cart, cart_id)
    return booking.Context.load(
        cart=cart, activities=db.session.scalars(select(Activity).where(Activity.id.in_(cart.activity_ids))).all(),
        children=db.session.scalars(select(Child).where(Child.id.in_(cart.child_ids))).all(),
        slots=[db.session.get(Slot, slot_id)], zone="A")


def test_a_place_taken_meanwhile_by_the_other_parent_is_not_counted_twice(app, make_family, make_activity, inscribe,
                                                                           tenants):
    act = make_activity("auray", starts_in=10, days=5)
    fam = make_family("auray", children=[("Lou", "2021-03-01")])
    inscribe(act, fam["child_ids"])
    kid, slot = fam["child_ids"][0], act["slots"][("matin", days_from_today(10).isoformat())]
    with app.app_context(), tenant_scope(tenants["auray"]):
        carts = [Cart(family_id=fam["family_id"], user_id=fam["user_id"], activity_ids=[act["id"]], child_ids=[kid],
                      expires_at=utcnow() + timedelta(minutes=20), token=f"t{i}") for i in range(2)]
        db.session.add_all(carts)
        db.session.commit()
        first, second = carts[0].id, carts[1].id
        # the first parent ticks then unticks: a cancelled reservation row remains
        for want in (True, False):
            booking.set_choices(_context(first, slot), [(kid, slot, want)])
            db.session.commit()
        db.session.remove()
    with app.app_context(), tenant_scope(tenants["auray"]):
        ctx = _context(second, slot)  # the second parent's page reads "free"
        with app.app_context(), tenant_scope(tenants["auray"]):  # meanwhile the first parent ticks again
            booking.set_choices(_context(first, slot), [(kid, slot, True)])
            db.session.commit()
            db.session.remove()
        cell = booking.set_choices(ctx, [(kid, slot, True)])[(kid, slot)]
        db.session.commit()
        assert cell.state == booking.BLOCKED and cell.reason == "other_cart"
        db.session.remove()
    with app.app_context(), tenant_scope(tenants["auray"]):
        res = db.session.scalars(select(Reservation).where(Reservation.slot_id == slot)).one()
        assert res.cart_id == first and db.session.get(Slot, slot).taken == 1
        db.session.remove()

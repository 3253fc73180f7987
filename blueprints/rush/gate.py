"""The gate before the reservation wizard (step 1, planning, ticks): called by
blueprints/reservations/routes.py with the activities of the page.

Nothing happens unless an activity has a waiting room open now.  Then a parent who is
not admitted is sent to the waiting room (an htmx request gets HX-Redirect), and comes
back to the page they asked for once admitted.
"""

from __future__ import annotations

from flask import abort, g, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from core import waiting_room
from core.models import Activity
from extensions import db
from web.htmx import is_htmx

GATED = {
    "reservations.step1", "reservations.planning", "reservations.choose", "reservations.planning_submit",
    "reservations.toggle_all", "reservations.periodicity", "reservations.same_for",
}


def _resume_url(activity) -> str:
    if request.method == "GET" and not is_htmx():
        return request.full_path.rstrip("?")
    cart_id = (request.view_args or {}).get("cart_id")
    if cart_id is not None:
        return url_for("reservations.planning", cart_id=cart_id, activite=activity.id)
    return url_for("reservations.step1", activity_id=activity.id)


def gate(activities) -> None:
    """Abort with a redirect to the waiting room when this parent must wait."""
    if request.endpoint not in GATED or not current_user.is_authenticated:
        return
    tickets = g.setdefault("rush_tickets", {})
    for activity in activities:
        if not waiting_room.is_active(activity):
            continue
        ticket = waiting_room.check(activity, current_user.id, enter=True, start=True)
        tickets[activity.id] = ticket
        if ticket.may_book:
            continue
        url = url_for("rush.wait", activity_id=activity.id, suite=_resume_url(activity))
        if is_htmx():
            response = make_response("", 200)
            response.headers["HX-Redirect"] = url
            abort(response)
        abort(redirect(url, code=303))


def leave(cart) -> None:
    """The parent validated or cancelled the démarche: the next in line may come in."""
    if not current_user.is_authenticated:
        return
    for activity in db.session.scalars(select(Activity).where(Activity.id.in_(cart.activity_ids or [0]),
                                                              Activity.rush_concurrent.is_not(None))):
        waiting_room.leave(activity, current_user.id)

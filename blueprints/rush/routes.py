from __future__ import annotations

from flask import g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from blueprints.rush import bp
from core import waiting_room
from core.models import Activity
from extensions import db
from tenants.scoping import get_or_404
from web.htmx import is_htmx
from web.links import safe_next


def poll_seconds(position: int) -> int:
    """The far end of the queue asks less often: the server keeps its strength for those booking.
    With 2,500 parents in line, polls every few seconds would cost more than the bookings
    (measured by `make bench`); an admitted parent has GRACE_SECONDS to show up, more than
    the longest interval."""
    if position <= 10:
        return 5
    if position <= 50:
        return 15
    if position <= 200:
        return 45
    return 120


def _parent_id() -> int | None:
    """The logged-in parent of this commune, from the session alone: the waiting room is polled by
    thousands at once, so it spares the user query (the wizard's gate checks the account itself).
    The session cookie is per commune and only set by a login in this commune."""
    kind, _sep, raw = (session.get("_user_id") or "").partition(":")
    return int(raw) if kind == "u" and raw.isdigit() else None


@bp.route("/attente/<int:activity_id>")
def wait(activity_id):
    """The waiting room: the parent's position, refreshed by htmx (or a refresh without JS)."""
    user_id = _parent_id()
    if user_id is None:
        return redirect(url_for("auth.login", next=request.full_path))
    activity = get_or_404(db.session, Activity, activity_id)
    suite = safe_next(request.args.get("suite"), url_for("reservations.step1", activity_id=activity.id))
    ticket = waiting_room.check(activity, user_id, enter=True)
    if ticket.may_book:
        if is_htmx():
            response = make_response("", 200)
            response.headers["HX-Redirect"] = suite
            return response
        return redirect(suite, code=303)
    context = {"activity": activity, "ticket": ticket, "suite": suite, "every": poll_seconds(ticket.position),
               "minutes": waiting_room.minutes_for(activity), "places": waiting_room.online_places_left(activity)}
    if is_htmx():
        return render_template("rush/_wait_status.html", **context)
    return render_template("rush/wait.html", **context)


# ---------------------------------------------------------------- template helpers

@bp.app_template_global()
def rush_seconds_until(activity) -> int | None:
    return waiting_room.seconds_until_opening(activity)


@bp.app_template_global()
def rush_ticket(activity):
    """The waiting-room ticket the gate checked for this page (None without a room)."""
    return (g.get("rush_tickets") or {}).get(activity.id)


@bp.app_template_filter("countdown")
def countdown(seconds: int) -> str:
    seconds = max(0, int(seconds or 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return _("%(days)d j %(clock)s", days=days, clock=clock) if days else clock

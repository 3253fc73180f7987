"""Presence lists ("liste de présence") of an activity for a day or a week: page, print, CSV."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, abort, render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin import bp
from blueprints.admin.common import int_arg
from blueprints.admin.forms import PresenceForm, options
from core import admin_services as svc
from core import clock
from core.models import Activity
from extensions import db
from tenants.scoping import get_scoped
from tenants.web import agent_required


def _query():
    """The activity, the period and the unit asked for (bad values fall back to sensible ones)."""
    activities = db.session.scalars(select(Activity).order_by(Activity.archived, Activity.position,
                                                              Activity.name)).all()
    form = PresenceForm(request.args)
    archived = " (" + _("archivée") + ")"
    form.activite.choices = options(*[(str(a.id), a.name + (archived if a.archived else "")) for a in activities])
    activity = get_scoped(db.session, Activity, request.args.get("activite")) if request.args.get("activite") else None
    if activity is None and activities and not request.args.get("activite"):
        activity = next((a for a in activities if not a.archived), activities[0])
    if activity is not None:
        form.activite.data = str(activity.id)
        form.unite.choices = options(("", "—"), *[(str(u.id), u.label) for u in activity.units])
    else:
        form.unite.choices = options(("", "—"))
    form.validate()
    day = form.jour.data or clock.today()
    if activity is not None and not request.args.get("jour"):
        day = min(max(day, activity.starts_on), activity.ends_on)
    week = form.vue.data == "semaine"
    start = day - timedelta(days=day.weekday()) if week else day
    end = start + timedelta(days=6) if week else day
    unit_id = int_arg("unite")
    if activity is not None and unit_id not in {u.id for u in activity.units}:
        unit_id = None
    return form, activities, activity, start, end, unit_id, week


@bp.get("/listes")
@agent_required
def presence():
    form, activities, activity, start, end, unit_id, week = _query()
    days = svc.presence(activity, start, end, unit_id) if activity is not None else []
    return render_template("admin/presence.html", form=form, activity=activity, days=days, start=start, end=end,
                           week=week, unit_id=unit_id, activities=activities)


@bp.get("/listes.csv")
@agent_required
def presence_csv():
    _form, _activities, activity, start, end, unit_id, _week = _query()
    if activity is None:
        abort(404)
    days = svc.presence(activity, start, end, unit_id)
    name = f"liste-presence-{activity.code}-{start.isoformat()}" + (f"-{end.isoformat()}" if end != start else "")
    return Response(svc.presence_csv(activity, days), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})

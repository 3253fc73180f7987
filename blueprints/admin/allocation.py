"""Pre-reservation lists: allocation (first come first served or lottery), preview, publication."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin import bp
from blueprints.admin.common import actor_name, audit, no_change
from blueprints.admin.forms import AllocationForm, ButtonForm
from core import admin_services as svc
from core import allocation as alloc
from core import clock
from core.admin_models import RUN_PREVIEW, RUN_PUBLISHED, AllocationRun
from core.models import VALIDATION_PRERESERVATION, Activity
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.links import WebLinks
from web.transaction import on_busy, rollback_only


def _prereservation_activity(activity_id: int) -> Activity:
    activity = get_or_404(db.session, Activity, activity_id)
    if activity.validation_mode != VALIDATION_PRERESERVATION:
        abort(404)
    return activity


@bp.get("/pre-reservations")
@agent_required
def allocations():
    activities = db.session.scalars(select(Activity).where(
        Activity.validation_mode == VALIDATION_PRERESERVATION).order_by(Activity.archived, Activity.position,
                                                                         Activity.name)).all()
    runs = {}
    for run in db.session.scalars(select(AllocationRun).where(AllocationRun.status.in_((RUN_PREVIEW, RUN_PUBLISHED)))
                                  .order_by(AllocationRun.created_at.desc())):
        runs.setdefault(run.activity_id, []).append(run)
    pending = {a.id: alloc.pending_count(a) for a in activities}
    return render_template("admin/allocations.html", activities=activities, runs=runs, pending=pending,
                           today=clock.today())


@bp.route("/pre-reservations/<int:activity_id>", methods=["GET", "POST"])
@agent_required
def allocation_new(activity_id):
    activity = _prereservation_activity(activity_id)
    tenant = current_tenant()
    rules = alloc.Rules.from_dict(tenant.setting("allocation", default={}))
    form = AllocationForm() if request.method == "POST" else AllocationForm(data=rules.as_dict() | {"seed": None})
    if form.validate_on_submit():
        rules = alloc.Rules(method=form.method.data, residents_first=form.residents_first.data,
                            siblings_together=form.siblings_together.data, unplaced_first=form.unplaced_first.data,
                            losers=form.losers.data, motif=(form.motif.data or "").strip())
        run = alloc.preview(activity, rules, seed=form.seed.data, actor=actor_name())
        svc.update_settings(tenant, allocation=rules.as_dict())
        audit(_("Aperçu des listes : %(activity)s (graine %(seed)d)", activity=activity.name, seed=run.seed))
        return redirect(url_for("admin.allocation_run", run_id=run.id), code=303)
    if form.is_submitted():
        no_change()
    runs = db.session.scalars(select(AllocationRun).where(AllocationRun.activity_id == activity.id)
                              .order_by(AllocationRun.created_at.desc()).limit(20)).all()
    return render_template("admin/allocation_new.html", activity=activity, form=form, runs=runs,
                           pending=alloc.pending_count(activity), today=clock.today())


@bp.get("/pre-reservations/tirages/<int:run_id>")
@agent_required
def allocation_run(run_id):
    run = get_or_404(db.session, AllocationRun, run_id)
    activity = db.session.get(Activity, run.activity_id)
    return render_template("admin/allocation_run.html", run=run, activity=activity, lists=alloc.lists_of(run),
                           rules=alloc.Rules.from_dict(run.rules), form=ButtonForm(),
                           period_over=_period_over(activity), today=clock.today())


def _period_over(activity: Activity) -> bool:
    return activity.prereservation_until is None or clock.today() > activity.prereservation_until


@bp.post("/pre-reservations/tirages/<int:run_id>/publier")
@agent_required
def allocation_publish(run_id):
    run = get_or_404(db.session, AllocationRun, run_id)
    activity = db.session.get(Activity, run.activity_id)
    here = url_for("admin.allocation_run", run_id=run.id)
    if not _period_over(activity):
        no_change()
        flash(_("La période de pré-réservation n'est pas terminée (jusqu'au %(date)s) : les listes seront publiées "
                "ensuite.", date=activity.prereservation_until.strftime("%d/%m/%Y")), "error")
        return redirect(here, code=303)
    on_busy(here)
    try:
        alloc.publish(run, actor=actor_name(), links=WebLinks())
    except alloc.AllocationError as err:
        if err.code == "changed":  # the fresh preview is kept (committed)
            db.session.flush()
            fresh = db.session.scalars(select(AllocationRun).where(
                AllocationRun.activity_id == activity.id, AllocationRun.status == RUN_PREVIEW)
                .order_by(AllocationRun.id.desc())).first()
            no_change()
            flash(err.message, "error")
            return redirect(url_for("admin.allocation_run", run_id=fresh.id) if fresh else here, code=303)
        rollback_only()
        no_change()
        flash(err.message, "error")
        return redirect(here, code=303)
    audit(_("Listes publiées : %(activity)s (graine %(seed)d)", activity=activity.name, seed=run.seed))
    flash(_("Les listes de %(activity)s sont publiées : chaque famille a reçu un mail.", activity=activity.name),
          "success")
    return redirect(here, code=303)

"""Inscriptions to validate: pending inscriptions, decided through their inscription demande."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin import bp
from blueprints.admin.common import actor_name, audit, int_arg, no_change
from blueprints.admin.forms import ButtonForm
from core import admin_services as svc
from core.demandes import AlreadyDecided, PiecesMissing, decide
from core.models import (
    ACTION_INSCRIPTION,
    INSCRIPTION_ACCEPTED,
    INSCRIPTION_PENDING,
    INSCRIPTION_REFUSED,
    LINE_PENDING,
    Activity,
    Demande,
    DemandeLine,
    Inscription,
)
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.links import WebLinks
from web.transaction import on_busy, roll_back

STATUSES = (INSCRIPTION_PENDING, INSCRIPTION_ACCEPTED, INSCRIPTION_REFUSED)


@bp.get("/inscriptions")
@agent_required
def inscriptions():
    status = request.args.get("statut") or INSCRIPTION_PENDING
    if status not in STATUSES:
        status = INSCRIPTION_PENDING
    rows = svc.inscriptions(status, int_arg("activite"))
    demandes = svc.inscription_demandes({r.demande_id for r in rows if r.demande_id})
    activities = db.session.scalars(select(Activity).order_by(Activity.archived, Activity.position,
                                                              Activity.name)).all()
    return render_template("admin/inscriptions.html", rows=rows, demandes=demandes, status=status,
                           activities=activities, activity_id=int_arg("activite"),
                           motifs=svc.refusal_motifs(current_tenant()), form=ButtonForm())


@bp.post("/inscriptions/<int:inscription_id>/decision")
@agent_required
def inscription_decide(inscription_id):
    ins = get_or_404(db.session, Inscription, inscription_id)
    back = url_for("admin.inscriptions", statut=INSCRIPTION_PENDING)
    choice = request.form.get("decision")
    motif = svc.compose_motif(request.form.get("motif_choice"), request.form.get("motif_text"))
    who = f"{ins.child.first_name} {ins.child.last_name}"
    if choice not in ("valider", "refuser"):
        no_change()
        flash(_("Choisissez « Valider » ou « Refuser »."), "error")
        return redirect(back, code=303)
    if choice == "refuser" and not motif:
        no_change()
        flash(_("Pour refuser l'inscription de %(child)s, choisissez un motif.", child=who), "error")
        return redirect(back, code=303)
    ok = choice == "valider"
    on_busy(back)
    try:
        demande = db.session.get(Demande, ins.demande_id) if ins.demande_id else None
        line = None
        if demande is not None:
            line = db.session.scalars(select(DemandeLine).where(
                DemandeLine.demande_id == demande.id, DemandeLine.child_id == ins.child_id,
                DemandeLine.action == ACTION_INSCRIPTION, DemandeLine.status == LINE_PENDING)).first()
        if line is not None:
            decide(demande, accept={line.id} if ok else set(), refuse=set() if ok else {line.id},
                   motif=None if ok else motif, actor=actor_name(), links=WebLinks())
        elif ins.status == INSCRIPTION_PENDING:
            svc.decide_inscription_without_demande(ins, ok)
        else:
            raise AlreadyDecided("decided", _("Cette inscription a déjà été traitée par quelqu'un d'autre."))
    except (AlreadyDecided, PiecesMissing) as err:
        roll_back()
        no_change()
        flash(err.message, "error")
        return redirect(back, code=303)
    if ok:
        text = _("Inscription de %(child)s à %(activity)s validée.", child=who, activity=ins.activity.name)
    else:
        text = _("Inscription de %(child)s à %(activity)s refusée.", child=who, activity=ins.activity.name)
    audit(text)
    flash(text, "success")
    return redirect(back, code=303)

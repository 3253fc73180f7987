"""Demandes to process: the queue (oldest first), one demande with its effect on capacity, decisions."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blueprints.admin import bp
from blueprints.admin.common import actor_name, audit, int_arg, no_change
from blueprints.admin.forms import DecisionForm, options, parse_date
from core import admin_services as svc
from core.billing.invoices import families_with_overdue
from core.demandes import STATUS_LABELS, AlreadyDecided, PiecesMissing, decide
from core.models import (
    DEMANDE_OPEN,
    LINE_PENDING,
    TYPE_INSCRIPTION,
    TYPE_RESERVATION,
    Activity,
    Demande,
    User,
)
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.links import WebLinks, safe_next
from web.transaction import on_busy, roll_back

QUEUE_STATUSES = ("a_traiter", "deposee", "en_cours", "acceptee", "refusee", "partielle", "attente", "annulee",
                  "toutes")


@bp.app_context_processor
def _admin_helpers():
    return {"admin_dashboard_counts": svc.dashboard_counts}


@bp.get("/demandes")
@agent_required
def demandes():
    errors = {}
    filters = svc.QueueFilters(status=request.args.get("statut") or svc.STATUS_TODO,
                               activity_id=int_arg("activite"), type=request.args.get("type") or None,
                               page=max(1, int_arg("page", 1) or 1))
    if filters.status not in QUEUE_STATUSES:
        filters.status = svc.STATUS_TODO
    if filters.type not in (None, TYPE_RESERVATION, TYPE_INSCRIPTION):
        filters.type = None
    for key, attr in (("du", "date_from"), ("au", "date_to")):
        raw = (request.args.get(key) or "").strip()
        if raw:
            try:
                setattr(filters, attr, parse_date(raw))
            except ValueError as err:
                errors[key] = str(err)
    rows, total = svc.demandes_queue(filters)
    activities = db.session.scalars(select(Activity).order_by(Activity.archived, Activity.position,
                                                              Activity.name)).all()
    # families of the open demandes shown with an invoice past its due date: "Refuser : factures impayées"
    overdue = families_with_overdue({d.family_id for d in rows if d.status in DEMANDE_OPEN})
    return render_template("admin/demandes.html", rows=rows, total=total, filters=filters, activities=activities,
                           errors=errors, statuses=QUEUE_STATUSES, page_size=svc.QUEUE_PAGE, overdue=overdue,
                           unpaid_motif=svc.unpaid_invoices_motif(current_tenant()), here=request.full_path.rstrip("?"))


def _decision_form(demande: Demande) -> DecisionForm:
    form = DecisionForm()
    motifs = svc.refusal_motifs(current_tenant())
    form.motif_choice.choices = options(("", _("— Choisir un motif —")), *[(m, m) for m in motifs])
    if not form.expected_status.data:
        form.expected_status.data = demande.status
    return form


def _load(demande_id: int) -> Demande:
    demande = get_or_404(db.session, Demande, demande_id)
    db.session.scalars(select(Demande).where(Demande.id == demande.id).options(
        selectinload(Demande.lines), selectinload(Demande.events), selectinload(Demande.family))).first()
    return demande


def _pieces(demande: Demande) -> list:
    """The pieces each (child, activity) of the demande needs, and where each stands today."""
    from core.documents import services as pieces

    family_pieces, piece_types = pieces.family_pieces(demande.family_id), pieces.types()
    out, seen = [], set()
    for line in demande.lines:
        key = (line.child_id, line.activity_id)
        if key in seen:
            continue
        seen.add(key)
        for slot in pieces.requirements(demande.family_id, line.activity, [line.child], pieces=family_pieces,
                                        piece_types=piece_types):
            out.append((line, slot))
    return out


def _render(demande: Demande, form: DecisionForm, choices: dict | None = None, status: int = 200):
    members = db.session.scalars(select(User).where(User.family_id == demande.family_id).order_by(User.id)).all()
    return render_template("admin/demande.html", demande=demande, views=svc.line_views(demande), form=form,
                           members=members, choices=choices or {}, is_open=demande.status in DEMANDE_OPEN,
                           pieces=_pieces(demande),
                           next_url=safe_next(request.values.get("next"), "")), status


@bp.get("/demandes/<int:demande_id>")
@agent_required
def demande(demande_id):
    item = _load(demande_id)
    return _render(item, _decision_form(item))


@bp.post("/demandes/<int:demande_id>/decision")
@agent_required
def demande_decide(demande_id):
    item = _load(demande_id)
    form = _decision_form(item)
    pending = [line for line in item.lines if line.status == LINE_PENDING]
    action = form.action.data
    choices = {line.id: request.form.get(f"ligne-{line.id}", "") for line in pending}
    accept: set[int] = set()
    refuse: set[int] = set()
    if action == "accepter":
        accept = {line.id for line in pending}
    elif action == "refuser":
        refuse = {line.id for line in pending}
    elif action == "lignes":
        accept = {i for i, c in choices.items() if c == "accepter"}
        refuse = {i for i, c in choices.items() if c == "refuser"}
    motif = svc.compose_motif(form.motif_choice.data, form.motif_text.data)
    valid = form.validate_on_submit()
    if valid and action not in ("accepter", "refuser", "lignes"):
        form.action.errors.append(_("Choisissez une décision."))
        valid = False
    if valid and action == "lignes" and not (accept or refuse):
        form.action.errors.append(_("Choisissez « Accepter » ou « Refuser » pour au moins une ligne."))
        valid = False
    if valid and refuse and not motif:
        form.motif_choice.errors.append(_("Choisissez un motif de refus dans la liste ou écrivez-le dans les précisions."))
        valid = False
    if not valid:
        no_change()
        return _render(item, form, choices)
    back = safe_next(form.next.data, url_for("admin.demande", demande_id=item.id))
    on_busy(url_for("admin.demande", demande_id=item.id))
    try:
        decided = decide(item, accept=accept, refuse=refuse, motif=motif or None, actor=actor_name(),
                         expected_status=form.expected_status.data or None, links=WebLinks())
    except AlreadyDecided as err:
        roll_back()
        no_change()
        flash(err.message, "error")
        return redirect(url_for("admin.demande", demande_id=item.id), code=303)
    except PiecesMissing as err:
        roll_back()
        no_change()
        form.action.errors.append(err.message)
        return _render(_load(demande_id), form, choices, status=409)
    label = str(STATUS_LABELS.get(decided.status, decided.status))
    audit(f"Demande N° {decided.number} : {label}" + (f" — {motif}" if motif and refuse else ""))
    flash(_("Demande N° %(number)d : %(status)s.", number=decided.number, status=label), "success")
    return redirect(back, code=303)

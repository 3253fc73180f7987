from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blueprints.demandes import bp
from core.demandes import LINE_LABELS, STATUS_LABELS, TYPE_LABELS, AlreadyDecided, cancel_demande
from core.models import ROLE_PARENT, Demande
from extensions import db
from tenants.web import role_required
from web.transaction import on_busy, rollback_only


def _own(number: int) -> Demande:
    demande = db.session.scalars(select(Demande).where(Demande.number == number).options(
        selectinload(Demande.lines), selectinload(Demande.events))).first()
    if demande is None or demande.family_id != current_user.family_id:
        abort(404)
    return demande


@bp.app_context_processor
def labels():
    return {"demande_status_labels": STATUS_LABELS, "demande_type_labels": TYPE_LABELS,
            "line_status_labels": LINE_LABELS}


@bp.get("/")
@role_required(ROLE_PARENT)
def index():
    demandes = db.session.scalars(select(Demande).where(Demande.family_id == current_user.family_id)
                                  .order_by(Demande.created_at.desc(), Demande.id.desc()).limit(100)).all()
    return render_template("demandes/index.html", demandes=demandes)


@bp.get("/<int:number>")
@role_required(ROLE_PARENT)
def show(number):
    demande = _own(number)
    return render_template("demandes/show.html", demande=demande, new=request.args.get("nouvelle") == "1")


@bp.post("/<int:number>/annuler")
@role_required(ROLE_PARENT)
def cancel(number):
    demande = _own(number)
    on_busy(url_for("demandes.show", number=number))
    try:
        cancel_demande(demande, current_user)
        flash(_("Votre demande N° %(number)d est annulée.", number=number), "success")
    except AlreadyDecided as err:
        rollback_only()
        flash(err.message, "error")
    return redirect(url_for("demandes.show", number=number), code=303)

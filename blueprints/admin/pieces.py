"""Agents: the pieces to check (oldest first), one piece beside the family file, validate with an
end date or refuse with a motif (mailed), what each family misses, the commune's piece types and
retention.  Every read of a file is logged, like health data."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from blueprints.admin import bp
from blueprints.admin.common import audit, no_change
from blueprints.admin.forms import FrDateField, FrIntegerField, options
from blueprints.pieces.files import file_response
from core import admin_services as admin_svc
from core.documents import services as svc
from core.documents.config import PieceSettings, apply_type, save_settings, settings_of
from core.documents.models import (
    CONCERNS_CHILD,
    CONCERNS_FAMILY,
    VALIDITY_MONTHS,
    VALIDITY_SCHOOL_YEAR,
    VALIDITY_UNLIMITED,
    Piece,
    PieceType,
)
from core.dossier.records import children_of, members_of, responsables
from core.models import Activity, Family
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.links import WebLinks
from web.transaction import on_busy, rollback_only

REQUIRED = _l("Ce champ est obligatoire.")


class DecisionForm(FlaskForm):
    valid_until = FrDateField(_l("Valable jusqu'au"), validators=[Optional()], render_kw={"autocomplete": "off"})
    motif_choice = SelectField(_l("Motif du refus"), choices=[], validate_choice=False)
    motif_text = TextAreaField(_l("Précisions (envoyées à la famille)"),
                               validators=[Length(max=1000, message=_l("%(num)d caractères au maximum.", num=1000))])


class TypeForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(REQUIRED), Length(max=40),
                                               Regexp(r"^[a-z0-9_-]+$", message=_l(
                                                   "Lettres minuscules sans accent, chiffres, - et _ seulement."))])
    label = StringField(_l("Nom de la pièce"), validators=[DataRequired(REQUIRED), Length(max=200)])
    label_en = StringField(_l("Nom en anglais"), validators=[Optional(), Length(max=200)])
    description = TextAreaField(_l("Aide pour les familles"), validators=[Optional(), Length(max=500)])
    concerns = SelectField(_l("Concerne"), choices=options((CONCERNS_FAMILY, _l("La famille")),
                                                           (CONCERNS_CHILD, _l("Chaque enfant"))))
    validity = SelectField(_l("Durée de validité"), choices=options(
        (VALIDITY_MONTHS, _l("Un nombre de mois")), (VALIDITY_SCHOOL_YEAR, _l("Jusqu'à la fin de l'année scolaire")),
        (VALIDITY_UNLIMITED, _l("Sans limite"))))
    months = FrIntegerField(_l("Nombre de mois"), validators=[Optional()], minimum=1, maximum=120)
    required_for = SelectMultipleField(_l("Demandée pour l'inscription à"), choices=[], validate_choice=False)
    active = BooleanField(_l("Pièce demandée aux familles"), default=True)


class RetentionForm(FlaskForm):
    """Numbers read as the agents' other forms read them: any text comes back as typed with a French
    message (WTForms' IntegerField answered "Not a valid integer value." and a number of 300 digits
    overflowed its range check: a 500)."""

    days_after_expiry = FrIntegerField(_l("Suppression des pièces expirées après (jours)"),
                                       validators=[InputRequired(REQUIRED)], minimum=1, maximum=3650)
    days_after_refusal = FrIntegerField(_l("Suppression des pièces refusées après (jours)"),
                                        validators=[InputRequired(REQUIRED)], minimum=1, maximum=3650)
    announce_days = FrIntegerField(_l("Prévenir la famille avant l'expiration (jours)"),
                                   validators=[InputRequired(REQUIRED)], minimum=1, maximum=365)


# ---------------------------------------------------------------- the queue

@bp.get("/pieces")
@agent_required
def pieces_queue():
    rows = svc.queue()
    return render_template("admin/pieces_queue.html", rows=rows)


def _decision_form(piece: Piece) -> DecisionForm:
    form = DecisionForm()
    form.motif_choice.choices = options(("", _("— Choisir un motif —")), *[
        (m, m) for m in (_("Document illisible"), _("Document incomplet"), _("Document expiré ou trop ancien"),
                         _("Ce n'est pas le document demandé"))])
    if request.method == "GET" and piece.status == "pending":
        form.valid_until.data = svc.proposed_end(piece)
    return form


def _load(piece_id: int) -> Piece:
    return get_or_404(db.session, Piece, piece_id)


def _review(piece: Piece, form: DecisionForm, status: int = 200):
    family = piece.family
    children = children_of(family)
    return render_template(
        "admin/piece.html", piece=piece, form=form, family=family, children=children,
        members=members_of(family), resps=responsables(family),
        inscriptions=admin_svc.family_inscriptions(family), slots=svc.family_space(family),
        reads=svc.reads(family.id, limit=10), label=svc.piece_label(piece.type, piece.child)), status


@bp.get("/pieces/<int:piece_id>")
@agent_required
def piece(piece_id):
    item = _load(piece_id)
    return _review(item, _decision_form(item))


@bp.get("/pieces/<int:piece_id>/fichier")
@agent_required
def piece_file(piece_id):
    """The file, for an agent of its commune: the read is logged (who, which piece, when)."""
    item = _load(piece_id)
    svc.log_read(agent=current_user, piece=item, context="examen" if request.args.get("voir") == "1" else "fichier")
    return file_response(item, inline=request.args.get("voir") == "1", download_name=f"{item.type.code}-{item.id}")


@bp.post("/pieces/<int:piece_id>/decision")
@agent_required
def piece_decide(piece_id):
    item = _load(piece_id)
    form = _decision_form(item)
    action = request.form.get("action")
    if not form.validate_on_submit() or action not in ("valider", "refuser"):
        rollback_only()
        no_change()
        if action not in ("valider", "refuser"):
            flash(_("Choisissez « Valider » ou « Refuser »."), "error")
        return _review(item, form, 422)
    label = svc.piece_label(item.type, item.child)
    on_busy(url_for("admin.piece", piece_id=piece_id))
    try:
        if action == "valider":
            svc.validate(item, agent=current_user, valid_until=form.valid_until.data, links=WebLinks())
        else:
            svc.refuse(item, agent=current_user, motif=admin_svc.compose_motif(form.motif_choice.data,
                                                                               form.motif_text.data))
    except svc.PieceError as err:
        rollback_only()
        no_change()
        if err.field == "valid_until":
            form.valid_until.errors = [*form.valid_until.errors, err.message]
        elif err.field == "motif":
            form.motif_choice.errors = [*form.motif_choice.errors, err.message]
        else:
            flash(err.message, "error")
            return redirect(url_for("admin.pieces_queue"), code=303)
        return _review(_load(piece_id), form, 422)
    family_name = item.family.name
    if action == "valider":
        text = _("Pièce validée : %(piece)s (famille %(family)s).", piece=label, family=family_name)
    else:
        text = _("Pièce refusée : %(piece)s (famille %(family)s) ; la famille est prévenue par e-mail.",
                 piece=label, family=family_name)
    audit(text)
    flash(text, "success")
    following = next((p for p in svc.queue() if p.id != item.id and p.status == "pending"), None)
    if following is not None:
        return redirect(url_for("admin.piece", piece_id=following.id), code=303)
    return redirect(url_for("admin.pieces_queue"), code=303)


# ---------------------------------------------------------------- per family

@bp.get("/familles/<int:family_id>/pieces")
@agent_required
def family_pieces(family_id):
    family = get_or_404(db.session, Family, family_id)
    slots = svc.family_space(family)
    return render_template("admin/family_pieces.html", family=family, slots=slots,
                           missing=[s for s in slots if s.required_by and not s.satisfied],
                           reads=svc.reads(family.id), dossiers_current=True)


# ---------------------------------------------------------------- types and retention

def _activity_choices():
    acts = db.session.scalars(select(Activity).where(Activity.archived.is_(False))
                              .order_by(Activity.position, Activity.name)).all()
    return [("*", _("Toutes les activités"))] + [(a.code, a.name) for a in acts]


@bp.route("/pieces/types", methods=["GET", "POST"])
@agent_required
def piece_types():
    tenant = current_tenant()
    current = settings_of(tenant)
    form = RetentionForm(data={"days_after_expiry": current.days_after_expiry,
                               "days_after_refusal": current.days_after_refusal,
                               "announce_days": current.announce_days})
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            save_settings(tenant, PieceSettings(days_after_expiry=form.days_after_expiry.data,
                                                days_after_refusal=form.days_after_refusal.data,
                                                announce_days=form.announce_days.data))
            audit(_("Durées de conservation des pièces justificatives modifiées."))
            flash(_("Les durées ont été enregistrées."), "success")
            return redirect(url_for("admin.piece_types"), code=303)
        rollback_only()
        no_change()
        status = 422
    return render_template("admin/piece_types.html", types=svc.types(active_only=False), form=form,
                           activities=dict(_activity_choices())), status


@bp.route("/pieces/types/nouveau", methods=["GET", "POST"])
@bp.route("/pieces/types/<int:type_id>", methods=["GET", "POST"])
@agent_required
def piece_type(type_id=None):
    row = get_or_404(db.session, PieceType, type_id) if type_id is not None else None
    if row is not None and request.method == "GET":
        form = TypeForm(obj=row, data={"months": row.validity_months, "required_for": row.required_for or []})
    else:
        form = TypeForm()
    form.required_for.choices = options(*_activity_choices())
    if form.validate_on_submit():
        code = form.code.data.strip()
        clash = db.session.scalars(select(PieceType).where(PieceType.code == code)).first()
        if form.validity.data == VALIDITY_MONTHS and not form.months.data:
            form.months.errors = [*form.months.errors, _("Indiquez le nombre de mois.")]
        elif clash is not None and clash is not row:
            form.code.errors = [*form.code.errors, _("Ce code est déjà utilisé par une autre pièce.")]
        else:
            if row is None:
                row = PieceType(position=len(svc.types(active_only=False)))
                db.session.add(row)
            apply_type(row, {"code": code, "label": form.label.data, "label_en": form.label_en.data,
                             "description": form.description.data, "concerns": form.concerns.data,
                             "validity": form.validity.data, "months": form.months.data,
                             "required_for": [c for c in (form.required_for.data or []) if c],
                             "position": row.position, "active": form.active.data})
            audit(_("Type de pièce enregistré : %(label)s", label=row.label))
            flash(_("La pièce « %(label)s » a été enregistrée.", label=row.label), "success")
            return redirect(url_for("admin.piece_types"), code=303)
    if request.method == "POST":
        rollback_only()
        no_change()
    return render_template("admin/piece_type_form.html", form=form, row=row), 422 if request.method == "POST" else 200


@bp.app_context_processor
def _pieces_counts():
    def count():
        try:
            return svc.pending_count()
        except Exception:  # noqa: BLE001 - outside a commune (error pages): no count
            return 0

    return {"admin_pieces_pending": count}



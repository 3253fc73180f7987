"""Agents: families (search, file, quotient familial), changes waiting for validation,
children's health (every read logged), account deletion requests."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from blueprints.admin import bp
from blueprints.admin.forms import FrIntegerField
from blueprints.famille.forms import REQUIRED, ChildForm
from core.dossier import back_office, deletion, health_log, readiness, records, summaries
from core.dossier.changes import decide, pending_changes, pending_for, pending_photo, pending_queue
from core.dossier.common import DossierError
from core.dossier.fields import (
    ENTITY_AUTHORISATIONS,
    ENTITY_CHILD,
    ENTITY_CONTACT,
    ENTITY_HEALTH,
    ENTITY_RESPONSABLE,
)
from core.dossier.models import (
    CHANGE_PENDING,
    DELETION_OPEN,
    OP_CREATE,
    AccountDeletionRequest,
    FamilyChange,
)
from core.models import Child, Family
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required
from web.links import safe_next
from web.transaction import on_busy, roll_back


class QuotientForm(FlaskForm):
    quotient = FrIntegerField(_l("Quotient familial"), minimum=0, maximum=99999, validators=[Optional()])


class DecisionForm(FlaskForm):
    motif = TextAreaField(_l("Motif (obligatoire en cas de refus, envoyé à la famille)"),
                          validators=[Length(max=2000, message=_l("%(num)d caractères au maximum.", num=2000))])


class NewFamilyForm(FlaskForm):
    name = StringField(_l("Nom de la famille"), validators=[
        DataRequired(REQUIRED), Length(max=200, message=_l("%(num)d caractères au maximum.", num=200))])


class ButtonForm(FlaskForm):
    pass


def _pending_count() -> int:
    return db.session.scalar(select(func.count()).select_from(FamilyChange)
                             .where(FamilyChange.status == CHANGE_PENDING)) or 0


def _deletion_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AccountDeletionRequest)
                             .where(AccountDeletionRequest.status == DELETION_OPEN)) or 0


def _render(template, **kw):
    return render_template(template, pending_count=_pending_count(), deletion_count=_deletion_count(),
                           dossiers_current=True, **kw)


# ---------------------------------------------------------------- families

@bp.get("/familles")
@agent_required
def families():
    q = (request.args.get("q") or "").strip()[:100]
    rows = back_office.search_families(q)
    return _render("admin/dossiers.html", families=rows, q=q)


@bp.route("/familles/nouvelle", methods=["GET", "POST"])
@agent_required
def family_new():
    form = NewFamilyForm()
    if form.validate_on_submit():
        family = back_office.create_family(form.name.data)
        flash(_("Dossier famille créé. Code abonné famille à communiquer : %(code)s", code=family.code), "success")
        return redirect(url_for("admin.family", family_id=family.id))
    return _render("admin/dossiers_form.html", form=form, title=_("Nouveau dossier famille"),
                   back=url_for("admin.families"))


@bp.get("/familles/<int:family_id>")
@agent_required
def family(family_id):
    return _family_page(get_or_404(db.session, Family, family_id))


def _family_page(fam: Family, quotient_form: QuotientForm | None = None, status: int = 200):
    resps = records.responsables(fam)
    fiscal = records.family_file(fam)
    children = records.children_of(fam)
    files = {c.id: records.child_file(c) for c in children}
    pending = pending_changes(fam)
    return _render(
        "admin/dossiers_family.html", family=fam, fiscal=fiscal, children=children,
        members=records.members_of(fam),
        resp_rows=[(r, summaries.rows(ENTITY_RESPONSABLE, r, None, skip=("email",) if r.user_id else ()))
                   for r in resps],
        auth_rows={c.id: summaries.rows(ENTITY_AUTHORISATIONS, files[c.id], None) for c in children},
        general_rows={c.id: summaries.rows(ENTITY_CHILD, c, None) for c in children},
        photos={c.id: files[c.id].photo for c in children},
        contacts={c.id: [(k, summaries.rows(ENTITY_CONTACT, k, None)) for k in records.contacts_of(c)]
                  for c in children},
        pending=pending, quotient_form=quotient_form or QuotientForm(data={"quotient": fiscal.quotient_familial}),
        child_form=ChildForm(prefix="child"),
        deletions=db.session.scalars(select(AccountDeletionRequest).where(
            AccountDeletionRequest.family_id == fam.id)).all(),
        quotient_slot=_quotient_slot(fam)), status


def _quotient_slot(fam):
    """The family's justificatif for the quotient familial (piece type "quotient"), when the commune asks for one."""
    from core.documents import services as pieces

    return next((s for s in pieces.family_space(fam) if s.type.code == "quotient"), None)


@bp.post("/familles/<int:family_id>/quotient")
@agent_required
def family_quotient(family_id):
    fam = get_or_404(db.session, Family, family_id)
    form = QuotientForm()
    if not form.validate_on_submit():  # the message next to the field, the value as typed
        return _family_page(fam, quotient_form=form, status=422)
    back_office.set_quotient(fam, agent=current_user, value=form.quotient.data)
    flash(_("Le quotient familial a été enregistré."), "success")
    return redirect(url_for("admin.family", family_id=fam.id))


@bp.post("/familles/<int:family_id>/enfants")
@agent_required
def family_add_child(family_id):
    fam = get_or_404(db.session, Family, family_id)
    form = ChildForm(prefix="child")
    if form.validate_on_submit():
        child = back_office.add_child_directly(fam, {name: form[name].data for name in (
            "first_name", "last_name", "birth_date", "school", "class_name")})
        flash(_("%(name)s a été ajouté(e) au dossier.", name=child.first_name), "success")
        return redirect(url_for("admin.family", family_id=fam.id))
    return _render("admin/dossiers_form.html", form=form, title=_("Ajouter un enfant au dossier %(name)s",
                                                                   name=fam.name),
                   back=url_for("admin.family", family_id=fam.id),
                   action=url_for("admin.family_add_child", family_id=fam.id))


@bp.get("/familles/<int:family_id>/enfants/<int:child_id>/sante")
@agent_required
def child_health(family_id, child_id):
    """Reading a child's health data: logged (who, which child, when)."""
    fam = get_or_404(db.session, Family, family_id)
    child = get_or_404(db.session, Child, child_id)
    if child.family_id != fam.id:
        abort(404)
    health = records.child_health(child)
    health_log.log_health_read(agent=current_user, child=child, context="fiche")
    return _render("admin/dossiers_health.html", family=fam, child=child,
                   rows=summaries.rows(ENTITY_HEALTH, health, pending_for(ENTITY_HEALTH, child.id)),
                   missing=readiness.health_missing(health), reads=health_log.health_reads(child))


# ---------------------------------------------------------------- changes waiting for validation

@bp.get("/modifications")
@agent_required
def changes():
    queue = pending_queue()
    items = []
    for change in queue:
        sensitive = change.entity == ENTITY_HEALTH
        items.append((change, None if sensitive else summaries.change_rows(change)))
    return _render("admin/dossiers_changes.html", items=items, form=DecisionForm(), OP_CREATE=OP_CREATE)


def _change_page(item: FamilyChange, form: DecisionForm):
    if item.entity == ENTITY_HEALTH and item.child is not None:
        health_log.log_health_read(agent=current_user, child=item.child, context="modification")
    return _render("admin/dossiers_change.html", change=item, rows=summaries.change_rows(item),
                   photo=pending_photo(item), form=form, OP_CREATE=OP_CREATE)


@bp.get("/modifications/<int:change_id>")
@agent_required
def change(change_id):
    return _change_page(get_or_404(db.session, FamilyChange, change_id), DecisionForm())


@bp.post("/modifications/<int:change_id>/decision")
@agent_required
def change_decide(change_id):
    item = get_or_404(db.session, FamilyChange, change_id)
    form = DecisionForm()
    decision = request.form.get("decision")
    back = safe_next(request.form.get("next"), url_for("admin.changes"))
    if not form.validate_on_submit() or decision not in ("accept", "refuse"):
        flash(_("Formulaire invalide."), "error")
        return redirect(back)
    on_busy(back, _("Cette modification est en cours de traitement. Réessayez dans un instant."))
    try:
        decide(item.id, agent=current_user, accept=decision == "accept", motif=form.motif.data)
    except DossierError as err:
        roll_back()
        if err.field == "motif":
            form.motif.errors = [err.message]
            return _change_page(get_or_404(db.session, FamilyChange, change_id), form)
        flash(err.message, "error")
        return redirect(back)
    if decision == "accept":
        flash(_("Modification acceptée : la famille est prévenue par e-mail."), "success")
    else:
        flash(_("Modification refusée : la famille est prévenue par e-mail."), "success")
    return redirect(url_for("admin.changes"))


# ---------------------------------------------------------------- account deletion requests

@bp.get("/demandes-suppression")
@agent_required
def deletions():
    rows = deletion.deletion_requests(status=None)
    return _render("admin/dossiers_deletions.html", rows=rows, form=ButtonForm(), OPEN=DELETION_OPEN)


@bp.post("/demandes-suppression/<int:request_id>/traitee")
@agent_required
def deletion_handled(request_id):
    row = get_or_404(db.session, AccountDeletionRequest, request_id)
    if ButtonForm().validate_on_submit() and row.status == DELETION_OPEN:
        deletion.mark_deletion_handled(row, agent=current_user)
        flash(_("Demande marquée comme traitée."), "success")
    return redirect(url_for("admin.deletions"))


"""Mon espace and the family file: load (404 when missing or not this family's), check, act."""

from datetime import date

from flask import abort, flash, redirect, render_template, send_file, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.famille import bp
from blueprints.famille.forms import (
    AuthorisationsForm,
    ButtonForm,
    ChildForm,
    ChildWithPhotoForm,
    ContactForm,
    HealthForm,
    ResponsableForm,
)
from core import uploads
from core.dossier import changes, membership, photos, readiness, records, summaries
from core.dossier.common import DossierError
from core.dossier.fields import (
    ENTITY_AUTHORISATIONS,
    ENTITY_CHILD,
    ENTITY_CONTACT,
    ENTITY_HEALTH,
    ENTITY_RESPONSABLE,
    FIELDS,
)
from core.dossier.models import OP_CREATE, OP_DELETE, OP_UPDATE, ChildContact, FamilyChange, Responsable
from core.models import ROLE_AGENT, ROLE_PARENT, Child
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import role_required
from web.transaction import rollback_only

PENDING_NOTICE = "Toute modification est soumise à une validation par la collectivité."


# ---------------------------------------------------------------- loading

def _family():
    """The family of the parent; a parent without one is sent to Mes abonnements."""
    family = current_user.family
    if family is None:
        abort(404)
    return family


def _own_child(child_id: int) -> Child:
    child = get_or_404(db.session, Child, child_id)
    if current_user.family_id is None or child.family_id != current_user.family_id:
        abort(404)
    return child


def _own_contact(child: Child, contact_id: int) -> ChildContact:
    contact = get_or_404(db.session, ChildContact, contact_id)
    if contact.child_id != child.id:
        abort(404)
    return contact


def _wanted(entity: str, target) -> dict:
    """What the family last asked: current values with the pending ones laid over them."""
    values = records.current_values(entity, target)
    change = changes.pending_for(entity, records.entity_id_of(entity, target))
    if change is not None and change.op == OP_UPDATE:
        for name, value in (change.changes or {}).items():
            values[name] = value["new"]
    return values


def _to_form(entity: str, values: dict) -> dict:
    out = {}
    for f in FIELDS[entity]:
        value = values.get(f.name)
        if f.kind == "date":
            out[f.name] = date.fromisoformat(value) if value else None
        elif f.kind == "bool":
            out[f.name] = "" if value is None else ("oui" if value else "non")
        elif f.kind == "flag":
            out[f.name] = bool(value)
        elif f.kind == "photo":
            continue
        else:
            out[f.name] = value or ""
    return out


def _from_form(entity: str, form) -> dict:
    return {f.name: form[f.name].data for f in FIELDS[entity] if f.name in form and f.kind != "photo"}


def _saved(change) -> None:
    if change is None:
        flash(_("Aucune modification en attente : les informations affichées sont à jour."), "info")
    else:
        flash(_("Votre modification a été enregistrée. Elle est en attente de validation par la collectivité."),
              "success")


# ---------------------------------------------------------------- Mon espace

@bp.get("/mon-espace")
@role_required(ROLE_PARENT, ROLE_AGENT)
def dashboard():
    family = current_user.family
    children = records.children_of(family) if family else []
    checks = {check.child.id: check for check in readiness.readiness(family)} if family else {}
    pending = changes.pending_changes(family) if family else []
    fiscal = records.family_file(family) if family else None
    from core.documents import services as pieces
    from tenants.web import current_tenant

    expiring = pieces.expiring(family.id, tenant=current_tenant()) if family else []
    unpaid, attestation_ready, has_invoices = 0, None, False
    if family is not None:
        from core import clock
        from core.billing import attestations
        from core.billing import invoices as inv

        statements = inv.of_family(family.id)
        unpaid = sum(1 for s in statements if s.unpaid)
        has_invoices = bool(statements)
        year = clock.today().year - 1
        if clock.today().month <= 6 and attestations.fiscal(family.id, year).children:  # ready in January
            attestation_ready = year
    return render_template("famille/dashboard.html", family=family, children=children, checks=checks,
                           pending=pending, fiscal=fiscal, expiring=expiring, unpaid=unpaid,
                           attestation_ready=attestation_ready, has_invoices=has_invoices)


@bp.get("/famille/dossier")
@role_required(ROLE_PARENT)
def dossier():
    if current_user.family is None:
        return redirect(url_for("famille.abonnements"))
    family = _family()
    resps = records.responsables(family)
    fiscal = records.family_file(family)
    pending = changes.pending_changes(family)
    by_entity = {(c.entity, c.entity_id): c for c in pending if c.op != OP_CREATE}
    resp_rows = [(r, summaries.rows(ENTITY_RESPONSABLE, r, by_entity.get((ENTITY_RESPONSABLE, r.id)),
                                    skip=("email",) if r.user_id else ())) for r in resps]
    new_children = [c for c in pending if c.entity == ENTITY_CHILD and c.op == OP_CREATE]
    return render_template(
        "famille/dossier.html", family=family, resp_rows=resp_rows, fiscal=fiscal,
        children=records.children_of(family), pending_children={c.child_id for c in pending if c.child_id},
        new_children=[(c, summaries.change_rows(c)) for c in new_children],
        invitations=membership.open_invitations(family),
        can_invite=len(records.members_of(family)) < membership.MAX_RESPONSABLES,
        decisions=changes.recent_decisions(family), cancel_form=ButtonForm(), notice=_(PENDING_NOTICE),
        bank=_bank_details(family.id))


def _bank_details(family_id: int) -> dict:
    """"Données bancaires" on the responsables' screen: the mandate, its IBAN masked."""
    from core.billing import mandates

    return {"active": mandates.active_of(family_id), "pending": mandates.pending_of(family_id), "mask": mandates.mask}


@bp.route("/famille/responsables/<int:resp_id>", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def responsable(resp_id):
    family = _family()
    resp = get_or_404(db.session, Responsable, resp_id)
    if resp.family_id != family.id:
        abort(404)
    form = ResponsableForm(data=_to_form(ENTITY_RESPONSABLE, _wanted(ENTITY_RESPONSABLE, resp)))
    if resp.user_id:
        del form.email  # a login address changes through a confirmation mail
    if form.validate_on_submit():
        change = changes.propose_update(family=family, user=current_user, entity=ENTITY_RESPONSABLE,
                                        target=resp, values=_from_form(ENTITY_RESPONSABLE, form))
        _saved(change)
        return redirect(url_for("famille.dossier"))
    return render_template("famille/form.html", form=form, title=_("Responsable : %(name)s", name=resp.display_name),
                           back=url_for("famille.dossier"), notice=_(PENDING_NOTICE),
                           login_email=resp.user.email if resp.user_id else None,
                           own=resp.user_id == current_user.id)


# ---------------------------------------------------------------- children

@bp.get("/famille/enfants/<int:child_id>")
@role_required(ROLE_PARENT)
def child(child_id):
    """A member of the household (load in the commune -> 404, then check it is this family's)."""
    member = _own_child(child_id)
    health, cfile = records.child_health(member), records.child_file(member)
    pending = {(c.entity, c.entity_id): c for c in changes.pending_changes(member.family)
               if c.child_id == member.id and c.op != OP_CREATE}
    general = pending.get((ENTITY_CHILD, member.id))
    contacts = records.contacts_of(member)
    new_contacts = [(c, summaries.change_rows(c)) for c in changes.pending_changes(member.family)
                    if c.entity == ENTITY_CONTACT and c.op == OP_CREATE and c.child_id == member.id]
    return render_template(
        "famille/child.html", child=member, cfile=cfile, notice=_(PENDING_NOTICE),
        general_rows=summaries.rows(ENTITY_CHILD, member, general), general_change=general,
        pending_photo=changes.pending_photo(general),
        health_rows=summaries.rows(ENTITY_HEALTH, health, pending.get((ENTITY_HEALTH, member.id))),
        health_change=pending.get((ENTITY_HEALTH, member.id)),
        auth_rows=summaries.rows(ENTITY_AUTHORISATIONS, cfile,
                                 pending.get((ENTITY_AUTHORISATIONS, member.id))),
        auth_change=pending.get((ENTITY_AUTHORISATIONS, member.id)),
        contacts=[(c, summaries.rows(ENTITY_CONTACT, c, pending.get((ENTITY_CONTACT, c.id))),
                   pending.get((ENTITY_CONTACT, c.id))) for c in contacts],
        new_contacts=new_contacts, cancel_form=ButtonForm(), OP_DELETE=OP_DELETE)


@bp.route("/famille/enfants/<int:child_id>/informations", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def child_edit(child_id):
    member = _own_child(child_id)
    form = ChildWithPhotoForm(data=_to_form(ENTITY_CHILD, _wanted(ENTITY_CHILD, member)))
    if form.is_submitted():
        ok = form.validate()
        upload, photo = form.photo.data, None
        if upload and getattr(upload, "filename", ""):  # checked even when another field is wrong
            try:
                photo = photos.check_photo(upload.stream.read(photos.PHOTO_MAX_BYTES + 1))
            except DossierError as err:
                form.photo.errors = [*form.photo.errors, err.message]
                ok = False
        if ok:
            values = _from_form(ENTITY_CHILD, form)
            if photo is not None:
                values["photo"] = uploads.store(member.tenant_id, *photo)
            change = changes.propose_update(family=member.family, user=current_user, entity=ENTITY_CHILD,
                                            target=member, values=values)
            _saved(change)
            return redirect(url_for("famille.child", child_id=member.id))
    return render_template("famille/form.html", form=form, multipart=True,
                           title=_("Informations générales de %(name)s", name=member.first_name),
                           back=url_for("famille.child", child_id=member.id), notice=_(PENDING_NOTICE))


@bp.route("/famille/enfants/<int:child_id>/sante", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def health_edit(child_id):
    member = _own_child(child_id)
    health = records.child_health(member)
    form = HealthForm(data=_to_form(ENTITY_HEALTH, _wanted(ENTITY_HEALTH, health)))
    if form.validate_on_submit():
        change = changes.propose_update(family=member.family, user=current_user, entity=ENTITY_HEALTH,
                                        target=health, values=_from_form(ENTITY_HEALTH, form))
        _saved(change)
        return redirect(url_for("famille.child", child_id=member.id))
    rollback_only()
    return render_template("famille/form.html", form=form,
                           title=_("Informations santé de %(name)s", name=member.first_name),
                           back=url_for("famille.child", child_id=member.id), notice=_(PENDING_NOTICE),
                           helps={"allergies": _("Indiquez « Aucune » si votre enfant n'a pas d'allergie connue.")})


@bp.route("/famille/enfants/<int:child_id>/autorisations", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def authorisations_edit(child_id):
    member = _own_child(child_id)
    cfile = records.child_file(member)
    form = AuthorisationsForm(data=_to_form(ENTITY_AUTHORISATIONS, _wanted(ENTITY_AUTHORISATIONS, cfile)))
    if form.validate_on_submit():
        change = changes.propose_update(family=member.family, user=current_user, entity=ENTITY_AUTHORISATIONS,
                                        target=cfile, values=_from_form(ENTITY_AUTHORISATIONS, form))
        _saved(change)
        return redirect(url_for("famille.child", child_id=member.id))
    rollback_only()
    return render_template("famille/form.html", form=form,
                           title=_("Autorisations pour %(name)s", name=member.first_name),
                           back=url_for("famille.child", child_id=member.id), notice=_(PENDING_NOTICE))


@bp.route("/famille/enfants/nouveau", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def child_new():
    family = _family()
    form = ChildForm(data={"last_name": family.name.title()})
    if form.validate_on_submit():
        changes.propose_create(family=family, user=current_user, entity=ENTITY_CHILD,
                               values=_from_form(ENTITY_CHILD, form))
        flash(_("L'ajout de l'enfant a été enregistré. Il est en attente de validation par la collectivité."),
              "success")
        return redirect(url_for("famille.dossier"))
    return render_template("famille/form.html", form=form, title=_("Ajouter un enfant"),
                           back=url_for("famille.dossier"), notice=_(PENDING_NOTICE))


# ---------------------------------------------------------------- contacts

@bp.route("/famille/enfants/<int:child_id>/contacts/nouveau", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def contact_new(child_id):
    member = _own_child(child_id)
    form = ContactForm()
    if form.validate_on_submit():
        changes.propose_create(family=member.family, user=current_user, entity=ENTITY_CONTACT,
                               values=_from_form(ENTITY_CONTACT, form), child=member)
        flash(_("Le nouveau contact a été enregistré. Il est en attente de validation par la collectivité."),
              "success")
        return redirect(url_for("famille.child", child_id=member.id))
    return render_template("famille/form.html", form=form,
                           title=_("Nouveau contact pour %(name)s", name=member.first_name),
                           back=url_for("famille.child", child_id=member.id), notice=_(PENDING_NOTICE))


@bp.route("/famille/enfants/<int:child_id>/contacts/<int:contact_id>", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def contact_edit(child_id, contact_id):
    member = _own_child(child_id)
    contact = _own_contact(member, contact_id)
    form = ContactForm(data=_to_form(ENTITY_CONTACT, _wanted(ENTITY_CONTACT, contact)))
    if form.validate_on_submit():
        try:
            change = changes.propose_update(family=member.family, user=current_user, entity=ENTITY_CONTACT,
                                            target=contact, values=_from_form(ENTITY_CONTACT, form))
        except DossierError as err:
            rollback_only()
            flash(err.message, "error")
        else:
            _saved(change)
            return redirect(url_for("famille.child", child_id=member.id))
    return render_template("famille/form.html", form=form,
                           title=_("Contact : %(name)s", name=contact.display_name),
                           back=url_for("famille.child", child_id=member.id), notice=_(PENDING_NOTICE))


@bp.post("/famille/enfants/<int:child_id>/contacts/<int:contact_id>/supprimer")
@role_required(ROLE_PARENT)
def contact_delete(child_id, contact_id):
    member = _own_child(child_id)
    contact = _own_contact(member, contact_id)
    if ButtonForm().validate_on_submit():
        changes.propose_delete(family=member.family, user=current_user, contact=contact)
        flash(_("La suppression du contact est en attente de validation par la collectivité."), "success")
    return redirect(url_for("famille.child", child_id=member.id))


# ---------------------------------------------------------------- pending changes

@bp.post("/famille/modifications/<int:change_id>/annuler")
@role_required(ROLE_PARENT)
def change_cancel(change_id):
    family = _family()
    change = get_or_404(db.session, FamilyChange, change_id)
    if change.family_id != family.id:
        abort(404)
    if ButtonForm().validate_on_submit():
        try:
            changes.cancel_change(change, family=family, user=current_user)
        except DossierError as err:
            rollback_only()
            flash(err.message, "error")
        else:
            flash(_("Votre demande de modification a été retirée."), "success")
    if change.child_id:
        return redirect(url_for("famille.child", child_id=change.child_id))
    return redirect(url_for("famille.dossier"))


# ---------------------------------------------------------------- photos

@bp.get("/famille/enfants/<int:child_id>/photo/<name>")
@role_required(ROLE_PARENT, ROLE_AGENT)
def photo(child_id, name):
    """Only the child's family and its commune's agents; only the current or the pending photo."""
    if current_user.is_agent:
        member = get_or_404(db.session, Child, child_id)
    else:
        member = _own_child(child_id)
    cfile = records.child_file(member)
    allowed = {cfile.photo, changes.pending_photo(changes.pending_for(ENTITY_CHILD, member.id))} - {None}
    rollback_only()
    path = uploads.path_of(member.tenant_id, name)
    if name not in allowed or path is None or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=uploads.MIMETYPES[name.rsplit(".", 1)[1]], max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.app_template_global("child_photo_url")
def child_photo_url(child_id: int, name: str | None) -> str | None:
    if not name:
        return None
    return url_for("famille.photo", child_id=child_id, name=name)


@bp.app_template_filter("datetime_short")
def datetime_short(value) -> str:
    return format_datetime(value, "dd/MM/yyyy HH:mm") if value else ""

"""Families for the agents: search, a family's file and demandes, the account of a family that has none
(the Saint-Loubès flow: generated password and activation link by mail, new password at first login)."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin import bp
from blueprints.admin.common import audit, no_change
from blueprints.admin.forms import AccountForm, ResidentForm
from core import accounts
from core import admin_services as svc
from core.models import Family, User
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.links import WebLinks
from web.transaction import roll_back


def _settings() -> accounts.Settings:
    cfg = current_app.config
    return accounts.Settings(activation_hours=cfg["ACTIVATION_TOKEN_HOURS"], reset_hours=cfg["RESET_TOKEN_HOURS"])


@bp.get("/annuaire")
@agent_required
def directory():
    q = (request.args.get("q") or "").strip()[:100]
    return render_template("admin/directory.html", q=q, families=svc.search_families(q))


def _family_page(family: Family, account_form=None, status=200):
    members = db.session.scalars(select(User).where(User.family_id == family.id).order_by(User.id)).all()
    return render_template("admin/directory_family.html", family=family, members=members,
                           demandes=svc.family_demandes(family), inscriptions=svc.family_inscriptions(family),
                           account_form=account_form or AccountForm(formdata=None, data={"last_name": family.name.title()}),
                           resident_form=ResidentForm(formdata=None, data={"resident": family.resident})), status


@bp.get("/annuaire/<int:family_id>")
@agent_required
def directory_family(family_id):
    return _family_page(get_or_404(db.session, Family, family_id))


def _create_account(family: Family | None, form: AccountForm):
    tenant = current_tenant()
    try:
        user, _password = accounts.precreate_account(
            tenant, email=form.email.data, first_name=form.first_name.data, last_name=form.last_name.data,
            links=WebLinks(), settings=_settings(), family=family)
    except accounts.AccountError as err:
        roll_back()
        form.email.errors.append(err.message)
        return None
    audit(_("Espace créé pour %(email)s", email=user.email))
    flash(_("L'espace de %(name)s est créé : un mail avec l'identifiant, un mot de passe provisoire et le lien "
            "d'activation est parti à %(email)s.", name=user.display_name, email=user.email), "success")
    return user


@bp.post("/annuaire/<int:family_id>/compte")
@agent_required
def directory_account(family_id):
    family = get_or_404(db.session, Family, family_id)
    form = AccountForm()
    has_account = db.session.scalar(select(User.id).where(User.family_id == family.id)) is not None
    if has_account:
        no_change()
        flash(_("Cette famille a déjà un espace."), "error")
        return redirect(url_for("admin.directory_family", family_id=family.id), code=303)
    if form.validate_on_submit() and _create_account(family, form) is not None:
        return redirect(url_for("admin.directory_family", family_id=family.id), code=303)
    no_change()
    return _family_page(family, account_form=form)


@bp.route("/annuaire/nouvelle", methods=["GET", "POST"])
@agent_required
def directory_new():
    form = AccountForm()
    if form.validate_on_submit():
        user = _create_account(None, form)
        if user is not None:
            return redirect(url_for("admin.directory_family", family_id=user.family_id), code=303)
    if form.is_submitted():
        no_change()
    return render_template("admin/directory_new.html", form=form)


@bp.post("/annuaire/<int:family_id>/residence")
@agent_required
def directory_resident(family_id):
    family = get_or_404(db.session, Family, family_id)
    form = ResidentForm()
    form.validate_on_submit()
    family.resident = bool(form.resident.data)
    if family.resident:
        text = _("Famille %(name)s : résidant dans la commune.", name=family.name)
    else:
        text = _("Famille %(name)s : ne réside pas dans la commune.", name=family.name)
    audit(text)
    flash(text, "success")
    return redirect(url_for("admin.directory_family", family_id=family.id), code=303)

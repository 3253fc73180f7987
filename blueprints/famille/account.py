"""Mes abonnements (code abonné famille), the co-représentant's invitation, the login e-mail,
the family's data (JSON) and the account deletion request."""

import json

from flask import Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from blueprints.famille import bp
from blueprints.famille.forms import (
    ButtonForm,
    CodeForm,
    DeletionForm,
    EmailChangeForm,
    InvitationAccountForm,
    InviteForm,
)
from core import accounts
from core.dossier.common import DossierError
from core.dossier.deletion import request_account_deletion
from core.dossier.export import export_family
from core.dossier.login_email import confirm_email_change, request_email_change
from core.dossier.membership import (
    INVITATION_DAYS,
    accept_invitation_existing,
    accept_invitation_new_account,
    claim_family_code,
    invite_coparent,
    open_invitation,
)
from core.models import ROLE_PARENT
from extensions import limiter
from tenants.web import current_tenant, role_required
from web.transaction import roll_back


def _locale() -> str:
    lang = request.cookies.get("lang")
    return lang if lang in current_app.config["LANGUAGES"] else "fr"


def _failed(response) -> bool:
    return response.status_code != 302


def _user_key() -> str:
    return f"family-code:{request.path.split('/')[1]}:{current_user.get_id()}"


# ---------------------------------------------------------------- Mes abonnements

@bp.route("/famille/abonnements", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
@limiter.limit("10 per hour", key_func=_user_key, methods=["POST"], deduct_when=_failed)
def abonnements():
    form = CodeForm()
    if form.validate_on_submit():
        try:
            family = claim_family_code(current_user, form.code.data)
        except DossierError as err:
            roll_back()
            form.code.errors.append(err.message)
        else:
            flash(_("Votre espace est maintenant rattaché au dossier famille %(name)s.", name=family.name), "success")
            return redirect(url_for("famille.dossier"))
    return render_template("famille/abonnements.html", form=form, family=current_user.family)


# ---------------------------------------------------------------- co-représentant

@bp.route("/famille/co-representant", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def invite():
    family = current_user.family
    if family is None:
        return redirect(url_for("famille.abonnements"))
    form = InviteForm()
    if form.validate_on_submit():
        try:
            invite_coparent(family=family, inviter=current_user, email=form.email.data,
                            first_name=form.first_name.data, last_name=form.last_name.data)
        except DossierError as err:
            roll_back()
            form.email.errors.append(err.message)
        else:
            flash(_("L'invitation a été envoyée à %(email)s. Le lien est valable %(days)d jours.",
                    email=accounts.normalize_email(form.email.data), days=INVITATION_DAYS), "success")
            return redirect(url_for("famille.dossier"))
    return render_template("famille/form.html", form=form, title=_("Inviter le co-représentant"),
                           intro=_("L'autre responsable de l'enfant reçoit un lien pour créer son propre espace, "
                                   "rattaché à votre dossier famille. Il verra et pourra modifier le même dossier."),
                           back=url_for("famille.dossier"), submit=_("Envoyer l'invitation"))


@bp.route("/famille/invitation/<token>", methods=["GET", "POST"])
def invitation(token):
    tenant = current_tenant()
    try:
        inv = open_invitation(token)
    except DossierError as err:
        roll_back()
        return render_template("famille/message.html", title=_("Invitation impossible"), message=err.message), 410
    logged_in = current_user.is_authenticated and getattr(current_user, "tenant_id", None) == tenant.id
    if logged_in:
        if current_user.email != inv.email or current_user.role != ROLE_PARENT:
            return render_template("famille/message.html", title=_("Invitation au dossier famille"),
                                   message=_("Cette invitation est adressée à %(email)s. Déconnectez-vous pour "
                                             "l'accepter avec cette adresse.", email=inv.email)), 403
        join_form = ButtonForm()
        if join_form.validate_on_submit():
            try:
                accept_invitation_existing(inv, current_user)
            except DossierError as err:
                roll_back()
                flash(err.message, "error")
            else:
                flash(_("Vous avez rejoint le dossier famille %(name)s.", name=inv.family.name), "success")
                return redirect(url_for("famille.dossier"))
        return render_template("famille/invitation.html", inv=inv, join_form=join_form)
    if accounts.find_user_by_email(inv.email) is not None:
        return render_template("famille/invitation.html", inv=inv, existing=True)
    form = InvitationAccountForm(data={"first_name": inv.first_name, "last_name": inv.last_name})
    policy = tenant.setting("password_policy", default={})
    if form.validate_on_submit():
        try:
            user = accept_invitation_new_account(inv, tenant=tenant, first_name=form.first_name.data,
                                                 last_name=form.last_name.data, password=form.password.data,
                                                 locale=_locale())
        except DossierError as err:
            roll_back()
            (form.password if err.field == "password" else form.first_name).errors.append(err.message)
        else:
            session.clear()
            login_user(user)
            flash(_("Votre espace est créé et rattaché au dossier famille %(name)s.", name=inv.family.name),
                  "success")
            return redirect(url_for("famille.dossier"))
    return render_template("famille/invitation.html", inv=inv, form=form, rule=accounts.password_rule(policy))


# ---------------------------------------------------------------- login e-mail

@bp.route("/famille/adresse-email", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def email_change():
    form = EmailChangeForm()
    if form.validate_on_submit():
        if not accounts.check_password(current_user, form.password.data):
            form.password.errors.append(_("Le mot de passe actuel est incorrect."))
        else:
            try:
                request_email_change(current_user, form.email.data)
            except DossierError as err:
                roll_back()
                form.email.errors.append(err.message)
            else:
                flash(_("Un lien de confirmation a été envoyé à %(email)s. Votre adresse de connexion ne change "
                        "qu'après avoir cliqué sur ce lien.", email=accounts.normalize_email(form.email.data)),
                      "success")
                return redirect(url_for("famille.dossier"))
    return render_template("famille/form.html", form=form, title=_("Changer mon adresse e-mail de connexion"),
                           intro=_("Votre adresse actuelle : %(email)s. Un lien de confirmation sera envoyé à la "
                                   "nouvelle adresse.", email=current_user.email),
                           back=url_for("famille.dossier"), submit=_("Envoyer le lien de confirmation"))


@bp.get("/famille/adresse-email/<token>")
def email_confirm(token):
    current_tenant()
    try:
        user = confirm_email_change(token)
    except DossierError as err:
        roll_back()
        return render_template("famille/message.html", title=_("Confirmation impossible"), message=err.message), 410
    return render_template("famille/message.html", title=_("Adresse e-mail confirmée"),
                           message=_("Votre adresse de connexion est désormais %(email)s.", email=user.email),
                           login=not current_user.is_authenticated)


# ---------------------------------------------------------------- my data

@bp.get("/famille/mes-donnees.json")
@role_required(ROLE_PARENT)
def export():
    family = current_user.family
    if family is None:
        return redirect(url_for("famille.abonnements"))
    data = export_family(family, current_tenant())
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="dossier-famille-{family.code}.json"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/famille/supprimer-mon-compte", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def deletion():
    form = DeletionForm()
    if form.validate_on_submit():
        if not accounts.check_password(current_user, form.password.data):
            form.password.errors.append(_("Le mot de passe actuel est incorrect."))
        else:
            email = current_user.email
            request_account_deletion(current_user, form.reason.data)
            logout_user()
            session.clear()
            return render_template("famille/message.html", title=_("Demande de suppression enregistrée"),
                                   message=_("Votre demande de suppression du compte %(email)s a été transmise à "
                                             "la collectivité. Votre espace est désactivé : vous ne pouvez plus "
                                             "vous connecter.", email=email))
    return render_template("famille/form.html", form=form, title=_("Supprimer mon compte"),
                           intro=_("Votre compte sera désactivé immédiatement et la collectivité sera informée de "
                                   "votre demande. Les données nécessaires à la facturation peuvent être conservées "
                                   "le temps prévu par la loi. Pensez à télécharger vos données avant."),
                           back=url_for("famille.dossier"), submit=_("Demander la suppression de mon compte"),
                           danger=True)

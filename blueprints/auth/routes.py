from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from blueprints.auth import bp
from blueprints.auth.forms import (
    CguForm,
    ChangePasswordForm,
    EmailOnlyForm,
    LoginForm,
    NewPasswordForm,
    RegisterForm,
)
from core import accounts
from core.accounts import AccountError
from extensions import limiter
from tenants.web import current_tenant, login_required_here
from web.links import WebLinks, safe_next
from web.transaction import roll_back

GATE_EXEMPT = {
    "auth.logout", "auth.change_password", "auth.accept_cgu", "public.set_language", "static",
    "public.tenant_asset", "public.cgu",
}


def _settings() -> accounts.Settings:
    cfg = current_app.config
    return accounts.Settings(activation_hours=cfg["ACTIVATION_TOKEN_HOURS"], reset_hours=cfg["RESET_TOKEN_HOURS"])


def _locale() -> str:
    lang = request.cookies.get("lang")
    return lang if lang in current_app.config["LANGUAGES"] else "fr"


def _policy() -> dict:
    return current_tenant().setting("password_policy", default={})


@bp.before_app_request
def first_login_gate():
    """Pre-created accounts must change their password, then accept the CGU."""
    user = current_user._get_current_object()  # the proxy looked through once
    if not user.is_authenticated or request.endpoint in GATE_EXEMPT:
        return None
    tenant = getattr(g, "tenant", None)
    if tenant is None or getattr(user, "tenant_id", None) != tenant.id:
        return None
    if user.must_change_password:
        return redirect(url_for("auth.change_password"))
    if tenant.setting("accounts", "require_cgu") and user.cgu_accepted_at is None:
        return redirect(url_for("auth.accept_cgu"))
    return None


def _ip_key() -> str:
    return f"login-ip:{get_remote_address()}"


def _account_key() -> str:
    slug = request.path.strip("/").split("/")[0]
    return f"login-account:{slug}:{accounts.normalize_email(request.form.get('email', ''))[:254]}"


def _failed(response) -> bool:
    return response.status_code != 302


@bp.route("/connexion", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT"], key_func=_ip_key, methods=["POST"], deduct_when=_failed)
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT"], key_func=_account_key, methods=["POST"],
               deduct_when=_failed)
def login():
    tenant = current_tenant()
    form = LoginForm()
    not_activated = False
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data)
        except AccountError as err:
            roll_back()
            form.password.errors.append(err.message)
            not_activated = err.code == "not_activated"
        else:
            home = url_for("admin.index") if user.is_agent else url_for("famille.dashboard")
            next_url = safe_next(request.args.get("next"), home)
            session.clear()
            login_user(user)
            if user.locale is None:
                user.locale = _locale()
            return redirect(next_url)
    return render_template("auth/login.html", form=form, not_activated=not_activated, tenant=tenant,
                           resend_form=EmailOnlyForm(email=form.email.data))


@bp.post("/deconnexion")
def logout():
    logout_user()
    session.clear()
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("public.home"))


@bp.route("/creer-mon-espace", methods=["GET", "POST"])
def register():
    tenant = current_tenant()
    if not tenant.setting("accounts", "self_registration", default=True):
        return render_template("auth/register_closed.html"), 403
    form = RegisterForm()
    if form.validate_on_submit():
        if not accounts.password_is_valid(_policy(), form.password.data):
            form.password.errors.append(accounts.password_rule(_policy()))
        else:
            try:
                accounts.register_parent(
                    tenant, email=form.email.data, first_name=form.first_name.data,
                    last_name=form.last_name.data, password=form.password.data,
                    links=WebLinks(), locale=_locale(), settings=_settings(),
                )
            except AccountError as err:
                roll_back()
                target = form.email if err.code == "email_taken" else form.password
                target.errors.append(err.message)
            else:
                return render_template("auth/register_done.html", email=accounts.normalize_email(form.email.data))
    return render_template("auth/register.html", form=form, rule=accounts.password_rule(_policy()))


@bp.get("/activation/<token>")
def activate(token):
    current_tenant()
    try:
        user = accounts.activate(token)
    except AccountError as err:
        roll_back()
        return render_template("auth/activation.html", error=err.message, resend_form=EmailOnlyForm()), 410
    return render_template("auth/activation.html", user=user)


@bp.post("/activation/renvoyer")
@limiter.limit("5 per hour", key_func=_ip_key)
def resend_activation():
    form = EmailOnlyForm()
    if form.validate_on_submit():
        accounts.resend_activation(form.email.data, links=WebLinks(), settings=_settings())
    flash(_("Si un espace non activé existe pour cette adresse, un nouveau lien d'activation vient d'être envoyé."),
          "info")
    return redirect(url_for("auth.login"))


@bp.route("/mot-de-passe-oublie", methods=["GET", "POST"])
@limiter.limit("10 per hour", key_func=_ip_key, methods=["POST"])
def forgot_password():
    current_tenant()
    form = EmailOnlyForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data, links=WebLinks(), settings=_settings())
        return render_template("auth/forgot_done.html")
    return render_template("auth/forgot.html", form=form)


@bp.route("/reinitialiser/<token>", methods=["GET", "POST"])
def reset_password(token):
    form = NewPasswordForm()
    policy = _policy()
    if form.validate_on_submit():
        if not accounts.password_is_valid(policy, form.password.data):
            form.password.errors.append(accounts.password_rule(policy))
        else:
            try:
                accounts.reset_password(token, form.password.data, policy=policy)
            except AccountError as err:
                roll_back()
                form.password.errors.append(err.message)
            else:
                flash(_("Votre mot de passe a été modifié. Vous pouvez vous connecter."), "success")
                return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form, rule=accounts.password_rule(policy))


@bp.route("/mes-identifiants", methods=["GET", "POST"])
@login_required_here
def change_password():
    forced = current_user.must_change_password
    form = NewPasswordForm() if forced else ChangePasswordForm()
    policy = _policy()
    if form.validate_on_submit():
        if not forced and not accounts.check_password(current_user, form.current.data):
            form.current.errors.append(_("Le mot de passe actuel est incorrect."))
        elif not accounts.password_is_valid(policy, form.password.data):
            form.password.errors.append(accounts.password_rule(policy))
        else:
            try:
                accounts.set_password(current_user, form.password.data, policy=policy)
            except AccountError as err:
                roll_back()
                form.password.errors.append(err.message)
            else:
                flash(_("Votre mot de passe a été modifié."), "success")
                return redirect(url_for("famille.dashboard"))
    return render_template("auth/change_password.html", form=form, forced=forced, rule=accounts.password_rule(policy))


@bp.route("/conditions-generales", methods=["GET", "POST"])
@login_required_here
def accept_cgu():
    form = CguForm()
    if form.validate_on_submit():
        accounts.accept_cgu(current_user)
        return redirect(url_for("famille.dashboard"))
    return render_template("auth/cgu_accept.html", form=form)

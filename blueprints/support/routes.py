"""Support staff under /support/: login, the communes, the switch into one, the audit log.

/support/ has its own session cookie, and each commune its own: a switch records an audit entry
holding a one-time token (2 minutes), then redirects to /<slug>/admin/support-entree, which logs
the support member into that commune's session as its acting agent.  While inside, every page
shows "Mode support — <commune>" and every change is written to the audit log.
"""

from __future__ import annotations

import logging
from functools import wraps

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from blueprints.support import bp
from core import audit
from core.accounts import check_password, normalize_email
from core.admin_models import AuditLog
from core.clock import utcnow
from core.models import DEMANDE_OPEN, Demande, SupportUser
from extensions import db, limiter
from tenants.context import tenant_scope
from tenants.models import Tenant
from tenants.web import load_tenant, support_in
from web.links import safe_next
from web.transaction import before_commit

log = logging.getLogger(__name__)

REQUIRED = _l("Ce champ est obligatoire.")
NOT_AUDITED = {"public.set_language"}
_DUMMY_HASH = generate_password_hash("support-dummy-0")


class SupportLoginForm(FlaskForm):
    email = EmailField(_l("Adresse e-mail"), validators=[DataRequired(REQUIRED), Length(max=254)])
    password = PasswordField(_l("Mot de passe"), validators=[DataRequired(REQUIRED), Length(max=128)])


class SwitchForm(FlaskForm):
    pass


def support_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not (current_user.is_authenticated and getattr(current_user, "is_support", False)):
            return redirect(url_for("support.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


# ---------------------------------------------------------------------------- app-wide hooks

@bp.before_app_request
def _support_mode():
    """Inside a commune, a support member sees the banner on every page."""
    tenant = getattr(g, "tenant", None)
    if tenant is not None and support_in(tenant):
        g.support_mode = tenant.name


@before_commit
def _audit_support_changes(response) -> None:
    """Every change made in support mode goes to the commune's audit log, in the change's own
    transaction (web/transaction.py calls this before it commits)."""
    if not getattr(g, "support_mode", None) or request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    if g.get("audit_skip") or g.get("audit_done") or response.status_code >= 400 \
            or request.endpoint in NOT_AUDITED:
        return
    what = g.get("audit_what") or f"{request.method} {request.path}"
    try:
        audit.record_change(current_user, what, path=request.path)
    except Exception:  # never turn the change into an error page
        log.exception("audit entry not written for %s", request.path)


# ---------------------------------------------------------------------------- login

def _ip_key() -> str:
    return f"support-login:{get_remote_address()}"


def _failed(response) -> bool:
    return response.status_code != 302


@bp.route("/connexion", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT"], key_func=_ip_key, methods=["POST"], deduct_when=_failed)
def login():
    form = SupportLoginForm()
    if form.validate_on_submit():
        user = db.session.scalars(select(SupportUser).where(
            SupportUser.email == normalize_email(form.email.data))).first()
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data or "")  # same time for unknown addresses
        if user is None or not check_password(user, form.password.data):
            form.password.errors.append(_("Identifiant ou mot de passe incorrect."))
        else:
            next_url = safe_next(request.args.get("next"), url_for("support.index"))
            session.clear()
            login_user(user)
            user.last_login_at = utcnow()
            return redirect(next_url)
    return render_template("support/login.html", form=form)


@bp.post("/deconnexion")
def logout():
    logout_user()
    session.clear()
    flash(_("Vous êtes déconnecté."), "info")
    return redirect(url_for("support.login"))


# ---------------------------------------------------------------------------- communes

@bp.get("/")
@support_required
def index():
    tenants = db.session.scalars(select(Tenant).order_by(Tenant.name)).all()
    open_counts = {}
    for tenant in tenants:  # each commune in its scope: row-level security shows a commune its own rows
        with tenant_scope(tenant.id):
            open_counts[tenant.id] = db.session.scalar(
                select(func.count()).select_from(Demande).where(Demande.status.in_(DEMANDE_OPEN)))
    return render_template("support/index.html", tenants=tenants, open_counts=open_counts, form=SwitchForm())


@bp.post("/communes/<slug>/entrer")
@support_required
def enter(slug):
    """The switch: recorded first, then a one-time token takes the support member into the commune."""
    if not SwitchForm().validate_on_submit():  # CSRF already checked; keeps the form API uniform
        return redirect(url_for("support.index"))
    tenant = load_tenant(slug)  # 404 for a commune that does not exist
    with tenant_scope(tenant.id):
        _entry, token = audit.record_switch_in(current_user, tenant.name)
        db.session.flush()  # in the commune's scope; committed when the view answers
    return redirect(url_for("admin.support_entry", tenant=tenant.slug, jeton=token))


@bp.get("/journal")
@support_required
def journal():
    tenants = {t.id: t for t in db.session.scalars(select(Tenant))}
    slug = request.args.get("commune") or ""
    chosen = next((t for t in tenants.values() if t.slug == slug), None)
    query = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(300)
    entries = []
    for tenant in ([chosen] if chosen is not None else sorted(tenants.values(), key=lambda t: t.id)):
        with tenant_scope(tenant.id):  # each commune in its scope (row-level security), then merged
            entries.extend(db.session.scalars(query).all())
    entries = sorted(entries, key=lambda e: (e.at, e.id), reverse=True)[:300]
    return render_template("support/journal.html", entries=entries, tenants=tenants, chosen=chosen)

"""Support inside a commune: the entry (one-time token from /support/), the exit, the audit log."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from blueprints.admin import bp
from blueprints.admin.common import in_support_mode
from blueprints.admin.forms import ButtonForm
from core import audit
from core.clock import utcnow
from core.models import SupportUser
from extensions import db
from tenants.web import SUPPORT_SESSION_KEY, agent_required, current_tenant

ENTRY_TOKEN_LIFETIME = timedelta(minutes=2)


@bp.get("/support-entree")
def support_entry():
    """Log the support member who asked for this switch into this commune's session (once, 2 minutes)."""
    tenant = current_tenant()
    token = request.args.get("jeton", "")
    entry = audit.consume_switch_token(token)
    if entry is None or entry.at < utcnow() - ENTRY_TOKEN_LIFETIME:
        abort(404)
    support = db.session.get(SupportUser, entry.support_user_id)
    if support is None:
        abort(404)
    session.clear()
    login_user(support)
    session[SUPPORT_SESSION_KEY] = tenant.id
    flash(_("Vous agissez en mode support pour %(commune)s : vos modifications sont enregistrées dans le journal.",
            commune=tenant.name), "info")
    return redirect(url_for("admin.index"))


@bp.post("/support-sortie")
@agent_required
def support_exit():
    if not in_support_mode():
        abort(404)
    tenant = current_tenant()
    audit.record_switch_out(current_user, tenant.name)
    g.audit_done = True
    logout_user()
    session.clear()
    return redirect(url_for("support.index"))


@bp.get("/journal")
@agent_required
def journal():
    return render_template("admin/journal.html", entries=audit.entries(), form=ButtonForm())

"""Agents see the commune's mails: status, attempts, last error; a failed one can be sent again."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from blueprints.admin import bp
from core.mail import resend
from core.models import MAIL_FAILED, MAIL_PENDING, MAIL_QUEUED, MAIL_SENT, Family, OutboxMail, User
from extensions import db
from jobs.mail import SUBJECTS
from tenants.scoping import get_or_404
from tenants.web import agent_required
from web.links import safe_next

PER_PAGE = 50
STATUS_LABELS = {
    MAIL_PENDING: _l("En attente d'envoi"),
    MAIL_QUEUED: _l("En file d'envoi"),
    MAIL_SENT: _l("Envoyé"),
    MAIL_FAILED: _l("Échec"),
}


def _when(value):
    return format_datetime(value, "dd/MM/yyyy HH:mm") if value else ""


def _page() -> int:
    try:
        return min(max(1, int(request.args.get("page", 1))), 100_000)
    except ValueError:
        return 1


def _listing(template: str, query, **context):
    status = request.args.get("statut", "")
    if status in STATUS_LABELS:
        query = query.where(OutboxMail.status == status)
    else:
        status = ""
    page = _page()
    rows = db.session.execute(
        query.order_by(OutboxMail.created_at.desc(), OutboxMail.id.desc())
        .offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1)
    ).all()
    counts = dict(db.session.execute(
        select(OutboxMail.status, func.count()).group_by(OutboxMail.status)).all())
    return render_template(
        template, rows=rows[:PER_PAGE], page=page, has_next=len(rows) > PER_PAGE, status=status,
        counts=counts, labels=STATUS_LABELS, subjects=SUBJECTS, when=_when, **context)


def _base_query():
    return (select(OutboxMail, User.family_id, Family.name)
            .outerjoin(User, User.id == OutboxMail.user_id)
            .outerjoin(Family, Family.id == User.family_id))


@bp.get("/mails")
@agent_required
def mails():
    """Every mail of the commune, newest first, filterable by status and address."""
    query = _base_query()
    search = request.args.get("q", "").strip()[:254]
    if search:
        query = query.where(OutboxMail.to_address.icontains(search, autoescape=True))
    return _listing("admin/mails.html", query, search=search)


@bp.get("/familles/<int:family_id>/mails")
@agent_required
def family_mails(family_id):
    """The mails sent to a family's members."""
    family = get_or_404(db.session, Family, family_id)
    query = _base_query().where(User.family_id == family.id)
    return _listing("admin/mails_family.html", query, family=family, search="")


@bp.post("/mails/<int:mail_id>/renvoyer")
@agent_required
def mail_resend(mail_id):
    mail = get_or_404(db.session, OutboxMail, mail_id)
    back = safe_next(request.form.get("next"), url_for("admin.mails"))
    if resend(mail):
        flash(_l("Le mail à %(to)s est renvoyé.", to=mail.to_address), "success")
    else:
        flash(_l("Ce mail n'est pas en échec : il n'y a rien à renvoyer."), "error")
    return redirect(back)

"""Rendering and sending outbox mails (.txt/.html template pairs, the family's language)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.models import MAIL_FAILED, MAIL_SENT, OutboxMail
from extensions import db
from jobs import app_context
from tenants.context import tenant_scope
from tenants.models import Tenant

log = logging.getLogger(__name__)

SUBJECTS = {
    "activation": _l("Activez votre espace citoyens"),
    "account_precreated": _l("Votre espace citoyens a été créé"),
    "password_reset": _l("Réinitialisation de votre mot de passe"),
    "demande_received": _l("Nous avons bien reçu votre demande"),
    "demande_decided": _l("Votre demande a été traitée"),
    "waitlist_promoted": _l("Une place s'est libérée"),
    "lists_published": _l("Les listes sont établies"),
}


def render(mail: OutboxMail, tenant: Tenant) -> EmailMessage:
    with force_locale(mail.locale or "fr"):
        ctx = dict(mail.context or {}, tenant=tenant, mail=mail)
        subject = f"{SUBJECTS.get(mail.template, mail.template)} — {tenant.name}"
        text = render_template(f"email/{mail.template}.txt", **ctx)
        html = render_template(f"email/{mail.template}.html", **ctx)
    msg = EmailMessage()
    sender = tenant.setting("sender_email") or current_app.config["MAIL_DEFAULT_SENDER"]
    msg["Subject"] = subject
    msg["From"] = formataddr((tenant.name, sender))
    msg["To"] = mail.to_address
    reply_to = tenant.setting("contact_email")
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Message-ID"] = make_msgid(idstring=f"mail{mail.id}", domain=sender.split("@")[-1])
    msg["X-Portail-Mail-Id"] = str(mail.id)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def deliver(msg: EmailMessage, mail_id: int) -> None:
    cfg = current_app.config
    if cfg["MAIL_BACKEND"] == "file":
        outbox = Path(cfg["OUTBOX_DIR"])
        outbox.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        path = outbox / f"{stamp}-{mail_id:06d}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(msg))
        tmp.rename(path)
        return
    with smtplib.SMTP(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=30) as smtp:
        if cfg.get("MAIL_USE_STARTTLS"):
            smtp.starttls()
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD") or "")
        smtp.send_message(msg)


def send_mail(mail_id: int, tenant_id: int) -> str:
    """The job: send one outbox mail once.  Returns its final status."""
    with app_context(), tenant_scope(tenant_id), Session(db.engine) as session:
        query = select(OutboxMail).where(OutboxMail.id == mail_id)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        mail = session.scalars(query).first()
        if mail is None:
            return "missing"
        if mail.status == MAIL_SENT:
            return MAIL_SENT  # idempotent: a job run twice sends once
        tenant = session.get(Tenant, tenant_id)
        mail.attempts += 1
        try:
            msg = render(mail, tenant)
            deliver(msg, mail.id)
        except Exception as exc:  # recorded, never lost: the sweep or an agent sends it again
            log.exception("mail %s failed", mail_id)
            mail.status = MAIL_FAILED
            mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            session.commit()
            return MAIL_FAILED
        mail.status = MAIL_SENT
        mail.subject = str(msg["Subject"])
        mail.message_id = str(msg["Message-ID"])
        mail.sent_at = utcnow()
        mail.last_error = None
        session.commit()
        return MAIL_SENT

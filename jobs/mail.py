"""Rendering and sending outbox mails (.txt/.html template pairs, the family's language)."""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

from flask import current_app, render_template
from flask_babel import force_locale, format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.models import MAIL_FAILED, MAIL_PENDING, MAIL_QUEUED, MAIL_SENT, OutboxMail
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
    "family_change_decided": _l("Modification de votre dossier famille"),
    "coparent_invitation": _l("Invitation à rejoindre un dossier famille"),
    "email_change_confirm": _l("Confirmez votre nouvelle adresse e-mail"),
    "email_changed_notice": _l("Votre adresse de connexion a été modifiée"),
    "lists_published": _l("Les listes sont établies"),
    "piece_refused": _l("Pièce justificative refusée"),
    "piece_expiring": _l("Une pièce justificative expire bientôt"),
    "invoice_available": _l("Votre facture est disponible"),
    "payment_received": _l("Paiement reçu"),
    "invoice_reminder": _l("Votre facture arrive à échéance"),
    "invoice_overdue": _l("Facture en retard"),
    "debit_rejected": _l("Prélèvement rejeté"),
}


def _when(value: str | None, pattern: str) -> str:
    """An ISO date or UTC datetime written in the mail's language ("30 septembre 2026"), Paris time."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    except (TypeError, ValueError):
        return str(value)
    return format_date(parsed, pattern)


def _context(mail: OutboxMail, tenant: Tenant) -> dict:
    """The stored context, plus dates already written in the mail's language (call under force_locale)."""
    ctx = dict(mail.context or {}, tenant=tenant, mail=mail)
    if "deposited_at" in ctx:
        ctx["deposited_on"] = _when(ctx["deposited_at"], "d MMMM yyyy")
    if "valid_until" in ctx:
        ctx["valid_until_text"] = _when(ctx["valid_until"], "d MMMM yyyy")
    if "first_date" in ctx:
        ctx["first_date_text"] = _when(ctx["first_date"], "EEEE d MMMM yyyy")
    if "due_on" in ctx:
        ctx["due_on_text"] = _when(ctx["due_on"], "d MMMM yyyy")
    if "period" in ctx:
        ctx["period_text"] = _when(ctx["period"], "LLLL yyyy")
    if "total_cents" in ctx:  # amounts travel in cents; written the French way (12,50 €)
        from decimal import Decimal

        from core.billing.pricing import euros

        ctx["total_text"] = euros(Decimal(int(ctx["total_cents"])) / 100)
        if int(ctx.get("credit_cents") or 0) > 0:
            ctx["credit_text"] = euros(Decimal(int(ctx["credit_cents"])) / 100)
    return ctx


def render(mail: OutboxMail, tenant: Tenant) -> EmailMessage:
    with force_locale(mail.locale or "fr"):
        ctx = _context(mail, tenant)
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


def retry_delay(attempts: int) -> int:
    """Seconds to wait after the n-th failed attempt (the last configured delay repeats)."""
    delays = current_app.config["MAIL_RETRY_DELAYS"] or (0,)
    return int(delays[min(max(attempts, 1), len(delays)) - 1])


def send_mail(mail_id: int, tenant_id: int) -> str:
    """The job: send one outbox mail once.  Returns the mail's status afterwards.

    The mail is claimed by a conditional UPDATE (attempts + 1) that only matches a mail still to
    send and due; the row stays locked until the outcome is committed, so a job run twice, or the
    same mail queued twice and taken by two workers, sends once.  A failure is recorded (attempts,
    last_error) and tried again after a growing delay; after MAIL_MAX_ATTEMPTS it is "failed".
    """
    with app_context(), tenant_scope(tenant_id), Session(db.engine) as session:
        now = utcnow()
        table = OutboxMail.__table__
        mine = (table.c.id == mail_id, table.c.tenant_id == tenant_id)
        claimed = session.execute(
            update(table)
            .where(*mine, table.c.status.in_((MAIL_PENDING, MAIL_QUEUED)),
                   or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now))
            .values(attempts=table.c.attempts + 1)
        ).rowcount
        if claimed != 1:  # already sent, failed, not due yet, or gone: nothing to do
            session.rollback()
            return session.scalar(select(table.c.status).where(*mine)) or "missing"
        mail = session.scalars(select(OutboxMail).where(OutboxMail.id == mail_id)).one()
        tenant = session.get(Tenant, tenant_id)
        try:
            msg = render(mail, tenant)
            deliver(msg, mail.id)
        except Exception as exc:  # recorded, never lost: tried again, then shown to the agents
            log.warning("mail %s: attempt %s failed: %s", mail_id, mail.attempts, exc)
            mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if mail.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
                mail.status = MAIL_FAILED
                mail.next_attempt_at = None
                session.commit()
                return MAIL_FAILED
            mail.status = MAIL_QUEUED
            mail.next_attempt_at = now + timedelta(seconds=retry_delay(mail.attempts))
            mail.queued_at = now
            when, attempt = mail.next_attempt_at, mail.attempts
            session.commit()
            _queue_retry(mail_id, tenant_id, attempt, when)
            return MAIL_QUEUED
        mail.status = MAIL_SENT
        mail.subject = str(msg["Subject"])
        mail.message_id = str(msg["Message-ID"])
        mail.sent_at = utcnow()
        mail.next_attempt_at = None
        mail.last_error = None
        session.commit()
        return MAIL_SENT


def _queue_retry(mail_id: int, tenant_id: int, attempt: int, when) -> None:
    """Inside an RQ job: queue the next attempt on the same queue (at `when`, by RQ's scheduler).

    Outside a job (inline mode) or when Redis refuses, the sweep queues it once it is due.
    """
    from rq import Queue, get_current_job

    job = get_current_job()
    if job is None:
        return
    queue = Queue(job.origin, connection=job.connection)
    job_id = f"mail-{mail_id}-retry{attempt}-{utcnow():%Y%m%d%H%M%S%f}"
    try:
        if when <= utcnow():
            queue.enqueue(send_mail, mail_id, tenant_id, job_id=job_id)
        else:
            queue.enqueue_at(when.replace(tzinfo=UTC), send_mail, mail_id, tenant_id, job_id=job_id)
    except Exception:  # noqa: BLE001 - the sweep takes over
        log.warning("mail %s: retry not queued, left for the sweep", mail_id)


def due_mails(now=None, limit: int = 500) -> list[tuple[int, int]]:
    """(id, tenant_id) of the mails the sweep hands over again, oldest first, every commune.

    Never queued (pending: Redis was down), a retry whose time has come, or queued so long
    ago that its job was lost (MAIL_STUCK_AFTER).  One commune at a time, in its scope (row-level
    security shows a connection one commune's mails only).
    """

    now = now or utcnow()
    stuck = now - timedelta(seconds=current_app.config["MAIL_STUCK_AFTER"])
    c = OutboxMail.__table__.c
    query = (
        select(c.id, c.tenant_id)
        .where(or_(
            c.status == MAIL_PENDING,
            and_(c.status == MAIL_QUEUED, c.next_attempt_at.is_not(None), c.next_attempt_at <= now),
            and_(c.status == MAIL_QUEUED, c.next_attempt_at.is_(None),
                 or_(c.queued_at.is_(None), c.queued_at <= stuck)),
        ))
        .order_by(c.id)
        .limit(limit)
    )
    with db.engine.connect() as conn:
        communes = list(conn.scalars(select(Tenant.id).order_by(Tenant.id)))
    found = []
    for tenant_id in communes:
        with tenant_scope(tenant_id), db.engine.connect() as conn:
            found.extend((row.id, row.tenant_id) for row in conn.execute(query.where(c.tenant_id == tenant_id)))
    return sorted(found)[:limit]


def sweep() -> int:
    """`flask mail flush` and the worker's periodic sweep: hand over again what is due.  Returns the count."""
    from jobs.dispatch import dispatch

    with app_context():
        ids = due_mails()
        return dispatch(ids) if ids else 0

"""Recording mails in the outbox (same transaction as what causes them).

Sending happens after commit, in jobs/mail.py; nothing here talks to a queue.
"""

from __future__ import annotations

from core.models import MAIL_FAILED, MAIL_PENDING, OutboxMail
from extensions import db

SESSION_KEY = "portail_mail_ids"  # (id, tenant_id) of the mails to hand to the queue after commit


def _base_url() -> str:
    """Where links in mails point: this request's host, else PUBLIC_URL (jobs, CLI)."""
    from flask import current_app, has_request_context, request

    if has_request_context():
        return request.host_url.rstrip("/")
    return current_app.config.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/")


def queue_mail(*, to: str, template: str, context: dict, locale: str | None = "fr", user=None) -> OutboxMail:
    """Record a mail.  A context "path" (relative to the commune, e.g. /demandes/12) becomes an absolute "link"."""
    if "path" in context and "link" not in context:
        from tenants.context import require_tenant_id
        from tenants.models import Tenant

        tenant = db.session.get(Tenant, require_tenant_id())
        context = dict(context, link=f"{_base_url()}/{tenant.slug}{context['path']}")
    mail = OutboxMail(
        to_address=to,
        template=template,
        context=context,
        locale=locale or "fr",
        user_id=getattr(user, "id", None),
    )
    db.session.add(mail)
    return mail


def queue_mails(mails: list[dict]) -> list[int]:
    """Record many mails at once — a publication mails every family once — in ONE statement.

    Each item: ``to``, ``template``, ``context`` (a "path" becomes a "link", as in `queue_mail`),
    optional ``locale`` and ``user_id``.  Same transaction as what causes them, same after-commit
    hand-over (jobs/dispatch.py, in one Redis pipeline); a rollback forgets them.  Returns their ids.
    """
    if not mails:
        return []
    from sqlalchemy import insert

    from core.clock import utcnow
    from tenants.context import require_tenant_id
    from tenants.models import Tenant

    tenant_id = require_tenant_id()
    prefix = None
    now = utcnow()
    rows = []
    for item in mails:
        context = item["context"]
        if "path" in context and "link" not in context:
            if prefix is None:
                prefix = f"{_base_url()}/{db.session.get(Tenant, tenant_id).slug}"
            context = dict(context, link=prefix + context["path"])
        rows.append({"tenant_id": tenant_id, "to_address": item["to"], "template": item["template"],
                     "context": context, "locale": item.get("locale") or "fr", "user_id": item.get("user_id"),
                     "status": MAIL_PENDING, "attempts": 0, "created_at": now})
    table = OutboxMail.__table__
    # Core, in the session's transaction: INSERT … VALUES (…), (…) … RETURNING id, in batches of
    # ~1,000 rows (SQLAlchemy's "insertmanyvalues"); the ids in whatever order they come
    ids = sorted(db.session.connection().execute(insert(table).returning(table.c.id), rows).scalars())
    db.session.info.setdefault(SESSION_KEY, []).extend((mail_id, tenant_id) for mail_id in ids)
    return ids


def resend(mail: OutboxMail) -> bool:
    """An agent's "Renvoyer": a failed mail gets a fresh round of attempts, handed over after commit."""
    if mail.status != MAIL_FAILED:
        return False
    mail.status = MAIL_PENDING
    mail.attempts = 0
    mail.next_attempt_at = None
    mail.queued_at = None
    db.session.info.setdefault(SESSION_KEY, []).append((mail.id, mail.tenant_id))
    return True

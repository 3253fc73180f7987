"""Recording mails in the outbox (same transaction as what causes them).

Sending happens after commit, in jobs/mail.py; nothing here talks to a queue.
"""

from __future__ import annotations

from core.models import OutboxMail
from extensions import db

SESSION_KEY = "portail_new_mail_ids"


def queue_mail(*, to: str, template: str, context: dict, locale: str | None = "fr", user=None) -> OutboxMail:
    mail = OutboxMail(
        to_address=to,
        template=template,
        context=context,
        locale=locale or "fr",
        user_id=getattr(user, "id", None),
    )
    db.session.add(mail)
    return mail

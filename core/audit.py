"""The audit log: every support switch and every change made in support mode (who, when, commune, what).

Entries are written inside the commune's scope (``tenant_scope`` or a request of the commune);
the commune's agents read their commune's entries, support reads every commune's.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from core.admin_models import AUDIT_CHANGE, AUDIT_SWITCH_IN, AUDIT_SWITCH_OUT, AuditLog
from extensions import db


def record(*, actor: str, action: str, what: str, support_user_id: int | None = None,
           path: str | None = None, token: str | None = None) -> AuditLog:
    entry = AuditLog(actor=actor[:200], action=action, what=what, support_user_id=support_user_id,
                     path=(path or None) and path[:300], token=token)
    db.session.add(entry)
    return entry


def record_switch_in(support_user, commune_name: str) -> tuple[AuditLog, str]:
    """A support switch into the current commune; returns the entry and its one-time entry token."""
    token = secrets.token_urlsafe(24)
    entry = record(actor=support_actor(support_user), action=AUDIT_SWITCH_IN,
                   what=f"Entrée en mode support — {commune_name}", support_user_id=support_user.id, token=token)
    return entry, token


def consume_switch_token(token: str) -> AuditLog | None:
    """The entry token of a switch into the current commune, usable once."""
    if not token:
        return None
    entry = db.session.scalars(select(AuditLog).where(
        AuditLog.token == token, AuditLog.action == AUDIT_SWITCH_IN,
        AuditLog.support_user_id.is_not(None))).first()
    if entry is None:
        return None
    entry.token = None
    return entry


def record_switch_out(support_user, commune_name: str) -> AuditLog:
    return record(actor=support_actor(support_user), action=AUDIT_SWITCH_OUT,
                  what=f"Sortie du mode support — {commune_name}", support_user_id=support_user.id)


def record_change(support_user, what: str, path: str | None = None) -> AuditLog:
    return record(actor=support_actor(support_user), action=AUDIT_CHANGE, what=what,
                  support_user_id=support_user.id, path=path)


def support_actor(support_user) -> str:
    return f"{support_user.display_name} (support)"


def entries(limit: int = 200) -> list[AuditLog]:
    """The current commune's entries, newest first."""
    return db.session.scalars(select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
                              .limit(limit)).all()

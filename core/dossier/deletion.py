"""A parent asks for their account's deletion (deactivated at once); agents handle the requests."""

from __future__ import annotations

from sqlalchemy import func, select

from core.clock import utcnow
from core.dossier.models import DELETION_HANDLED, DELETION_OPEN, AccountDeletionRequest, FamilyInvitation
from core.models import User
from extensions import db


def request_account_deletion(user: User, reason: str | None) -> AccountDeletionRequest:
    row = AccountDeletionRequest(user_id=user.id, tenant_id=user.tenant_id, family_id=user.family_id,
                                 user_email=user.email, user_name=user.display_name,
                                 reason=(reason or "").strip() or None)
    db.session.add(row)
    user.deactivated_at = utcnow()
    if user.family_id is not None and not db.session.scalar(select(func.count()).select_from(User).where(
            User.family_id == user.family_id, User.id != user.id, User.deactivated_at.is_(None))):
        # the family's last active account: its pièces justificatives go now (files after the commit)
        from core.documents.services import purge_family

        purge_family(user.family_id)
    for inv in db.session.scalars(select(FamilyInvitation).where(FamilyInvitation.invited_by_id == user.id,
                                                                 FamilyInvitation.accepted_at.is_(None))):
        inv.revoked_at = utcnow()
    return row


def deletion_requests(status: str | None = DELETION_OPEN) -> list[AccountDeletionRequest]:
    stmt = select(AccountDeletionRequest).order_by(AccountDeletionRequest.requested_at.desc())
    if status:
        stmt = stmt.where(AccountDeletionRequest.status == status)
    return list(db.session.scalars(stmt))


def mark_deletion_handled(row: AccountDeletionRequest, *, agent) -> None:
    row.status = DELETION_HANDLED
    row.handled_at = utcnow()
    row.handled_by = agent.display_name

"""A parent changes their login e-mail: confirmed from the new address, the old one told."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import select

from core.accounts import find_user_by_email, normalize_email
from core.clock import utcnow
from core.dossier.common import DossierError, token_hash
from core.dossier.models import EmailChange
from core.mail import queue_mail
from core.models import User
from extensions import db

EMAIL_CHANGE_HOURS = 48


def request_email_change(user: User, new_email: str) -> EmailChange:
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise DossierError(_("C'est déjà votre adresse de connexion."), field="email")
    if find_user_by_email(new_email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail."), field="email")
    raw = secrets.token_urlsafe(32)
    row = EmailChange(user_id=user.id, tenant_id=user.tenant_id, new_email=new_email, token_hash=token_hash(raw),
                      expires_at=utcnow() + timedelta(hours=EMAIL_CHANGE_HOURS))
    db.session.add(row)
    queue_mail(to=new_email, template="email_change_confirm", locale=user.locale, user=user,
               context={"name": user.display_name, "new_email": new_email, "hours": EMAIL_CHANGE_HOURS,
                        "path": f"/famille/adresse-email/{raw}"})
    return row


def confirm_email_change(raw: str) -> User:
    row = db.session.scalars(select(EmailChange).where(EmailChange.token_hash == token_hash(raw))).first()
    if row is None:
        raise DossierError(_("Ce lien n'est pas valide."), code="invalid")
    if row.confirmed_at is not None:
        raise DossierError(_("Ce lien a déjà été utilisé."), code="used")
    if row.expires_at < utcnow():
        raise DossierError(_("Ce lien a expiré. Demandez-en un nouveau."), code="expired")
    user = row.user
    if not user.is_active:
        raise DossierError(_("Ce lien n'est pas valide."), code="invalid")
    if find_user_by_email(row.new_email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail."), code="taken")
    old = user.email
    user.email = row.new_email
    row.confirmed_at = utcnow()
    for other in db.session.scalars(select(EmailChange).where(
            EmailChange.user_id == user.id, EmailChange.confirmed_at.is_(None), EmailChange.id != row.id)):
        other.expires_at = utcnow()
    queue_mail(to=old, template="email_changed_notice", locale=user.locale, user=user,
               context={"name": user.display_name, "new_email": row.new_email})
    return user

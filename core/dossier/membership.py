"""Who belongs to a family file: a parent links their account with the family code the commune gave
("Mes abonnements"), or a responsable invites the co-représentant."""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.accounts import find_user_by_email, hash_password, normalize_email, password_is_valid, password_rule
from core.clock import utcnow
from core.dossier.common import DossierError, token_hash
from core.dossier.models import (
    RESP_COPARENT,
    RESP_PRINCIPAL,
    AccountDeletionRequest,
    FamilyChange,
    FamilyCodeClaim,
    FamilyFile,
    FamilyInvitation,
    Responsable,
)
from core.dossier.records import members_of
from core.mail import queue_mail
from core.models import ROLE_PARENT, Cart, Child, Demande, Family, Reservation, User
from extensions import db

INVITATION_DAYS = 7
MAX_RESPONSABLES = 2


def _is_empty(family: Family, but_user: User) -> bool:
    others = db.session.scalar(select(func.count()).select_from(User).where(
        User.family_id == family.id, User.id != but_user.id))
    if others:
        return False
    for model in (Child, Demande, Cart, Reservation):
        if db.session.scalar(select(func.count()).select_from(model).where(model.family_id == family.id)):
            return False
    return True


def _drop_family(family: Family) -> None:
    for model in (FamilyChange, FamilyInvitation, FamilyFile, Responsable, FamilyCodeClaim):
        for row in db.session.scalars(select(model).where(model.family_id == family.id)):
            db.session.delete(row)
    for row in db.session.scalars(select(AccountDeletionRequest).where(AccountDeletionRequest.family_id == family.id)):
        row.family_id = None
    db.session.flush()
    db.session.delete(family)


def _move_to_family(user: User, family: Family) -> None:
    """Attach an account to a family; its own empty family (created with the account) goes away."""
    old = user.family
    if old is not None and old.id != family.id and not _is_empty(old, user):
        raise DossierError(
            _("Votre espace est déjà rattaché à un dossier famille qui contient des enfants ou des demandes : "
              "contactez la collectivité pour regrouper les dossiers."), code="not_empty")
    own = db.session.scalars(select(Responsable).where(Responsable.user_id == user.id)).first()
    existing = list(db.session.scalars(select(Responsable).where(Responsable.family_id == family.id)))
    match = next((r for r in existing if r.user_id is None and r.email
                  and normalize_email(r.email) == user.email), None) or \
        next((r for r in existing if r.user_id is None and r.first_name.lower() == user.first_name.lower()
              and r.last_name.lower() == user.last_name.lower()), None)
    if own is not None:
        if match is not None:
            db.session.delete(own)
        else:
            own.family_id = family.id
            own.position = RESP_PRINCIPAL if not existing else RESP_COPARENT
    db.session.flush()
    if match is not None:
        match.user_id = user.id
    user.family = family
    db.session.flush()
    if old is not None and old.id != family.id:
        _drop_family(old)


def claim_family_code(user: User, code: str) -> Family:
    """A parent links their account to the family file the commune created, with its code.

    A code links once (a unique row backs it), only in its commune (queries are scoped).
    """
    code = (code or "").strip().upper()
    family = db.session.scalars(select(Family).where(func.upper(Family.code) == code)).first() if code else None
    if family is None:
        raise DossierError(_("Aucun dossier famille ne correspond à ce code abonné. Vérifiez-le ou contactez la "
                             "collectivité."), code="unknown", field="code")
    if user.family_id == family.id:
        raise DossierError(_("Votre espace est déjà rattaché à ce dossier famille."), code="already", field="code")
    used = db.session.scalars(select(FamilyCodeClaim).where(FamilyCodeClaim.family_id == family.id)).first()
    has_members = db.session.scalar(select(func.count()).select_from(User).where(User.family_id == family.id))
    if used is not None or has_members:
        raise DossierError(_("Ce code abonné a déjà été utilisé. Pour rejoindre un dossier famille existant, "
                             "demandez une invitation au responsable du dossier."), code="used", field="code")
    try:
        with db.session.begin_nested():
            db.session.add(FamilyCodeClaim(family_id=family.id, tenant_id=family.tenant_id, user_id=user.id))
            db.session.flush()
    except IntegrityError as exc:
        raise DossierError(_("Ce code abonné a déjà été utilisé. Pour rejoindre un dossier famille existant, "
                             "demandez une invitation au responsable du dossier."), code="used", field="code") from exc
    _move_to_family(user, family)
    return family


def invite_coparent(*, family: Family, inviter: User, email: str, first_name: str, last_name: str) -> FamilyInvitation:
    email = normalize_email(email)
    if email == inviter.email:
        raise DossierError(_("Saisissez l'adresse e-mail de l'autre responsable, pas la vôtre."), field="email")
    now = utcnow()
    open_invites = list(db.session.scalars(select(FamilyInvitation).where(
        FamilyInvitation.family_id == family.id, FamilyInvitation.accepted_at.is_(None),
        FamilyInvitation.revoked_at.is_(None), FamilyInvitation.expires_at > now)))
    for inv in open_invites:
        if inv.email == email:
            inv.revoked_at = now  # sent again: the old link stops working
    open_invites = [inv for inv in open_invites if inv.email != email]
    if len(members_of(family)) + len(open_invites) >= MAX_RESPONSABLES:
        raise DossierError(_("Votre dossier compte déjà deux responsables (ou une invitation en cours)."),
                           field="email")
    member = find_user_by_email(email)
    if member is not None and member.family_id == family.id:
        raise DossierError(_("Cette personne a déjà accès à votre dossier famille."), field="email")
    raw = secrets.token_urlsafe(32)
    invitation = FamilyInvitation(family_id=family.id, tenant_id=family.tenant_id, email=email,
                                  first_name=first_name.strip(), last_name=last_name.strip(),
                                  token_hash=token_hash(raw), invited_by_id=inviter.id,
                                  expires_at=now + timedelta(days=INVITATION_DAYS))
    db.session.add(invitation)
    queue_mail(to=email, template="coparent_invitation", locale=inviter.locale or "fr",
               context={"name": invitation.display_name, "inviter": inviter.display_name, "family": family.name,
                        "days": INVITATION_DAYS, "path": f"/famille/invitation/{raw}"})
    return invitation


def open_invitation(raw: str) -> FamilyInvitation:
    inv = db.session.scalars(select(FamilyInvitation).where(FamilyInvitation.token_hash == token_hash(raw))).first()
    if inv is None or inv.revoked_at is not None:
        raise DossierError(_("Ce lien d'invitation n'est pas valide."), code="invalid")
    if inv.accepted_at is not None:
        raise DossierError(_("Cette invitation a déjà été acceptée. Connectez-vous avec votre adresse e-mail."),
                           code="used")
    if inv.expires_at < utcnow():
        raise DossierError(_("Cette invitation a expiré : demandez au responsable du dossier de vous inviter à "
                             "nouveau."), code="expired")
    return inv


def accept_invitation_new_account(inv: FamilyInvitation, *, tenant, first_name: str, last_name: str,
                                  password: str, locale: str) -> User:
    """The co-représentant creates their own login, attached to the family (the mail proved the address)."""
    if find_user_by_email(inv.email) is not None:
        raise DossierError(_("Un espace existe déjà avec cette adresse e-mail : connectez-vous pour accepter "
                             "l'invitation."), code="exists")
    policy = tenant.setting("password_policy", default={})
    if not password_is_valid(policy, password):
        raise DossierError(password_rule(policy), field="password")
    now = utcnow()
    user = User(tenant_id=inv.tenant_id, email=inv.email, first_name=first_name.strip(),
                last_name=last_name.strip(), password_hash=hash_password(password), role=ROLE_PARENT,
                family_id=inv.family_id, activated_at=now, cgu_accepted_at=now, locale=locale)
    db.session.add(user)
    db.session.flush()
    db.session.add(Responsable(family_id=inv.family_id, tenant_id=inv.tenant_id, user_id=user.id,
                               position=RESP_COPARENT, first_name=user.first_name, last_name=user.last_name))
    inv.accepted_at = now
    return user


def accept_invitation_existing(inv: FamilyInvitation, user: User) -> None:
    if user.email != inv.email:
        raise DossierError(_("Cette invitation est adressée à une autre adresse e-mail."), code="other")
    _move_to_family(user, inv.family)
    resp = db.session.scalars(select(Responsable).where(Responsable.user_id == user.id)).first()
    if resp is not None:
        resp.position = RESP_COPARENT
    inv.accepted_at = utcnow()


def open_invitations(family: Family) -> list[FamilyInvitation]:
    return list(db.session.scalars(select(FamilyInvitation).where(
        FamilyInvitation.family_id == family.id, FamilyInvitation.accepted_at.is_(None),
        FamilyInvitation.revoked_at.is_(None), FamilyInvitation.expires_at > utcnow())))

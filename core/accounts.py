"""Accounts: registration, activation, login checks, password policy and resets."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from core.clock import utcnow
from core.mail import queue_mail
from core.models import ROLE_AGENT, ROLE_PARENT, Family, User, UserToken
from extensions import db

PURPOSE_ACTIVATION = "activation"
PURPOSE_RESET = "reset"

# Check a dummy hash when the e-mail is unknown, so timing does not reveal accounts.
_DUMMY_HASH = generate_password_hash("dummy-password-0")


class AccountError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Links(Protocol):
    def activation(self, token: str) -> str: ...
    def reset(self, token: str) -> str: ...
    def login(self) -> str: ...


# ---------------------------------------------------------------- passwords

def password_rule(policy: dict) -> str:
    parts = []
    if policy.get("min_lowercase"):
        n = policy["min_lowercase"]
        parts.append(ngettext("%(num)d minuscule", "%(num)d minuscules", n))
    if policy.get("min_uppercase"):
        n = policy["min_uppercase"]
        parts.append(ngettext("%(num)d majuscule", "%(num)d majuscules", n))
    if policy.get("min_digits"):
        n = policy["min_digits"]
        parts.append(ngettext("%(num)d chiffre", "%(num)d chiffres", n))
    if policy.get("min_special"):
        n = policy["min_special"]
        parts.append(ngettext("%(num)d caractère spécial", "%(num)d caractères spéciaux", n))
    length = int(policy.get("min_length", 8))
    if parts:
        return _(
            "Le mot de passe doit contenir au minimum %(length)d caractères dont au moins : %(parts)s.",
            length=length,
            parts=", ".join(parts),
        )
    return _("Le mot de passe doit contenir au minimum %(length)d caractères.", length=length)


def password_is_valid(policy: dict, password: str) -> bool:
    if len(password) < int(policy.get("min_length", 8)) or len(password) > 128:
        return False
    checks = (
        ("min_lowercase", r"[a-zà-ÿ]"),
        ("min_uppercase", r"[A-ZÀ-Þ]"),
        ("min_digits", r"[0-9]"),
        ("min_special", r"[^A-Za-zÀ-ÿ0-9]"),
    )
    for key, pattern in checks:
        if len(re.findall(pattern, password)) < int(policy.get(key, 0) or 0):
            return False
    return True


def generate_password(policy: dict) -> str:
    """A random password that satisfies the commune's policy (for pre-created accounts)."""
    length = max(12, int(policy.get("min_length", 8)))
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length - 2)) + secrets.choice(
            "!?#%+"
        ) + secrets.choice(string.digits)
        if password_is_valid(policy, candidate) and re.search("[A-Z]", candidate) and re.search("[a-z]", candidate):
            return candidate


def hash_password(password: str) -> str:
    return generate_password_hash(password)  # scrypt (werkzeug default)


# ---------------------------------------------------------------- lookups

def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalars(select(User).where(User.email == normalize_email(email))).first()


def new_family_code() -> str:
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))


# ---------------------------------------------------------------- tokens

def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user: User, purpose: str, hours: int) -> str:
    raw = secrets.token_urlsafe(32)
    db.session.add(
        UserToken(
            tenant_id=user.tenant_id,
            user=user,
            purpose=purpose,
            token_hash=_hash_token(raw),
            expires_at=utcnow() + timedelta(hours=hours),
        )
    )
    return raw


def consume_token(raw: str, purpose: str) -> User:
    """Use a mailed token once.  Raises AccountError('invalid'|'used'|'expired')."""
    token = db.session.scalars(
        select(UserToken).where(UserToken.token_hash == _hash_token(raw or ""), UserToken.purpose == purpose)
    ).first()
    if token is None:
        raise AccountError("invalid", _("Ce lien n'est pas valide."))
    if token.used_at is not None:
        raise AccountError("used", _("Ce lien a déjà été utilisé."))
    if token.expires_at < utcnow():
        raise AccountError("expired", _("Ce lien a expiré. Demandez-en un nouveau."))
    token.used_at = utcnow()
    return token.user


# ---------------------------------------------------------------- flows

@dataclass
class Settings:
    activation_hours: int = 48
    reset_hours: int = 2


def register_parent(tenant, *, email: str, first_name: str, last_name: str, password: str,
                    links: Links, locale: str, settings: Settings) -> User:
    email = normalize_email(email)
    if find_user_by_email(email) is not None:
        raise AccountError("email_taken", _("Un espace existe déjà avec cette adresse e-mail."))
    policy = tenant.setting("password_policy", default={})
    if not password_is_valid(policy, password):
        raise AccountError("weak_password", password_rule(policy))
    family = Family(tenant_id=tenant.id, name=last_name.strip().upper(), code=new_family_code())
    user = User(
        tenant_id=tenant.id,
        email=email,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        password_hash=hash_password(password),
        role=ROLE_PARENT,
        family=family,
        locale=locale,
        cgu_accepted_at=utcnow(),  # the registration form requires the CGU
    )
    db.session.add_all([family, user])
    db.session.flush()
    raw = issue_token(user, PURPOSE_ACTIVATION, settings.activation_hours)
    queue_mail(
        to=email, template="activation", locale=locale, user=user,
        context={"name": user.display_name, "link": links.activation(raw), "hours": settings.activation_hours},
    )
    return user


def precreate_account(tenant, *, email: str, first_name: str, last_name: str, links: Links,
                      settings: Settings, family: Family | None = None, role: str = ROLE_PARENT,
                      locale: str = "fr") -> tuple[User, str]:
    """The commune creates the account: generated password, activation link, forced change."""
    email = normalize_email(email)
    if find_user_by_email(email) is not None:
        raise AccountError("email_taken", _("Un espace existe déjà avec cette adresse e-mail."))
    if role not in (ROLE_PARENT, ROLE_AGENT):
        raise AccountError("role", "rôle inconnu")
    password = generate_password(tenant.setting("password_policy", default={}))
    if family is None and role == ROLE_PARENT:
        family = Family(tenant_id=tenant.id, name=last_name.strip().upper(), code=new_family_code())
        db.session.add(family)
    user = User(
        tenant_id=tenant.id, email=email, first_name=first_name.strip(), last_name=last_name.strip(),
        password_hash=hash_password(password), role=role, family=family,
        must_change_password=True, locale=locale,
    )
    db.session.add(user)
    db.session.flush()
    raw = issue_token(user, PURPOSE_ACTIVATION, settings.activation_hours)
    queue_mail(
        to=email, template="account_precreated", locale=locale, user=user,
        context={"name": user.display_name, "link": links.activation(raw), "username": email,
                 "password": password, "login": links.login()},
    )
    return user, password


def activate(raw: str) -> User:
    user = consume_token(raw, PURPOSE_ACTIVATION)
    if user.activated_at is None:
        user.activated_at = utcnow()
    return user


def authenticate(email: str, password: str) -> User:
    """Raises AccountError('invalid'|'not_activated')."""
    user = find_user_by_email(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        raise AccountError("invalid", _("Identifiant ou mot de passe incorrect."))
    if not check_password_hash(user.password_hash, password or ""):
        raise AccountError("invalid", _("Identifiant ou mot de passe incorrect."))
    if not user.is_active:
        raise AccountError("deactivated", _("Cet espace a été désactivé à la suite de votre demande de suppression."))
    if not user.is_activated:
        raise AccountError(
            "not_activated",
            _("Votre espace n'est pas encore activé : cliquez sur le lien d'activation reçu par e-mail. "
              "Vous pouvez demander un nouveau lien ci-dessous."),
        )
    user.previous_login_at = user.last_login_at
    user.last_login_at = utcnow()
    return user


def resend_activation(email: str, *, links: Links, settings: Settings) -> None:
    user = find_user_by_email(email)
    if user is None or user.is_activated:
        return
    raw = issue_token(user, PURPOSE_ACTIVATION, settings.activation_hours)
    queue_mail(to=user.email, template="activation", locale=user.locale, user=user,
               context={"name": user.display_name, "link": links.activation(raw),
                        "hours": settings.activation_hours})


def request_password_reset(email: str, *, links: Links, settings: Settings) -> None:
    """Mails a reset link if the account exists; says nothing either way (no account probing)."""
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        return
    if not user.is_activated:
        resend_activation(email, links=links, settings=settings)
        return
    raw = issue_token(user, PURPOSE_RESET, settings.reset_hours)
    queue_mail(to=user.email, template="password_reset", locale=user.locale, user=user,
               context={"name": user.display_name, "link": links.reset(raw), "hours": settings.reset_hours})


def set_password(user: User, password: str, *, policy: dict) -> None:
    if not password_is_valid(policy, password):
        raise AccountError("weak_password", password_rule(policy))
    if check_password_hash(user.password_hash, password):
        raise AccountError("same_password", _("Choisissez un mot de passe différent de l'ancien."))
    user.password_hash = hash_password(password)
    user.must_change_password = False


def reset_password(raw: str, password: str, *, policy: dict) -> User:
    user = consume_token(raw, PURPOSE_RESET)
    set_password(user, password, policy=policy)
    return user


def accept_cgu(user: User) -> None:
    user.cgu_accepted_at = utcnow()


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password or "")

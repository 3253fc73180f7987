"""Accounts: a commune's users (parents, agents), the support staff, the mailed tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.models import Tenant
from tenants.scoping import TenantScoped

if TYPE_CHECKING:
    from core.models.families import Family

ROLE_PARENT = "parent"
ROLE_AGENT = "agent"
ROLES = (ROLE_PARENT, ROLE_AGENT)


class User(UserMixin, TenantScoped, db.Model):
    """A parent or an agent: an account of one commune."""

    __tablename__ = "user_account"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_PARENT)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("family.id", ondelete="SET NULL"), index=True)
    activated_at: Mapped[datetime | None]
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    cgu_accepted_at: Mapped[datetime | None]
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    previous_login_at: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]  # account deletion asked: no login any more

    tenant: Mapped[Tenant] = relationship()
    family: Mapped[Family | None] = relationship(back_populates="members")

    def get_id(self) -> str:
        return f"u:{self.id}"

    @property
    def is_activated(self) -> bool:
        return self.activated_at is not None

    @property
    def is_active(self) -> bool:  # Flask-Login: an inactive user is never authenticated
        return self.deactivated_at is None

    @property
    def is_agent(self) -> bool:
        return self.role == ROLE_AGENT

    @property
    def is_support(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class SupportUser(UserMixin, db.Model):
    """Support staff: reach every commune.  Created from the CLI only."""

    __tablename__ = "support_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    def get_id(self) -> str:
        return f"s:{self.id}"

    is_agent = False
    is_support = True
    must_change_password = False

    @property
    def display_name(self) -> str:
        return self.name


class UserToken(TenantScoped, db.Model):
    """A single-use, expiring token mailed to a user (activation, password reset)."""

    __tablename__ = "user_token"
    __table_args__ = (UniqueConstraint("tenant_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

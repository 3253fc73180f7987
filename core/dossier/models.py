"""The family file (dossier famille): responsables, children's details, health, authorisations,
contacts, fiscal data, and the changes waiting for the commune's validation.

Imported at the end of core/models/__init__.py so that every model is mapped before use.
Every model here belongs to one commune (TenantScoped); unique constraints include tenant_id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.models import Child, Family, User
from extensions import db
from tenants.scoping import TenantScoped

__all__ = [
    "CHANGE_ACCEPTED", "CHANGE_CANCELLED", "CHANGE_PENDING", "CHANGE_REFUSED",
    "DELETION_HANDLED", "DELETION_OPEN",
    "OP_CREATE", "OP_DELETE", "OP_UPDATE",
    "AccountDeletionRequest", "ChildContact", "ChildFile", "ChildHealth", "EmailChange", "FamilyChange",
    "FamilyCodeClaim", "FamilyFile", "FamilyInvitation", "HealthAccessLog", "Responsable",
]


class FamilyFile(TenantScoped, db.Model):
    """What the commune manages about a family: fiscal data (read-only for the family)."""

    __tablename__ = "family_file"
    __table_args__ = (UniqueConstraint("tenant_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    quotient_familial: Mapped[int | None] = mapped_column(Integer)
    quotient_set_at: Mapped[datetime | None]
    quotient_set_by: Mapped[str | None] = mapped_column(String(200))

    family: Mapped[Family] = relationship()


class FamilyCodeClaim(TenantScoped, db.Model):
    """A family code ("Code abonné famille") links an account once: the unique constraint backs it."""

    __tablename__ = "family_code_claim"
    __table_args__ = (UniqueConstraint("tenant_id", "family_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)


RESP_PRINCIPAL = 1
RESP_COPARENT = 2


class Responsable(TenantScoped, db.Model):
    """A legal guardian of the family; linked to a login account when they have one."""

    __tablename__ = "responsable"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=RESP_PRINCIPAL)
    civility: Mapped[str | None] = mapped_column(String(20))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    address_line: Mapped[str | None] = mapped_column(String(200))
    address_extra: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(100))
    phone_mobile: Mapped[str | None] = mapped_column(String(30))
    phone_home: Mapped[str | None] = mapped_column(String(30))
    phone_work: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(254))  # contact address (login address lives on User)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    family: Mapped[Family] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ChildFile(TenantScoped, db.Model):
    """A child's photo and authorisations (None = not answered yet)."""

    __tablename__ = "child_file"
    __table_args__ = (UniqueConstraint("tenant_id", "child_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    photo: Mapped[str | None] = mapped_column(String(100))
    photos: Mapped[bool | None] = mapped_column(Boolean)
    leave_alone: Mapped[bool | None] = mapped_column(Boolean)
    transport: Mapped[bool | None] = mapped_column(Boolean)
    emergency_care: Mapped[bool | None] = mapped_column(Boolean)

    child: Mapped[Child] = relationship()


class ChildHealth(TenantScoped, db.Model):
    """Informations santé: sensitive, seen by the family and its commune's agents (reads logged)."""

    __tablename__ = "child_health"
    __table_args__ = (UniqueConstraint("tenant_id", "child_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    allergies: Mapped[str | None] = mapped_column(Text)
    pai: Mapped[bool | None] = mapped_column(Boolean)
    pai_details: Mapped[str | None] = mapped_column(Text)
    diet: Mapped[str | None] = mapped_column(String(20))
    diet_details: Mapped[str | None] = mapped_column(String(200))
    doctor_name: Mapped[str | None] = mapped_column(String(200))
    doctor_phone: Mapped[str | None] = mapped_column(String(30))
    vaccinations: Mapped[bool | None] = mapped_column(Boolean)
    vaccinations_notes: Mapped[str | None] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text)

    child: Mapped[Child] = relationship()


class ChildContact(TenantScoped, db.Model):
    """An adult allowed to pick the child up, and/or to call in an emergency."""

    __tablename__ = "child_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    relationship_label: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(30))
    can_pick_up: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    child: Mapped[Child] = relationship()

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


CHANGE_PENDING = "pending"
CHANGE_ACCEPTED = "accepted"
CHANGE_REFUSED = "refused"
CHANGE_CANCELLED = "cancelled"

OP_UPDATE = "update"
OP_CREATE = "create"
OP_DELETE = "delete"


class FamilyChange(TenantScoped, db.Model):
    """A change asked by the family, waiting for the commune ("en attente de validation").

    ``entity`` is responsable / child / health / authorisations / contact; ``entity_id`` the
    responsable, child or contact (None for a creation).  ``changes`` holds, for an update,
    {field: {"old": ..., "new": ...}}; for a creation {field: value}; for a removal {}.
    Values are JSON (dates as ISO strings).  At most one pending change per entity.
    """

    __tablename__ = "family_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[int | None] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(10), default=OP_UPDATE)
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    label: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default=CHANGE_PENDING, index=True)
    motif: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]

    family: Mapped[Family] = relationship()
    child: Mapped[Child | None] = relationship()
    requested_by: Mapped[User | None] = relationship()


class HealthAccessLog(TenantScoped, db.Model):
    """Every read of a child's health data by staff (who, which child, when, where)."""

    __tablename__ = "health_access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    child_id: Mapped[int] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    context: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    child: Mapped[Child] = relationship()


class FamilyInvitation(TenantScoped, db.Model):
    """The co-représentant invited by mail to their own login on the same family."""

    __tablename__ = "family_invitation"
    __table_args__ = (UniqueConstraint("tenant_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("family.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    family: Mapped[Family] = relationship()

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class EmailChange(TenantScoped, db.Model):
    """A new login e-mail, applied only once the link mailed to it is opened."""

    __tablename__ = "email_change"
    __table_args__ = (UniqueConstraint("tenant_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    new_email: Mapped[str] = mapped_column(String(254))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


DELETION_OPEN = "open"
DELETION_HANDLED = "handled"


class AccountDeletionRequest(TenantScoped, db.Model):
    """A family member asked for their account to be deleted; the account is deactivated at once."""

    __tablename__ = "account_deletion_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    family_id: Mapped[int | None] = mapped_column(ForeignKey("family.id", ondelete="SET NULL"), index=True)
    user_email: Mapped[str] = mapped_column(String(254))
    user_name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=DELETION_OPEN, index=True)
    handled_by: Mapped[str | None] = mapped_column(String(200))
    handled_at: Mapped[datetime | None]

    family: Mapped[Family | None] = relationship()


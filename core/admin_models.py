"""Back-office models: the audit log (support mode) and the pre-reservation allocation runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from extensions import db
from tenants.scoping import TenantScoped

AUDIT_SWITCH_IN = "switch_in"    # support entered the commune
AUDIT_SWITCH_OUT = "switch_out"  # support left the commune
AUDIT_CHANGE = "change"          # a change made in support mode


class AuditLog(TenantScoped, db.Model):
    """Who did what, when, in which commune: every support switch and every change made in support mode."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("tenant_id", "token"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    support_user_id: Mapped[int | None] = mapped_column(ForeignKey("support_user.id", ondelete="SET NULL"),
                                                        index=True)
    action: Mapped[str] = mapped_column(String(20))
    what: Mapped[str] = mapped_column(Text, default="")
    path: Mapped[str | None] = mapped_column(String(300))
    # one-time entry token of a switch (cleared once used)
    token: Mapped[str | None] = mapped_column(String(64))


RUN_PREVIEW = "preview"
RUN_PUBLISHED = "published"
RUN_SUPERSEDED = "superseded"


class AllocationRun(TenantScoped, db.Model):
    """One allocation of a pre-reservation activity's places: its method, rules, seed and result.

    A run is first a preview; publishing applies exactly the previewed result (recomputed under
    the locks with the same seed, and refused if the demandes changed in between).
    """

    __tablename__ = "allocation_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=RUN_PREVIEW)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(200))

    activity = relationship("Activity")

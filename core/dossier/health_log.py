"""Who read a child's health data, and when (an agent's read is logged)."""

from __future__ import annotations

from sqlalchemy import select

from core.dossier.models import HealthAccessLog
from core.models import Child
from extensions import db


def log_health_read(*, agent, child: Child, context: str) -> HealthAccessLog:
    row = HealthAccessLog(agent_id=agent.id if not getattr(agent, "is_support", False) else None,
                          agent_name=agent.display_name, child_id=child.id, family_id=child.family_id,
                          tenant_id=child.tenant_id, context=context)
    db.session.add(row)
    return row


def health_reads(child: Child, limit: int = 20) -> list[HealthAccessLog]:
    return list(db.session.scalars(select(HealthAccessLog).where(HealthAccessLog.child_id == child.id)
                                   .order_by(HealthAccessLog.at.desc(), HealthAccessLog.id.desc()).limit(limit)))

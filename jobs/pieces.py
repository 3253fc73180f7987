"""Pièces justificatives in the background: the "expire dans moins de 30 jours" announcement (once
per piece: the row remembers it was sent) and retention (expired or refused pieces deleted, file
and row, after the commune's delay).

``flask worker`` queues ``pieces_job(tenant_id)`` for every commune each ``PIECES_SWEEP_INTERVAL``
seconds (default hourly); without Redis, or from cron, ``flask pieces sweep`` runs the same now.
Jobs take ids, re-enter the commune's scope and commit or roll back.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def pieces_job(tenant_id: int) -> dict:
    """One commune: announce the pieces expiring soon, then delete those past their retention."""
    from flask_babel import force_locale

    from core.documents import services
    from extensions import db
    from jobs import app_context
    from tenants.context import tenant_scope
    from tenants.models import Tenant

    with app_context(), tenant_scope(tenant_id):
        try:
            tenant = db.session.get(Tenant, tenant_id)
            with force_locale("fr"):
                announced = services.announce_expiring(tenant)
                purged = services.purge(tenant)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
    return {"announced": announced, "purged": purged}


def enqueue_everywhere() -> int:
    """Queue one job per commune (inline without Redis); returns how many communes."""
    from jobs import for_each_commune

    return for_each_commune(pieces_job, job_id="pieces-{tenant_id}", result_ttl=3600)


def sweep_now() -> dict:
    """Every commune, in this process (``flask pieces sweep``)."""
    from jobs import app_context, commune_ids

    total = {"announced": 0, "purged": 0}
    with app_context():
        for tenant_id in commune_ids():
            done = pieces_job(tenant_id)
            total["announced"] += done["announced"]
            total["purged"] += done["purged"]
    return total

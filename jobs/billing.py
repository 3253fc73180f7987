"""The billing job: per commune, reminders before and after the deadline (once each: a unique
constraint backs it), reconciliation of online payments left waiting, collection of the direct
debits whose date has come.  Queued on RQ by the worker's sweep every BILLING_SWEEP_INTERVAL seconds
(`flask worker`) or run from cron with `flask billing run`; inline when there is no Redis.

The job takes a commune id, re-enters its scope, commits or rolls back; it is idempotent, so running
it twice (or two workers at once) sends each reminder once.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def run_billing(tenant_id: int) -> dict:
    """One commune's billing work; returns what it did."""
    from core.billing import online, reminders, sepa
    from extensions import db
    from jobs import app_context
    from tenants.context import tenant_scope

    out = {}
    with app_context(), tenant_scope(tenant_id):
        try:
            out["reconciled"] = online.reconcile()
            db.session.commit()
            out["collected"] = sepa.collect_due()
            db.session.commit()
            out["reminders"] = reminders.send_due()
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
    if any(out.values()):
        log.info("billing job, commune %s: %s", tenant_id, out)
    return out


def queue_everywhere() -> int:
    """Hand each commune's billing job to RQ (inline without Redis); returns how many communes."""
    from jobs import for_each_commune

    return for_each_commune(run_billing, job_timeout=600)

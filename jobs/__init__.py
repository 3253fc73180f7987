"""RQ jobs.  Each job takes ids, re-enters the commune's scope, commits or rolls back.

Jobs never build an app at import time: ``app_context()`` reuses the current app
(inline mode, ``flask worker``) or builds one lazily for a plain ``rq worker``.
"""

from __future__ import annotations

from contextlib import contextmanager

from flask import current_app, has_app_context
from sqlalchemy import select

_lazy_app = None


@contextmanager
def app_context():
    global _lazy_app
    if has_app_context():
        yield current_app._get_current_object()
        return
    if _lazy_app is None:
        from app import create_app

        _lazy_app = create_app()
    with _lazy_app.app_context():
        yield _lazy_app


def commune_ids() -> list[int]:
    """Every commune's id, in id order; the session is given back (each job opens its own)."""
    from extensions import db
    from tenants.models import Tenant

    with app_context():
        ids = list(db.session.scalars(select(Tenant.id).order_by(Tenant.id)))
        db.session.remove()
    return ids


def for_each_commune(job, *, job_id: str | None = None, **options) -> int:
    """`job(tenant_id)` for every commune, in id order: handed to RQ, or run here when there is no
    Redis (inline mode).  `job_id`: a pattern with {tenant_id}; `options`: RQ's (job_timeout,
    result_ttl…).  Returns how many communes."""
    from jobs.dispatch import get_queue

    with app_context():
        ids = commune_ids()
        queue = get_queue()
        for tenant_id in ids:
            if queue is None:
                job(tenant_id)
            elif job_id is None:
                queue.enqueue(job, tenant_id, **options)
            else:
                queue.enqueue(job, tenant_id, job_id=job_id.format(tenant_id=tenant_id), **options)
    return len(ids)

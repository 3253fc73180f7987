"""After-commit dispatch of outbox mails: queued on RQ, or sent inline without Redis.

The mail row is written in the request's transaction; only once that commits is
the job handed over.  If Redis is unreachable the row stays 'pending' and
``flask mail flush`` queues it later: a mail is never lost.
"""

from __future__ import annotations

import logging

from flask import current_app, has_app_context
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.mail import SESSION_KEY as _KEY
from core.models import MAIL_PENDING, MAIL_QUEUED, OutboxMail
from extensions import db
from tenants.context import tenant_scope

log = logging.getLogger(__name__)


@event.listens_for(Session, "after_flush")
def _collect(session, flush_context):
    ids = [(obj.id, obj.tenant_id) for obj in session.new if isinstance(obj, OutboxMail)]
    if ids:
        session.info.setdefault(_KEY, []).extend(ids)


@event.listens_for(Session, "after_rollback")
def _forget(session):
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_commit")
def _dispatch(session):
    ids = session.info.pop(_KEY, None)
    if ids and has_app_context():
        dispatch(ids)


def get_queue():
    from redis import Redis
    from rq import Queue

    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    conn = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return Queue(current_app.config["RQ_QUEUE"], connection=conn)


BATCH = 500  # mails per Redis pipeline and per UPDATE


def dispatch(ids: list[tuple[int, int]]) -> int:
    """Hand mails to the queue (or send them inline); returns how many were handed over.

    Pending or queued ones alike: the sweep queues again what is stuck.  A batch goes to Redis in one
    pipeline (RQ's enqueue_many), then its rows are marked queued in one UPDATE: a publication's
    thousands of mails cost a few round trips, not a few per mail.
    """
    from jobs.mail import send_mail

    queue = get_queue()
    if queue is None:
        for mail_id, tenant_id in ids:
            send_mail(mail_id, tenant_id)
        return len(ids)
    from rq import Queue

    handed = 0
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        stamp = f"{utcnow():%Y%m%d%H%M%S%f}"
        try:
            with queue.connection.pipeline() as pipe:
                queue.enqueue_many([Queue.prepare_data(send_mail, (mail_id, tenant_id),
                                                       job_id=f"mail-{mail_id}-{stamp}")
                                    for mail_id, tenant_id in batch], pipeline=pipe)
                pipe.execute()
        except Exception:  # Redis down: the rows stay as they are for the sweep (a job that did get
            # through and is queued again by the sweep sends once: send_mail claims the row)
            log.warning("mails %s… (%d): Redis unreachable, left for the sweep", batch[0][0], len(ids) - start)
            return handed
        # SKIP LOCKED: a worker already sending one holds its row; never wait for its SMTP server.
        # Each commune's in its scope (the sweep hands over several communes' mails at once).
        table = OutboxMail.__table__
        for tenant_id in sorted({tenant_id for _m, tenant_id in batch}):
            free = (select(table.c.id).where(table.c.id.in_([m for m, t in batch if t == tenant_id]),
                                             table.c.tenant_id == tenant_id,
                                             table.c.status.in_((MAIL_PENDING, MAIL_QUEUED)))
                    .with_for_update(skip_locked=True))
            with tenant_scope(tenant_id), db.engine.begin() as conn:
                conn.execute(update(table).where(table.c.id.in_(free.scalar_subquery()))
                             .values(status=MAIL_QUEUED, queued_at=utcnow()))
        handed += len(batch)
    return handed

"""Release the places held by démarches abandoned past their time, in every commune.

Run every minute by `flask worker` (beside the mail sweep) or `flask reservations expire-holds`
from cron.  A tick frees expired holds itself only where they matter (a slot that looks full),
so this sweep is what keeps "Places : N" exact elsewhere.
"""

from __future__ import annotations

from sqlalchemy import select


def expire_everywhere() -> int:
    from core.reservations import expire_abandoned_carts
    from extensions import db
    from jobs import app_context
    from tenants.context import tenant_scope
    from tenants.models import Tenant

    total = 0
    with app_context():
        for tenant_id in db.session.scalars(select(Tenant.id)).all():
            with tenant_scope(tenant_id):
                total += expire_abandoned_carts()
                db.session.commit()
    return total

"""The floor of `make bench` (BENCH_FLOOR=1): the portal's own stack with nothing to do.

The portal's app (sessions per commune, Flask-Login's user loaded from PostgreSQL, the
commune's scope, CSRF on the POST, Babel) with two extra routes that do no work of their own:

* GET  /<commune>/bench-floor   an empty answer for a logged-in parent;
* POST /<commune>/bench-floor   the same behind the CSRF check (the tick's headers).

Measured beside the baseline, it tells how much of the ratio the stack alone takes before any
booking work.  Never part of the portal itself: this module is only started by bench/run.py.
"""

from __future__ import annotations

from app import create_app
from core.models import ROLE_PARENT
from tenants.web import role_required

app = create_app()


@role_required(ROLE_PARENT)
def floor(**_kwargs):
    return "<span>ok</span>"


app.add_url_rule("/<tenant>/bench-floor", "bench_floor", floor, methods=["GET", "POST"])

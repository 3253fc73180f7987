"""`flask rush open|close|status`: an activity's opening time and waiting room, without the back-office."""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy import select

from blueprints.rush import bp
from core import waiting_room
from core.calendar import PARIS
from extensions import db


def _activity(slug: str, code: str):
    """The activity `code` of the commune in scope (the caller checked the commune)."""
    from core.models import Activity

    activity = db.session.scalars(select(Activity).where(Activity.code == code)).first()
    if activity is None:
        raise click.ClickException(f"Activité inconnue dans {slug} : {code}")
    return activity


def parse_opening(raw: str) -> datetime:
    """ISO 8601; without an offset it is the commune's time (Europe/Paris). Returns naive UTC."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise click.BadParameter(f"date ISO attendue (2027-01-05T08:30), pas {raw!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return waiting_room.to_naive_utc(moment)


@bp.cli.command("open")
@click.option("--tenant", "slug", required=True, help="Commune (slug), e.g. auray")
@click.option("--activity", "code", required=True, help="Activity code, e.g. kids")
@click.option("--at", "at", required=True, help="Opening time, ISO 8601 (Europe/Paris unless an offset is given)")
@click.option("--concurrent", type=click.IntRange(min=0), required=True,
              help="Parents booking at once; the others wait in the waiting room (0: no waiting room)")
@click.option("--minutes", type=click.IntRange(min=1, max=240), default=None,
              help=f"Time an admitted parent has to finish (default {waiting_room.DEFAULT_MINUTES})")
def rush_open(slug, code, at, concurrent, minutes):
    """Set an activity's opening time and waiting room."""
    from tenants.context import tenant_scope
    from tenants.models import tenant_or_click_error

    tenant = tenant_or_click_error(slug)
    opening = parse_opening(at)
    with tenant_scope(tenant.id):
        activity = _activity(slug, code)
        waiting_room.configure(activity, opening_at=opening, concurrent=concurrent, minutes=minutes)
        db.session.commit()
        click.echo(f"{slug}/{code}: ouverture {opening.isoformat()} UTC, "
                   + (f"{concurrent} famille(s) à la fois, {waiting_room.minutes_for(activity)} min chacune"
                      if concurrent else "sans salle d'attente"))


@bp.cli.command("close")
@click.option("--tenant", "slug", required=True)
@click.option("--activity", "code", required=True)
def rush_close(slug, code):
    """Remove the waiting room (and empty it); the opening time stays."""
    from tenants.context import tenant_scope
    from tenants.models import tenant_or_click_error

    tenant = tenant_or_click_error(slug)
    with tenant_scope(tenant.id):
        activity = _activity(slug, code)
        waiting_room.reset(activity)
        activity.rush_concurrent = None
        db.session.commit()
        click.echo(f"{slug}/{code}: salle d'attente retirée")

"""The family's calendar feed: "S'abonner à mon agenda" (the private URL, phone instructions,
revoke) and the feed itself, read by calendar applications without a session."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from blueprints.pieces import bp
from core import calendar_feed as cf
from core.models import ROLE_PARENT
from extensions import limiter
from tenants.web import current_tenant, role_required


class ButtonForm(FlaskForm):
    pass


def _feed_url(feed) -> str:
    return url_for("pieces.feed", name=cf.feed_name(feed), _external=True)


@bp.get("/agenda/abonnement")
@role_required(ROLE_PARENT)
def subscription():
    if current_user.family_id is None:
        abort(404)
    feed = cf.active_feed(current_user.family_id)
    url = _feed_url(feed) if feed else None
    webcal = ("webcal://" + url.split("://", 1)[1]) if url else None
    return render_template("pieces/subscription.html", feed=feed, url=url, webcal=webcal, form=ButtonForm())


@bp.post("/agenda/abonnement")
@role_required(ROLE_PARENT)
def subscription_create():
    if current_user.family_id is None:
        abort(404)
    if not ButtonForm().validate_on_submit():
        abort(400)
    renewed = cf.active_feed(current_user.family_id) is not None
    cf.create_feed(current_user.family_id, current_user)
    flash(_("Une nouvelle adresse a été créée : l'ancienne ne fonctionne plus.") if renewed
          else _("Votre adresse d'abonnement est prête."), "success")
    return redirect(url_for("pieces.subscription"), code=303)


@bp.post("/agenda/abonnement/revoquer")
@role_required(ROLE_PARENT)
def subscription_revoke():
    if current_user.family_id is None:
        abort(404)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if cf.revoke(current_user.family_id):
        flash(_("L'adresse d'abonnement est désactivée : les agendas abonnés ne se mettent plus à jour."), "success")
    return redirect(url_for("pieces.subscription"), code=303)


@bp.get("/agenda/<name>.ics")
@limiter.limit("60 per minute")
def feed(name):
    """The private feed: no session (calendar applications have none), the token is the key.
    An unknown, revoked or mistyped address answers 404."""
    found = cf.find_feed(name)
    if found is None:
        abort(404)
    body = cf.build_ics(found, current_tenant())
    cf.touch(found)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="agenda.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response



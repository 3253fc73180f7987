"""The parents' money side: "Payer en ligne" (one invoice or several), the return page (status only),
the backend's notification (CSRF exempt: it checks the signature instead), "Mes prélèvements"
(mandate, direct debits); and the local stand-in of the payment page (development and tests only,
registered by app.py when PAYMENT_STANDIN is set — never in production)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.billing import bp
from core.billing import config as bconf
from core.billing import mandates, online, sepa
from core.billing.payment_models import TX_CREATED, TX_PAID, TX_WAITING, OnlineTransaction
from core.bounds import as_id
from core.models import ROLE_PARENT
from extensions import csrf, db
from tenants.scoping import get_scoped
from tenants.web import current_tenant, role_required
from web.transaction import on_busy, roll_back, rollback_only

log = logging.getLogger(__name__)


def _family_id() -> int:
    if current_user.family_id is None:
        abort(404)
    return current_user.family_id


def _return_url(tx_id: int) -> str:
    return url_for("billing.payment_return", tx_id=tx_id, _external=True)


def _notify_url() -> str:
    return url_for("billing.payment_notify", _external=True)


@bp.post("/paiements")
@role_required(ROLE_PARENT)
def pay():
    """Pay the invoices ticked (or the one of the invoice page): the transaction is written, then the
    parent goes to the payment page."""
    fid = _family_id()
    back = request.form.get("retour") == "facture" and request.form.get("factures")
    on_busy(url_for("billing.invoices"))
    try:
        tx, url = online.start(fid, request.form.getlist("factures"), user=current_user, email=current_user.email,
                               return_url=_return_url, notify_url=_notify_url(), origin=current_tenant().name)
    except LookupError:
        abort(404)
    except online.PaymentError as err:
        roll_back()
        flash(err.message, "error")
        if back and as_id(back):
            return redirect(url_for("billing.invoice", invoice_id=as_id(back)), code=303)
        return redirect(url_for("billing.invoices"), code=303)
    log.info("online payment %s started: %s cents", tx.refdet, tx.amount_cents)
    return redirect(url, code=303)


@bp.get("/paiements/<int:tx_id>/retour")
@role_required(ROLE_PARENT)
def payment_return(tx_id):
    """Back from the payment page: shows what the notification recorded; changes nothing."""
    tx = get_scoped(db.session, OnlineTransaction, tx_id)
    if tx is None or tx.family_id != _family_id():
        abort(404)
    waiting = tx.status in (TX_CREATED, TX_WAITING)
    partial = request.headers.get("HX-Request") == "true"
    html = render_template("billing/_payment_status.html" if partial else "billing/payment_return.html", tx=tx,
                           waiting=waiting, paid=tx.status == TX_PAID, word=str(online.STATUS_WORDS.get(tx.status, "")))
    response = Response(html)
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/paiements/notification", methods=["GET", "POST"])
@csrf.exempt
def payment_notify():
    """Called by the payment backend, server to server (no session, no CSRF token): the signature
    is what is checked.  200 once applied (a replay too), 400 refused (nothing recorded), 404
    unknown in this commune."""
    current_tenant()
    if request.method == "POST":
        raw = request.get_data(as_text=True) or ""
        if not raw and request.form:
            from urllib.parse import urlencode

            raw = urlencode(list(request.form.items(multi=True)))
    else:
        raw = request.query_string.decode("latin-1")
    if raw.startswith("idOp="):  # PayFiP posts idOp; eopayment reads idop
        raw = "idop=" + raw[len("idOp="):]
    on_busy(lambda: Response("busy", status=503, mimetype="text/plain"))  # the backend notifies again
    try:
        tx = online.notify(raw, notify_url=_notify_url())  # committed before the 200 leaves
    except online.NotificationRefused as err:
        rollback_only()
        log.warning("payment notification refused (%s): %s", current_tenant().slug, err.message)
        return Response(err.message, status=400, mimetype="text/plain")
    except LookupError:
        abort(404)
    log.info("payment notification for %s: %s", tx.refdet, tx.status)
    return Response("OK", mimetype="text/plain")


# ---------------------------------------------------------------- Mes prélèvements

@bp.route("/prelevements", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def direct_debit():
    """Mes prélèvements: the mandate (IBAN masked), signing one online (validated by the commune),
    revoking it, and the direct debits."""
    family = current_user.family
    if family is None:
        abort(404)
    regie = bconf.for_tenant(current_tenant()).regie
    error = None
    if request.method == "POST":
        action = request.form.get("action", "signer")
        on_busy(url_for("billing.direct_debit"))
        try:
            if action == "revoquer":
                mandates.revoke_by_family(family, current_user)
                flash(_("Votre mandat est révoqué : vos prochaines factures ne seront plus prélevées."), "success")
            else:
                mandates.sign(family, current_user, holder=request.form.get("titulaire", ""),
                              iban=request.form.get("iban", ""), bic=request.form.get("bic", ""),
                              accepted=request.form.get("accepte") == "oui")
                flash(_("Votre mandat de prélèvement est enregistré. Il est en attente de validation par la "
                        "collectivité."), "success")
            return redirect(url_for("billing.direct_debit"), code=303)
        except mandates.MandateError as err:
            roll_back()
            error = err
    return render_template("billing/direct_debit.html", regie=regie, error=error, form=request.form,
                           active=mandates.active_of(family.id), pending=mandates.pending_of(family.id),
                           debits=sepa.debits_of(family.id), text=mandates.mandate_text(regie),
                           available=sepa.available(regie), mask=mandates.mask,
                           debit_words={k: str(v) for k, v in sepa.DEBIT_WORDS.items()}), (422 if error else 200)


# ---------------------------------------------------------------- the local stand-in (never in production)

standin_bp = Blueprint("payment_standin", __name__, url_prefix="/<tenant>")


def _post_notification(url: str, data: dict) -> int:
    """The stand-in calls the notification URL server to server, as PayFiP does."""
    transport = current_app.config.get("PAYMENT_STANDIN_TRANSPORT")
    if transport is not None:
        return transport(url, data)
    import requests

    return requests.post(url, data=data, timeout=15).status_code


@standin_bp.route(online.STANDIN_PATH, methods=["GET", "POST"])
def standin():
    """A page of the portal standing in for the bank's: « Payer » / « Refuser »."""
    if not current_app.config.get("PAYMENT_STANDIN"):
        abort(404)
    tenant = current_tenant()
    source = request.form if request.method == "POST" else request.args
    fields = {k: source.get(k, "") for k in (*online.STANDIN_FIELDS, "sig")}
    if not online.standin_request_is_genuine(fields):
        abort(404)
    base = request.host_url.rstrip("/")
    for key in ("return_url", "direct_notification_url"):
        try:
            target = urlsplit(fields[key])
        except ValueError:
            abort(400)
        if f"{target.scheme}://{target.netloc}" != base or not target.path.startswith(f"/{tenant.slug}/"):
            abort(400)
    error = None
    if request.method == "POST":
        outcome = {"payer": "ok", "refuser": "refuse", "abandonner": "cancel"}.get(request.form.get("choix", ""))
        if outcome is None:
            abort(400)
        try:
            status = _post_notification(fields["direct_notification_url"],
                                        online.standin_notification(fields, outcome))
        except OSError as exc:  # requests' errors too: the portal could not be reached
            log.warning("stand-in: notification %s not sent: %s", fields["transaction_id"], exc)
            error = _("Le portail n'a pas pu être prévenu du paiement (notification impossible) : réessayez.")
        else:
            log.info("stand-in: notification %s answered %s", fields["transaction_id"], status)
            return redirect(fields["return_url"], code=303)
    return render_template("billing/standin.html", fields=fields, error=error), (409 if error else 200)

"""Payer en ligne, through eopayment: PayFiP (backend ``payfip_ws``) in production, ``dummy`` with the
portal's local stand-in in development and tests.

* `start()` writes the transaction row (amount in cents from Decimal, refdet unique per régie and
  year) *before* the parent is sent to the payment page, over one or several invoices.
* Only `notify()` — the backend calling the notification URL server to server — or the
  reconciliation job (`reconcile()`, for transactions left waiting: a PayFiP idop lives 15 minutes)
  records a payment, and only for a response that is ``signed`` and ``PAID`` with the amount of
  the transaction.  The transaction row is locked (FOR UPDATE) and a receipt has a unique
  transaction id: replays and concurrent duplicates record one payment.
* The browser's return shows the status; it never changes anything.

The stand-in: `StandInPayment`, eopayment's dummy backend whose payment page is the portal's own
(development and tests only: never registered in production) and whose notifications carry an
HMAC of the application's secret — a forged one is not ``signed``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import eopayment
from eopayment import dummy as eo_dummy
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import clock
from core.billing import config as bconf
from core.billing.invoices import statements
from core.billing.models import DOC_INVOICE, Invoice
from core.billing.payment_models import (
    TX_CANCELLED,
    TX_CREATED,
    TX_DENIED,
    TX_ERROR,
    TX_EXPIRED,
    TX_PAID,
    TX_WAITING,
    OnlineTransaction,
    Receipt,
)
from core.billing.payments import ONLINE, PaymentError, settle
from core.billing.pricing import cents, euros
from core.bounds import as_id
from core.locking import lock, lock_one
from core.mail import queue_mail
from extensions import db
from tenants.context import require_tenant_id

log = logging.getLogger(__name__)

PAYFIP = eopayment.PAYFIP_WS
DUMMY = eopayment.DUMMY
MIN_AMOUNT = Decimal("1.00")        # PayFiP refuses less than 1 €
MAX_AMOUNT = Decimal("100000.00")
IDOP_MINUTES = 15                   # a PayFiP idop lives 15 minutes
RECONCILE_AFTER = timedelta(minutes=IDOP_MINUTES + 5)

RESULT_STATUS = {eopayment.PAID: TX_PAID, eopayment.DENIED: TX_DENIED, eopayment.CANCELLED: TX_CANCELLED,
                 eopayment.EXPIRED: TX_EXPIRED, eopayment.WAITING: TX_WAITING, eopayment.ERROR: TX_ERROR,
                 eopayment.RECEIVED: TX_WAITING, eopayment.ACCEPTED: TX_WAITING}
STATUS_WORDS = {TX_PAID: _l("Paiement accepté"), TX_DENIED: _l("Paiement abandonné"),
                TX_CANCELLED: _l("Paiement abandonné"), TX_EXPIRED: _l("Paiement abandonné"),
                TX_ERROR: _l("Paiement abandonné"), TX_WAITING: _l("En attente de confirmation"),
                TX_CREATED: _l("En attente de confirmation")}


class NotificationRefused(Exception):
    """A notification that records nothing (unsigned, unreadable, tampered), with its reason."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------- the backends

def _sign(*parts) -> str:
    key = hashlib.sha256(("standin:" + str(current_app.config["SECRET_KEY"])).encode()).digest()
    return hmac.new(key, "|".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


class StandInPayment(eo_dummy.Payment):
    """eopayment's dummy backend, its payment page being the portal's stand-in
    (`STANDIN_PATH`), its notifications signed with an HMAC (never in production)."""

    standin_url = ""

    def request(self, amount, **kwargs):
        transaction_id, kind, url = super().request(amount, **kwargs)
        query = parse_qs(urlsplit(url).query)
        fields = {k: v[0] for k, v in query.items()}
        fields["sig"] = _sign("request", *(fields.get(k, "") for k in STANDIN_FIELDS))
        return transaction_id, kind, f"{self.standin_url}?{urlencode(fields)}"

    def response(self, query_string, **kwargs):
        response = super().response(query_string, **kwargs)
        form = parse_qs(eopayment.force_text(query_string))
        first = {k: v[0] for k, v in form.items()}
        outcome = "ok" if "ok" in first else ("refuse" if "refuse" in first else ("cancel" if "cancel" in first
                                                                               else ""))
        expected = _sign("notify", response.order_id, first.get("amount", ""), outcome)
        response.signed = bool(response.signed and _same(first.get("hmac", ""), expected))
        if outcome == "refuse":
            response.result = eopayment.DENIED
        elif outcome == "cancel":
            response.result = eopayment.CANCELLED
        return response


def standin_notification(fields: dict, outcome: str) -> dict:
    """What the stand-in page sends to the notification URL (as PayFiP would, server to server)."""
    data = {"transaction_id": fields["transaction_id"], "amount": fields["amount"], "signed": "1",
            outcome: "1"}
    data["hmac"] = _sign("notify", fields["transaction_id"], fields["amount"], outcome)
    return data


# What the stand-in page receives, every field signed: its return and notification URLs cannot be
# changed on the way (a tampered one sent the parent off the portal, or answered 500 with a newline).
STANDIN_FIELDS = ("transaction_id", "amount", "email", "return_url", "direct_notification_url", "origin", "orderid",
                  "subject")


def standin_request_is_genuine(fields: dict) -> bool:
    return _same(fields.get("sig", ""), _sign("request", *(fields.get(k, "") for k in STANDIN_FIELDS)))


def _same(given, expected: str) -> bool:
    """A signature as sent (any text: compare_digest refuses non-ASCII str) against the expected one."""
    return hmac.compare_digest(str(given or "").encode("utf-8", "surrogatepass"), expected.encode())


STANDIN_PATH = "/paiements/page-de-test"


def standin_url() -> str:
    from core.mail import _base_url
    from tenants.models import Tenant

    return f"{_base_url()}/{db.session.get(Tenant, require_tenant_id()).slug}{STANDIN_PATH}"


def backend_kind() -> str | None:
    """The application's backend: PAYMENT_BACKEND (production: payfip_ws; development and tests:
    dummy, i.e. the stand-in)."""
    kind = current_app.config.get("PAYMENT_BACKEND") or PAYFIP
    return kind if kind in (PAYFIP, DUMMY) else None


def available(regie: bconf.Regie) -> bool:
    kind = backend_kind()
    if not regie.online_payment or kind is None:
        return False
    return kind == DUMMY or bool(regie.payfip_client)


def make_backend(regie: bconf.Regie, *, return_url: str, notify_url: str, origin: str = "") -> eopayment.Payment:
    kind = backend_kind()
    if kind == PAYFIP:
        return eopayment.Payment(PAYFIP, {"numcli": regie.payfip_client, "saisie": regie.payfip_saisie,
                                          "normal_return_url": return_url, "automatic_return_url": notify_url})
    if kind == DUMMY and current_app.config.get("PAYMENT_STANDIN"):
        options = {"normal_return_url": return_url, "automatic_return_url": notify_url, "origin": origin}
        payment = eopayment.Payment(DUMMY, options)
        payment.backend = StandInPayment(options)
        payment.backend.standin_url = standin_url()
        return payment
    raise PaymentError(str(_l("Le paiement en ligne n'est pas disponible pour le moment.")))


# ---------------------------------------------------------------------------- start

def refdet_for(regie: bconf.Regie, year: int, tx_id: int) -> str:
    """PayFiP's REFDET: alphanumeric, 30 characters at most, unique per régie and year."""
    code = re.sub(r"[^A-Za-z0-9]", "", regie.code).upper()[:12] or "REGIE"
    return f"{code}{year}T{tx_id:010d}"[:30]


def payable(family_id: int, invoice_ids) -> list:
    """The statements of these invoices of the family, each checked payable online (PaymentError)."""
    parsed = {as_id(i) for i in invoice_ids}
    if None in parsed:  # not an id the database can hold ("²", 30 digits): names no invoice
        raise LookupError(invoice_ids)
    ids = sorted(parsed)
    if not ids:
        raise PaymentError(str(_l("Cochez au moins une facture à payer.")), "invoices")
    if len(ids) > 50:
        raise PaymentError(str(_l("Payez au plus 50 factures à la fois.")), "invoices")
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.id.in_(ids))))
    if len(invoices) != len(ids) or any(i.family_id != family_id for i in invoices):
        raise LookupError(ids)
    rows = statements(invoices)
    for st in rows:
        number = st.invoice.number
        if st.invoice.kind != DOC_INVOICE:
            raise PaymentError(str(_l("%(number)s est un avoir : il ne se paie pas.", number=number)), "invoices")
        if st.recovery:
            raise PaymentError(str(_l("La facture %(number)s est transmise au Trésor public pour recouvrement : le "
                                      "paiement en ligne est fermé. Réglez-la auprès du comptable public.",
                                      number=number)), "invoices")
        if st.under_debit:
            raise PaymentError(str(_l("La facture %(number)s sera payée par prélèvement automatique : elle ne se paie "
                                      "pas en ligne.", number=number)), "invoices")
        if st.balance <= 0:
            raise PaymentError(str(_l("La facture %(number)s est déjà réglée.", number=number)), "invoices")
    return rows


def start(family_id: int, invoice_ids, *, user, email: str, return_url: Callable[[int], str], notify_url: str,
          origin: str = "") -> tuple[OnlineTransaction, str]:
    """Write the transaction, ask the backend, return (transaction, URL of the payment page)."""
    from core.billing.runs import config

    regie = config().regie
    if not available(regie):
        raise PaymentError(str(_l("Le paiement en ligne n'est pas proposé par la commune pour le moment.")))
    rows = payable(family_id, invoice_ids)
    amount = sum((st.balance for st in rows), Decimal("0.00"))
    if amount < MIN_AMOUNT:
        raise PaymentError(str(_l("Le paiement en ligne commence à %(min)s : réglez ce montant au guichet.",
                                  min=euros(MIN_AMOUNT))), "invoices")
    if amount > MAX_AMOUNT:
        raise PaymentError(str(_l("Le paiement en ligne s'arrête à %(max)s.", max=euros(MAX_AMOUNT))), "invoices")
    amount_cents = cents(amount)
    year = clock.today().year
    tx = OnlineTransaction(family_id=family_id, user_id=getattr(user, "id", None), regie=regie.code, exer=year,
                           refdet="-", backend=backend_kind(), amount=amount, amount_cents=amount_cents,
                           invoice_ids=[st.invoice.id for st in rows], email=email or "", status=TX_CREATED)
    db.session.add(tx)
    db.session.flush()
    tx.refdet = refdet_for(regie, year, tx.id)
    backend = make_backend(regie, return_url=return_url(tx.id), notify_url=notify_url, origin=origin)
    numbers = " ".join(st.invoice.number for st in rows)
    try:
        # eopayment takes euros and turns them into cents itself: give it the exact Decimal of our cents.
        backend_id, _kind, url = backend.request(Decimal(amount_cents).scaleb(-2), email=email, refdet=tx.refdet,
                                                 exer=str(year), orderid=tx.refdet, subject=f"Factures {numbers}")
    except (eopayment.PaymentException, ValueError) as exc:
        log.warning("online payment %s: backend refused the request: %s", tx.refdet, exc)
        raise PaymentError(str(_l("Le service de paiement ne répond pas. Réessayez dans quelques minutes."))) \
            from None
    tx.backend_id = str(backend_id)[:100]
    tx.status = TX_WAITING
    db.session.flush()
    return tx, url


# ---------------------------------------------------------------------------- notification

def _notified_cents(response) -> int | None:
    data = response.bank_data or {}
    raw = data.get("montant", data.get("amount"))
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
    if raw in (None, ""):
        return None
    if "montant" in data:       # PayFiP: cents (ASCII digits; anything else is no amount we sent)
        text = str(raw).strip()
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else -1
    try:                        # dummy: euros as written by the request ("10.10")
        return cents(Decimal(str(raw)))
    except ArithmeticError:
        return -1


def _jsonable(data) -> dict:
    out = {}
    for key, value in (data or {}).items():
        if isinstance(value, list | tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        out[str(key)] = value
    return out


def notify(query_string: str, *, return_url: str = "", notify_url: str = "") -> OnlineTransaction:
    """The backend's notification: read it, check its signature, then `apply_response`.  Raises
    NotificationRefused (nothing recorded) or LookupError (unknown in this commune: 404)."""
    from core.billing.runs import config

    backend = make_backend(config().regie, return_url=return_url, notify_url=notify_url)
    try:
        response = backend.response(query_string)
    except eopayment.PaymentException as exc:
        raise NotificationRefused(f"notification illisible : {exc}") from None
    if not response.signed:
        raise NotificationRefused("notification non signée : ignorée")
    return apply_response(response)


def apply_response(response) -> OnlineTransaction:
    """Lock the transaction, then: already paid → nothing (replay); signed PAID with the right
    amount → one receipt over its invoices (oldest first, the rest a credit) and "Paiement reçu";
    another result → only the transaction's status (never back from paid)."""
    order_id = str(response.order_id or "")
    found = db.session.scalars(select(OnlineTransaction.id).where(OnlineTransaction.backend_id == order_id)).first()
    if not order_id or found is None:
        raise LookupError(order_id)
    tx = lock_one(OnlineTransaction, found)
    if tx.status == TX_PAID:
        tx.notifications += 1
        return tx
    if not response.signed:
        raise NotificationRefused("notification non signée : ignorée")
    result = RESULT_STATUS.get(response.result, TX_ERROR)
    if result == TX_PAID:
        notified = _notified_cents(response)
        if notified != tx.amount_cents:
            raise NotificationRefused(f"montant notifié {notified} ≠ montant de la transaction {tx.amount_cents} "
                                      "(centimes) : rien n'est enregistré")
        already = db.session.scalars(select(Receipt).where(Receipt.transaction_id == tx.id)).first()
        if already is None:
            lock(Invoice, tx.invoice_ids)
            receipt = settle(tx.family_id, tx.invoice_ids, amount=tx.amount, method=ONLINE, reference=tx.refdet,
                             paid_on=clock.today(), actor="Paiement en ligne", transaction_id=tx.id)
            _mail_received(tx, receipt)
    tx.status = result
    tx.bank_status = str(response.bank_status or "")[:200]
    tx.bank_data = _jsonable(response.bank_data)
    tx.notifications += 1
    tx.notified_at = clock.utcnow()
    return tx


def _mail_received(tx: OnlineTransaction, receipt: Receipt) -> None:
    from core.billing.invoices import family_recipients

    recipient = family_recipients([tx.family_id]).get(tx.family_id) or {}
    to = tx.email or recipient.get("email")
    if not to:
        return
    queue_mail(to=to, template="payment_received", locale=recipient.get("locale") or "fr", user=None,
               context={"name": recipient.get("name", ""), "number": receipt.number,
                        "total_cents": cents(receipt.amount), "credit_cents": cents(receipt.credit_amount),
                        "invoices": [a["number"] for a in receipt.allocations or []], "path": "/factures"})


# ---------------------------------------------------------------------------- reconciliation

def reconcile(now=None) -> int:
    """Transactions left waiting past an idop's life: ask PayFiP (`payment_status`) and apply its
    answer; the stand-in has no such service, its transactions expire.  Returns how many changed."""
    from core.billing.runs import config

    now = now or clock.utcnow()
    regie = config().regie
    changed = 0
    waiting = list(db.session.scalars(select(OnlineTransaction).where(
        OnlineTransaction.status.in_((TX_CREATED, TX_WAITING)),
        OnlineTransaction.created_at <= now - RECONCILE_AFTER).order_by(OnlineTransaction.id).limit(200)))
    for tx in waiting:
        if tx.backend == PAYFIP and tx.backend_id and backend_kind() == PAYFIP:
            backend = make_backend(regie, return_url="", notify_url="")
            try:
                response = backend.payment_status(tx.backend_id,
                                                  transaction_date=tx.created_at.replace(tzinfo=UTC))
            except eopayment.PaymentException as exc:
                log.warning("reconcile %s: %s", tx.refdet, exc)
                continue
            try:
                before = tx.status
                tx = apply_response(response)
                changed += tx.status != before
            except NotificationRefused as exc:
                log.warning("reconcile %s: %s", tx.refdet, exc.message)
        else:
            tx = lock_one(OnlineTransaction, tx.id)
            if tx.status in (TX_CREATED, TX_WAITING):
                tx.status = TX_EXPIRED
                tx.bank_status = "expired (no notification)"
                changed += 1
    return changed


def of_family(family_id: int, limit: int = 20) -> list[OnlineTransaction]:
    return list(db.session.scalars(select(OnlineTransaction).where(OnlineTransaction.family_id == family_id)
                                   .order_by(OnlineTransaction.id.desc()).limit(limit)))

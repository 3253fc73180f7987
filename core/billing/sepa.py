"""SEPA direct debit: invoices of families under an active mandate are put under debit when a run
is published (no online payment then); agents export them as a pain.008.001.02 file (sepaxml, FRST
for a mandate's first debit then RCUR, the régie's creditor id), checked against the XSD shipped in
this package; on the collection date a receipt pays each invoice; a debit the bank rejects reopens
its invoice and the family is mailed.  Amounts: Decimal here, integer cents in the file.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from pathlib import Path

from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import clock
from core.billing import config as bconf
from core.billing.bank import earliest_collection, is_business_day
from core.billing.invoices import family_recipients, statements
from core.billing.models import DOC_INVOICE, Invoice
from core.billing.payment_models import (
    DEBIT_COLLECTED,
    DEBIT_EXPORTED,
    DEBIT_PLANNED,
    DEBIT_REJECTED,
    MANDATE_ACTIVE,
    Debit,
    DebitBatch,
    Mandate,
    Receipt,
)
from core.billing.pricing import cents, euros
from core.locking import lock, lock_one
from core.mail import queue_mail
from extensions import db
from tenants.context import require_tenant_id

DEBIT_WORDS = {"planned": _l("Prévu"), "exported": _l("Transmis à la banque"), "collected": _l("Prélevé"),
               "rejected": _l("Rejeté"), "cancelled": _l("Annulé")}
SCHEMA = "pain.008.001.02"
XSD = Path(__file__).resolve().parent / "schemas" / f"{SCHEMA}.xsd"
ZERO = Decimal("0.00")


class SepaError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def available(regie: bconf.Regie) -> bool:
    """The régie has what a pain.008 needs: creditor id, name, account."""
    return bool(regie.sepa_creditor_id and regie.sepa_creditor_iban and regie.sepa_creditor_bic)


def _regie() -> bconf.Regie:
    from core.billing.runs import config

    return config().regie


def plan_debits(documents) -> int:
    """At publication: each new invoice (`documents`: id, family_id, kind, total) of a family under an
    active mandate is under debit for its balance after credits.  Three statements whatever the
    number of families."""
    from sqlalchemy import func, insert

    from core.billing.models import CreditUse

    positive = [d for d in documents if d.kind == DOC_INVOICE and d.total > 0]
    if not positive:
        return 0
    mandates = dict(db.session.execute(select(Mandate.family_id, Mandate.id).where(
        Mandate.family_id.in_({d.family_id for d in positive}), Mandate.status == MANDATE_ACTIVE)).all())
    positive = [d for d in positive if d.family_id in mandates]
    if not positive:
        return 0
    used = dict(db.session.execute(select(CreditUse.invoice_id, func.sum(CreditUse.amount)).where(
        CreditUse.invoice_id.in_([d.id for d in positive])).group_by(CreditUse.invoice_id)).all())
    tid = require_tenant_id()
    now = clock.utcnow()
    rows = [{"tenant_id": tid, "invoice_id": d.id, "mandate_id": mandates[d.family_id], "family_id": d.family_id,
             "amount": d.total - (used.get(d.id) or ZERO), "status": DEBIT_PLANNED, "created_at": now}
            for d in positive if d.total - (used.get(d.id) or ZERO) > 0]
    if rows:
        db.session.connection().execute(insert(Debit.__table__), rows)
    return len(rows)


def planned() -> list[Debit]:
    return list(db.session.scalars(select(Debit).where(Debit.status == DEBIT_PLANNED).order_by(Debit.id)))


def debits_of(family_id: int) -> list[Debit]:
    return list(db.session.scalars(select(Debit).where(Debit.family_id == family_id)
                                   .order_by(Debit.id.desc()).limit(50)))


def check_collection_date(day: date | None, regie: bconf.Regie) -> date:
    today = clock.today()
    first = earliest_collection(today, regie.sepa_lead_days)
    if day is None:
        raise SepaError(str(_l("Indiquez la date d'échéance du prélèvement.")), "collection_date")
    if day < first or not is_business_day(day):
        raise SepaError(str(_l("La date d'échéance est un jour ouvré à partir du %(date)s (délai de la banque).",
                               date=format_date(first, "d MMMM yyyy"))), "collection_date")
    if (day - today).days > 365:
        raise SepaError(str(_l("La date d'échéance est dans l'année qui vient.")), "collection_date")
    return day


def _sequence_types(mandate_ids) -> dict[int, str]:
    """FRST for a mandate's first debit (none exported and not rejected yet), RCUR after."""
    done = set(db.session.scalars(select(Debit.mandate_id).where(
        Debit.mandate_id.in_(list(mandate_ids) or [0]), Debit.status.in_((DEBIT_EXPORTED, DEBIT_COLLECTED)))))
    return {m: ("RCUR" if m in done else "FRST") for m in mandate_ids}


def export(collection_date: date | None, *, agent, actor: str) -> DebitBatch:
    """A pain.008 of every planned debit: validated against the XSD, its sum the debits' sum; each
    mandate's IBAN read is logged.  Raises SepaError in French (nothing written then)."""
    from sepaxml import SepaDD

    from core.billing.mandates import log_iban_read, may_read_iban

    regie = _regie()
    if not available(regie):
        raise SepaError(str(_l("Renseignez l'identifiant créancier SEPA (ICS), l'IBAN et le BIC de la régie "
                               "(Facturation → Tarifs et régie).")))
    if not may_read_iban(regie, agent):
        raise SepaError(str(_l("Votre compte n'a pas accès aux IBAN : le fichier est produit par le régisseur.")))
    day = check_collection_date(collection_date, regie)
    debits = list(lock(Debit, [d.id for d in planned()]).values())
    debits = [d for d in debits if d.status == DEBIT_PLANNED]
    if not debits:
        raise SepaError(str(_l("Aucune facture n'est à prélever.")))
    invoices = lock(Invoice, [d.invoice_id for d in debits])
    mandates = {m.id: m for m in db.session.scalars(select(Mandate).where(
        Mandate.id.in_({d.mandate_id for d in debits})))}
    balances = {st.invoice.id: st.balance for st in statements(list(invoices.values()))}
    seq = _sequence_types(mandates)
    sdd = SepaDD({"name": regie.sepa_creditor_name or regie.name or "Regie", "IBAN": regie.sepa_creditor_iban,
                  "BIC": regie.sepa_creditor_bic, "batch": True, "creditor_id": regie.sepa_creditor_id,
                  "currency": "EUR"}, schema=SCHEMA, clean=True)
    kept: list[Debit] = []
    total = ZERO
    for debit in sorted(debits, key=lambda d: d.id):
        mandate = mandates[debit.mandate_id]
        amount = min(debit.amount, balances.get(debit.invoice_id, ZERO))
        if mandate.status != MANDATE_ACTIVE or amount <= 0:
            debit.status = "cancelled"
            continue
        invoice = invoices[debit.invoice_id]
        debit.amount = amount
        debit.sequence_type = seq[mandate.id]
        debit.end_to_end_id = f"{invoice.number}-{debit.id}"[:35]
        debit.collection_date = day
        sdd.add_payment({"name": mandate.holder, "IBAN": mandate.iban, "BIC": mandate.bic,
                         "amount": cents(amount), "type": debit.sequence_type, "collection_date": day,
                         "mandate_id": mandate.rum, "mandate_date": mandate.signed_at.date(),
                         "description": f"Facture {invoice.number}", "endtoend_id": debit.end_to_end_id})
        log_iban_read(agent=agent, mandate=mandate, context=f"fichier pain.008 du {day.strftime('%d/%m/%Y')}")
        kept.append(debit)
        total += amount
    if not kept:
        raise SepaError(str(_l("Aucune facture n'est à prélever.")))
    xml = sdd.export(validate=True)
    validate_xml(xml)
    batch = DebitBatch(regie=regie.code, message_id=sdd.msg_id[:35], collection_date=day, count=len(kept),
                       total=total, xml=xml.decode("utf-8"), created_by=actor[:200])
    db.session.add(batch)
    db.session.flush()
    for debit in kept:
        debit.batch_id = batch.id
        debit.status = DEBIT_EXPORTED
    db.session.flush()
    return batch


def validate_xml(xml: bytes) -> None:
    """Against the pain.008.001.02 XSD shipped with the portal (no download)."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.fromstring(xml)
    if not schema.validate(doc):
        raise SepaError(str(_l("Le fichier de prélèvement n'est pas conforme au schéma %(schema)s : %(error)s",
                               schema=SCHEMA, error=str(schema.error_log.last_error))))


def batches() -> list[DebitBatch]:
    return list(db.session.scalars(select(DebitBatch).order_by(DebitBatch.id.desc()).limit(100)))


def batch_debits(batch_id: int) -> list[Debit]:
    return list(db.session.scalars(select(Debit).where(Debit.batch_id == batch_id).order_by(Debit.id)))


def collect_due(today: date | None = None) -> int:
    """Exported debits whose collection date has come: a receipt (Prélèvement) pays each invoice."""
    from core.billing.payments import DIRECT_DEBIT, settle

    today = today or clock.today()
    due = list(db.session.scalars(select(Debit.id).where(Debit.status == DEBIT_EXPORTED,
                                                         Debit.collection_date <= today)))
    count = 0
    for debit in lock(Debit, due).values():
        if debit.status != DEBIT_EXPORTED:
            continue
        settle(debit.family_id, [debit.invoice_id], amount=debit.amount, method=DIRECT_DEBIT,
               reference=debit.end_to_end_id or "", paid_on=debit.collection_date, actor="Prélèvement SEPA",
               debit_id=debit.id)
        debit.status = DEBIT_COLLECTED
        debit.collected_at = clock.utcnow()
        count += 1
    return count


REJECT_REASONS = {"AC04": _l("Compte clôturé"), "AM04": _l("Provision insuffisante"),
                  "MD01": _l("Pas de mandat"), "MD06": _l("Remboursement demandé par le débiteur"),
                  "MS02": _l("Refus du débiteur"), "AC01": _l("Numéro de compte incorrect"),
                  "MS03": _l("Raison non communiquée")}


def reject(debit_id: int, *, code: str, actor: str) -> Debit:
    """The bank rejected this debit: the invoice reopens (payable online again) and the family is mailed."""
    from core.billing.payments import cancel

    debit = lock_one(Debit, debit_id)
    if debit is None:
        raise LookupError(debit_id)
    if debit.status not in (DEBIT_EXPORTED, DEBIT_COLLECTED):
        raise SepaError(str(_l("Seul un prélèvement transmis à la banque peut être rejeté.")))
    if code not in REJECT_REASONS:
        raise SepaError(str(_l("Choisissez le motif du rejet.")), "code")
    reason = f"{code} — {REJECT_REASONS[code]}"
    receipt = db.session.scalars(select(Receipt).where(Receipt.debit_id == debit.id)).first()
    if receipt is not None and receipt.cancelled_at is None:
        cancel(receipt.id, reason=f"Prélèvement rejeté : {reason}", actor=actor, internal=True)
    debit.status = DEBIT_REJECTED
    debit.rejected_at = clock.utcnow()
    debit.rejected_by = actor[:200]
    debit.reject_reason = reason
    invoice = db.session.get(Invoice, debit.invoice_id)
    recipient = family_recipients([debit.family_id]).get(debit.family_id) or {}
    if recipient.get("email"):
        queue_mail(to=recipient["email"], template="debit_rejected", locale=recipient.get("locale") or "fr",
                   user=None, context={"name": recipient.get("name", ""), "number": invoice.number,
                                       "total_cents": cents(debit.amount), "reason": str(REJECT_REASONS[code]),
                                       "path": f"/factures/{invoice.id}"})
    return debit


def file_name(batch: DebitBatch) -> str:
    return f"prelevements-{batch.collection_date.isoformat()}-{batch.id}.xml"


def checksum(batch: DebitBatch) -> str:
    return hashlib.sha256(batch.xml.encode()).hexdigest()[:16]


def summary_line(batch: DebitBatch) -> str:
    return f"{batch.count} — {euros(batch.total)}"

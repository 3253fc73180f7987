"""Agents: a family's account (balance, invoices, receipts, credits, mandate), counter payments and
their receipts (cancelled with a reason), the payment journal per day and type (CSV), SEPA mandates
and pain.008 files, rejected debits, late invoices and their hand-over to the Trésor public.
Load (404), check, act; the services never commit, web/transaction.py does."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from blueprints.admin.common import actor_name, audit, no_change
from blueprints.billing import admin_bp as bp
from blueprints.billing.common import parse_date, pdf_response
from core import clock
from core.billing import config as bconf
from core.billing import documents, mandates, online, payments, reminders, sepa
from core.billing import invoices as inv
from core.billing.models import Credit, Invoice
from core.billing.payment_models import DebitBatch, Mandate, Receipt
from core.billing.pricing import euros
from core.bounds import as_ids
from core.models import Family
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import agent_required, current_tenant
from web.transaction import on_busy, roll_back


def _regie():
    return bconf.for_tenant(current_tenant()).regie


# ---------------------------------------------------------------- a family's account

@bp.route("/familles/<int:family_id>/compte", methods=["GET", "POST"])
@agent_required
def account(family_id):
    family = get_or_404(db.session, Family, family_id)
    error = None
    if request.method == "POST":
        on_busy(url_for("billing_admin.account", family_id=family.id))
        try:
            receipt = payments.record_counter_payment(
                family.id, as_ids(request.form.getlist("factures")),
                amount_raw=request.form.get("montant", ""), paid_on=parse_date(request.form.get("date")),
                method=request.form.get("mode", ""), reference=request.form.get("reference", ""),
                actor=actor_name())
            audit(_("Règlement %(number)s enregistré (famille %(name)s)", number=receipt.number, name=family.name))
            flash(_("Règlement enregistré : reçu %(number)s.", number=receipt.number), "success")
            return redirect(url_for("billing_admin.receipt", receipt_id=receipt.id), code=303)
        except LookupError:
            abort(404)
        except payments.PaymentError as err:
            roll_back()
            no_change()
            error = err
    return _account_page(family, error=error)


def _account_page(family: Family, *, error=None, mandate_error=None):
    """The family's account; `error`: the counter payment refused, `mandate_error`: the paper mandate
    refused (each form then comes back with what was typed and the message next to the field)."""
    balance = payments.family_balance(family.id)
    credits = list(db.session.scalars(select(Credit).where(Credit.family_id == family.id).order_by(Credit.id)))
    return render_template("billing/admin/account.html", family=family, balance=balance, credits=credits,
                           receipts=payments.of_family(family.id), transactions=online.of_family(family.id),
                           mandates=mandates.of_family(family.id), mask=mandates.mask, error=error,
                           form=request.form if error else {}, today=clock.today(), methods=inv.COUNTER_METHODS,
                           all_methods=inv.PAYMENT_METHODS, regie=_regie(), mandate_error=mandate_error,
                           mandate_form=request.form if mandate_error else {},
                           words={k: str(v) for k, v in mandates.MANDATE_WORDS.items()}), \
        (422 if error or mandate_error else 200)


@bp.get("/recus/<int:receipt_id>")
@agent_required
def receipt(receipt_id):
    row = get_or_404(db.session, Receipt, receipt_id)
    return render_template("billing/admin/receipt.html", receipt=row, methods=inv.PAYMENT_METHODS, regie=_regie())


@bp.get("/recus/<int:receipt_id>.pdf")
@agent_required
def receipt_pdf(receipt_id):
    row = get_or_404(db.session, Receipt, receipt_id)
    data = documents.render_pdf("receipt", tenant=current_tenant(), receipt=row, regie=_regie(),
                                methods=inv.PAYMENT_METHODS)
    return pdf_response(data, f"{row.number}.pdf")


@bp.post("/recus/<int:receipt_id>/annuler")
@agent_required
def receipt_cancel(receipt_id):
    row = get_or_404(db.session, Receipt, receipt_id)
    on_busy(url_for("billing_admin.receipt", receipt_id=row.id))
    try:
        payments.cancel(row.id, reason=request.form.get("motif", ""), actor=actor_name())
        audit(_("Règlement %(number)s annulé", number=row.number))
        flash(_("Le règlement %(number)s est annulé : les factures sont à nouveau à régler.", number=row.number),
              "success")
    except payments.PaymentError as err:
        roll_back()
        no_change()
        flash(err.message, "error")
    return redirect(url_for("billing_admin.receipt", receipt_id=row.id), code=303)


# ---------------------------------------------------------------- the payment journal

def _journal_args():
    today = clock.today()
    first = parse_date(request.args.get("du")) or today.replace(day=1)
    last = parse_date(request.args.get("au")) or today
    if last < first:
        first, last = last, first
    if (last - first).days > 400:
        first = last - timedelta(days=400)
    method = request.args.get("mode") or None
    return first, last, method if method in inv.PAYMENT_METHODS else None


@bp.get("/paiements")
@agent_required
def journal():
    first, last, method = _journal_args()
    days = payments.journal(first, last, method)
    totals: dict = {}
    for day in days:
        for m, amount in day.by_method.items():
            totals[m] = totals.get(m, inv.ZERO) + amount
    return render_template("billing/admin/journal.html", days=days, first=first, last=last, method=method,
                           methods=inv.PAYMENT_METHODS, totals=totals, total=sum(totals.values(), inv.ZERO))


@bp.get("/paiements.csv")
@agent_required
def journal_csv():
    first, last, method = _journal_args()
    return Response(payments.journal_csv(payments.journal(first, last, method)), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="paiements-{first}-{last}.csv"'})


# ---------------------------------------------------------------- SEPA

@bp.route("/prelevements", methods=["GET", "POST"])
@agent_required
def debits():
    regie = _regie()
    error = None
    if request.method == "POST":
        on_busy(url_for("billing_admin.debits"))
        try:
            batch = sepa.export(parse_date(request.form.get("echeance")), agent=current_user, actor=actor_name())
            audit(_("Fichier de prélèvements du %(date)s (%(count)d)", date=batch.collection_date.strftime("%d/%m/%Y"),
                    count=batch.count))
            flash(_("Le fichier pain.008 est prêt : %(count)d prélèvement(s), %(amount)s.", count=batch.count,
                    amount=euros(batch.total)), "success")
            return redirect(url_for("billing_admin.debits"), code=303)
        except sepa.SepaError as err:
            roll_back()
            no_change()
            error = err
    first = None
    if sepa.available(regie):
        from core.billing.bank import earliest_collection

        first = earliest_collection(clock.today(), regie.sepa_lead_days)
    active = list(db.session.scalars(select(Mandate).where(Mandate.status.in_(("active", "pending")))
                                     .order_by(Mandate.status, Mandate.id.desc()).limit(500)))
    return render_template("billing/admin/debits.html", regie=regie, available=sepa.available(regie),
                           planned=sepa.planned(), batches=sepa.batches(), mandates=active, mask=mandates.mask,
                           error=error, form=request.form, first=first,
                           may_read=mandates.may_read_iban(regie, current_user),
                           words={k: str(v) for k, v in mandates.MANDATE_WORDS.items()},
                           debit_words={k: str(v) for k, v in sepa.DEBIT_WORDS.items()}), (422 if error else 200)


@bp.get("/prelevements/lots/<int:batch_id>")
@agent_required
def batch(batch_id):
    row = get_or_404(db.session, DebitBatch, batch_id)
    return render_template("billing/admin/batch.html", batch=row, debits=sepa.batch_debits(row.id),
                           reasons={k: str(v) for k, v in sepa.REJECT_REASONS.items()},
                           debit_words={k: str(v) for k, v in sepa.DEBIT_WORDS.items()})


@bp.get("/prelevements/lots/<int:batch_id>.xml")
@agent_required
def batch_xml(batch_id):
    """The pain.008 for the bank: full IBANs, so each mandate's read is logged."""
    row = get_or_404(db.session, DebitBatch, batch_id)
    if not mandates.may_read_iban(_regie(), current_user):
        abort(403)
    for debit in sepa.batch_debits(row.id):
        mandates.log_iban_read(agent=current_user, mandate=debit.mandate, context="téléchargement pain.008")
    return Response(row.xml, mimetype="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{sepa.file_name(row)}"',
                             "Cache-Control": "private, no-store"})


@bp.post("/prelevements/<int:debit_id>/rejet")
@agent_required
def debit_reject(debit_id):
    from core.billing.payment_models import Debit

    debit = get_or_404(db.session, Debit, debit_id)
    on_busy(url_for("billing_admin.batch", batch_id=debit.batch_id) if debit.batch_id else url_for("billing_admin.debits"))
    try:
        sepa.reject(debit.id, code=request.form.get("code", ""), actor=actor_name())
        audit(_("Prélèvement rejeté : facture %(number)s", number=debit.invoice.number))
        flash(_("Prélèvement marqué rejeté : la facture %(number)s est à nouveau à régler, la famille est prévenue.",
                number=debit.invoice.number), "success")
    except sepa.SepaError as err:
        roll_back()
        no_change()
        flash(err.message, "error")
    return redirect(url_for("billing_admin.batch", batch_id=debit.batch_id) if debit.batch_id
                    else url_for("billing_admin.debits"), code=303)


@bp.route("/mandats/<int:mandate_id>", methods=["GET", "POST"])
@agent_required
def mandate(mandate_id):
    row = get_or_404(db.session, Mandate, mandate_id)
    full = error = None
    if request.method == "POST":
        action = request.form.get("action")
        on_busy(url_for("billing_admin.mandate", mandate_id=row.id))
        try:
            if action == "iban":
                full = mandates.reveal(row, agent=current_user, context="fiche du mandat")
            elif action == "revoquer":
                mandates.revoke(row.id, who=actor_name(), reason=request.form.get("motif", ""))
                audit(_("Mandat %(rum)s révoqué", rum=row.rum))
                flash(_("Le mandat %(rum)s est révoqué.", rum=row.rum), "success")
                return redirect(url_for("billing_admin.mandate", mandate_id=row.id), code=303)
            else:
                abort(400)
        except mandates.MandateError as err:
            roll_back()
            no_change()
            if err.field:
                error = err  # next to its field, what was typed kept
            else:
                flash(err.message, "error")
    return render_template("billing/admin/mandate.html", mandate=row, full=full, mask=mandates.mask,
                           reads=mandates.iban_reads(row.id), may_read=mandates.may_read_iban(_regie(), current_user),
                           words={k: str(v) for k, v in mandates.MANDATE_WORDS.items()},
                           debits=sepa.debits_of(row.family_id), error=error, form=request.form), \
        (422 if error else 200)


@bp.post("/familles/<int:family_id>/mandat")
@agent_required
def paper_mandate(family_id):
    """A mandate signed on paper at the counter, recorded by an agent (then validated as any other)."""
    family = get_or_404(db.session, Family, family_id)
    on_busy(url_for("billing_admin.account", family_id=family.id))
    try:
        mandate_row = mandates.sign(family, current_user, holder=request.form.get("titulaire", ""),
                                    iban=request.form.get("iban", ""), bic=request.form.get("bic", ""),
                                    accepted=request.form.get("accepte") == "oui", actor=actor_name())
        audit(_("Mandat papier %(rum)s enregistré (famille %(name)s)", rum=mandate_row.rum, name=family.name))
        flash(_("Mandat %(rum)s enregistré : il attend sa validation (Modifications en attente).",
                rum=mandate_row.rum), "success")
    except mandates.MandateError as err:
        roll_back()
        no_change()
        if err.field in ("holder", "iban", "bic", "accepted"):
            return _account_page(get_or_404(db.session, Family, family_id), mandate_error=err)
        flash(err.message, "error")
    return redirect(url_for("billing_admin.account", family_id=family.id), code=303)


# ---------------------------------------------------------------- late invoices and recovery

@bp.get("/impayes")
@agent_required
def late():
    rows = reminders.late()
    return render_template("billing/admin/late.html", rows=rows,
                           sent=reminders.reminders_of([st.invoice.id for st in rows]),
                           total=sum((st.balance for st in rows), inv.ZERO))


@bp.post("/factures/<int:invoice_id>/tresor")
@agent_required
def hand_over(invoice_id):
    document = get_or_404(db.session, Invoice, invoice_id)
    on_busy(url_for("billing_admin.late"))
    try:
        reminders.hand_over(document.id, actor=actor_name(), note=request.form.get("note", ""))
        audit(_("Facture %(number)s transmise au Trésor public", number=document.number))
        flash(_("La facture %(number)s est transmise au Trésor public : le paiement en ligne est fermé.",
                number=document.number), "success")
    except reminders.RecoveryError as err:
        roll_back()
        no_change()
        flash(err.message, "error")
    return redirect(url_for("billing_admin.late"), code=303)

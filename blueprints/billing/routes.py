"""The parents' side: load (404 when not this family's), check, act."""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from blueprints.billing import bp
from blueprints.billing.common import parse_date, pdf_response
from core import clock
from core.billing import attestations, documents
from core.billing import config as bconf
from core.billing import invoices as inv
from core.billing import quotients as qfs
from core.billing.models import Invoice
from core.billing.pricing import FamilyPricing, QFPeriod, price
from core.dossier.records import family_children
from core.models import INSCRIPTION_ACCEPTED, ROLE_PARENT, Activity, Child, Inscription
from extensions import db
from tenants.scoping import get_scoped
from tenants.web import current_tenant, role_required
from web.transaction import roll_back


def _family_id() -> int:
    if current_user.family_id is None:
        abort(404)
    return current_user.family_id


def _own_invoice(invoice_id: int) -> Invoice:
    """The family's document, else 404 (another family's or another commune's alike)."""
    invoice = get_scoped(db.session, Invoice, invoice_id)
    if invoice is None or invoice.family_id != _family_id():
        abort(404)
    return invoice


@bp.get("/factures")
@role_required(ROLE_PARENT)
def invoices():
    rows = inv.of_family(_family_id())
    return render_template("billing/invoices.html", rows=rows, credit=inv.credit_balance(_family_id()),
                           unpaid=sum(1 for r in rows if r.unpaid), online=_online())


def _online() -> bool:
    from core.billing import online

    return online.available(bconf.for_tenant(current_tenant()).regie)


def grouped(invoice: Invoice) -> OrderedDict:
    """{child name: {day: [lines]}} in the order of the invoice."""
    out: OrderedDict = OrderedDict()
    for line in sorted(invoice.lines, key=lambda x: (x.child_name or "~", x.day or date.max, x.position)):
        out.setdefault(line.child_name or _("Autres lignes"), OrderedDict()).setdefault(line.day, []).append(line)
    return out


@bp.get("/factures/<int:invoice_id>")
@role_required(ROLE_PARENT)
def invoice(invoice_id):
    document = _own_invoice(invoice_id)
    [statement] = inv.statements([document])
    return render_template("billing/invoice.html", st=statement, invoice=document, groups=grouped(document),
                           online=_online())


@bp.get("/factures/<int:invoice_id>.pdf")
@role_required(ROLE_PARENT)
def invoice_pdf(invoice_id):
    document = _own_invoice(invoice_id)
    return pdf_response(invoice_document(document), f"{document.number}.pdf")


def invoice_document(document: Invoice) -> bytes:
    [statement] = inv.statements([document])
    regie = bconf.for_tenant(current_tenant()).regie
    return documents.render_pdf("invoice", tenant=current_tenant(), st=statement, invoice=document,
                                groups=grouped(document), regie=regie)


# ---------------------------------------------------------------- Mes QF/Revenus

@bp.route("/mes-qf-revenus", methods=["GET", "POST"])
@role_required(ROLE_PARENT)
def quotient():
    family = current_user.family
    if family is None:
        abort(404)
    error = None
    if request.method == "POST":
        upload = request.files.get("justificatif")
        data = upload.read(qfs.JUSTIFICATIF_MAX_BYTES + 1) if upload else b""
        name = None
        try:
            name = qfs.store_justificatif(current_tenant().slug, data)
            qfs.request_change(family, current_user, document=name, value=request.form.get("valeur"),
                               comment=request.form.get("commentaire", ""))
            flash(_("Votre demande a été enregistrée. Elle est en attente de validation par la collectivité."),
                  "success")
            return redirect(url_for("billing.quotient"), code=303)
        except qfs.QuotientError as err:
            roll_back()
            qfs.discard_justificatif(current_tenant().slug, name)  # kept only with its request
            error = err
    rows = qfs.of_family(family.id)
    return render_template("billing/quotient.html", rows=rows, current=qfs.in_force(family.id, clock.today()),
                           pending=qfs.pending_request(family.id), error=error, sources=qfs.SOURCES,
                           form_values=request.form), (422 if error else 200)


# ---------------------------------------------------------------- Simulation des tarifs

@bp.get("/tarifs")
def simulation():
    """Public: enter a QF, see each activity's prices; logged in: the family's own, per child."""
    tenant = current_tenant()
    conf = bconf.for_tenant(tenant)
    today = clock.today()
    raw = request.args.get("qf", "").strip()
    error, entered = None, None
    if raw:
        try:
            entered = qfs.parse_qf(raw)
        except qfs.QuotientError as err:
            error = err.message
    activities = {a.code: a for a in db.session.scalars(select(Activity).where(Activity.archived.is_(False))
                                                         .order_by(Activity.position, Activity.name))}
    family_pricing, children, own = None, [], {}
    if current_user.is_authenticated and getattr(current_user, "tenant_id", None) == tenant.id \
            and getattr(current_user, "family_id", None):
        fid = current_user.family_id
        family_pricing = qfs.pricing_of([fid])[fid]
        children = family_children(fid)
        inscribed = {(i.child_id, i.activity_id) for i in db.session.scalars(select(Inscription).where(
            Inscription.child_id.in_([c.id for c in children] or [0]), Inscription.status == INSCRIPTION_ACCEPTED))}
        for child in children:
            for tariff in conf.tariffs:
                activity = activities.get(tariff.activity)
                if activity is None or (child.id, activity.id) not in inscribed or not tariff.valid_on(today):
                    continue
                p = price(conf, tariff.activity, tariff.key, today, family_pricing, child.id)
                own.setdefault(child.id, []).append((activity, tariff, p))
    grid = []
    for tariff in conf.tariffs:
        if tariff.activity in activities and tariff.valid_on(today):
            p = price(conf, tariff.activity, tariff.key, today,
                      FamilyPricing(quotients=[QFPeriod(entered, today, None)]) if entered is not None
                      else FamilyPricing()) if entered is not None else None
            grid.append((activities[tariff.activity], tariff, p))
    return render_template("billing/simulation.html", grid=grid, entered=entered, raw=raw, error=error,
                           children=children, own=own, family_pricing=family_pricing, today=today), \
        (422 if error else 200)


# ---------------------------------------------------------------- Édition de documents

@bp.get("/documents")
@role_required(ROLE_PARENT)
def documents_page():
    fid = _family_id()
    year = clock.today().year
    children = family_children(fid)
    # (no DISTINCT over the activity's JSON columns: PostgreSQL has no equality for json)
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(select(Inscription.activity_id).where(
        Inscription.child_id.in_([c.id for c in children] or [0])))).order_by(Activity.name)).all()
    last_year = attestations.fiscal(fid, year - 1)
    return render_template("billing/documents.html", children=children, activities=activities, year=year,
                           last_year=last_year, first=clock.today().replace(day=1) - timedelta(days=1))


@bp.get("/documents/attestation-fiscale-<int:year>.pdf")
@role_required(ROLE_PARENT)
def fiscal_pdf(year):
    fid = _family_id()
    if not 2000 <= year <= clock.today().year:
        abort(404)
    att = attestations.fiscal(fid, year)
    regie = bconf.for_tenant(current_tenant()).regie
    data = documents.render_pdf("fiscal", tenant=current_tenant(), att=att, regie=regie, family=current_user.family,
                                today=clock.today())
    return pdf_response(data, f"attestation-fiscale-{year}.pdf", download=True)


@bp.get("/documents/attestation-presence.pdf")
@role_required(ROLE_PARENT)
def presence_pdf():
    fid = _family_id()
    child = get_scoped(db.session, Child, request.args.get("enfant"))
    activity = get_scoped(db.session, Activity, request.args.get("activite"))
    if child is None or child.family_id != fid or activity is None:
        abort(404)
    first, last = parse_date(request.args.get("du")), parse_date(request.args.get("au"))
    if first is None or last is None or last < first or (last - first).days > 366:
        flash(_("Indiquez une période valable (du … au …, un an au plus)."), "error")
        return redirect(url_for("billing.documents_page"))
    att = attestations.presence(child, activity, first, last)
    regie = bconf.for_tenant(current_tenant()).regie
    data = documents.render_pdf("presence", tenant=current_tenant(), att=att, regie=regie, today=clock.today())
    return pdf_response(data, f"attestation-presence-{child.first_name.lower()}.pdf", download=True)

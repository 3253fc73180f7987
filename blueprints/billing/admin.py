"""Agents: "Facturation" — runs (draft, recompute, publish), invoices (balance, payment, credit note,
CSV for the accountant), pointage, quotients and the régie's tariffs.  Load (404), check, act."""

from __future__ import annotations

import tomllib
from datetime import timedelta

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from blueprints.admin.common import actor_name, audit, no_change
from blueprints.billing import admin_bp as bp
from blueprints.billing.common import parse_date, pdf_response
from core import clock
from core.admin_services import update_settings
from core.billing import attendance, runs
from core.billing import config as bconf
from core.billing import invoices as inv
from core.billing import quotients as qfs
from core.billing.models import BillingRun, Invoice
from core.bounds import as_ids
from core.dossier.models import FamilyChange
from core.dossier.summaries import change_rows
from core.models import Activity, Family
from extensions import db
from tenants.scoping import get_or_404, get_scoped
from tenants.web import agent_required, current_tenant
from web.transaction import on_busy, roll_back


def _activities():
    return db.session.scalars(select(Activity).order_by(Activity.archived, Activity.position, Activity.name)).all()


@bp.route("/", methods=["GET", "POST"])
@agent_required
def index():
    error = None
    if request.method == "POST":
        try:
            month = runs.parse_month(request.form.get("mois"))
            run = runs.create_run(month, as_ids(request.form.getlist("activites")), actor=actor_name())
            runs.compute(run.id, actor=actor_name())
            audit(_("Facturation : brouillon de %(month)s", month=month.strftime("%m/%Y")))
            return redirect(url_for("billing_admin.run", run_id=run.id), code=303)
        except runs.RunError as err:
            roll_back()
            no_change()
            error = err
    last = (clock.today().replace(day=1) - timedelta(days=1)).replace(day=1)
    return render_template("billing/admin/index.html", runs=runs.runs(), activities=_activities(), error=error,
                           month=request.form.get("mois") or last.strftime("%Y-%m"),
                           chosen=set(as_ids(request.form.getlist("activites")))), \
        (422 if error else 200)


def _run(run_id: int) -> BillingRun:
    return get_or_404(db.session, BillingRun, run_id)


@bp.get("/brouillons/<int:run_id>")
@agent_required
def run(run_id):
    return _run_page(_run(run_id))


def _run_page(r: BillingRun, error=None):
    names = {a.id: a.name for a in _activities()}
    return render_template("billing/admin/run.html", run=r, families=runs.summary(r),
                           activity_names=[names.get(a, "?") for a in r.activity_ids],
                           invoices=inv.statements(list(db.session.scalars(
                               select(Invoice).where(Invoice.run_id == r.id).order_by(Invoice.sequence)))),
                           error=error, form=request.form if error else {}), (422 if error else 200)


def _act(run_id: int, action, done: str, typed: tuple = ()):
    """Act on the run, then back to it; a refusal of what was typed (`typed`: the error's fields)
    comes back with the message next to the field and the input kept."""
    r = _run(run_id)
    here = url_for("billing_admin.run", run_id=r.id)
    on_busy(here)
    try:
        action(r)
    except runs.RunError as err:
        roll_back()
        no_change()
        if err.field in typed:
            return _run_page(_run(run_id), error=err)
        flash(err.message, "error")
        return redirect(here, code=303)
    audit(done)
    flash(done, "success")
    return redirect(here, code=303)


@bp.post("/brouillons/<int:run_id>/recalculer")
@agent_required
def recompute(run_id):
    return _act(run_id, lambda r: runs.compute(r.id, actor=actor_name()), _("Le brouillon a été recalculé."))


@bp.post("/brouillons/<int:run_id>/publier")
@agent_required
def publish(run_id):
    return _act(run_id, lambda r: runs.publish(r.id, actor=actor_name()),
                _("Les factures sont publiées : chaque famille a reçu un mail."))


@bp.post("/brouillons/<int:run_id>/ajustement")
@agent_required
def adjustment(run_id):
    family = get_scoped(db.session, Family, request.form.get("famille"))
    if family is None:
        abort(404)

    def act(r):
        runs.add_adjustment(r.id, family.id, label=request.form.get("libelle", ""),
                            amount_raw=request.form.get("montant", ""), actor=actor_name())
        runs.compute(r.id, actor=actor_name())

    return _act(run_id, act, _("Ligne d'ajustement ajoutée ; le brouillon a été recalculé."), typed=("label", "amount"))


@bp.get("/brouillons/<int:run_id>/familles/<int:family_id>")
@agent_required
def run_family(run_id, family_id):
    r = _run(run_id)
    family = get_or_404(db.session, Family, family_id)
    return render_template("billing/admin/run_family.html", run=r, family=family,
                           lines=runs.grouped_lines(r.id, family.id))


# ---------------------------------------------------------------- invoices

def _invoice_rows():
    stmt = select(Invoice).order_by(Invoice.year.desc(), Invoice.sequence.desc())
    family_id = request.args.get("famille", type=int)
    run_id = request.args.get("brouillon", type=int)
    if family_id:
        stmt = stmt.where(Invoice.family_id == family_id)
    if run_id:
        stmt = stmt.where(Invoice.run_id == run_id)
    return list(db.session.scalars(stmt.limit(5000)))


@bp.get("/factures")
@agent_required
def invoices():
    rows = inv.statements(_invoice_rows())
    balance = sum((s.balance for s in rows), inv.ZERO)
    return render_template("billing/admin/invoices.html", rows=rows, balance=balance, args=request.args)


@bp.get("/factures.csv")
@agent_required
def invoices_csv():
    return Response(inv.export_csv(_invoice_rows()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="factures.csv"'})


@bp.route("/factures/<int:invoice_id>", methods=["GET", "POST"])
@agent_required
def invoice(invoice_id):
    from blueprints.billing.routes import grouped

    document = get_or_404(db.session, Invoice, invoice_id)
    error = None
    if request.method == "POST":
        on_busy(url_for("billing_admin.invoice", invoice_id=document.id))
        try:
            if request.form.get("action") == "avoir":
                note = inv.issue_credit_note(document, amount_raw=request.form.get("montant"),
                                             reason=request.form.get("motif", ""), actor=actor_name())
                audit(_("Avoir %(number)s sur la facture %(invoice)s", number=note.number, invoice=document.number))
                flash(_("Avoir %(number)s émis.", number=note.number), "success")
            else:
                inv.record_payment(document, amount_raw=request.form.get("montant"),
                                   paid_on=parse_date(request.form.get("date")), method=request.form.get("mode", ""),
                                   reference=request.form.get("reference", ""), actor=actor_name())
                audit(_("Règlement enregistré sur la facture %(invoice)s", invoice=document.number))
                flash(_("Le règlement est enregistré."), "success")
            return redirect(url_for("billing_admin.invoice", invoice_id=document.id), code=303)
        except inv.InvoiceError as err:
            roll_back()
            no_change()
            error = err
    [statement] = inv.statements([document])
    return render_template("billing/admin/invoice.html", st=statement, invoice=document, groups=grouped(document),
                           error=error, methods=inv.COUNTER_METHODS, today=clock.today(), form=request.form), \
        (422 if error else 200)


@bp.get("/factures/<int:invoice_id>.pdf")
@agent_required
def invoice_pdf(invoice_id):
    from blueprints.billing.routes import invoice_document

    document = get_or_404(db.session, Invoice, invoice_id)
    return pdf_response(invoice_document(document), f"{document.number}.pdf")


# ---------------------------------------------------------------- pointage

@bp.route("/pointage", methods=["GET", "POST"])
@agent_required
def pointage():
    activities = [a for a in _activities() if not a.archived]
    activity = get_scoped(db.session, Activity, request.values.get("activite")) if request.values.get("activite") \
        else (activities[0] if activities else None)
    day = parse_date(request.values.get("jour")) or clock.today()
    if activity is None:
        return render_template("billing/admin/pointage.html", activities=activities, activity=None, day=day,
                               roster=None)
    if request.method == "POST":
        marks = {}
        for key in request.form.getlist("cases"):
            try:
                child_id, slot_id = (int(x) for x in key.split("-"))
            except ValueError:
                abort(400)
            value = request.form.get(f"p-{key}") or None
            marks[(child_id, slot_id)] = value
        try:
            count = attendance.save(activity, day, marks, agent_name=actor_name())
            audit(_("Pointage : %(activity)s, %(date)s", activity=activity.name, date=day.strftime("%d/%m/%Y")))
            flash(_("Pointage enregistré (%(num)d enfant(s) pointé(s)).", num=count), "success")
            return redirect(url_for("billing_admin.pointage", activite=activity.id, jour=day.isoformat()), code=303)
        except attendance.AttendanceError as err:
            roll_back()
            no_change()
            flash(err.message, "error")
    return render_template("billing/admin/pointage.html", activities=activities, activity=activity, day=day,
                           roster=attendance.roster(activity, day))


# ---------------------------------------------------------------- quotients

@bp.route("/familles/<int:family_id>/qf", methods=["GET", "POST"])
@agent_required
def family_qf(family_id):
    family = get_or_404(db.session, Family, family_id)
    pending = qfs.pending_request(family.id)
    error = None
    if request.method == "POST":
        action = request.form.get("action", "record")
        try:
            values = dict(value=request.form.get("valeur"), source=request.form.get("source", ""),
                          valid_from=parse_date(request.form.get("du")), valid_to=parse_date(request.form.get("au")))
            if action in ("accepter", "refuser") and pending is not None:
                qfs.decide_request(pending.id, agent_name=actor_name(), accept=action == "accepter",
                                   motif=request.form.get("motif"), **values)
                flash(_("La demande est traitée : la famille a reçu un mail."), "success")
            else:
                if request.form.get("du") and values["valid_from"] is None:
                    raise qfs.QuotientError(_("« %(value)s » n'est pas une date.", value=request.form.get("du")),
                                            "valid_from")
                qfs.record(family, agent_name=actor_name(), **values)
                flash(_("Le quotient familial a été enregistré."), "success")
            audit(_("Quotient familial de la famille %(name)s", name=family.name))
            return redirect(url_for("billing_admin.family_qf", family_id=family.id), code=303)
        except qfs.QuotientError as err:
            roll_back()
            no_change()
            error = err
            pending = qfs.pending_request(family.id)
    return render_template("billing/admin/family_qf.html", family=family, rows=qfs.of_family(family.id),
                           pending=pending, error=error, sources=qfs.SOURCES, form=request.form,
                           change_rows=change_rows(pending) if pending else []), (422 if error else 200)


@bp.get("/familles/<int:family_id>/qf/justificatif")
@agent_required
def justificatif(family_id):
    from flask import send_file

    family = get_or_404(db.session, Family, family_id)
    change = get_scoped(db.session, FamilyChange, request.args.get("demande"))
    if change is None or change.family_id != family.id or change.entity != qfs.ENTITY_QUOTIENT:
        abort(404)
    path = qfs.justificatif_path(current_tenant().slug, (change.changes or {}).get("document"))
    if path is None:
        abort(404)
    return send_file(path, as_attachment=False, max_age=0)


# ---------------------------------------------------------------- régie and tariffs

@bp.route("/tarifs", methods=["GET", "POST"])
@agent_required
def tariffs():
    """The régie and the grids, as the commune's billing.toml reads (checked before saving)."""
    tenant = current_tenant()
    error = None
    text_ = request.form.get("config")
    if request.method == "POST":
        try:
            raw = bconf.jsonable(tomllib.loads(text_ or ""))
        except tomllib.TOMLDecodeError as exc:
            error = _("Le texte n'est pas lisible à la ligne %(line)s : vérifiez les guillemets, les crochets et "
                      "les virgules de cette ligne.", line=_toml_line(exc))
        except ValueError:  # tomllib's int() of a number of 5,000 digits
            error = _("Le texte n'est pas lisible : un nombre a trop de chiffres.")
        else:
            try:
                bconf.parse(raw, activity_codes=[a.code for a in _activities()])
            except bconf.ConfigError as err:
                error = err.message
            else:
                update_settings(tenant, billing=raw)
                audit(_("Tarifs et régie modifiés"))
                flash(_("Les tarifs sont enregistrés."), "success")
                return redirect(url_for("billing_admin.tariffs"), code=303)
        no_change()
    conf = bconf.for_tenant(tenant)
    return render_template("billing/admin/tariffs.html", conf=conf, error=error,
                           text=text_ if text_ is not None else to_toml(tenant.setting("billing", default={}) or {})), \
        (422 if error else 200)


def _toml_line(exc: tomllib.TOMLDecodeError) -> str:
    """The line tomllib names ("… (at line 3, column 8)"; Python 3.14 also gives exc.lineno)."""
    line = getattr(exc, "lineno", None)
    if line is None:
        import re

        found = re.search(r"line (\d+)", str(exc))
        line = found.group(1) if found else "?"
    return str(line)


def to_toml(raw: dict) -> str:
    """The settings' billing value written back as TOML (what the agents edit)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["[regie]"]
    out += [f"{k} = {value(v)}" for k, v in (raw.get("regie") or {}).items()]
    for t in raw.get("tariffs") or []:
        out += ["", "[[tariffs]]"]
        for k, v in t.items():
            if k == "brackets":
                out.append("brackets = [")
                out += [f"  {value(b)}," for b in v]
                out.append("]")
            else:
                out.append(f"{k} = {value(v)}")
    return "\n".join(out) + "\n"


@bp.get("/demandes/<int:change_id>")
@agent_required
def qf_request(change_id):
    change = get_or_404(db.session, FamilyChange, change_id)
    return redirect(url_for("billing_admin.family_qf", family_id=change.family_id))



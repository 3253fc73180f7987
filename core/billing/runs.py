"""Invoicing runs: a month of some activities → a draft computed from the reservations and the
pointage (as often as wanted) → published once as numbered, immutable invoices.

Rules of a line (the commune's régie says the percentages):
* booked (réservé) and not pointed absent → billed;
* absence declared by the family (the absence flow: justified) → a line at 0 €;
* pointed absent by the agents without a declared absence (unjustified) → the régie's percentage;
* cancellation asked after the cancellation deadline → billed; in time → nothing;
* pointed present without a booking → billed when the régie says so (else a warning);
* still "en attente de validation" → nothing (a warning);
* an agent's adjustment line (positive or negative) is kept across computations.

A draft costs a constant number of statements whatever the number of families (the lines go in
batches).  Publication locks the run (the second of two "Publier" is told it is done), numbers every
document under the régie+year counter's row lock, copies the lines in one statement, applies the
families' credits, creates a credit (avoir) for a negative total, and mails each family once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from decimal import Decimal
from typing import NamedTuple

from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, insert, select

from core import calendar as cal
from core import clock
from core.billing import config as bconf
from core.billing.bulk import insert_rows
from core.billing.invoices import allocate_numbers, available_credits, due_date, family_recipients, number_of
from core.billing.models import (
    ATTENDANCE_ABSENT,
    ATTENDANCE_PRESENT,
    DOC_CREDIT_NOTE,
    DOC_INVOICE,
    LINE_ABSENCE,
    LINE_ADJUSTMENT,
    LINE_BOOKING,
    LINE_PRESENCE,
    RUN_DRAFT,
    RUN_PUBLISHED,
    Attendance,
    BillingRun,
    Credit,
    CreditUse,
    DraftLine,
    Invoice,
    InvoiceLine,
)
from core.billing.pricing import PriceBook, cents, euros, line_amount
from core.billing.quotients import pricing_of
from core.locking import lock_one
from core.mail import queue_mails
from core.models import RES_ABSENT, RES_CANCELLED, RES_PENDING, RES_RESERVED, Activity, Child, Family
from core.reservations import queries
from extensions import db
from tenants.context import require_tenant_id
from tenants.models import Tenant

ZERO = Decimal("0.00")


class RunError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def month_bounds(first: date) -> tuple[date, date]:
    start = first.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def parse_month(raw: str | None) -> date:
    """"2026-11" (or a date) → the 1st of that month; never a month that has not begun."""
    text_ = (raw or "").strip()
    try:
        year, month = int(text_[:4]), int(text_[5:7])
        first = date(year, month, 1)
    except (ValueError, IndexError):
        raise RunError(str(_l("Choisissez un mois (mois et année).")), "month") from None
    if first > clock.today():
        raise RunError(str(_l("Le mois de %(month)s n'a pas commencé : on ne facture que ce qui a eu lieu.",
                              month=format_date(first, "LLLL yyyy"))), "month")
    return first


def _tenant() -> Tenant:
    return db.session.get(Tenant, require_tenant_id())


def config() -> bconf.BillingConfig:
    return bconf.for_tenant(_tenant())


def create_run(month: date, activity_ids, *, actor: str) -> BillingRun:
    ids = sorted({int(a) for a in activity_ids})
    if not ids:
        raise RunError(str(_l("Choisissez au moins une activité.")), "activities")
    activities = db.session.scalars(select(Activity).where(Activity.id.in_(ids))).all()
    if len(activities) != len(ids):
        raise RunError(str(_l("Activité inconnue.")), "activities")
    first, last = month_bounds(month)
    billed = already_billed(first, ids)
    if billed:
        raise RunError(str(_l("%(month)s est déjà facturé pour : %(names)s.", month=format_date(first, "LLLL yyyy")
                              .capitalize(), names=", ".join(a.name for a in activities if a.id in billed))),
                       "activities")
    run = BillingRun(regie=config().regie.code, period_start=first, period_end=last, activity_ids=ids,
                     created_by=actor)
    db.session.add(run)
    db.session.flush()
    return run


def already_billed(first: date, activity_ids) -> set[int]:
    """Activities whose month `first` a published run already billed."""
    done: set[int] = set()
    for ids in db.session.scalars(select(BillingRun.activity_ids).where(BillingRun.period_start == first,
                                                                       BillingRun.status == RUN_PUBLISHED)):
        done |= set(ids or ())
    return done & set(activity_ids)


class _Line(NamedTuple):
    """A line of a draft, in the order of the table's columns (written as it is by COPY)."""
    family_id: int
    child_id: int | None
    child_name: str
    activity_id: int | None
    activity_name: str
    day: date | None
    unit: str
    quantity: Decimal
    unit_price: Decimal
    bracket: str
    amount: Decimal
    note: str
    meal: bool
    childcare: bool
    kind: str
    slot_id: int | None


@dataclass
class Draft:
    lines: list[_Line] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _local(naive_utc):
    return naive_utc.replace(tzinfo=UTC).astimezone(cal.PARIS)


ONE = Decimal("1.00")


def build_lines(run: BillingRun) -> Draft:
    """The draft's lines, in memory (nothing written): a constant number of statements, then
    everything priced in memory (`PriceBook`: price() once per tariff, day, QF, residency and rank)."""
    conf = config()
    regie = conf.regie
    first, last = run.period_start, run.period_end
    activities = {a.id: a for a in db.session.scalars(select(Activity).where(Activity.id.in_(run.activity_ids)))}
    bookings = queries.bookings_between(first, last, list(activities))
    pointed = {(a.child_id, a.slot_id, a.day): a for a in db.session.execute(select(
        Attendance.child_id, Attendance.slot_id, Attendance.day, Attendance.status, Attendance.family_id,
        Attendance.activity_id).where(Attendance.activity_id.in_(list(activities)), Attendance.day >= first,
                                      Attendance.day <= last))}
    booked_keys = set()
    family_ids = {b.family_id for b in bookings} | {a.family_id for a in pointed.values()}
    pricing = pricing_of(family_ids)
    draft = Draft()
    lines = draft.lines
    no_qf: set[int] = set()
    pending = 0
    no_tariff: set[tuple[str, str]] = set()
    not_inscribed: set[tuple[str, str]] = set()
    book = PriceBook(conf)
    amounts: dict = {}
    pct = regie.unjustified_absence_pct
    unjustified = str(_l("Absence non justifiée (%(pct)d %%)", pct=pct))
    justified = str(_l("Absence justifiée"))
    late = str(_l("Annulation hors délai"))

    def add(family_id, child_id, child_name, activity, day, key, unit_label, rate=100, note="", kind=LINE_BOOKING,
            slot_id=None):
        p = book(activity.code, key, day, pricing[family_id], child_id)
        if p is None:
            no_tariff.add((activity.name, unit_label))
            return
        if p.no_qf:
            no_qf.add(family_id)
        amount = amounts.get((p.unit_price, rate))
        if amount is None:
            amount = amounts[(p.unit_price, rate)] = line_amount(p.unit_price, ONE, rate)
        lines.append(_Line(family_id, child_id, child_name, activity.id, activity.name, day, unit_label, ONE,
                           p.unit_price, p.bracket, amount, note, p.tariff.meal, p.tariff.childcare, kind, slot_id))

    for b in bookings:
        status = b.status
        booked_keys.add((b.child_id, b.slot_id))
        if status == RES_PENDING:
            pending += 1
            continue
        activity = activities[b.activity_id]
        name = f"{b.first_name} {b.last_name}"
        unit_label = b.unit_label or b.title or activity.name
        if status in (RES_RESERVED, RES_ABSENT) and not b.inscribed:
            not_inscribed.add((name, activity.name))
        if status == RES_RESERVED:
            mark = pointed.get((b.child_id, b.slot_id, b.day))
            if mark is not None and mark.status == ATTENDANCE_ABSENT:
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, pct, unjustified,
                    LINE_ABSENCE, b.slot_id)
            else:
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, slot_id=b.slot_id)
        elif status == RES_ABSENT:
            add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, 0, justified, LINE_ABSENCE,
                b.slot_id)
        elif status == RES_CANCELLED and b.cancel_asked_at is not None:
            rule = activity.cancel_deadline or activity.booking_deadline
            if cal.is_past_deadline(rule, b.day, _local(b.cancel_asked_at)):
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, note=late,
                    slot_id=b.slot_id)
    unbooked = [a for a in pointed.values() if a.status == ATTENDANCE_PRESENT
                and (a.child_id, a.slot_id) not in booked_keys]
    if unbooked:
        slots = queries.slots_by_id({a.slot_id for a in unbooked})
        children = {c.id: c for c in db.session.scalars(select(Child).where(
            Child.id.in_({a.child_id for a in unbooked})))}
        for a in sorted(unbooked, key=lambda a: (a.family_id, a.child_id, a.day)):
            child, slot, activity = children[a.child_id], slots[a.slot_id], activities[a.activity_id]
            name = f"{child.first_name} {child.last_name}"
            if regie.bill_unbooked_presence:
                add(a.family_id, a.child_id, name, activity, a.day, slot.time_slot,
                    slot.unit_label or slot.title or activity.name, note=str(_l("Présence sans réservation")),
                    kind=LINE_PRESENCE, slot_id=a.slot_id)
            else:
                draft.warnings.append(str(_l("%(child)s présent(e) sans réservation le %(date)s (non facturé).",
                                             child=name, date=a.day.strftime("%d/%m/%Y"))))
    if no_qf:
        names = dict(db.session.execute(select(Family.id, Family.name).where(Family.id.in_(no_qf))).all())
        for fid in sorted(no_qf):
            draft.warnings.append(str(_l("Famille %(name)s : pas de quotient familial valable, la tranche la plus "
                                         "haute est appliquée.", name=names.get(fid, fid))))
    for child, act in sorted(not_inscribed):
        draft.warnings.append(str(_l("%(child)s : réservé(e) sans inscription validée à « %(activity)s ».",
                                     child=child, activity=act)))
    for act, unit in sorted(no_tariff):
        draft.warnings.append(str(_l("Aucun tarif pour « %(activity)s » / %(unit)s : ces jours ne sont pas "
                                     "facturés.", activity=act, unit=unit)))
    if pending:
        draft.warnings.append(str(_l("%(num)d réservation(s) encore en attente de validation : non facturée(s).",
                                     num=pending)))
    return draft


_LINE_COLUMNS = ("tenant_id", "run_id", "position") + _Line._fields


def compute(run_id: int, *, actor: str) -> BillingRun:
    """(Re)compute a draft: lines replaced (an agent's adjustments kept), totals, warnings and the
    difference with the previous computation.  Raises RunError on a published run.  A constant
    number of statements: the lines go in one INSERT … unnest (PostgreSQL) or one executemany (core/billing/bulk.py)."""
    run = lock_one(BillingRun, run_id)
    if run is None:
        raise LookupError(run_id)
    if run.status != RUN_DRAFT:
        raise RunError(str(_l("Cette facturation est publiée : elle ne se recalcule plus (un avoir corrige une "
                              "facture).")))
    tid = require_tenant_id()
    previous = {str(fid): cents(total) for fid, total in db.session.execute(
        select(DraftLine.family_id, func.sum(DraftLine.amount)).where(DraftLine.run_id == run.id)
        .group_by(DraftLine.family_id))} if run.computations else {}
    draft = build_lines(run)
    db.session.execute(delete(DraftLine).where(DraftLine.run_id == run.id, DraftLine.kind != LINE_ADJUSTMENT,
                                               DraftLine.tenant_id == tid).execution_options(synchronize_session=False))
    insert_rows(DraftLine.__table__, _LINE_COLUMNS,
                ((tid, run.id, pos, *line) for pos, line in enumerate(draft.lines)))
    totals = family_totals(run.id)
    negative = [fid for fid, total in totals.items() if total < 0]
    if negative:
        names = dict(db.session.execute(select(Family.id, Family.name).where(Family.id.in_(negative))).all())
        for fid in negative:
            draft.warnings.append(str(_l("Famille %(name)s : total négatif (%(amount)s) : un avoir sera émis.",
                                         name=names.get(fid, fid), amount=euros(totals[fid]))))
    run.previous = previous
    run.warnings = draft.warnings
    run.total = sum(totals.values(), ZERO)
    run.families = len(totals)
    run.computations += 1
    run.computed_at = clock.utcnow()
    return run


def family_totals(run_id: int) -> dict[int, Decimal]:
    return {fid: total or ZERO for fid, total in db.session.execute(
        select(DraftLine.family_id, func.sum(DraftLine.amount)).where(DraftLine.run_id == run_id)
        .group_by(DraftLine.family_id).order_by(DraftLine.family_id))}


@dataclass
class FamilyTotal:
    family_id: int
    name: str
    total: Decimal
    by_activity: dict[str, Decimal]
    lines: int
    previous: Decimal | None

    @property
    def difference(self) -> Decimal | None:
        return None if self.previous is None else self.total - self.previous


def summary(run: BillingRun) -> list[FamilyTotal]:
    """Totals per family and activity, with the previous computation's total (one statement)."""
    rows = db.session.execute(
        select(DraftLine.family_id, Family.name, DraftLine.activity_name, func.sum(DraftLine.amount), func.count())
        .join(Family, Family.id == DraftLine.family_id).where(DraftLine.run_id == run.id)
        .group_by(DraftLine.family_id, Family.name, DraftLine.activity_name)
        .order_by(Family.name, DraftLine.family_id, DraftLine.activity_name)).all()
    out: dict[int, FamilyTotal] = {}
    prev = run.previous or {}
    for fid, name, activity, total, count in rows:
        ft = out.get(fid)
        if ft is None:
            before = prev.get(str(fid))
            ft = out[fid] = FamilyTotal(fid, name, ZERO, {}, 0,
                                        None if not run.computations or (before is None and not prev)
                                        else Decimal(before or 0) / 100)
        ft.by_activity[activity or str(_l("Ajustement"))] = (total or ZERO)
        ft.total += total or ZERO
        ft.lines += count
    if prev:  # families that left the draft
        for fid, before in prev.items():
            if int(fid) not in out:
                name = db.session.get(Family, int(fid)).name
                out[int(fid)] = FamilyTotal(int(fid), name, ZERO, {}, 0, Decimal(before) / 100)
    return sorted(out.values(), key=lambda f: (f.name, f.family_id))


def add_adjustment(run_id: int, family_id: int, *, label: str, amount_raw, actor: str) -> DraftLine:
    run = lock_one(BillingRun, run_id)
    if run is None or run.status != RUN_DRAFT:
        raise RunError(str(_l("Cette facturation est publiée : elle ne change plus.")))
    label = (label or "").strip()
    if not label:
        raise RunError(str(_l("Indiquez le libellé de l'ajustement.")), "label")
    text_ = str(amount_raw or "").strip().replace(",", ".").replace(" ", "").replace("€", "")
    try:
        amount = Decimal(text_)
        if not amount.is_finite() or amount != amount.quantize(bconf.CENTS) or amount == 0 or abs(amount) > 100000:
            raise ValueError
    except (ArithmeticError, ValueError):
        raise RunError(str(_l("Montant invalide : un nombre non nul avec deux décimales au plus (exemple : -12,50).")),
                       "amount") from None
    family = db.session.get(Family, family_id)
    if family is None:
        raise LookupError(family_id)
    line = DraftLine(run_id=run.id, family_id=family.id, child_name="", activity_name="", day=None, unit=label[:200],
                     quantity=Decimal("1.00"), unit_price=amount, bracket="", amount=amount,
                     note=str(_l("Ajustement (%(who)s)", who=actor))[:200], kind=LINE_ADJUSTMENT, position=100000)
    db.session.add(line)
    return line


# ---------------------------------------------------------------------------- publication

def publish(run_id: int, *, actor: str) -> list[int]:
    """Numbered, immutable invoices (and avoirs for negative totals) for every family of the draft,
    in one transaction; each family is mailed once (after commit).  Returns the documents' ids.

    A constant number of statements whatever the number of families: the documents written in one
    INSERT … unnest (PostgreSQL; one executemany elsewhere) and their ids read back in one SELECT, their
    lines read from the draft and written in one INSERT … unnest, the credits in one or two, the mails in one (handed
    to RQ in one pipeline after commit)."""
    run = lock_one(BillingRun, run_id)
    if run is None:
        raise LookupError(run_id)
    if run.status == RUN_PUBLISHED:
        raise RunError(str(_l("Cette facturation a déjà été publiée.")))
    if not run.computations:
        raise RunError(str(_l("Calculez le brouillon avant de le publier.")))
    billed = already_billed(run.period_start, run.activity_ids)
    if billed:
        raise RunError(str(_l("Ce mois est déjà facturé pour une de ces activités : recalculez ou supprimez ce "
                              "brouillon.")))
    regie = config().regie
    tid = require_tenant_id()
    totals = family_totals(run.id)
    today = clock.today()
    names = dict(db.session.execute(select(Family.id, Family.name).where(Family.id.in_(list(totals) or [0]))).all())
    numbers = allocate_numbers(regie.code, today.year, len(totals))
    recipients = family_recipients(list(totals))
    due_on = due_date(regie, run.period_start, today)
    now = clock.utcnow()
    kinds = {fid: DOC_INVOICE if total >= 0 else DOC_CREDIT_NOTE for fid, total in totals.items()}
    invoice_rows = [(tid, regie.code, today.year, seq, number_of(regie, today.year, seq), kinds[fid], run.id, fid,
                     names[fid], recipients.get(fid, {}).get("address", ""), run.period_start, run.period_end, today,
                     due_on, total, now) for (fid, total), seq in zip(totals.items(), numbers, strict=True)]
    documents: list[_Document] = []
    if invoice_rows:
        insert_rows(Invoice.__table__, _INVOICE_COLUMNS, invoice_rows)
        ids = dict(db.session.execute(select(Invoice.family_id, Invoice.id).where(Invoice.run_id == run.id)).all())
        documents = [_Document(ids[row[7]], row[7], row[1], row[4], row[5], row[14]) for row in invoice_rows]
    # The lines, copied from the draft: read as rows and written back with their document's id in
    # one INSERT … unnest (core/billing/bulk.py).  (An INSERT … SELECT joining the documents written a moment ago was planned on
    # stale estimates and scanned a commune's documents for every line: 9 s for 71,536 lines.)
    d = DraftLine.__table__.c
    copied = db.session.connection().execute(
        select(d.family_id, d.child_id, d.child_name, d.activity_id, d.activity_name, d.day, d.unit, d.quantity,
               d.unit_price, d.bracket, d.amount, d.note, d.meal, d.childcare, d.position, d.kind, d.slot_id)
        .where(d.run_id == run.id, d.tenant_id == tid)).all()
    document_of = {doc.family_id: doc.id for doc in documents}
    insert_rows(InvoiceLine.__table__, _INVOICE_LINE_COLUMNS,
                ((tid, document_of[row[0]], *row[1:]) for row in copied))
    del copied
    apply_credits(documents)
    from core.billing.sepa import plan_debits

    plan_debits(documents)  # families under an active SEPA mandate: their invoices are under debit
    run.status = RUN_PUBLISHED
    run.published_at = now
    run.published_by = actor
    period = run.period_start.isoformat()
    queue_mails([{"to": who["email"], "template": "invoice_available", "locale": who.get("locale") or "fr",
                  "user_id": who.get("user_id"),
                  "context": {"name": who.get("name", ""), "number": d.number, "credit_note": d.kind == DOC_CREDIT_NOTE,
                              "total_cents": cents(d.total), "due_on": due_on.isoformat(), "period": period,
                              "path": f"/factures/{d.id}"}}
                 for d in documents if (who := recipients.get(d.family_id)) and who.get("email")])
    return [d.id for d in documents]


_INVOICE_COLUMNS = ("tenant_id", "regie", "year", "sequence", "number", "kind", "run_id", "family_id", "family_name",
                    "address", "period_start", "period_end", "issued_on", "due_on", "total", "created_at")
_INVOICE_LINE_COLUMNS = ("tenant_id", "invoice_id", "child_id", "child_name", "activity_id", "activity_name", "day",
                         "unit", "quantity", "unit_price", "bracket", "amount", "note", "meal", "childcare", "position",
                         "kind", "slot_id")


class _Document(NamedTuple):
    id: int
    family_id: int
    regie: str
    number: str
    kind: str
    total: Decimal


def apply_credits(documents: list[_Document]) -> None:
    """A negative document becomes a credit; a positive one uses the family's credits, oldest first.
    Three statements at most, whatever the number of families."""
    tid = require_tenant_id()
    now = clock.utcnow()
    new_credits = [{"tenant_id": tid, "regie": d.regie, "family_id": d.family_id, "source_id": d.id,
                    "amount": -d.total, "created_at": now} for d in documents if d.total < 0]
    positive = [d for d in documents if d.total > 0]
    credits = available_credits({d.family_id for d in positive})
    uses = []
    for document in positive:
        due = document.total
        for credit_id, left in credits.get(document.family_id, []):
            if due <= 0:
                break
            if left[0] <= 0:
                continue
            used = min(left[0], due)
            uses.append({"tenant_id": tid, "credit_id": credit_id, "invoice_id": document.id, "amount": used,
                         "created_at": now})
            left[0] -= used
            due -= used
    conn = db.session.connection()
    if new_credits:
        conn.execute(insert(Credit.__table__), new_credits)
    if uses:
        conn.execute(insert(CreditUse.__table__), uses)


def runs() -> list[BillingRun]:
    return list(db.session.scalars(select(BillingRun).order_by(BillingRun.period_start.desc(), BillingRun.id.desc())
                                   .limit(200)))


def grouped_lines(run_id: int, family_id: int) -> list[DraftLine]:
    return list(db.session.scalars(select(DraftLine).where(DraftLine.run_id == run_id,
                                                            DraftLine.family_id == family_id)
                                   .order_by(DraftLine.child_name, DraftLine.day, DraftLine.position)))



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

from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, insert, select, text

from core import booking_read, clock
from core import calendar as cal
from core.billing import config as bconf
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
)
from core.billing.pricing import cents, euros, line_amount, price
from core.billing.quotients import pricing_of
from core.locking import lock_one
from core.mail import queue_mail
from core.models import RES_ABSENT, RES_CANCELLED, RES_PENDING, RES_RESERVED, Activity, Child, Family
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


@dataclass
class _Line:
    family_id: int
    child_id: int | None
    child_name: str
    activity_id: int | None
    activity_name: str
    day: date | None
    unit: str
    unit_price: Decimal
    bracket: str
    amount: Decimal
    note: str = ""
    kind: str = LINE_BOOKING
    quantity: Decimal = Decimal("1.00")
    meal: bool = False
    childcare: bool = False
    slot_id: int | None = None


@dataclass
class Draft:
    lines: list[_Line] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _local(naive_utc):
    return naive_utc.replace(tzinfo=UTC).astimezone(cal.PARIS)


def build_lines(run: BillingRun) -> Draft:
    """The draft's lines, in memory (nothing written): a constant number of statements."""
    conf = config()
    regie = conf.regie
    first, last = run.period_start, run.period_end
    activities = {a.id: a for a in db.session.scalars(select(Activity).where(Activity.id.in_(run.activity_ids)))}
    bookings = booking_read.bookings_between(first, last, list(activities))
    pointed = {(a.child_id, a.slot_id, a.day): a for a in db.session.scalars(select(Attendance).where(
        Attendance.activity_id.in_(list(activities)), Attendance.day >= first, Attendance.day <= last))}
    booked_keys = set()
    family_ids = {b.family_id for b in bookings} | {a.family_id for a in pointed.values()}
    pricing = pricing_of(family_ids)
    draft = Draft()
    no_qf: set[int] = set()
    pending = 0
    no_tariff: set[tuple[str, str]] = set()
    not_inscribed: set[tuple[str, str]] = set()

    def add(family_id, child_id, child_name, activity, day, key, unit_label, *, rate=100, note="", kind=LINE_BOOKING,
            slot_id=None):
        p = price(conf, activity.code, key, day, pricing[family_id], child_id)
        if p is None:
            no_tariff.add((activity.name, unit_label))
            return
        if p.no_qf:
            no_qf.add(family_id)
        draft.lines.append(_Line(family_id, child_id, child_name, activity.id, activity.name, day, unit_label,
                                 p.unit_price, p.bracket, line_amount(p.unit_price, Decimal(1), rate), note, kind,
                                 meal=p.tariff.meal, childcare=p.tariff.childcare, slot_id=slot_id))

    for b in bookings:
        activity = activities[b.activity_id]
        name = f"{b.first_name} {b.last_name}"
        unit_label = b.unit_label or b.title or activity.name
        booked_keys.add((b.child_id, b.slot_id))
        if b.status == RES_PENDING:
            pending += 1
            continue
        if b.status in (RES_RESERVED, RES_ABSENT) and not b.inscribed:
            not_inscribed.add((name, activity.name))
        if b.status == RES_RESERVED:
            mark = pointed.get((b.child_id, b.slot_id, b.day))
            if mark is not None and mark.status == ATTENDANCE_ABSENT:
                pct = regie.unjustified_absence_pct
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, rate=pct,
                    note=str(_l("Absence non justifiée (%(pct)d %%)", pct=pct)), kind=LINE_ABSENCE, slot_id=b.slot_id)
            else:
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, slot_id=b.slot_id)
        elif b.status == RES_ABSENT:
            add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label, rate=0,
                note=str(_l("Absence justifiée")), kind=LINE_ABSENCE, slot_id=b.slot_id)
        elif b.status == RES_CANCELLED and b.cancel_asked_at is not None:
            rule = b.cancel_deadline or b.booking_deadline
            if cal.is_past_deadline(rule, b.day, _local(b.cancel_asked_at)):
                add(b.family_id, b.child_id, name, activity, b.day, b.time_slot, unit_label,
                    note=str(_l("Annulation hors délai")), slot_id=b.slot_id)
    unbooked = [a for a in pointed.values() if a.status == ATTENDANCE_PRESENT
                and (a.child_id, a.slot_id) not in booked_keys]
    if unbooked:
        slots = booking_read.slots_by_id({a.slot_id for a in unbooked})
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
    names = dict(db.session.execute(select(Family.id, Family.name).where(Family.id.in_(family_ids or {0}))).all())
    for fid in sorted(no_qf):
        draft.warnings.append(str(_l("Famille %(name)s : pas de quotient familial valable, la tranche la plus haute "
                                     "est appliquée.", name=names.get(fid, fid))))
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


_LINE_COLUMNS = ("family_id", "child_id", "child_name", "activity_id", "activity_name", "day", "unit", "quantity",
                 "unit_price", "bracket", "amount", "note", "meal", "childcare", "kind", "slot_id")


def compute(run_id: int, *, actor: str) -> BillingRun:
    """(Re)compute a draft: lines replaced (an agent's adjustments kept), totals, warnings and the
    difference with the previous computation.  Raises RunError on a published run."""
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
                                               DraftLine.tenant_id == tid))
    rows = []
    for pos, line in enumerate(draft.lines):
        row = {c: getattr(line, c) for c in _LINE_COLUMNS}
        row.update(tenant_id=tid, run_id=run.id, position=pos)
        rows.append(row)
    if rows:
        db.session.execute(insert(DraftLine), rows)
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

def publish(run_id: int, *, actor: str) -> list[Invoice]:
    """Numbered, immutable invoices (and avoirs for negative totals) for every family of the draft,
    in one transaction; each family is mailed once (after commit)."""
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
    conf = config()
    regie = conf.regie
    totals = family_totals(run.id)
    today = clock.today()
    families = {f.id: f for f in db.session.scalars(select(Family).where(Family.id.in_(list(totals) or [0])))}
    numbers = allocate_numbers(regie.code, today.year, len(totals))
    addresses = family_recipients(list(totals))
    invoices: list[Invoice] = []
    for (fid, total), seq in zip(totals.items(), numbers, strict=True):
        family = families[fid]
        invoices.append(Invoice(
            regie=regie.code, year=today.year, sequence=seq, number=number_of(regie, today.year, seq),
            kind=DOC_INVOICE if total >= 0 else DOC_CREDIT_NOTE, run_id=run.id, family_id=fid,
            family_name=family.name, address=addresses.get(fid, {}).get("address", ""),
            period_start=run.period_start, period_end=run.period_end, issued_on=today,
            due_on=due_date(regie, run.period_start, today), total=total))
    db.session.add_all(invoices)
    db.session.flush()
    tid = require_tenant_id()
    db.session.execute(text(
        "INSERT INTO billing_invoice_line (tenant_id, invoice_id, child_id, child_name, activity_id, activity_name, "
        "day, unit, quantity, unit_price, bracket, amount, note, meal, childcare, position, kind, slot_id) "
        "SELECT d.tenant_id, i.id, d.child_id, d.child_name, d.activity_id, d.activity_name, d.day, d.unit, "
        "d.quantity, d.unit_price, d.bracket, d.amount, d.note, d.meal, d.childcare, d.position, d.kind, d.slot_id "
        "FROM billing_draft_line d JOIN billing_invoice i ON i.run_id = d.run_id AND i.family_id = d.family_id "
        "AND i.tenant_id = d.tenant_id WHERE d.run_id = :run AND d.tenant_id = :tenant"),
        {"run": run.id, "tenant": tid})
    apply_credits(invoices)
    run.status = RUN_PUBLISHED
    run.published_at = clock.utcnow()
    run.published_by = actor
    for invoice in invoices:
        _mail(invoice, addresses.get(invoice.family_id))
    return invoices


def apply_credits(invoices: list[Invoice]) -> None:
    """A negative document becomes a credit; a positive one uses the family's credits, oldest first."""
    positive = [i for i in invoices if i.total > 0]
    credits = available_credits({i.family_id for i in positive})
    for invoice in invoices:
        if invoice.total < 0:
            db.session.add(Credit(regie=invoice.regie, family_id=invoice.family_id, source_id=invoice.id,
                                  amount=-invoice.total))
    for invoice in positive:
        due = invoice.total
        for credit_id, left in credits.get(invoice.family_id, []):
            if due <= 0:
                break
            if left[0] <= 0:
                continue
            used = min(left[0], due)
            db.session.add(CreditUse(credit_id=credit_id, invoice_id=invoice.id, amount=used))
            left[0] -= used
            due -= used


def _mail(invoice: Invoice, recipient: dict | None) -> None:
    if not recipient or not recipient.get("email"):
        return
    queue_mail(to=recipient["email"], template="invoice_available", locale=recipient.get("locale") or "fr",
               user=None, context={"name": recipient.get("name", ""), "number": invoice.number,
                                   "credit_note": invoice.kind == DOC_CREDIT_NOTE,
                                   "total_cents": cents(invoice.total), "due_on": invoice.due_on.isoformat(),
                                   "period": invoice.period_start.isoformat() if invoice.period_start else None,
                                   "path": f"/factures/{invoice.id}"})


def runs() -> list[BillingRun]:
    return list(db.session.scalars(select(BillingRun).order_by(BillingRun.period_start.desc(), BillingRun.id.desc())
                                   .limit(200)))


def grouped_lines(run_id: int, family_id: int) -> list[DraftLine]:
    return list(db.session.scalars(select(DraftLine).where(DraftLine.run_id == run_id,
                                                            DraftLine.family_id == family_id)
                                   .order_by(DraftLine.child_name, DraftLine.day, DraftLine.position)))



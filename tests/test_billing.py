"""Billing services: prices by quotient familial, the invoicing run's rules, publication, credits,
attestations and bad input.  Dates relative to the clock: last month is always over."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core import clock
from core.billing import config as bconf
from core.billing.pricing import FamilyPricing, QFPeriod, euros, line_amount, price
from extensions import db
from tests.billing_helpers import TEST_BILLING, last_month, lines_of, qf, run_month
from tests.conftest import unaged

CONF = bconf.parse(TEST_BILLING)
DAY = date(2030, 3, 4)


def fam(value=None, **kw):
    return FamilyPricing(quotients=[QFPeriod(value, date(2000, 1, 1), None)] if value is not None else [], **kw)


# ---------------------------------------------------------------------------- price()

@pytest.mark.parametrize("qf_value, expected, bracket", [
    (0, "2.00", "QF < 500"), (499, "2.00", "QF < 500"), (500, "3.00", "500 ≤ QF < 1000"),
    (999, "3.00", "500 ≤ QF < 1000"), (1000, "4.00", "QF ≥ 1000"), (25000, "4.00", "QF ≥ 1000")])
def test_a_qf_exactly_at_a_boundary_belongs_to_the_upper_bracket(qf_value, expected, bracket):
    p = price(CONF, "kids", "matin", DAY, fam(qf_value))
    assert p.unit_price == Decimal(expected) and p.bracket == bracket and not p.no_qf


def test_without_a_valid_qf_the_family_pays_the_highest_bracket_and_is_told_so():
    p = price(CONF, "kids", "matin", DAY, fam())
    assert p.unit_price == Decimal("4.00") and p.no_qf and "QF non communiqué" in p.bracket
    expired = FamilyPricing(quotients=[QFPeriod(300, date(2000, 1, 1), DAY - timedelta(days=1))])
    assert price(CONF, "kids", "matin", DAY, expired).no_qf


def test_surcharge_for_non_residents_and_sibling_reduction_rounded_half_up():
    conf = bconf.parse({"tariffs": [{"activity": "a", "unit": "*", "non_resident_surcharge": "1.05",
                                     "sibling_reduction_pct": [0, 10, 25],
                                     "brackets": [{"min": 0, "price": "3.35"}]}]})
    family = FamilyPricing(resident=False, ranks={1: 1, 2: 2, 3: 3, 4: 4})
    assert price(conf, "a", "x", DAY, family, 1).unit_price == Decimal("4.40")
    assert price(conf, "a", "x", DAY, family, 2).unit_price == Decimal("3.96")   # 4.40 × 0.90
    assert price(conf, "a", "x", DAY, family, 3).unit_price == Decimal("3.30")   # 4.40 × 0.75
    assert price(conf, "a", "x", DAY, family, 4).unit_price == Decimal("3.30")   # the last rank's rate goes on
    assert line_amount(Decimal("3.35"), rate_pct=50) == Decimal("1.68")           # 1.675 → 1.68
    assert euros(Decimal("1234.5")) == "1\u202f234,50\u00a0€"


def test_tariff_versions_by_validity_dates():
    conf = bconf.parse({"tariffs": [
        {"activity": "a", "unit": "*", "valid_from": "2030-01-01", "valid_to": "2030-06-30",
         "brackets": [{"min": 0, "price": "1.00"}]},
        {"activity": "a", "unit": "*", "valid_from": "2030-07-01", "brackets": [{"min": 0, "price": "1.20"}]}]})
    assert price(conf, "a", "m", date(2030, 6, 30), fam()).unit_price == Decimal("1.00")
    assert price(conf, "a", "m", date(2030, 7, 1), fam()).unit_price == Decimal("1.20")
    assert price(conf, "a", "m", date(2029, 12, 31), fam()) is None


@pytest.mark.parametrize("brackets, message", [
    ([{"min": 0, "max": 600, "price": "1"}, {"min": 500, "price": "2"}], "se chevauchent"),
    ([{"min": 0, "max": 500, "price": "1"}, {"min": 600, "price": "2"}], "Aucune tranche ne couvre les QF de 500 à 599"),
    ([{"min": 0, "price": "-1.00"}], "ne peut pas être négatif"),
    ([{"min": 0, "price": "abc"}], "n'est pas un montant"),
    ([{"min": 100, "price": "1"}], "commence à un QF de 0"),
    ([{"min": 0, "price": "1.234"}], "deux décimales"),
])
def test_bad_grids_are_refused_in_french(brackets, message):
    with pytest.raises(bconf.ConfigError) as err:
        bconf.parse({"tariffs": [{"activity": "a", "unit": "*", "brackets": brackets}]})
    assert message in err.value.message


def test_overlapping_versions_are_refused():
    with pytest.raises(bconf.ConfigError, match="valables en même temps"):
        bconf.parse({"tariffs": [
            {"activity": "a", "unit": "*", "valid_from": "2030-01-01", "brackets": [{"min": 0, "price": "1"}]},
            {"activity": "a", "unit": "*", "valid_from": "2030-07-01", "brackets": [{"min": 0, "price": "2"}]}]})


def test_a_qf_with_letters_is_refused(ctx):
    from core.billing.quotients import QuotientError, parse_qf

    for raw in ("12a", "abc", "-5", "7.5", "100000", ""):
        with pytest.raises(QuotientError):
            parse_qf(raw)
    assert parse_qf(" 1 250 ") == 1250


# ---------------------------------------------------------------------------- runs

@pytest.fixture
def setup(billing_settings, month_activity, make_family, inscribe):
    billing_settings("auray")
    act = month_activity()
    family = make_family("auray", children=[("Lou", "2022-03-01")])
    inscribe(act, family["child_ids"])
    return act, family


def _days(n=3):
    first, _last = last_month()
    return [first + timedelta(days=i) for i in range(n)]


def test_the_qf_of_each_booked_day_prices_it_even_when_it_changes_mid_month(setup, book, inside):
    act, family = setup
    first, last = last_month()
    mid = first + timedelta(days=14)
    book(act, family["child_ids"][0], [("matin", first), ("matin", mid - timedelta(days=1)), ("matin", mid)])
    inside("auray", lambda: (qf(family["family_id"], 450, first, mid - timedelta(days=1)),
                             qf(family["family_id"], 1200, mid)))

    def check():
        run = run_month([act["id"]])
        return [(line.day, line.unit_price, line.bracket) for line in lines_of(run.id)], run.warnings

    lines, warnings = inside("auray", check)
    assert lines == [(first, Decimal("2.00"), "QF < 500"), (mid - timedelta(days=1), Decimal("2.00"), "QF < 500"),
                     (mid, Decimal("4.00"), "QF ≥ 1000")]
    assert not any("quotient" in w for w in warnings)


def test_no_qf_means_the_highest_bracket_and_a_warning(setup, book, inside):
    act, family = setup
    book(act, family["child_ids"][0], [("matin", d) for d in _days(2)])
    run = inside("auray", lambda: run_month([act["id"]]))
    lines = inside("auray", lambda: [(line.amount, line.bracket) for line in lines_of(run.id)])
    assert lines == [(Decimal("4.00"), "QF ≥ 1000 (QF non communiqué)")] * 2
    assert any("pas de quotient familial valable" in w for w in run.warnings)


def test_absences_and_unexpected_presence(setup, book, inside, app):
    from core.billing import attendance
    from core.models import Activity

    act, family = setup
    kid = family["child_ids"][0]
    d1, d2, d3, d4 = _days(4)
    book(act, kid, [("matin", d1), ("matin", d2)])
    book(act, kid, [("matin", d3)], status="absent")    # declared by the family: justified
    inside("auray", lambda: qf(family["family_id"], 700, d1))

    def point():
        activity = db.session.get(Activity, act["id"])
        attendance.save(activity, d2, {(kid, act["slots"][("matin", d2.isoformat())]): "absent"},
                        agent_name="Agent")   # booked, absent, no justification
        attendance.save(activity, d4, {(kid, act["slots"][("repas", d4.isoformat())]): "present"},
                        agent_name="Agent")   # present without a booking

    inside("auray", point)
    run = inside("auray", lambda: run_month([act["id"]]))
    got = inside("auray", lambda: [(line.day, line.unit, line.amount, line.note) for line in lines_of(run.id)])
    assert got == [(d1, "Matin", Decimal("3.00"), ""),
                   (d2, "Matin", Decimal("1.50"), "Absence non justifiée (50 %)"),
                   (d3, "Matin", Decimal("0.00"), "Absence justifiée"),
                   (d4, "Repas", Decimal("2.50"), "Présence sans réservation")]


def test_a_cancellation_in_time_is_free_a_late_one_is_billed(setup, book, inside):
    from core.models import ACTION_CANCEL, DEMANDE_ACCEPTEE, TYPE_RESERVATION, Demande, DemandeLine

    act, family = setup
    kid = family["child_ids"][0]
    d1, d2 = _days(2)
    in_time, late = book(act, kid, [("matin", d1), ("matin", d2)], status="cancelled")

    def asked(res_id, day, at):
        dem = Demande(number=res_id, type=TYPE_RESERVATION, family_id=family["family_id"], status=DEMANDE_ACCEPTEE,
                      created_at=at)
        dem.lines.append(DemandeLine(action=ACTION_CANCEL, child_id=kid, activity_id=act["id"],
                                     slot_id=act["slots"][("matin", day.isoformat())], reservation_id=res_id,
                                     status="accepted"))
        db.session.add(dem)

    # the test activity's deadline: none (the day itself); asked a week before / the day after (UTC)
    inside("auray", lambda: (asked(in_time, d1, datetime.combine(d1 - timedelta(days=7), time(9))),
                             asked(late, d2, datetime.combine(d2 + timedelta(days=1), time(9)))))
    run = inside("auray", lambda: run_month([act["id"]]))
    got = inside("auray", lambda: [(line.day, line.note) for line in lines_of(run.id)])
    assert got == [(d2, "Annulation hors délai")]


def test_a_recomputed_run_gives_the_same_draft_and_shows_the_difference(setup, book, inside):
    from core.billing import runs

    act, family = setup
    kid = family["child_ids"][0]
    book(act, kid, [("matin", d) for d in _days(3)])
    inside("auray", lambda: qf(family["family_id"], 200, last_month()[0]))
    run = inside("auray", lambda: run_month([act["id"]]))

    def snapshot(run_id):
        return [(x.family_id, x.child_id, x.day, x.unit, x.unit_price, x.amount, x.bracket, x.note)
                for x in lines_of(run_id)]

    before = inside("auray", lambda: snapshot(run.id))
    inside("auray", lambda: runs.compute(run.id, actor="Agent"))
    assert inside("auray", lambda: snapshot(run.id)) == before
    rows = inside("auray", lambda: [(f.total, f.difference) for f in runs.summary(runs.lock_one(runs.BillingRun,
                                                                                                   run.id))])
    assert rows == [(Decimal("6.00"), Decimal("0.00"))]
    book(act, kid, [("apres_midi", last_month()[0])])
    inside("auray", lambda: runs.compute(run.id, actor="Agent"))
    rows = inside("auray", lambda: [(f.total, f.difference) for f in runs.summary(runs.lock_one(runs.BillingRun,
                                                                                                   run.id))])
    assert rows == [(Decimal("8.00"), Decimal("2.00"))]


def test_publication_numbers_freezes_mails_once_and_refuses_a_second_time(setup, book, inside, make_family,
                                                                          inscribe, outbox):
    from core.billing import runs
    from core.billing.models import Invoice, InvoiceLine

    act, family = setup
    other = make_family("auray", children=[("Noé", "2021-06-01"), ("Zoé", "2023-01-01")])
    inscribe(act, other["child_ids"])
    book(act, family["child_ids"][0], [("matin", d) for d in _days(2)])
    for kid in other["child_ids"]:
        book(act, kid, [("repas", d) for d in _days(3)])
    run = inside("auray", lambda: run_month([act["id"]], publish=True))
    year = clock.today().year
    got = inside("auray", lambda: sorted((i.number, i.total) for i in db.session.scalars(select(Invoice))))
    assert [n for n, _t in got] == [f"F-{year}-000001", f"F-{year}-000002"]
    assert sorted(t for _n, t in got) == [Decimal("8.00"), Decimal("15.00")]
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(InvoiceLine))) == 8
    assert len(outbox.messages) == 2 and "Votre facture est disponible" in outbox.messages[0]["Subject"]
    assert any(f"Votre facture F-{year}-00000" in outbox.text(m) for m in outbox.messages)
    with pytest.raises(runs.RunError, match="déjà été publiée"):
        inside("auray", lambda: runs.publish(run.id, actor="Agent"))
    with pytest.raises(runs.RunError, match="ne se recalcule plus"):
        inside("auray", lambda: runs.compute(run.id, actor="Agent"))
    with pytest.raises(runs.RunError, match="déjà facturé"):
        inside("auray", lambda: runs.create_run(last_month()[0], [act["id"]], actor="Agent"))
    assert inside("auray", lambda: db.session.scalar(select(func.count()).select_from(Invoice))) == 2  # nothing half-written


def test_a_month_in_the_future_is_refused(ctx):
    from core.billing.runs import RunError, parse_month

    nxt = (clock.today().replace(day=1) + timedelta(days=32)).replace(day=1)
    with pytest.raises(RunError, match="n'a pas commencé"):
        parse_month(nxt.strftime("%Y-%m"))
    with pytest.raises(RunError, match="Choisissez un mois"):
        parse_month("novembre")
    assert parse_month(clock.today().strftime("%Y-%m")) == clock.today().replace(day=1)


def test_a_negative_total_becomes_a_credit_that_the_next_invoice_uses(setup, book, inside, month_activity,
                                                                     billing_settings):
    from core.billing import invoices as inv
    from core.billing import runs
    from core.billing.models import DOC_CREDIT_NOTE, Invoice

    act, family = setup
    billing_settings("auray", dict(TEST_BILLING, tariffs=TEST_BILLING["tariffs"] + [
        dict(TEST_BILLING["tariffs"][0], activity="kids2")]))
    fid = family["family_id"]
    run = inside("auray", lambda: runs.create_run(last_month()[0], [act["id"]], actor="Agent").id)
    inside("auray", lambda: runs.compute(run, actor="Agent"))
    inside("auray", lambda: runs.add_adjustment(run, fid, label="Remboursement séjour annulé", amount_raw="-10,00",
                                                actor="Agent"))
    inside("auray", lambda: runs.compute(run, actor="Agent"))  # the agent's line survives a computation
    assert any("un avoir sera émis" in w for w in inside("auray", lambda: list(db.session.get(runs.BillingRun,
                                                                                               run).warnings)))
    inside("auray", lambda: runs.publish(run, actor="Agent"))
    assert inside("auray", lambda: inv.credit_balance(fid)) == Decimal("10.00")
    # next month (another activity, same régie): 12,00 € billed, 10,00 € taken from the credit
    other = month_activity(code="kids2")
    book(other, family["child_ids"][0], [("matin", d) for d in _days(3)])
    inside("auray", lambda: run_month([other["id"]], publish=True))

    def check():
        rows = {s.invoice.kind: s for s in inv.of_family(fid)}
        return rows[DOC_CREDIT_NOTE].status, rows["invoice"].invoice.total, rows["invoice"].balance, \
            inv.credit_balance(fid), db.session.scalar(select(func.count()).select_from(Invoice))

    assert inside("auray", check) == ("avoir", Decimal("12.00"), Decimal("2.00"), Decimal("0.00"), 2)


def test_a_credit_note_corrects_a_published_invoice(setup, book, inside):
    from core.billing import invoices as inv
    from core.billing.models import Invoice

    act, family = setup
    book(act, family["child_ids"][0], [("matin", d) for d in _days(3)])
    inside("auray", lambda: run_month([act["id"]], publish=True))
    invoice, number = inside("auray", lambda: [(i.id, i.number) for i in db.session.scalars(select(Invoice))][0])
    with pytest.raises(inv.InvoiceError, match="ne peut dépasser"):
        inside("auray", lambda: inv.issue_credit_note(db.session.get(Invoice, invoice), amount_raw="13", reason="x",
                                                      actor="A"))
    note = inside("auray", lambda: inv.issue_credit_note(db.session.get(Invoice, invoice), amount_raw="4,00",
                                                         reason="Sortie annulée", actor="A").number)
    assert note.endswith("-000002")
    rows = inside("auray", lambda: {s.invoice.number: (s.invoice.total, s.balance, s.status)
                                    for s in inv.of_family(family["family_id"])})
    assert rows[number] == (Decimal("12.00"), Decimal("8.00"), "a_payer")  # the invoice itself never changes
    assert rows[note][2] == "avoir" and rows[note][0] == Decimal("-4.00")


# ---------------------------------------------------------------------------- totals (property)

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prices=st.lists(st.decimals(min_value=0, max_value=80, places=2), min_size=1, max_size=4),
       qfs=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=5),
       rates=st.lists(st.sampled_from([0, 33, 50, 100]), min_size=1, max_size=30),
       surcharge=st.decimals(min_value=0, max_value=5, places=2), resident=st.booleans(),
       reduction=st.integers(min_value=0, max_value=100))
def test_totals_are_the_sum_of_lines_to_the_cent(prices, qfs, rates, surcharge, resident, reduction):
    step = 3000 // len(prices)
    brackets = [{"min": i * step, **({"max": (i + 1) * step} if i < len(prices) - 1 else {}), "price": str(p)}
                for i, p in enumerate(prices)]
    conf = bconf.parse({"tariffs": [{"activity": "a", "unit": "*", "non_resident_surcharge": str(surcharge),
                                     "sibling_reduction_pct": [0, reduction], "brackets": brackets}]})
    lines = []
    for n, rate in enumerate(rates):
        family = FamilyPricing(quotients=[QFPeriod(qfs[n % len(qfs)], date(2000, 1, 1), None)], resident=resident,
                               ranks={1: 1, 2: 2})
        p = price(conf, "a", "m", DAY, family, 1 + n % 2)
        assert p.unit_price == p.unit_price.quantize(Decimal("0.01"))
        lines.append(line_amount(p.unit_price, Decimal(1), rate))
    total = sum(lines, Decimal("0.00"))
    assert total == total.quantize(Decimal("0.01"))
    assert sum(int(x * 100) for x in lines) == int(total * 100)


def test_draft_totals_equal_the_sum_of_their_lines(setup, book, inside, make_family, inscribe):
    from core.billing import runs
    from core.billing.models import DraftLine

    act, family = setup
    kids = make_family("auray", children=[("A", "2021-01-01"), ("B", "2022-01-01")])
    inscribe(act, kids["child_ids"])
    for i, d in enumerate(_days(6)):
        book(act, kids["child_ids"][i % 2], [("matin", d), ("repas", d)])
    inside("auray", lambda: qf(kids["family_id"], 777, last_month()[0]))
    run = inside("auray", lambda: run_month([act["id"]]))
    total = inside("auray", lambda: db.session.scalar(select(func.sum(DraftLine.amount))
                                                      .where(DraftLine.run_id == run.id)))
    assert run.total == total == Decimal("33.00")
    assert sum(f.total for f in inside("auray", lambda: runs.summary(db.session.get(runs.BillingRun, run.id)))) == total


def test_a_run_costs_the_same_statements_for_two_families_as_for_six_and_mails_each_once(
        app, billing_settings, month_activity, make_family, inscribe, book, inside, outbox):
    """Drafting and publishing cost a constant number of statements whatever the number of
    families (the lines in one COPY / executemany, the documents, credits and mails in one
    statement each): 2 families and 6 families send as many.  Each family gets its one mail."""
    from sqlalchemy import event

    from core.billing import runs

    billing_settings("auray", dict(TEST_BILLING, tariffs=[dict(t, activity=f"kids{n}") for n in (2, 6)
                                                          for t in TEST_BILLING["tariffs"]]))

    def month_of(n):
        act = month_activity(code=f"kids{n}")
        families = [make_family("auray", children=[("A", "2021-01-01"), ("B", "2022-01-01")]) for _ in range(n)]
        for i, f in enumerate(families):
            inscribe(act, f["child_ids"])
            for d in _days(3):
                book(act, f["child_ids"][0], [("matin", d), ("repas", d)])
                book(act, f["child_ids"][1], [("apres_midi", d)])
            if i % 2:
                inside("auray", lambda f=f, i=i: qf(f["family_id"], 300 + 100 * i, last_month()[0]))
        return act, families

    def counted(fn):
        """fn's statements, in its transaction (the mails handed over after commit are not its own)."""
        from tenants.context import tenant_scope

        sent = []
        listener = lambda *_a, **_k: sent.append(1)  # noqa: E731
        with app.app_context(), tenant_scope(act["tenant_id"]):
            event.listen(db.engine, "before_cursor_execute", listener)
            try:
                out = fn()
            finally:
                event.remove(db.engine, "before_cursor_execute", listener)
            db.session.commit()
            db.session.remove()
        return out, len(sent)

    costs = []
    for n in (2, 6):
        act, families = month_of(n)
        run_id = inside("auray", lambda act=act: runs.create_run(last_month()[0], [act["id"]], actor="Agent").id)
        _run, draft = counted(lambda run_id=run_id: runs.compute(run_id, actor="Agent"))
        before = len(outbox.messages)
        published, publication = counted(lambda run_id=run_id: runs.publish(run_id, actor="Agent"))
        assert len(published) == n and len(outbox.messages) - before == n
        assert inside("auray", lambda run_id=run_id: db.session.get(runs.BillingRun, run_id).families) == n
        costs.append((draft, publication))
    assert costs[0] == costs[1], costs


# ---------------------------------------------------------------------------- attestations

def test_the_attestation_fiscale_excludes_meals_and_children_of_six_and_more(billing_settings, month_activity,
                                                                             make_family, inscribe, book, inside):
    from core.billing import attestations
    from core.billing import invoices as inv
    from core.billing.models import Invoice

    billing_settings("auray")
    act = month_activity()
    first, _last = last_month()
    year = clock.today().year
    small = date(year - 3, 3, 1)     # 2 years old on 1 January
    six = date(year - 6, 1, 1)       # 6 years old on 1 January exactly
    family = make_family("auray", children=[("Petit", unaged(small)), ("Grand", unaged(six))])
    inscribe(act, family["child_ids"])
    for kid in family["child_ids"]:
        book(act, kid, [("matin", first), ("repas", first)])
    inside("auray", lambda: qf(family["family_id"], 100, first))
    inside("auray", lambda: run_month([act["id"]], publish=True))
    invoice = inside("auray", lambda: db.session.scalars(select(Invoice.id)).one())
    inside("auray", lambda: inv.record_payment(db.session.get(Invoice, invoice), amount_raw="6,00", paid_on=clock.today(), method="cheque",
                                               reference="0000123", actor="A"))
    att = inside("auray", lambda: [(c.child.first_name, c.amount)
                                   for c in attestations.fiscal(family["family_id"], year).children])
    # Petit's Matin only (2,00 €, paid this year): no meal, not Grand (six on 1 January)
    assert att == [("Petit", Decimal("2.00"))]


def test_the_demo_gives_each_demo_family_a_paid_and_an_unpaid_invoice_whatever_the_day(app, tenants):
    """`make run`'s demo, on the day of the run (PORTAIL_TODAY moves it): the month before last is
    invoiced and paid, last month invoiced and due, by real runs over the families' demo bookings —
    Saint-Aubin's stage billed once, as a forfait."""
    from cli import load_demo_data
    from core.billing import invoices as inv
    from core.billing.models import InvoiceLine
    from core.models import User
    from tenants.context import tenant_scope

    first, _last = last_month()
    before = (first - timedelta(days=1)).replace(day=1)
    with app.app_context():
        load_demo_data()
        for slug in ("auray", "saint-loubes", "saint-aubin-de-medoc"):
            with tenant_scope(tenants[slug]):
                family_id = db.session.scalars(select(User.family_id).where(
                    User.email == f"famille@{slug}.test")).one()
                statements = {s.invoice.period_start: s for s in inv.of_family(family_id)}
                assert set(statements) == {before, first}, slug
                assert statements[before].status == inv.STATUS_PAID and statements[before].invoice.total > 0, slug
                assert statements[first].status == inv.STATUS_DUE and statements[first].balance > 0, slug
                assert inv.unpaid_count(family_id) == 1
                lines = db.session.scalars(select(InvoiceLine).where(
                    InvoiceLine.invoice_id == statements[first].invoice.id)).all()
                assert all(first <= line.day <= _last for line in lines), slug
                if slug == "saint-aubin-de-medoc":
                    # one stage (its own in December, a demo one in other months), billed once as a forfait
                    assert len(lines) == 1 and "Stage" in lines[0].unit and lines[0].bracket
                    assert statements[first].invoice.number.startswith("SA-")
        db.session.remove()

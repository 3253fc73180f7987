"""The one price: `price(config, activity_code, key, day, family, child_id)`.

The tariff simulation, the live estimate of a démarche, the invoicing run and (through the lines
the run wrote) the attestations all call it: one rule, one place.

* the QF in force on the booked day chooses the bracket (a family without a valid QF that day pays
  the highest bracket, and is told so);
* a non-resident family pays the tariff's surcharge;
* the sibling rank reduction (eldest child = rank 1) applies last;
* the unit price is rounded to the cent (ROUND_HALF_UP); a line's amount is rounded again after
  quantity and rate (`line_amount`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from core.billing.config import CENTS, BillingConfig, Tariff

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class QFPeriod:
    value: int
    valid_from: date
    valid_to: date | None
    order: int = 0   # the latest recorded wins when two periods cover a day

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass
class FamilyPricing:
    """What a family's prices depend on, read once (a run, a page) or kept with the démarche."""
    quotients: list[QFPeriod] = field(default_factory=list)
    resident: bool = True
    ranks: dict[int, int] = field(default_factory=dict)   # child_id -> sibling rank (1 = eldest)

    def qf_on(self, day: date) -> int | None:
        best = None
        for period in self.quotients:
            if period.covers(day) and (best is None or period.order > best.order):
                best = period
        return best.value if best is not None else None

    def to_json(self) -> dict:
        return {"q": [[p.value, p.valid_from.isoformat(), p.valid_to.isoformat() if p.valid_to else None, p.order]
                      for p in self.quotients], "r": self.resident, "k": {str(c): n for c, n in self.ranks.items()}}

    @classmethod
    def from_json(cls, raw: dict) -> FamilyPricing:
        return cls(quotients=[QFPeriod(v, date.fromisoformat(f), date.fromisoformat(t) if t else None, o)
                              for v, f, t, o in raw.get("q", [])],
                   resident=bool(raw.get("r", True)), ranks={int(c): int(n) for c, n in raw.get("k", {}).items()})


@dataclass(frozen=True)
class Price:
    unit_price: Decimal
    bracket: str          # "500 ≤ QF < 800", "QF < 500"…
    qf: int | None        # the QF used (None: no valid QF, highest bracket)
    tariff: Tariff

    @property
    def no_qf(self) -> bool:
        return self.qf is None


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def price(config: BillingConfig, activity_code: str, key: str | None, day: date, family: FamilyPricing,
          child_id: int | None = None) -> Price | None:
    """The unit price of one booking (None when the commune has no tariff for it on that day)."""
    tariff = config.tariff(activity_code, key, day)
    if tariff is None:
        return None
    qf = family.qf_on(day)
    bracket = tariff.bracket_for(qf)
    amount = bracket.price
    if not family.resident:
        amount += tariff.non_resident_surcharge
    rank = family.ranks.get(child_id, 1) if child_id is not None else 1
    if tariff.sibling_reduction_pct and rank > 1:
        pct = tariff.sibling_reduction_pct[min(rank, len(tariff.sibling_reduction_pct)) - 1]
        amount = amount * (HUNDRED - pct) / HUNDRED
    label = bracket.label if qf is not None else f"{bracket.label} (QF non communiqué)"
    return Price(round_cents(amount), label, qf, tariff)


class PriceBook:
    """`price` for a run's thousands of lines: computed once per tariff key, day, QF, residency and
    sibling rank — exactly what it depends on — and read back for every other line alike."""

    def __init__(self, config: BillingConfig):
        self.config = config
        self._memo: dict = {}

    def __call__(self, activity_code: str, key: str | None, day: date, family: FamilyPricing,
                 child_id: int | None = None) -> Price | None:
        rank = family.ranks.get(child_id, 1) if child_id is not None else 1
        memo_key = (activity_code, key, day, family.qf_on(day), family.resident, rank)
        try:
            return self._memo[memo_key]
        except KeyError:
            found = self._memo[memo_key] = price(self.config, activity_code, key, day, family, child_id)
            return found


def line_amount(unit_price: Decimal, quantity: Decimal = Decimal(1), rate_pct: int = 100) -> Decimal:
    """A line's amount: unit price × quantity × rate, rounded half up to the cent."""
    return round_cents(unit_price * quantity * Decimal(rate_pct) / HUNDRED)


def cents(amount: Decimal) -> int:
    """Integer cents, where money leaves the program (exports, payment backends)."""
    return int(round_cents(amount) * 100)


def euros(amount: Decimal | None) -> str:
    """French amount: "1 234,50 €" (narrow no-break space for thousands)."""
    value = round_cents(amount or Decimal(0))
    sign = "-" if value < 0 else ""
    whole, frac = f"{abs(value):.2f}".split(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + "\u202f".join(groups) + "," + frac + "\u00a0€"

"""The régie and the tariffs of a commune: configuration, not code.

They come from ``tenants/<slug>/billing.toml`` (loaded into the commune's settings under
"billing" by ``flask tenants sync``) and agents edit them (Facturation → Tarifs).  Kept in the
commune's settings, they are read with the commune on every request: the planning and a tick price
the démarche without one more statement (tests/test_tick_cost.py).  Amounts are written as strings
("12.50") and read as Decimal; recorded amounts (lines, invoices) are NUMERIC(12,2) columns.

Tariff: per activity (code) and key — a unit code for days with units (the slot's time slot is the
unit code: matin, repas, soir…), a time slot for sessions (matin, midi, apres_midi, journee), or
"*" — a grid of QF brackets, half-open [min, max), contiguous from 0, the last one open or not;
optional surcharge for non-residents, reductions by sibling rank, validity dates (versions).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal, InvalidOperation
from pathlib import Path

from flask_babel import lazy_gettext as _l

MODES = {"unit": _l("à l'unité"), "session": _l("à la séance"), "forfait": _l("au forfait")}
CENTS = Decimal("0.01")


class ConfigError(ValueError):
    """Refused configuration, with a French message (translated) and the field at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Bracket:
    qf_min: int
    qf_max: int | None   # excluded; None: no upper bound
    price: Decimal

    def contains(self, qf: int) -> bool:
        return self.qf_min <= qf and (self.qf_max is None or qf < self.qf_max)

    @property
    def label(self) -> str:
        if self.qf_max is None:
            return f"QF ≥ {self.qf_min}"
        if self.qf_min == 0:
            return f"QF < {self.qf_max}"
        return f"{self.qf_min} ≤ QF < {self.qf_max}"


@dataclass(frozen=True)
class Tariff:
    activity: str                 # activity code
    key: str                      # unit code / time slot / "*"
    label: str
    mode: str
    valid_from: date
    valid_to: date | None
    brackets: tuple[Bracket, ...]
    non_resident_surcharge: Decimal = Decimal("0.00")
    sibling_reduction_pct: tuple[int, ...] = ()
    meal: bool = False            # a meal: never in the attestation fiscale
    childcare: bool = True        # garde d'enfants (attestation fiscale)
    index: int = 0                # position in the configuration (agents' edit form)

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    @property
    def highest(self) -> Bracket:
        return max(self.brackets, key=lambda b: b.qf_min)

    def bracket_for(self, qf: int | None) -> Bracket:
        if qf is None:
            return self.highest
        for bracket in self.brackets:
            if bracket.contains(qf):
                return bracket
        return self.highest  # (validated: contiguous from 0, so only beyond a closed last bracket)


@dataclass(frozen=True)
class Regie:
    code: str = "regie"
    name: str = ""
    prefix: str = "F"
    payment_day: int = 15
    address: tuple[str, ...] = ()
    payfip_client: str = ""
    sepa_creditor_id: str = ""
    unjustified_absence_pct: int = 100
    bill_unbooked_presence: bool = True
    overdue_blocks: bool = False
    # Billing II (core.billing.online, sepa, reminders): payment online, SEPA direct debit, reminders
    online_payment: bool = True        # "Payer en ligne" offered (PayFiP needs payfip_client in production)
    payfip_saisie: str = "T"           # PayFiP: T test, X activation, W production
    sepa_creditor_name: str = ""
    sepa_creditor_iban: str = ""
    sepa_creditor_bic: str = ""
    sepa_lead_days: int = 2            # a collection date at least this many days ahead (business days)
    iban_readers: tuple[str, ...] = ()  # agents (e-mail) shown full IBANs and the pain.008; empty: every agent
    reminder_days_before: int = 5      # "votre facture arrive à échéance" this many days before the due date
    reminder_days_after: int = 3       # "facture en retard" this many days after it


@dataclass
class BillingConfig:
    regie: Regie = field(default_factory=Regie)
    tariffs: list[Tariff] = field(default_factory=list)
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for tariff in self.tariffs:
            self._index.setdefault((tariff.activity, tariff.key), []).append(tariff)

    def tariff(self, activity_code: str, key: str | None, day: date) -> Tariff | None:
        """The tariff of this activity for this unit / time slot (else "*") valid on `day`."""
        for k in (key or "*", "*"):
            for tariff in self._index.get((activity_code, k), ()):
                if tariff.valid_on(day):
                    return tariff
        return None

    def of_activity(self, activity_code: str) -> list[Tariff]:
        return [t for t in self.tariffs if t.activity == activity_code]


# ---------------------------------------------------------------------------- parsing and checks

def money(raw, *, field: str = "price") -> Decimal:
    """A price as typed ("12,50", "12.5", 12.5) → Decimal with two places; refuses letters and < 0."""
    text = str(raw).strip().replace(",", ".").replace("€", "").replace(" ", "").replace("\u00a0", "")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ConfigError(str(_l("« %(value)s » n'est pas un montant (exemple : 12,50).", value=raw)), field) from None
    if not value.is_finite() or value.adjusted() > 15:  # 10^16 €: none, and quantize() needs its 28 digits
        raise ConfigError(str(_l("« %(value)s » n'est pas un montant (exemple : 12,50).", value=raw)), field)
    if value < 0:
        raise ConfigError(str(_l("Un tarif ne peut pas être négatif (%(value)s).", value=raw)), field)
    if value != value.quantize(CENTS):
        raise ConfigError(str(_l("Un montant a deux décimales au plus (%(value)s).", value=raw)), field)
    return value.quantize(CENTS)


def _int(raw, field: str, *, minimum: int = 0) -> int:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise ConfigError(str(_l("« %(value)s » n'est pas un nombre entier.", value=raw)), field) from None
    if value < minimum:
        raise ConfigError(str(_l("« %(value)s » doit être supérieur ou égal à %(min)d.", value=raw, min=minimum)),
                          field)
    return value


def _bool(raw, field: str, default: bool) -> bool:
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise ConfigError(str(_l("%(field)s : « %(value)s » n'est pas true (oui) ou false (non).", field=field,
                                 value=raw)), field)
    return raw


def _date(raw, field: str) -> date | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise ConfigError(str(_l("« %(value)s » n'est pas une date (AAAA-MM-JJ).", value=raw)), field) from None


def check_brackets(brackets: list[Bracket]) -> list[Bracket]:
    """Sorted, half-open, no overlap, no gap, from QF 0; raises ConfigError in French."""
    if not brackets:
        raise ConfigError(str(_l("Une grille a au moins une tranche.")), "brackets")
    ordered = sorted(brackets, key=lambda b: b.qf_min)
    for b in ordered:
        if b.qf_max is not None and b.qf_max <= b.qf_min:
            raise ConfigError(str(_l("Tranche %(min)d–%(max)d : le maximum doit dépasser le minimum.",
                                     min=b.qf_min, max=b.qf_max)), "brackets")
    if ordered[0].qf_min != 0:
        raise ConfigError(str(_l("La première tranche commence à un QF de 0.")), "brackets")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.qf_max is None or a.qf_max > b.qf_min:
            raise ConfigError(str(_l("Les tranches %(a)s et %(b)s se chevauchent.", a=_span(a), b=_span(b))),
                              "brackets")
        if a.qf_max < b.qf_min:
            raise ConfigError(str(_l("Aucune tranche ne couvre les QF de %(min)d à %(max)d.",
                                     min=a.qf_max, max=b.qf_min - 1)), "brackets")
    return ordered


def _span(b: Bracket) -> str:
    return f"{b.qf_min}–{b.qf_max}" if b.qf_max is not None else f"{b.qf_min}+"


REGIE_KEYS = {"code", "name", "prefix", "payment_day", "address", "payfip_client", "sepa_creditor_id",
              "unjustified_absence_pct", "bill_unbooked_presence", "overdue_blocks",
              # Billing II: online payment, SEPA direct debit, reminders
              "online_payment", "payfip_saisie", "sepa_creditor_name", "sepa_creditor_iban", "sepa_creditor_bic",
              "sepa_lead_days", "iban_readers", "reminder_days_before", "reminder_days_after"}
TARIFF_KEYS = {"activity", "unit", "label", "mode", "valid_from", "valid_to", "non_resident_surcharge",
               "sibling_reduction_pct", "meal", "childcare", "brackets"}
BRACKET_KEYS = {"min", "max", "price"}


def _table(raw, where: str) -> dict:
    """A TOML table where one is expected, its keys known (a misspelt key would be ignored silently)."""
    if not isinstance(raw, dict):
        raise ConfigError(str(_l("%(where)s : une table est attendue (clé = valeur, entre accolades ou sous "
                                 "un titre [ … ]).", where=where)), "config")
    return raw


def _unknown(raw: dict, known: set, where: str) -> None:
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(str(_l("%(where)s : clé inconnue « %(key)s » (clés possibles : %(keys)s).", where=where,
                                 key=extra[0], keys=", ".join(sorted(known)))), "config")


def _list(raw, where: str) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(str(_l("%(where)s : une liste est attendue, entre crochets [ … ].", where=where)), "config")
    return raw


def parse_tariff(raw: dict, index: int = 0) -> Tariff:
    """One [[tariffs]] entry; an error names the tariff (its number and activity / unit)."""
    where = str(_l("Tarif n° %(num)d", num=index + 1))
    if isinstance(raw, dict) and raw.get("activity"):
        where += f" ({raw.get('activity')} / {raw.get('unit') or '*'})"
    try:
        return _parse_tariff(_table(raw, where), index, where)
    except ConfigError as err:
        if err.message.startswith(where):
            raise
        raise ConfigError(str(_l("%(where)s : %(message)s", where=where, message=err.message)), err.field) from None


def _parse_tariff(raw: dict, index: int, where: str) -> Tariff:
    _unknown(raw, TARIFF_KEYS, where)
    activity = str(raw.get("activity") or "").strip()
    if not activity:
        raise ConfigError(str(_l("Indiquez l'activité du tarif.")), "activity")
    mode = str(raw.get("mode") or "unit")
    if mode not in MODES:
        raise ConfigError(str(_l("Mode de tarification inconnu : %(mode)s.", mode=mode)), "mode")
    brackets = []
    for n, b in enumerate(_list(raw.get("brackets"), "brackets"), start=1):
        inner = str(_l("tranche n° %(num)d", num=n))
        _unknown(_table(b, inner), BRACKET_KEYS, inner)
        qf_max = b.get("max")
        brackets.append(Bracket(_int(b.get("min", 0), "brackets"),
                                None if qf_max in (None, "") else _int(qf_max, "brackets"),
                                money(b.get("price", ""), field="brackets")))
    reductions = tuple(_int(p, "sibling_reduction_pct")
                       for p in _list(raw.get("sibling_reduction_pct"), "sibling_reduction_pct"))
    if any(p > 100 for p in reductions):
        raise ConfigError(str(_l("Une réduction ne dépasse pas 100 %.")), "sibling_reduction_pct")
    valid_from = _date(raw.get("valid_from"), "valid_from") or date(2000, 1, 1)
    valid_to = _date(raw.get("valid_to"), "valid_to")
    if valid_to is not None and valid_to < valid_from:
        raise ConfigError(str(_l("La fin de validité précède son début.")), "valid_to")
    return Tariff(activity=activity, key=str(raw.get("unit") or "*").strip() or "*",
                  label=str(raw.get("label") or raw.get("unit") or activity), mode=mode,
                  valid_from=valid_from, valid_to=valid_to, brackets=tuple(check_brackets(brackets)),
                  non_resident_surcharge=money(raw.get("non_resident_surcharge", "0"),
                                               field="non_resident_surcharge"),
                  sibling_reduction_pct=reductions, meal=_bool(raw.get("meal"), "meal", False),
                  childcare=_bool(raw.get("childcare"), "childcare", True), index=index)


def check_versions(tariffs: list[Tariff]) -> None:
    """Two versions of the same tariff never overlap in time."""
    by_key: dict = {}
    for t in tariffs:
        by_key.setdefault((t.activity, t.key), []).append(t)
    for (activity, key), versions in by_key.items():
        versions.sort(key=lambda t: t.valid_from)
        for a, b in zip(versions, versions[1:], strict=False):
            if a.valid_to is None or a.valid_to >= b.valid_from:
                raise ConfigError(str(_l("Deux versions du tarif %(activity)s / %(key)s sont valables en même "
                                         "temps (à partir du %(date)s).", activity=activity, key=key,
                                         date=b.valid_from.strftime("%d/%m/%Y"))), "valid_from")


def parse_regie(raw: dict) -> Regie:
    where = "[regie]"
    try:
        return _parse_regie(_table(raw, where))
    except ConfigError as err:
        if err.message.startswith(where):
            raise
        raise ConfigError(str(_l("%(where)s : %(message)s", where=where, message=err.message)), err.field) from None


def _parse_regie(raw: dict) -> Regie:
    _unknown(raw, REGIE_KEYS, "[regie]")
    address = raw.get("address") or []
    if isinstance(address, str):
        address = [line for line in address.splitlines() if line.strip()]
    address = _list(address, "address")
    day = _int(raw.get("payment_day", 15), "payment_day", minimum=1)
    if day > 28:
        raise ConfigError(str(_l("Le jour d'échéance est compris entre 1 et 28.")), "payment_day")
    pct = _int(raw.get("unjustified_absence_pct", 100), "unjustified_absence_pct")
    if pct > 100:
        raise ConfigError(str(_l("Le pourcentage facturé d'une absence non justifiée est compris entre 0 et 100.")),
                          "unjustified_absence_pct")
    prefix = str(raw.get("prefix") or "F").strip()
    if not prefix.isalnum() or len(prefix) > 6:
        raise ConfigError(str(_l("Le préfixe des numéros de facture est fait de 1 à 6 lettres ou chiffres.")),
                          "prefix")
    payfip_client = str(raw.get("payfip_client") or "").strip()
    if payfip_client and not (payfip_client.isascii() and payfip_client.isdigit() and len(payfip_client) == 6):
        raise ConfigError(str(_l("Le numéro client PayFiP a 6 chiffres (fourni par la DGFiP).")), "payfip_client")
    saisie = str(raw.get("payfip_saisie") or "T").strip().upper()
    if saisie not in ("T", "X", "W"):
        raise ConfigError(str(_l("Le mode PayFiP est T (test), X (activation) ou W (production).")), "payfip_saisie")
    creditor_id = str(raw.get("sepa_creditor_id") or "").replace(" ", "").upper()
    if creditor_id:
        from core.billing.bank import creditor_id_is_valid

        if not creditor_id_is_valid(creditor_id):
            raise ConfigError(str(_l("L'identifiant créancier SEPA (ICS) « %(value)s » n'est pas valide.",
                                     value=creditor_id)), "sepa_creditor_id")
    creditor_iban = str(raw.get("sepa_creditor_iban") or "").replace(" ", "").upper()
    creditor_bic = str(raw.get("sepa_creditor_bic") or "").replace(" ", "").upper()
    if creditor_iban or creditor_bic:
        from core.billing.bank import BankError, check_account

        try:
            check_account(creditor_iban, creditor_bic)
        except BankError as err:
            raise ConfigError(err.message, "sepa_creditor_iban") from None
    readers = raw.get("iban_readers") or ()
    if isinstance(readers, str):
        readers = [r for r in readers.replace(",", " ").split() if r]
    return Regie(code=str(raw.get("code") or "regie"), name=str(raw.get("name") or ""), prefix=prefix,
                 payment_day=day, address=tuple(str(a) for a in address),
                 payfip_client=payfip_client, sepa_creditor_id=creditor_id,
                 unjustified_absence_pct=pct,
                 bill_unbooked_presence=_bool(raw.get("bill_unbooked_presence"), "bill_unbooked_presence", True),
                 overdue_blocks=_bool(raw.get("overdue_blocks"), "overdue_blocks", False),
                 online_payment=_bool(raw.get("online_payment"), "online_payment", True), payfip_saisie=saisie,
                 sepa_creditor_name=str(raw.get("sepa_creditor_name") or raw.get("name") or "")[:70],
                 sepa_creditor_iban=creditor_iban, sepa_creditor_bic=creditor_bic,
                 sepa_lead_days=min(_int(raw.get("sepa_lead_days", 2), "sepa_lead_days", minimum=1), 30),
                 iban_readers=tuple(str(r).strip().lower() for r in readers),
                 reminder_days_before=min(_int(raw.get("reminder_days_before", 5), "reminder_days_before"), 60),
                 reminder_days_after=min(_int(raw.get("reminder_days_after", 3), "reminder_days_after", minimum=1),
                                         90))


def parse(raw: dict | None, *, activity_codes=None) -> BillingConfig:
    """The commune's billing settings, checked (raises ConfigError, in French, naming the place:
    "[regie]", "Tarif n° 3 (kids / matin)", "tranche n° 2").  With `activity_codes`, a tariff of an
    activity the commune does not have is refused (a misspelt code would never bill)."""
    raw = _table(raw or {}, str(_l("La configuration")))
    _unknown(raw, {"regie", "tariffs"}, str(_l("La configuration")))
    tariffs = [parse_tariff(t, i) for i, t in enumerate(_list(raw.get("tariffs"), "tariffs"))]
    if activity_codes is not None:
        known = sorted(set(activity_codes))
        for i, t in enumerate(tariffs):
            if t.activity not in known:
                raise ConfigError(str(_l("Tarif n° %(num)d : l'activité « %(code)s » n'existe pas dans la commune "
                                         "(codes : %(codes)s).", num=i + 1, code=t.activity,
                                         codes=", ".join(known) or "—")), "activity")
    check_versions(tariffs)
    return BillingConfig(regie=parse_regie(raw.get("regie") or {}), tariffs=tariffs)


_parsed: dict[int, tuple[int, BillingConfig]] = {}


def for_tenant(tenant) -> BillingConfig:
    """The commune's configuration, parsed once per version of its settings (per process)."""
    raw = tenant.setting("billing", default={}) or {}
    key = id(raw)
    hit = _parsed.get(tenant.id)
    if hit is not None and hit[0] == key and hit[2] is raw:
        return hit[1]
    try:
        config = parse(raw)
    except ConfigError:
        config = BillingConfig()
    _parsed[tenant.id] = (key, config, raw)
    return config


def jsonable(raw):
    """TOML values as the settings keep them (dates ISO, amounts as strings)."""
    if isinstance(raw, dict):
        return {k: jsonable(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [jsonable(v) for v in raw]
    if isinstance(raw, date | time):
        return raw.isoformat()
    if isinstance(raw, float | Decimal):
        try:
            value = Decimal(str(raw))
            return f"{value.quantize(CENTS)}" if value.is_finite() else str(raw)
        except InvalidOperation:  # 1e308 (inf, nan above): kept as written, then refused as no amount
            return str(raw)
    return raw


def load_file(path: Path) -> dict:
    """billing.toml → the settings' "billing" value, checked (raises ConfigError)."""
    with open(path, "rb") as fh:
        raw = jsonable(tomllib.load(fh))
    parse(raw)
    return raw


def tariff_to_raw(t: Tariff) -> dict:
    out = {"activity": t.activity, "unit": t.key, "label": t.label, "mode": t.mode,
           "valid_from": t.valid_from.isoformat(), "meal": t.meal, "childcare": t.childcare,
           "non_resident_surcharge": f"{t.non_resident_surcharge}",
           "sibling_reduction_pct": list(t.sibling_reduction_pct),
           "brackets": [{"min": b.qf_min, **({"max": b.qf_max} if b.qf_max is not None else {}),
                         "price": f"{b.price}"} for b in t.brackets]}
    if t.valid_to is not None:
        out["valid_to"] = t.valid_to.isoformat()
    return out

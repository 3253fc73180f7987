"""Bank details, checked with schwifty: IBAN (checksum, SEPA zone), BIC (structure, same country as the
IBAN), the SEPA creditor identifier (ICS), masking, and the TARGET2 business days of a collection.

Messages are French (translated) and say what is wrong; nothing here writes anything."""

from __future__ import annotations

from datetime import date, timedelta

from dateutil.easter import easter
from flask_babel import lazy_gettext as _l
from schwifty import BIC, IBAN
from schwifty import exceptions as sx

# A French IBAN may be held in a bank of the overseas departments and collectivities, whose BIC
# carries their own country code (e.g. RE for La Réunion).
SAME_COUNTRY = {"FR": {"FR", "GP", "GF", "MQ", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"}}


class BankError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


def _compact(raw) -> str:
    return "".join(str(raw or "").split()).replace("-", "").upper()


def check_iban(raw) -> IBAN:
    text = _compact(raw)
    if not text:
        raise BankError(str(_l("Indiquez l'IBAN du compte à prélever.")), "iban")
    try:
        iban = IBAN(text)
    except sx.InvalidChecksumDigits:
        raise BankError(str(_l("L'IBAN %(value)s est erroné : sa clé de contrôle ne correspond pas. Vérifiez chaque "
                               "caractère sur votre RIB.", value=text)), "iban") from None
    except sx.InvalidCountryCode:
        raise BankError(str(_l("L'IBAN commence par le code d'un pays (FR pour la France).")), "iban") from None
    except sx.InvalidLength:
        raise BankError(str(_l("L'IBAN %(value)s n'a pas la bonne longueur (27 caractères pour un IBAN "
                               "français).", value=text)), "iban") from None
    except sx.SchwiftyException:
        raise BankError(str(_l("L'IBAN %(value)s n'est pas valide.", value=text)), "iban") from None
    if not iban.in_sepa_zone:
        raise BankError(str(_l("Ce compte n'est pas dans la zone SEPA : il ne peut pas être prélevé.")), "iban")
    return iban


def check_bic(raw, iban: IBAN) -> str:
    """The BIC typed, else the one schwifty knows for the IBAN's bank; of the IBAN's country."""
    text = _compact(raw)
    if not text:
        known = iban.bic
        if known is None:
            raise BankError(str(_l("Indiquez le BIC de votre banque (8 ou 11 caractères, sur votre RIB).")), "bic")
        return str(known.compact)
    try:
        bic = BIC(text)
    except sx.SchwiftyException:
        raise BankError(str(_l("Le BIC %(value)s n'est pas valide (8 ou 11 caractères, par exemple BNPAFRPP).",
                               value=text)), "bic") from None
    allowed = SAME_COUNTRY.get(iban.country_code, {iban.country_code})
    if bic.country_code not in allowed:
        raise BankError(str(_l("Le BIC %(bic)s est celui d'une banque d'un autre pays (%(bic_country)s) que "
                               "l'IBAN (%(iban_country)s).", bic=text, bic_country=bic.country_code,
                               iban_country=iban.country_code)), "bic")
    return str(bic.compact)


def check_account(iban_raw, bic_raw) -> tuple[str, str]:
    """(IBAN compact, BIC compact), checked; raises BankError."""
    iban = check_iban(iban_raw)
    return str(iban.compact), check_bic(bic_raw, iban)


def mask(iban: str | None) -> str:
    """FR76 •••• •••• •••• •••• •••0 189: the country, its check digits and the last four characters."""
    text = _compact(iban)
    if len(text) < 8:
        return "•" * len(text)
    hidden = text[:4] + "•" * (len(text) - 8) + text[-4:]
    return " ".join(hidden[i:i + 4] for i in range(0, len(hidden), 4))


def formatted(iban: str) -> str:
    text = _compact(iban)
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def _mod97(digits: str) -> int:
    return int("".join(str(int(c, 36)) for c in digits)) % 97


def creditor_id_is_valid(ics: str) -> bool:
    """The SEPA creditor identifier (ICS): country, two check digits, a business code (ignored by the
    check), the national identifier; check digits as an IBAN's over the national part + country + 00."""
    text = _compact(ics)
    if len(text) < 8 or len(text) > 35 or not (text.isascii() and text.isalnum()) or not text[:2].isalpha() \
            or not text[2:4].isdigit():  # ASCII: "é" or "²" are alphanumeric, and no base-36 digit
        return False
    national = text[7:]
    return 98 - _mod97(national + text[:2] + "00") == int(text[2:4])


def creditor_id(country: str, national: str, business: str = "ZZZ") -> str:
    """An ICS with its check digits (demo data and tests)."""
    check = 98 - _mod97(national.upper() + country.upper() + "00")
    return f"{country.upper()}{check:02d}{business}{national.upper()}"


# ---------------------------------------------------------------------------- TARGET2 days

def target_holidays(year: int) -> set[date]:
    """Days the SEPA interbank system (TARGET2) is closed, besides weekends."""
    sunday = easter(year)
    return {date(year, 1, 1), sunday - timedelta(days=2), sunday + timedelta(days=1), date(year, 5, 1),
            date(year, 12, 25), date(year, 12, 26)}


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target_holidays(day.year)


def earliest_collection(today: date, lead_days: int) -> date:
    """The first collection date allowed: `lead_days` business days after today."""
    day, left = today, lead_days
    while left > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            left -= 1
    return day

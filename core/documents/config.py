"""Piece types from configuration: ``tenants/<slug>/pieces.toml``, loaded into the commune's
``piece_type`` rows (``flask tenants pieces <slug>``, and the demo data), then edited by its agents.

    [retention]
    days_after_expiry = 90     # an expired piece (file and row) is deleted this long after its end date
    days_after_refusal = 60    # a refused piece, this long after the refusal

    [announce]
    days_before_expiry = 30    # "expire bientôt": on the dashboard and by mail, once per piece

    [[types]]
    code = "domicile"                          # unique in the commune
    label = "Justificatif de domicile"
    label_en = "Proof of address"
    description = "Facture d'énergie ou quittance de loyer de moins de 3 mois."
    concerns = "family"                        # family | child
    validity = "months"                        # months | school_year | unlimited
    months = 3
    required_for = ["mercredi"]                # activity codes whose inscription needs it ("*" = all)
"""

from __future__ import annotations

import calendar as _calendar
import copy
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select

from core.documents.models import (
    CONCERNS_CHILD,
    CONCERNS_FAMILY,
    VALIDITY_MONTHS,
    VALIDITY_SCHOOL_YEAR,
    VALIDITY_UNLIMITED,
    PieceType,
)
from extensions import db

CONCERNS = (CONCERNS_FAMILY, CONCERNS_CHILD)
VALIDITIES = (VALIDITY_MONTHS, VALIDITY_SCHOOL_YEAR, VALIDITY_UNLIMITED)

DEFAULT_RETENTION_AFTER_EXPIRY = 90
DEFAULT_RETENTION_AFTER_REFUSAL = 60
DEFAULT_ANNOUNCE_DAYS = 30


class PiecesConfigError(ValueError):
    pass


@dataclass(frozen=True)
class PieceSettings:
    days_after_expiry: int = DEFAULT_RETENTION_AFTER_EXPIRY
    days_after_refusal: int = DEFAULT_RETENTION_AFTER_REFUSAL
    announce_days: int = DEFAULT_ANNOUNCE_DAYS


def settings_of(tenant) -> PieceSettings:
    raw = tenant.setting("pieces", default={}) or {}

    def num(key, default):
        try:
            return max(0, int(raw.get(key, default)))
        except (TypeError, ValueError):
            return default

    return PieceSettings(days_after_expiry=num("days_after_expiry", DEFAULT_RETENTION_AFTER_EXPIRY),
                         days_after_refusal=num("days_after_refusal", DEFAULT_RETENTION_AFTER_REFUSAL),
                         announce_days=num("announce_days", DEFAULT_ANNOUNCE_DAYS))


def save_settings(tenant, settings: PieceSettings) -> None:
    data = copy.deepcopy(tenant.settings or {})
    data["pieces"] = {"days_after_expiry": settings.days_after_expiry,
                      "days_after_refusal": settings.days_after_refusal,
                      "announce_days": settings.announce_days}
    tenant.settings = data


# ====================================================================== validity

def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def school_year_end(day: date) -> date:
    """The 31st of August ending the school year `day` belongs to."""
    return date(day.year if day.month < 9 else day.year + 1, 8, 31)


def default_end(piece_type: PieceType, start: date) -> date | None:
    """The end date an agent is offered when validating a piece given on `start` (None: no end)."""
    if piece_type.validity == VALIDITY_UNLIMITED:
        return None
    if piece_type.validity == VALIDITY_SCHOOL_YEAR:
        return school_year_end(start)
    return add_months(start, max(1, piece_type.validity_months or 12))


# ====================================================================== loading pieces.toml

def _check(spec: dict, where: str) -> dict:
    code = str(spec.get("code", "")).strip()
    if not code or len(code) > 40:
        raise PiecesConfigError(f"{where}: 'code' manquant ou trop long")
    if not str(spec.get("label", "")).strip():
        raise PiecesConfigError(f"{where}: 'label' manquant")
    concerns = spec.get("concerns", CONCERNS_FAMILY)
    if concerns not in CONCERNS:
        raise PiecesConfigError(f"{where}: concerns doit valoir {' ou '.join(CONCERNS)}")
    validity = spec.get("validity", VALIDITY_MONTHS)
    if validity not in VALIDITIES:
        raise PiecesConfigError(f"{where}: validity doit valoir {', '.join(VALIDITIES)}")
    required = spec.get("required_for", [])
    if not isinstance(required, list):
        raise PiecesConfigError(f"{where}: required_for doit être une liste de codes d'activités")
    return spec


def apply_type(piece_type: PieceType, spec: dict) -> PieceType:
    piece_type.code = str(spec["code"]).strip()
    piece_type.label = str(spec["label"]).strip()
    piece_type.label_en = (str(spec.get("label_en") or "").strip() or None)
    piece_type.description = (str(spec.get("description") or "").strip() or None)
    piece_type.concerns = spec.get("concerns", CONCERNS_FAMILY)
    piece_type.validity = spec.get("validity", VALIDITY_MONTHS)
    piece_type.validity_months = int(spec["months"]) if spec.get("months") else None
    piece_type.required_for = [str(c) for c in spec.get("required_for", [])]
    piece_type.position = int(spec.get("position", piece_type.position or 0))
    piece_type.active = bool(spec.get("active", True))
    return piece_type


def load_pieces(tenant, data: dict, *, update: bool = False) -> list[PieceType]:
    """Create the types of `data` that the commune does not have yet (by code); with `update`,
    overwrite the existing ones too (the agents' changes are otherwise kept).  In the commune's scope."""
    existing = {t.code: t for t in db.session.scalars(select(PieceType))}
    out = []
    for position, spec in enumerate(data.get("types", [])):
        spec = _check(dict(spec, position=spec.get("position", position)), f"types[{position}]")
        row = existing.get(str(spec["code"]).strip())
        if row is None:
            row = PieceType()
            db.session.add(row)
        elif not update:
            out.append(row)
            continue
        out.append(apply_type(row, spec))
    retention = data.get("retention", {})
    announce = data.get("announce", {})
    if retention or announce:
        current = settings_of(tenant)
        if update or not tenant.setting("pieces"):
            save_settings(tenant, PieceSettings(
                days_after_expiry=int(retention.get("days_after_expiry", current.days_after_expiry)),
                days_after_refusal=int(retention.get("days_after_refusal", current.days_after_refusal)),
                announce_days=int(announce.get("days_before_expiry", current.announce_days))))
    db.session.flush()
    return out


def load_folder_pieces(tenant, folder: Path, *, update: bool = False) -> list[PieceType]:
    path = Path(folder) / "pieces.toml"
    if not path.is_file():
        return []
    with open(path, "rb") as fh:
        return load_pieces(tenant, tomllib.load(fh), update=update)

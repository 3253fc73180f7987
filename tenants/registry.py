"""Commune folders: tenants/<slug>/commune.toml (+ static/ assets, demo.toml).

A new commune is a new folder: no code.  ``flask tenants sync`` writes the
folders' configuration into the database, where the back-office may later
change it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

DEFAULT_SETTINGS: dict = {
    "short_name": "",
    "signature": "",
    "contact_email": "",
    "sender_email": "",
    "branding": {"primary": "#1f4e79", "accent": "#c0392b", "logo": ""},
    "password_policy": {"min_length": 8, "min_lowercase": 1, "min_uppercase": 0, "min_digits": 1, "min_special": 0},
    "accounts": {"self_registration": True, "require_cgu": False},
    "home": {},
    "cgu": {},
    "news": [],
}


class TenantConfigError(ValueError):
    pass


@dataclass
class TenantFolder:
    slug: str
    name: str
    path: Path
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what loading corrected (told by `tenants sync`)

    @property
    def demo_file(self) -> Path:
        return self.path / "demo.toml"


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _jsonable(value):
    """TOML dates become ISO strings: settings are stored as JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


RESERVED_SLUGS = {"static", "support", "langue", "healthz", "admin"}


def load_folder(path: Path) -> TenantFolder:
    with open(path / "commune.toml", "rb") as fh:
        data = tomllib.load(fh)
    slug = data.pop("slug", path.name)
    name = data.pop("name", None)
    if slug != path.name:
        raise TenantConfigError(f"{path}: slug {slug!r} différent du nom du dossier")
    if not SLUG_RE.match(slug) or slug in RESERVED_SLUGS:
        raise TenantConfigError(f"{path}: slug invalide {slug!r}")
    if not name:
        raise TenantConfigError(f"{path}: 'name' manquant")
    settings = _jsonable(_merge(DEFAULT_SETTINGS, data))
    if (path / "billing.toml").is_file():  # the régie and the tariffs (core.billing.config checks them)
        from core.billing.config import ConfigError, load_file

        try:
            settings["billing"] = load_file(path / "billing.toml")
        except ConfigError as err:
            raise TenantConfigError(f"{path / 'billing.toml'}: {err.message}") from err
    notes = readable_branding(slug, settings)
    return TenantFolder(slug=slug, name=name, path=path, settings=settings, notes=notes)


BRANDING_COLOURS = {"primary": "couleur principale", "accent": "couleur d'accent"}


def readable_branding(slug: str, settings: dict) -> list[str]:
    """A commune.toml colour that fails 4.5:1 is corrected, not refused: the commune stays online
    with the closest darker shade of its colour (core.contrast), and `tenants sync` says so.  A
    value that is not a colour at all is refused."""
    from core.contrast import describe, readable_colour

    notes = []
    branding = settings.setdefault("branding", {})
    for key, words in BRANDING_COLOURS.items():
        value = str(branding.get(key) or DEFAULT_SETTINGS["branding"][key]).strip()
        try:
            fixed = readable_colour(value)
        except ValueError:
            raise TenantConfigError(f"{slug}: branding.{key} = {value!r} n'est pas une couleur #rrggbb") from None
        if fixed != value.lower():
            notes.append(f"{slug} : {words} {value} corrigée en {fixed} (contraste {describe(value)} → "
                         f"{describe(fixed)}, 4.5:1 au moins pour le texte)")
        branding[key] = fixed
    return notes


def discover(tenants_dir: str | Path) -> list[TenantFolder]:
    root = Path(tenants_dir)
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "commune.toml").is_file()]
    return [load_folder(p) for p in folders]

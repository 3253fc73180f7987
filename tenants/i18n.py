"""Commune wording in several languages: a plain string, or {fr = "...", en = "..."}."""

from flask_babel import get_locale


def tenant_text(value, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, dict):
        lang = str(get_locale() or "fr")
        return value.get(lang) or value.get("fr") or next(iter(value.values()), default)
    return str(value)

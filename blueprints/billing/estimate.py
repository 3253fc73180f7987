"""The live estimate of a démarche, on the web side: the family's pricing is kept in the commune's
session from the moment the démarche opens (step 1), so that the planning and every tick price the
démarche's items (read with its lock) without one more statement; "Le récapitulatif" reads it again."""

from __future__ import annotations

from flask import session

from core.billing import config as bconf
from core.billing.estimate import estimate
from core.billing.pricing import FamilyPricing
from core.billing.quotients import pricing_of
from tenants.web import current_tenant

KEY = "billing_estimate"
KEPT = 4  # démarches remembered per session


def remember(cart_id: int, family_id: int) -> FamilyPricing:
    """Read the family's pricing (a few statements: step 1 or the récapitulatif) and keep it."""
    pricing = pricing_of([family_id])[family_id]
    kept = dict(session.get(KEY) or {})
    kept[str(cart_id)] = pricing.to_json()
    while len(kept) > KEPT:
        kept.pop(next(iter(kept)))
    session[KEY] = kept
    return pricing


def kept(cart_id: int) -> FamilyPricing | None:
    raw = (session.get(KEY) or {}).get(str(cart_id))
    return FamilyPricing.from_json(raw) if raw else None


def for_cart(cart_id: int, activities, items, *, slots=None, pricing: FamilyPricing | None = None):
    """The estimate of these items, or None when the commune bills nothing or the family's pricing
    is not known in this session (another device: shown again on the récapitulatif)."""
    conf = bconf.for_tenant(current_tenant())
    if not conf.tariffs:
        return None
    pricing = pricing or kept(cart_id)
    if pricing is None:
        return None
    return estimate(conf, {a.id: a.code for a in activities}, items, pricing, slots)

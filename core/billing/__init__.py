"""Billing: régie and tariffs (configuration), quotient familial, pointage, invoicing runs
(draft → published, numbered, immutable invoices), credits (avoirs), documents (PDF) and
attestations.

One data path: every price comes from `core.billing.pricing.price`; the reservations are read
only through `core.reservations.queries` (never from the reservation, slot or cart tables here); services
never commit (the views and the CLI do).
"""

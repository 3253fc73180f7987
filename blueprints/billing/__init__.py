"""Billing on the web: the parents' side (Mes factures, Mes QF/Revenus, Simulation des tarifs,
Édition de documents) and the agents' "Facturation" (/<commune>/admin/facturation)."""

from flask import Blueprint

bp = Blueprint("billing", __name__, url_prefix="/<tenant>")
admin_bp = Blueprint("billing_admin", __name__, url_prefix="/<tenant>/admin/facturation")

from blueprints.billing import admin, admin_payments, payments, routes  # noqa: E402,F401,I001

"""Opening-day rush, HTTP side: the waiting room page, the gate before the wizard, and the
`flask rush` commands ("Réessayez dans un instant" is web/transaction.py's)."""

from flask import Blueprint

bp = Blueprint("rush", __name__, url_prefix="/<tenant>")

from blueprints.rush import commands, routes  # noqa: E402,F401

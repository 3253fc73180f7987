"""Opening-day rush, HTTP side: the waiting room page, the gate before the wizard, and the
"Réessayez dans un instant" answer when a row lock could not be taken in time."""

from flask import Blueprint

bp = Blueprint("rush", __name__, url_prefix="/<tenant>")

from blueprints.rush import routes  # noqa: E402,F401
from blueprints.rush import commands  # noqa: E402,F401

"""Opening-day rush, HTTP side: the waiting room page, the gate before the wizard, the
"Réessayez dans un instant" answer when a row lock could not be taken in time, and the
`flask rush` commands."""

from flask import Blueprint

bp = Blueprint("rush", __name__, url_prefix="/<tenant>")

from blueprints.rush import commands, routes  # noqa: E402,F401

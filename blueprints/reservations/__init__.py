"""The reservation wizard: "Modifier les réservations" -> Choix des personnes -> planning -> récapitulatif."""

from flask import Blueprint

bp = Blueprint("reservations", __name__, url_prefix="/<tenant>")

from blueprints.reservations import routes  # noqa: E402,F401

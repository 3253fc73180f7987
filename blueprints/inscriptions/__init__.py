"""Inscriptions (child x activity x season): "Créer une inscription", statuses."""

from flask import Blueprint

bp = Blueprint("inscriptions", __name__, url_prefix="/<tenant>/inscriptions")

from blueprints.inscriptions import routes  # noqa: E402,F401

"""Following demandes: "Dernières demandes", a demande page with its history, cancellation."""

from flask import Blueprint

bp = Blueprint("demandes", __name__, url_prefix="/<tenant>/demandes")

from blueprints.demandes import routes  # noqa: E402,F401

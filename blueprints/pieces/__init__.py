"""Pièces justificatives (the family's secure document space) and the family's calendar feed."""

from flask import Blueprint

bp = Blueprint("pieces", __name__, url_prefix="/<tenant>")

from blueprints.pieces import feed, routes  # noqa: E402,F401

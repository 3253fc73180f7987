"""Mon agenda (planning des activités) and "Justifier une absence", for parents."""

from flask import Blueprint

bp = Blueprint("agenda", __name__, url_prefix="/<tenant>")

from blueprints.agenda import routes  # noqa: E402,F401

from flask import Blueprint

bp = Blueprint("famille", __name__, url_prefix="/<tenant>")

from blueprints.famille import routes  # noqa: E402,F401

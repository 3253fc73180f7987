from flask import Blueprint

bp = Blueprint("famille", __name__, url_prefix="/<tenant>")

from blueprints.famille import account, routes  # noqa: E402,F401

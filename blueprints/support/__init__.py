"""Support staff: /support/ (its own session cookie), the communes, a switch into one, the audit log."""

from flask import Blueprint

bp = Blueprint("support", __name__, url_prefix="/support")

from blueprints.support import routes  # noqa: E402,F401

"""Agent space of a commune: /<slug>/admin/ (agents of that commune, and support in support mode)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/<tenant>/admin")

import blueprints.admin.dossiers  # noqa: E402,F401  (family files)
from blueprints.admin import routes  # noqa: E402,F401

from blueprints.admin import mails  # noqa: E402,F401  # isort: skip

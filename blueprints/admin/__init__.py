"""Agent space of a commune: /<slug>/admin/ (agents of that commune, and support in support mode)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/<tenant>/admin")

from blueprints.admin import (  # noqa: E402,F401,I001
    allocation,
    config,
    demandes,
    dossiers,
    families,
    inscriptions,
    lists,
    mails,
    pieces,
    routes,
    support,
)

from flask import render_template
from flask_login import current_user

from blueprints.famille import bp
from core.models import ROLE_AGENT, ROLE_PARENT
from tenants.web import role_required


@bp.get("/mon-espace")
@role_required(ROLE_PARENT, ROLE_AGENT)
def dashboard():
    family = current_user.family
    children = family.children if family else []
    return render_template("famille/dashboard.html", family=family, children=children)

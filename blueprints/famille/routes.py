from flask import abort, render_template
from flask_login import current_user

from blueprints.famille import bp
from core.models import ROLE_AGENT, ROLE_PARENT, Child
from extensions import db
from tenants.scoping import get_or_404
from tenants.web import role_required


@bp.get("/mon-espace")
@role_required(ROLE_PARENT, ROLE_AGENT)
def dashboard():
    family = current_user.family
    children = family.children if family else []
    return render_template("famille/dashboard.html", family=family, children=children)


@bp.get("/famille/enfants/<int:child_id>")
@role_required(ROLE_PARENT)
def child(child_id):
    """A member of the household (load in the commune -> 404, then check it is this family's)."""
    member = get_or_404(db.session, Child, child_id)
    if member.family_id != current_user.family_id:
        abort(404)
    return render_template("famille/child.html", child=member)

from flask import render_template

from blueprints.admin import bp
from tenants.web import agent_required


@bp.get("/")
@agent_required
def index():
    return render_template("admin/index.html")

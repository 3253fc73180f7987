from pathlib import Path

from flask import (
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from blueprints.auth.forms import LoginForm
from blueprints.public import bp
from extensions import db
from tenants.models import Tenant
from tenants.web import current_tenant
from web.links import safe_next


@bp.get("/")
def index():
    tenants = db.session.scalars(select(Tenant).order_by(Tenant.name)).all()
    return render_template("index.html", tenants=tenants)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.post("/langue")
@bp.post("/<tenant>/langue")
def set_language():
    """Language choice, kept in a cookie for every commune (CSRF-checked in the commune's session)."""
    lang = request.form.get("lang", "fr")
    if lang not in current_app.config["LANGUAGES"]:
        lang = "fr"
    response = make_response(redirect(safe_next(request.form.get("next"), url_for("public.index"))))
    response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True, path="/")
    return response


@bp.get("/<tenant>/")
def home():
    tenant = current_tenant()
    if current_user.is_authenticated and getattr(current_user, "tenant_id", None) == tenant.id:
        return redirect(url_for("famille.dashboard"))
    return render_template("public/home.html", form=LoginForm(), news=tenant.setting("news", default=[]))


@bp.get("/<tenant>/cgu")
def cgu():
    current_tenant()
    return render_template("public/cgu.html")


@bp.get("/<tenant>/assets/<path:filename>")
def tenant_asset(filename):
    tenant = current_tenant()
    folder = Path(current_app.config["TENANTS_DIR"]) / tenant.slug / "static"
    if not folder.is_dir():
        abort(404)
    response = send_from_directory(folder, filename, max_age=3600)
    return response

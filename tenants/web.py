"""The web side of tenancy: /<slug>/ resolution, per-commune sessions, access checks."""

from __future__ import annotations

import re
import time
from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.orm import make_transient_to_detached

from extensions import db
from tenants.context import set_tenant_id
from tenants.models import Tenant, tenant_by_slug

_SEGMENT = re.compile(r"^/([a-z0-9]+(?:-[a-z0-9]+)*)(?:/|$)")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NON_TENANT_SEGMENTS = {"static", "support", "langue", "healthz"}


def _first_segment() -> str | None:
    match = _SEGMENT.match(request.path or "/")
    return match.group(1) if match else None


class PerCommuneSessionInterface(SecureCookieSessionInterface):
    """One session cookie per commune, restricted to its path.

    Logging into /auray/ never logs into /saint-loubes/: each commune (and
    /support/) has its own cookie, name and path.
    """

    def _scope(self):
        segment = _first_segment()
        if segment and segment not in NON_TENANT_SEGMENTS - {"support"}:
            return segment
        return None

    def get_cookie_name(self, app) -> str:
        scope = self._scope()
        base = app.config.get("SESSION_COOKIE_NAME", "session")
        return f"{base}_{scope.replace('-', '_')}" if scope else base

    def get_cookie_path(self, app) -> str:
        scope = self._scope()
        return f"/{scope}/" if scope else "/"


TENANT_CACHE_SECONDS = 30
_tenant_cache: dict[str, tuple[float, Tenant]] = {}


def load_tenant(slug: str) -> Tenant:
    """The commune of /<slug>/, from a short per-process cache (one query less on every request).

    The cached copy is detached; each request gets its own instance merged into its session
    without a query.  A commune's settings changed elsewhere are seen within TENANT_CACHE_SECONDS.
    """
    if len(slug) > 63 or not SLUG.fullmatch(slug):  # no commune is called that (nor "a%00b"): no query
        abort(404)
    ttl = current_app.config.get("TENANT_CACHE_SECONDS", TENANT_CACHE_SECONDS)
    now = time.monotonic()
    hit = _tenant_cache.get(slug) if ttl else None
    if hit is not None and hit[0] > now:
        return db.session.merge(hit[1], load=False)
    tenant = tenant_by_slug(slug)
    if tenant is None:
        abort(404)
    copy = Tenant(id=tenant.id, slug=tenant.slug, name=tenant.name, settings=tenant.settings,
                  created_at=tenant.created_at)
    make_transient_to_detached(copy)
    _tenant_cache[slug] = (now + ttl, copy)
    return tenant


@event.listens_for(Tenant, "after_update")
@event.listens_for(Tenant, "after_delete")
def forget_tenants(*_args) -> None:
    """A commune changed in this process: read it again (other processes within the TTL)."""
    _tenant_cache.clear()


def init_app(app) -> None:
    app.session_interface = PerCommuneSessionInterface()

    @app.url_value_preprocessor
    def _pull_tenant(endpoint, values):
        g.tenant = None
        if values and "tenant" in values:
            slug = values.pop("tenant")
            g.tenant = load_tenant(slug)
            set_tenant_id(g.tenant.id)

    @app.url_defaults
    def _add_tenant(endpoint, values):
        if "tenant" in values or not getattr(g, "tenant", None):
            return
        if app.url_map.is_endpoint_expecting(endpoint, "tenant"):
            values["tenant"] = g.tenant.slug

    @app.teardown_request
    def _clear_tenant(exc=None):
        set_tenant_id(None)

    @app.context_processor
    def _inject_tenant():
        return {"tenant": getattr(g, "tenant", None)}


def current_tenant() -> Tenant:
    tenant = getattr(g, "tenant", None)
    if tenant is None:
        abort(404)
    return tenant


def login_required_here(view):
    """Logged in *in this commune* (the session cookie is per commune already)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user._get_current_object()  # the proxy looked through once
        if not user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        tenant = current_tenant()
        if getattr(user, "tenant_id", None) != tenant.id:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


def role_required(*roles):
    def decorator(view):
        @wraps(view)
        @login_required_here
        def wrapped(*args, **kwargs):
            if getattr(current_user, "role", None) not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


SUPPORT_SESSION_KEY = "support_tenant_id"


def support_in(tenant) -> bool:
    """Support staff who entered this commune from /support/ (a login in this commune's own session)."""
    return bool(tenant is not None and getattr(current_user, "is_support", False)
                and current_user.is_authenticated and session.get(SUPPORT_SESSION_KEY) == tenant.id)


def agent_required(view):
    """Staff of this commune.  A parent gets 403 in its own commune; another commune's agent is anonymous here.
    Support staff who switched into this commune act as its agents (their changes are audited)."""
    from core.models import ROLE_AGENT

    as_agent = role_required(ROLE_AGENT)(view)

    @wraps(view)
    def wrapped(*args, **kwargs):
        if support_in(getattr(g, "tenant", None)):
            return view(*args, **kwargs)
        return as_agent(*args, **kwargs)

    return wrapped

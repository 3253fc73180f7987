"""Application factory: create_app(config_name) -> Flask app."""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

from flask import Flask
from flask_limiter import Limiter

from config import get_config
from extensions import babel, csrf, db, limiter, login_manager, migrate
from web import errors as web_errors
from web import htmx, templating, transaction
from web.request import PortailRequest


class Portail(Flask):
    """Flask, remembering which functions are synchronous: Flask asks it of every hook, view and
    teardown of every request (`inspect.iscoroutinefunction`, ~20 times a request); the portal has
    no coroutine, and a function does not change kind.  The memo is bounded: a function made for one
    request (`after_this_request`) does not stay."""

    _SYNC_KEPT = 2048

    def ensure_sync(self, func):
        known = self._sync.get(func)
        if known is None:
            if len(self._sync) >= self._SYNC_KEPT:
                self._sync.clear()
            known = self._sync[func] = super().ensure_sync(func)
        return known

    @cached_property
    def _sync(self) -> dict:
        return {}


def create_app(config_name: str | None = None, **overrides) -> Flask:
    config = get_config(config_name)
    app = Portail(__name__, instance_path=str(Path(__file__).resolve().parent / "instance"))
    app.request_class = PortailRequest
    app.config.from_object(config)
    app.config.update(overrides)
    _bounded_ids(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    if app.config.get("ALLOW_TEST_EMAIL_DOMAIN"):
        _allow_test_email_domain()

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=templating.select_locale,
                   default_translation_directories=str(Path(__file__).resolve().parent / "translations"))
    app.config["RATELIMIT_STORAGE_URI"] = app.config.get("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
    _limits_on_views_only(app)
    login_manager.init_app(app)

    # Models must be imported before anything maps or migrates.
    import core.models  # noqa: F401
    import jobs.dispatch  # noqa: F401  (after-commit mail dispatch)
    import tenants.models  # noqa: F401
    import tenants.scoping  # noqa: F401  (query guard events)
    from tenants import rls
    from tenants import web as tenant_web

    rls.init_app(app)  # row-level security: the per-transaction commune, the role check

    tenant_web.init_app(app)
    _init_login(app)
    _register_blueprints(app)
    web_errors.init_app(app)
    templating.init_app(app)
    htmx.init_app(app)
    transaction.init_app(app)  # every view inside the transaction boundary (after the blueprints)
    _register_cli(app)
    logging.basicConfig(level=logging.INFO)
    if app.config.get("GC_TUNING"):
        _tune_garbage_collector()
    return app


def _bounded_ids(app: Flask) -> None:
    """`<int:…>` in every route reads ASCII digits that an INTEGER key can hold; any other number in
    a URL names nothing: 404 (not a query the database refuses, a 500; nor werkzeug's 405 where
    another method of the same path matches)."""
    from werkzeug.exceptions import NotFound
    from werkzeug.routing import IntegerConverter, ValidationError

    from core.bounds import MAX_ID

    class IdConverter(IntegerConverter):
        regex = r"[0-9]+"

        def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002 (werkzeug's names)
            super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

        def to_python(self, value):
            try:
                return super().to_python(value)
            except ValidationError:
                raise NotFound() from None

    app.url_map.converters["int"] = IdConverter


def _tune_garbage_collector() -> None:
    """Production: what the app built at start-up (modules, the URL map, compiled templates and
    statements) is set aside from the cyclic garbage collector, which then runs less often (a
    request allocates thousands of short-lived objects; most die by reference counting)."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _allow_test_email_domain() -> None:
    """Development and tests use invented .test addresses (RFC 2606); production refuses them."""
    import email_validator

    if "test" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("test")


def _limits_on_views_only(app: Flask) -> None:
    """Every rate limit of the portal is on its view (`@limiter.limit`: logins, codes, the calendar
    feed), and Flask-Limiter checks those in the decorator's own wrapper.  Its check before every
    request only serves default, application and blueprint limits, and the portal has none: it would
    find nothing to count on every page and every tick (~40 µs each), so it is taken off.  Should such
    a limit ever be configured, the check stays."""
    manager = limiter.limit_manager
    if manager.default_limits or manager.application_limits or app.config.get("RATELIMIT_DEFAULT") \
            or app.config.get("RATELIMIT_APPLICATION"):
        return
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [hook for hook in hooks if getattr(hook, "__func__", None) is not Limiter._check_request_limit]


def _init_login(app: Flask) -> None:
    from core.models import SupportUser, User
    from tenants.context import current_tenant_id
    from tenants.scoping import get_scoped_row

    login_manager.login_view = "auth.login"
    login_manager.login_message = None

    @login_manager.user_loader
    def load_user(user_id: str):
        kind, _sep, raw = (user_id or "").partition(":")
        if kind == "u" and current_tenant_id() is not None:
            return get_scoped_row(db.session, User, raw)
        if kind == "s":
            try:
                return db.session.get(SupportUser, int(raw))
            except ValueError:
                return None
        return None


def _register_blueprints(app: Flask) -> None:
    from blueprints.admin import bp as admin_bp
    from blueprints.agenda import bp as agenda_bp
    from blueprints.auth import bp as auth_bp
    from blueprints.billing import admin_bp as billing_admin_bp
    from blueprints.billing import bp as billing_bp
    from blueprints.demandes import bp as demandes_bp
    from blueprints.famille import bp as famille_bp
    from blueprints.inscriptions import bp as inscriptions_bp
    from blueprints.pieces import bp as pieces_bp
    from blueprints.public import bp as public_bp
    from blueprints.reservations import bp as reservations_bp
    from blueprints.rush import bp as rush_bp
    from blueprints.support import bp as support_bp

    app.register_blueprint(public_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(famille_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(reservations_bp)
    app.register_blueprint(inscriptions_bp)
    app.register_blueprint(demandes_bp)
    app.register_blueprint(agenda_bp)
    app.register_blueprint(pieces_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(rush_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(billing_admin_bp)
    if app.config.get("PAYMENT_STANDIN"):  # development and tests only: the local payment page
        from blueprints.billing.payments import standin_bp

        app.register_blueprint(standin_bp)


def _register_cli(app: Flask) -> None:
    from cli import register

    register(app)

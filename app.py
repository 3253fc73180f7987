"""Application factory: create_app(config_name) -> Flask app."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Request, g, render_template, request
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from config import get_config
from extensions import babel, csrf, db, limiter, login_manager, migrate

HTMX_FILE = "vendor/htmx-2.0.11.min.js"


def _without_nul(values):
    if not any("\x00" in k or "\x00" in v for k, v in values.items(multi=True)):
        return values
    return type(values)((k.replace("\x00", ""), v.replace("\x00", "")) for k, v in values.items(multi=True))


class PortailRequest(Request):
    """Text as PostgreSQL can store it: the NUL character (no keyboard types it, only a forged request
    sends it; PostgreSQL refuses it in a text column, a 500) is dropped from the query string and the form."""

    @property
    def args(self):
        if "_clean_args" not in self.__dict__:
            self.__dict__["_clean_args"] = _without_nul(super().args)
        return self.__dict__["_clean_args"]

    def _load_form_data(self) -> None:
        super()._load_form_data()
        self.__dict__["form"] = _without_nul(self.__dict__["form"])


def select_locale() -> str:
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    chosen = request.cookies.get("lang") if request else None
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def create_app(config_name: str | None = None, **overrides) -> Flask:
    config = get_config(config_name)
    app = Flask(__name__, instance_path=str(Path(__file__).resolve().parent / "instance"))
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
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=str(Path(__file__).resolve().parent / "translations"))
    app.config["RATELIMIT_STORAGE_URI"] = app.config.get("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
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
    _register_errors(app)
    _register_template_helpers(app)
    _end_read_only_transactions(app)
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


def _register_errors(app: Flask) -> None:
    from flask import flash, make_response

    from blueprints.htmx import is_htmx

    def page(status, title, message):
        response = make_response(render_template("error.html", status=status, title=title, message=message), status)
        if is_htmx():
            # htmx swaps no error answer: the page the user is on reloads and says why at its top
            flash(message, "error")
            response.headers["HX-Refresh"] = "true"
        return response

    @app.errorhandler(400)
    def bad_request(exc):
        return page(400, _("Requête invalide"), _("La demande envoyée n'est pas valide."))

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return page(400, _("Formulaire expiré"),
                    _("Le formulaire a expiré ou n'est pas valide. Rechargez la page et recommencez."))

    @app.errorhandler(403)
    def forbidden(exc):
        return page(403, _("Accès refusé"), _("Vous n'avez pas accès à cette page."))

    @app.errorhandler(404)
    def not_found(exc):
        return page(404, _("Page introuvable"), _("La page demandée n'existe pas."))

    @app.errorhandler(405)
    def not_allowed(exc):
        return page(405, _("Action impossible"), _("Cette action n'est pas possible sur cette page."))

    @app.errorhandler(413)
    def too_large(exc):
        return page(413, _("Fichier trop volumineux"), _("Le fichier envoyé est trop volumineux."))

    @app.errorhandler(429)
    def too_many(exc):
        return page(429, _("Trop de tentatives"),
                    _("Trop de tentatives en peu de temps. Patientez une minute puis réessayez."))

    @app.errorhandler(500)
    def server_error(exc):
        db.session.rollback()
        return page(500, _("Erreur du serveur"),
                    _("Une erreur inattendue s'est produite. Réessayez dans un instant."))


def _register_template_helpers(app: Flask) -> None:
    from blueprints import dates
    from tenants.i18n import tenant_text

    @app.template_filter("date_long")
    def date_long(value):
        return dates.date_long(value) if value else ""

    @app.template_filter("date_short")
    def date_short(value):
        return format_date(value, "dd/MM/yyyy") if value else ""

    @app.template_filter("date_text")
    def date_text(value):
        return format_date(value, "d MMMM yyyy") if value else ""

    @app.template_filter("datetime_local")
    def datetime_local(value, fmt="dd/MM/yyyy HH:mm"):
        """A naive UTC timestamp shown in the commune's time zone (Europe/Paris)."""
        from datetime import UTC

        from flask_babel import format_datetime

        if not value:
            return ""
        return format_datetime(value.replace(tzinfo=UTC), fmt)

    @app.template_filter("date_dm")
    def date_dm(value):
        return dates.date_dm(value) if value else ""

    @app.template_filter("weekday_name")
    def weekday_name(value):
        return dates.weekday_name(value) if value else ""

    @app.template_filter("month_label")
    def month_label(value):
        return format_date(value, "LLLL yyyy").capitalize() if value else ""

    @app.template_filter("closed_label")
    def closed_label(code):
        from core.reservations import REASONS

        return str(REASONS.get(code, ""))

    @app.template_filter("isodate")
    def isodate(value):
        from datetime import date

        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                return None
        return value

    @app.template_filter("euros")
    def euros(value):
        from core.billing.pricing import euros as fmt

        return fmt(value)

    @app.template_filter("t")
    def t(value):
        return tenant_text(value)

    _remember_template_translations(app)
    _remember_template_urls(app)

    @app.context_processor
    def helpers():
        return {
            "current_locale": str(get_locale()),
            "htmx_file": HTMX_FILE,
            "support_mode": getattr(g, "support_mode", None),
        }

    @app.after_request
    def vary(response):
        response.vary.add("Cookie")
        response.vary.add("HX-Request")
        return response


TRANSLATED_MAX = 20_000
URLS_MAX = 20_000


def _remember_template_urls(app: Flask) -> None:
    """`url_for()` in templates, remembered per process: a page builds a dozen links (~30 µs each),
    and a link depends only on its endpoint, its values, the commune of the page (added by the
    tenancy's url_defaults) and where the app is mounted.  External URLs, links relative to the
    current blueprint and links with an anchor are built each time."""
    from flask import has_request_context, url_for

    built: dict[tuple, str] = {}

    def remembered_url_for(endpoint: str, **values) -> str:
        if endpoint.startswith(".") or any(k.startswith("_") for k in values) or not has_request_context():
            return url_for(endpoint, **values)
        tenant = getattr(g, "tenant", None)
        key = (endpoint, tenant.slug if tenant is not None else None, request.script_root, *sorted(values.items()))
        try:
            url = built.get(key)
        except TypeError:  # a value that cannot be a key: built each time
            return url_for(endpoint, **values)
        if url is None:
            if len(built) >= URLS_MAX:
                built.clear()
            url = built[key] = url_for(endpoint, **values)
        return url

    app.jinja_env.globals["url_for"] = remembered_url_for


def _remember_template_translations(app: Flask) -> None:
    """`_()` in templates, without flask_babel's lookup through the request proxies on every call.

    A page says dozens of `_()`; each used to cost ~10 µs of context lookups.  The catalogues are
    loaded once per process (flask_babel keeps them), so each (language, message) is looked up once
    and remembered.  The language is the page's `current_locale` (the context processor below, run
    by render_template); where a template has no such variable (macros imported without context),
    the usual lookup is used.
    """
    from flask_babel import get_translations
    from jinja2 import pass_context

    translated: dict[tuple[str, str], str] = {}

    @pass_context
    def gettext(context, message):
        locale = context.get("current_locale")
        if locale is None:
            return get_translations().ugettext(message)
        key = (locale, message)
        value = translated.get(key)
        if value is None:
            if len(translated) >= TRANSLATED_MAX:  # messages are literals: never reached in practice
                translated.clear()
            value = translated[key] = get_translations().ugettext(message)
        return value

    @pass_context
    def ngettext(context, singular, plural, num):
        locale = context.get("current_locale")
        if locale is None or not isinstance(num, int):
            return get_translations().ungettext(singular, plural, num)
        key = (locale, singular, plural, num)
        value = translated.get(key)
        if value is None:
            if len(translated) >= TRANSLATED_MAX:
                translated.clear()
            value = translated[key] = get_translations().ungettext(singular, plural, num)
        return value

    app.jinja_env.install_gettext_callables(
        gettext=gettext,
        ngettext=ngettext,
        newstyle=True,
        pgettext=lambda c, s: get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: get_translations().unpgettext(c, s, p, n),
    )


def _end_read_only_transactions(app: Flask) -> None:
    """A request that only read ends its transaction with COMMIT rather than the ROLLBACK of the
    session's teardown.  Same outcome for the data, but psycopg forgets a connection's prepared
    statements on every ROLLBACK: ending reads that way made PostgreSQL parse and plan every
    statement of every page again (the planning page: ~1 ms of PostgreSQL CPU of its 1.1).
    A request that wrote anything (an ORM change, a statement other than SELECT) is left to the
    teardown as before: what it did not commit is rolled back."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "begin")
    def _begun(conn) -> None:
        conn.info["wrote"] = False

    @event.listens_for(Engine, "before_cursor_execute")
    def _note_writes(conn, _cursor, statement, *_args) -> None:
        if not statement.lstrip()[:6].upper().startswith("SELECT"):
            conn.info["wrote"] = True

    @app.after_request
    def _commit_reads(response):
        session = db.session()
        transaction = session.get_transaction()
        connections = getattr(transaction, "_connections", None)  # (no connection: nothing to end)
        if not connections or session.new or session.dirty or session.deleted:
            return response
        if any(value[0].info.get("wrote", True) for value in connections.values()):
            return response
        try:
            session.commit()
        except Exception:  # noqa: BLE001 (the answer is ready: a failed COMMIT of reads changes nothing)
            session.rollback()
        return response


def _register_cli(app: Flask) -> None:
    from cli import register

    register(app)

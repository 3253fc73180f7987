"""Templating: the filters, what every page knows (its language, htmx's file, support mode), and
`_()` / `url_for()` remembered per process."""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import format_date, get_locale

from tenants.i18n import tenant_text
from web import dates

HTMX_FILE = "vendor/htmx-2.0.11.min.js"


def select_locale() -> str:
    from flask import current_app

    languages = current_app.config["LANGUAGES"]
    chosen = request.cookies.get("lang") if request else None
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def init_app(app: Flask) -> None:
    """Filters, the context of every page, and the remembered `_()` and `url_for()`."""
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
    flask_babel's locale of the request.
    """
    from flask_babel import get_translations
    from jinja2 import pass_context
    from markupsafe import Markup

    remembered: dict[tuple, str] = {}

    def remember(key: tuple, compute):
        value = remembered.get(key)
        if value is None:
            if len(remembered) >= TRANSLATED_MAX:  # messages are literals: never reached in practice
                remembered.clear()
            value = remembered[key] = compute()
        return value

    def locale_of(context):
        """The page's language: its `current_locale`, or (a macro imported without the page's context)
        flask_babel's locale of the request, kept on the request by flask_babel; None outside one."""
        locale = context.get("current_locale")
        if locale is None:
            found = get_locale()
            locale = str(found) if found is not None else None
        return locale

    def translate(locale, message: str) -> str:
        if locale is None:
            return get_translations().ugettext(message)
        return remember((locale, message), lambda: get_translations().ugettext(message))

    @pass_context
    def gettext(context, message):
        return translate(locale_of(context), message)

    @pass_context
    def ngettext(context, singular, plural, num):
        locale = locale_of(context)
        if locale is None or not isinstance(num, int):
            return get_translations().ungettext(singular, plural, num)
        return remember((locale, singular, plural, num), lambda: get_translations().ungettext(singular, plural, num))

    app.jinja_env.install_gettext_callables(
        gettext=gettext,
        ngettext=ngettext,
        newstyle=True,
        pgettext=lambda c, s: get_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: get_translations().unpgettext(c, s, p, n),
    )

    @pass_context
    def underscore(context, message, **variables):
        """`_()` itself: what jinja2's newstyle `_` gives (the translation, Markup when the template
        escapes, always a format string: "%%" is "%"), in one call where jinja2 makes three through the
        context (its alias, its newstyle wrapper, then `gettext`); without variables, remembered."""
        escaping = context.eval_ctx.autoescape
        locale = locale_of(context)

        def said(**values):
            value = translate(locale, message)
            return (Markup(value) if escaping else value) % values
        if variables or locale is None:
            return said(**variables)
        return remember((locale, message, escaping), said)

    app.jinja_env.globals["_"] = underscore

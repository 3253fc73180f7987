"""Settings per environment, read from the environment.

development: SQLite under instance/, mails written as .eml files to instance/outbox/.
testing:     used by the test-suite (database given by the fixtures).
production:  PostgreSQL from DATABASE_URL, Redis from REDIS_URL, SECRET_KEY required.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("PORTAIL_INSTANCE_DIR", BASE_DIR / "instance"))


class ConfigError(RuntimeError):
    """A required setting is missing: the application refuses to start."""


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _pg_url(url: str | None) -> str | None:
    """postgres:// and postgresql:// (as hosts hand them out) are psycopg 3's URL for SQLAlchemy."""
    if url and url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    if url and url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


class BaseConfig:
    NAME = "base"
    # Row-level security (tenants/rls.py): the application connects as a role that cannot bypass it
    # (DATABASE_URL); the migrations as the tables' owner, MIGRATION_DATABASE_URL (the application's
    # own URL when unset: SQLite, development).  RLS_ROLE_CHECK refuses an application role that
    # bypasses it (superuser, BYPASSRLS).
    MIGRATION_DATABASE_URI = _pg_url(os.environ.get("MIGRATION_DATABASE_URL")) or None
    RLS_ROLE_CHECK = False
    # No ping on every checkout (a round trip per request): core/locking.py pings a pooled
    # connection only when it sat idle (a database restarted meanwhile is then noticed).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": False}
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    BABEL_DEFAULT_LOCALE = "fr"
    BABEL_DEFAULT_TIMEZONE = "Europe/Paris"
    LANGUAGES = ("fr", "en")
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = 25 * 1024 * 1024
    TENANTS_DIR = str(BASE_DIR / "tenants")
    OUTBOX_DIR = str(INSTANCE_DIR / "outbox")
    # Tokens mailed to users
    ACTIVATION_TOKEN_HOURS = 48
    RESET_TOKEN_HOURS = 2
    # Login throttle: per address and per account
    LOGIN_LIMIT = "10 per minute"
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    # Mail: "file" writes .eml files to OUTBOX_DIR, "smtp" talks to MAIL_SERVER
    MAIL_BACKEND = "file"
    MAIL_SERVER = "127.0.0.1"
    MAIL_PORT = 25
    MAIL_USE_STARTTLS = False
    MAIL_USERNAME = None
    MAIL_PASSWORD = None
    MAIL_DEFAULT_SENDER = "portail@portail.test"
    # Outbox: attempts before "failed", waits (seconds) after the 1st, 2nd… failed attempt (the last
    # one repeats), a "queued" mail untouched for MAIL_STUCK_AFTER seconds is queued again by the sweep,
    # which `flask worker` runs every MAIL_SWEEP_INTERVAL seconds.
    MAIL_MAX_ATTEMPTS = int(os.environ.get("MAIL_MAX_ATTEMPTS", "6"))
    MAIL_RETRY_DELAYS = tuple(int(x) for x in os.environ.get("MAIL_RETRY_DELAYS", "60,300,900,3600,7200").split(","))
    MAIL_STUCK_AFTER = int(os.environ.get("MAIL_STUCK_AFTER", "600"))
    MAIL_SWEEP_INTERVAL = int(os.environ.get("MAIL_SWEEP_INTERVAL", "60"))
    # RQ: no REDIS_URL means mails and jobs run inline, in the process
    REDIS_URL = None
    RQ_QUEUE = os.environ.get("RQ_QUEUE", "portail")
    # Pièces justificatives: where files live (local folder outside the web root by default, or an
    # S3-compatible store for several web servers), the largest file, how often the worker runs the
    # expiry announcements and retention.
    PIECES_STORAGE = os.environ.get("PIECES_STORAGE", "local")
    PIECES_STORAGE_DIR = os.environ.get("PIECES_STORAGE_DIR") or None   # default <instance>/pieces
    PIECES_S3_BUCKET = os.environ.get("PIECES_S3_BUCKET")
    PIECES_S3_ENDPOINT_URL = os.environ.get("PIECES_S3_ENDPOINT_URL")
    PIECES_S3_REGION = os.environ.get("PIECES_S3_REGION")
    PIECES_S3_PREFIX = os.environ.get("PIECES_S3_PREFIX", "")
    PIECES_MAX_BYTES = int(os.environ.get("PIECES_MAX_BYTES", str(10 * 1024 * 1024)))
    PIECES_SWEEP_INTERVAL = int(os.environ.get("PIECES_SWEEP_INTERVAL", "3600"))
    PREFERRED_URL_SCHEME = "http"
    PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")
    ALLOW_TEST_EMAIL_DOMAIN = True  # demo and test data use .test addresses
    # Payer en ligne (core/billing/online.py): eopayment's "payfip_ws" in production; development and
    # tests use "dummy" with the portal's local stand-in page (PAYMENT_STANDIN), never in production.
    PAYMENT_BACKEND = "payfip_ws"
    PAYMENT_STANDIN = False
    # The billing sweep (reminders, reconciliation of online payments, collected direct debits)
    BILLING_SWEEP_INTERVAL = int(os.environ.get("BILLING_SWEEP_INTERVAL", "900"))


class DevelopmentConfig(BaseConfig):
    NAME = "development"
    DEBUG = False  # the debugger is opt-in (FLASK_DEBUG=1), never on by default
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portail.sqlite3'}"
    )
    REDIS_URL = os.environ.get("REDIS_URL") or None
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    PAYMENT_BACKEND = os.environ.get("PAYMENT_BACKEND", "dummy")
    PAYMENT_STANDIN = True


class TestingConfig(BaseConfig):
    NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-only"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_SQLALCHEMY_URI", "sqlite://")
    MIGRATION_DATABASE_URI = None  # given by the fixtures (tests/conftest.py)
    RATELIMIT_STORAGE_URI = "memory://"
    SERVER_NAME = None
    TENANT_CACHE_SECONDS = 0  # tests change communes between requests
    PAYMENT_BACKEND = "dummy"
    PAYMENT_STANDIN = True


class ProductionConfig(BaseConfig):
    NAME = "production"
    ALLOW_TEST_EMAIL_DOMAIN = False
    GC_TUNING = _bool("GC_TUNING", True)  # app.py::_tune_garbage_collector
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    PREFERRED_URL_SCHEME = "https"

    def __init__(self) -> None:
        missing = [name for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                "Configuration de production incomplète : définissez "
                + ", ".join(missing)
                + " dans l'environnement (aucune valeur par défaut n'est utilisée en production)."
            )
        self.SECRET_KEY = os.environ["SECRET_KEY"]
        self.SQLALCHEMY_DATABASE_URI = _pg_url(os.environ["DATABASE_URL"])
        self.RLS_ROLE_CHECK = _bool("RLS_ROLE_CHECK", True)
        self.REDIS_URL = os.environ["REDIS_URL"]
        self.RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", self.REDIS_URL)
        self.MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
        self.MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
        self.MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
        self.MAIL_USE_STARTTLS = _bool("MAIL_USE_STARTTLS", False)
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
        self.MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", self.MAIL_DEFAULT_SENDER)
        self.SERVER_NAME = os.environ.get("SERVER_NAME")
        self.PAYMENT_BACKEND = "payfip_ws"   # never the dummy backend nor its stand-in page
        self.PAYMENT_STANDIN = False


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name: str | None = None):
    name = name or os.environ.get("PORTAIL_CONFIG") or "development"
    try:
        cls = CONFIGS[name]
    except KeyError as exc:
        raise ConfigError(f"Configuration inconnue : {name!r} (attendu : {', '.join(CONFIGS)})") from exc
    return cls()

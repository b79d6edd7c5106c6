"""One settings module, driven by the environment (docs/deploy.md, "Settings")."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
# The fallback is for development and tests only; `check --deploy` flags it (django-insecure-).
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "django-insecure-development-key-set-DJANGO_SECRET_KEY-in-production-0123456789"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Transport security (production: DEBUG off) --------------------------------------------------
# Behind a TLS-terminating proxy set DJANGO_SECURE_PROXY_SSL_HEADER=1 so that Django trusts its
# X-Forwarded-Proto header, and DJANGO_SECURE_SSL_REDIRECT=1 unless the proxy redirects itself.
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "threads",
    "threads.webhooks",
]

MIDDLEWARE = [
    "threads.api.middleware.ApiErrorsAsJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "threads.api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# API requests (a bearer token in, JSON out) skip what only people's pages need: sessions, CSRF,
# login, messages, the frame guard and static files (threads_project/wsgi.py).
API_PATH_PREFIXES = ("/api/v1/", "/api/chat/", "/v1/", "/langgraph/")
API_MIDDLEWARE = [
    "threads.api.middleware.ApiErrorsAsJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "threads.api.middleware.BodySizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "threads_project.urls"
WSGI_APPLICATION = "threads_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# What sits between the service and PostgreSQL: nothing (or a session-mode pooler, which is the
# same to us), or a pooler that lends a server connection per transaction (PgBouncer's
# `pool_mode = transaction`): then nothing may outlive a transaction on a connection (docs/deploy.md,
# "Behind a connection pooler").
DATABASE_POOLERS = ("none", "transaction")
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "").strip().lower() or "none"
if DATABASE_POOLER not in DATABASE_POOLERS:
    raise ImproperlyConfigured(
        f"DATABASE_POOLER must be empty, 'none' or 'transaction' (PgBouncer's pool_mode = transaction), "
        f"not {os.environ['DATABASE_POOLER']!r}; a session-mode pooler needs no setting."
    )
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        # Before each request's first query, a connection that the database closed (a restart) is
        # replaced instead of failing the request. On PostgreSQL the check is a poll of the socket,
        # not a `SELECT 1` round trip (threads_project/postgres/base.py).
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "threads_project.postgres"
    options = DATABASES["default"].setdefault("OPTIONS", {})
    # An unreachable server must cost a request a bounded wait (then 503), not the OS's TCP
    # timeout of minutes. A `?connect_timeout=` in DATABASE_URL wins.
    options.setdefault("connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5")))
    # Parameters travel apart from the SQL (no client-side quoting: ~8% of a PATCH's samples), and a
    # statement run this many times on a connection is prepared once and then only executed.
    # DATABASE_PREPARE_THRESHOLD="" turns preparing off. Server-side binding itself uses unnamed
    # statements, which a transaction-mode pooler passes through (tests/test_pooler.py).
    options["server_side_binding"] = True
    threshold = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5")
    options["prepare_threshold"] = int(threshold) if threshold.strip() else None
    if DATABASE_POOLER == "transaction":
        # Consecutive transactions of a connection run on different server connections: a
        # statement prepared in one is missing in the next (or is another client's there), and a
        # cursor held past its transaction is gone. The time zone is not set on the session either
        # (threads_project/postgres/base.py).
        options["prepare_threshold"] = None
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers must wait for each other, not fail with "database is locked":
    # every transaction takes the write lock up front, WAL lets readers run beside it.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that tests with threads and a live server share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-{os.getpid()}.sqlite3")}

# Read replicas (threads_project/routers.py, docs/deploy.md "Read replicas"): streaming standbys
# of the primary, each an alias replica_0, replica_1… with the primary's options. Only the reads
# that tolerate lag go there, and only while a replica's lag is within the bound.
DATABASE_REPLICAS: list[str] = []
DATABASE_REPLICA_MAX_LAG_SECONDS = float(os.environ.get("DATABASE_REPLICA_MAX_LAG_SECONDS") or "5")
# A caller's reads go to the primary this long after each of its writes. A replica is used when its
# last check (at most a second old) found it within the lag bound, so a replica read is at most
# about bound + 1 s behind: the window must be longer than that (default: bound + 5 s).
DATABASE_READ_YOUR_WRITES_SECONDS = float(
    os.environ.get("DATABASE_READ_YOUR_WRITES_SECONDS") or DATABASE_REPLICA_MAX_LAG_SECONDS + 5
)
for number, replica_url in enumerate(env_list("DATABASE_REPLICA_URLS")):
    if DATABASES["default"]["ENGINE"] != "threads_project.postgres":
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs PostgreSQL in DATABASE_URL.")
    replica = dj_database_url.parse(
        replica_url,
        conn_max_age=DATABASES["default"]["CONN_MAX_AGE"],
        conn_health_checks=DATABASES["default"]["CONN_HEALTH_CHECKS"],
    )
    if replica["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: {replica['ENGINE']} is no PostgreSQL standby.")
    # A replica that is away must cost a request little: it is skipped after this wait (PostgreSQL's
    # client counts at least 2 s), and checked again a second later. ?connect_timeout= in the URL wins.
    timeout = int(os.environ.get("DATABASE_REPLICA_CONNECT_TIMEOUT") or "2")
    replica.update(
        ENGINE="threads_project.postgres",
        OPTIONS={**DATABASES["default"]["OPTIONS"], "connect_timeout": timeout, **replica.get("OPTIONS", {})},
        # Behind a transaction-mode pooler too, like the primary (DATABASE_POOLER).
        DISABLE_SERVER_SIDE_CURSORS=DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS", False),
        # Tests read the test database through the replica's alias (Django's test mirror).
        TEST={"MIRROR": "default"},
    )
    DATABASES[f"replica_{number}"] = replica
    DATABASE_REPLICAS.append(f"replica_{number}")
if DATABASE_READ_YOUR_WRITES_SECONDS <= DATABASE_REPLICA_MAX_LAG_SECONDS + 1 and DATABASE_REPLICAS:
    raise ImproperlyConfigured(
        "DATABASE_READ_YOUR_WRITES_SECONDS must exceed DATABASE_REPLICA_MAX_LAG_SECONDS by more than the"
        " one second between two checks of a replica, or a caller could read a replica behind its own write."
    )
DATABASE_ROUTERS = ["threads_project.routers.ReplicaRouter"] if DATABASE_REPLICAS else []

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's four: a password like the username, shorter than 8 characters, among the 20,000 most
# common or all digits is refused (the admin, `changepassword`, `manage.py create_user`).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times on the pages for people in one format with their zone (threads_project/formats/en).
FORMAT_MODULE_PATH = ["threads_project.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/ops/threads/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Bodies over 256 KiB are refused with 413.
MAX_BODY_BYTES = 256 * 1024
# The canonical PATCH's common case skips DRF's dispatch layers (threads/api/lane.py): the same
# answers for about a quarter less CPU. Off (API_LANE=0), every request goes through DRF.
API_LANE = env_bool("API_LANE", True)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

# --- Cache ----------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["threads.api.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["threads.api.permissions.IsOrgPrincipal"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["threads.api.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "threads.api.negotiation.SingleRendererNegotiation",
    "DEFAULT_FILTER_BACKENDS": [],
    "DEFAULT_THROTTLE_CLASSES": ["threads.api.throttling.PrincipalThrottle"],
    "NUM_PROXIES": int(os.environ["DJANGO_NUM_PROXIES"]) if os.environ.get("DJANGO_NUM_PROXIES") else None,
    "EXCEPTION_HANDLER": "threads.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "threads.api.schema.ThreadsAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# Requests per API key / user / chat token, and password attempts per address ("" = unlimited).
THROTTLE_RATES = {
    "api_key": os.environ.get("THROTTLE_API_KEY", "6000/min"),
    "user": os.environ.get("THROTTLE_USER", "1200/min"),
    "chat_token": os.environ.get("THROTTLE_CHAT_TOKEN", "600/min"),
    "login": os.environ.get("THROTTLE_LOGIN", "10/min"),
}

# Keys that signed tokens before the last rotation: still accepted until those tokens expire.
JWT_PREVIOUS_SIGNING_KEYS = env_list("JWT_PREVIOUS_SIGNING_KEYS")

# An API key is looked up once and then trusted for this many seconds by each process: a key
# revoked elsewhere keeps working here for at most this long (0 = look it up on every request).
API_KEY_CACHE_SECONDS = int(os.environ.get("API_KEY_CACHE_SECONDS", "10"))

# --- Webhooks (python manage.py deliver_webhooks) ---------------------------------------------
# Networks that webhook URLs may point at although they are not public (comma-separated CIDRs),
# e.g. a receiver on the private network; everything non-public is refused otherwise.
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS")
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
# Seconds before each retry of a failed attempt (about a day in all); then the delivery is failed.
WEBHOOK_RETRY_SCHEDULE = [
    int(seconds) for seconds in env_list("WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000")
]
# Attempts in flight to one endpoint at once, over all workers: a hung receiver holds at most this
# many of a worker's senders, and a receiver never gets more concurrent requests than this.
WEBHOOK_ENDPOINT_CONCURRENCY = int(os.environ.get("WEBHOOK_ENDPOINT_CONCURRENCY", "2"))
# Failed attempts in a row that open an endpoint's circuit: then one probe at a time, on the retry
# schedule, until one succeeds.
WEBHOOK_BREAKER_FAILURES = int(os.environ.get("WEBHOOK_BREAKER_FAILURES", "5"))
# An endpoint failing (no success) for this long is disabled, with the reason (re-enable: isActive).
WEBHOOK_DISABLE_AFTER_DAYS = float(os.environ.get("WEBHOOK_DISABLE_AFTER_DAYS", "5"))
# How often the worker looks for newly committed events (one index probe per active endpoint):
# the wait this adds to a delivery is half of it on average.
WEBHOOK_POLL_SECONDS = float(os.environ.get("WEBHOOK_POLL_SECONDS", "0.005"))

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=int(os.environ.get("JWT_ACCESS_MINUTES", "15"))),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=int(os.environ.get("JWT_REFRESH_DAYS", "7"))),
    "ALGORITHM": "HS256",
    # A key of its own, so that it can be rotated without touching SECRET_KEY.
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "AUTH_TOKEN_CLASSES": (
        "rest_framework_simplejwt.tokens.AccessToken",
        "threads.api.tokens.ChatToken",
    ),
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Thread service API",
    "DESCRIPTION": "Conversation threads with merge-style PATCH, messages and history.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Two components (with and without the secret) share this constant: one name for it.
    "ENUM_NAME_OVERRIDES": {"WebhookEndpointObjectEnum": ["webhook_endpoint"]},
    # The groups of /api/docs/ in the order a reader meets them: the canonical API, then the
    # surfaces that speak other products' APIs. threads.api.schema tags each operation by its path.
    "TAGS": [
        {"name": "Auth", "description": "Credentials: a user's access and refresh tokens, a thread's chat token."},
        {"name": "Threads", "description": "Create, list, read, merge-patch and delete threads."},
        {"name": "Messages", "description": "A thread's messages, oldest first."},
        {"name": "History", "description": "A thread's change events, newest first."},
        {"name": "Change feed", "description": "Every change event of the organization, oldest first."},
        {"name": "Webhooks", "description": "Endpoints that receive each change event as a signed POST."},
        {"name": "Web chat session", "description": "Feather AI's web chat API: a chat token merges metadata."},
        {"name": "Thread metadata", "description": "Aitronos Freddy's thread API: merge metadata, set visibleInUi."},
        {"name": "Chat threads", "description": "A FastAPI chat backend's ChatThread API: title, tags, archive flag."},
        {"name": "Langbase threads", "description": "Langbase's threads API, as its Python SDK calls it."},
        {
            "name": "OpenAI conversations",
            "description": "OpenAI's Conversations API, as the `openai` SDK calls "
            "it (base URL `/v1`): conversations are threads, items their messages.",
        },
        {
            "name": "LangGraph threads",
            "description": "LangGraph's threads API, as the `langgraph-sdk` client calls it (base URL `/langgraph`).",
        },
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

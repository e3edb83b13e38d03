"""Django settings for CRM Bridge: one module, every value from the environment (12-factor).

`.env` (made from `.env.example` by `make`) is read when present; real environment variables win.
"""

from pathlib import Path

import django_stubs_ext
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

# Lets ModelAdmin[...] and ModelForm[...] be written with their type parameter at runtime.
django_stubs_ext.monkeypatch()

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# GENERAL
# https://docs.djangoproject.com/en/5.2/ref/settings/
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Production secrets have no default: a missing key fails at start, not at the first request.
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "integrations",
    "records",
    "agentstatus",
    "django_filters",
    "ticketsearch",
    "health_check",
    "ops",
    "adapter",
]

MIDDLEWARE = [
    "ops.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collectstatic's output (the admin's CSS and JS) from the web process itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide admin overrides (the home page's health panel).
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

# DATABASE: PostgreSQL only (JSONB, select_for_update, full-text search).
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/crmbridge")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
# A kept connection that PostgreSQL ended meanwhile (a restart, pg_terminate_backend) is noticed and
# replaced before the next request or task uses it, instead of failing it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies for clients that accept them; no manifest, so a page renders even before
    # collectstatic (with DEBUG on, WhiteNoise serves straight from the apps' static folders).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# HTTPS AND PROXIES: all off by default (make run is plain http on loopback); docs/operations.md.
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
# Served over https only: secure cookies, http redirected, HSTS.
HTTPS_ONLY = env.bool("DJANGO_HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=3600 if HTTPS_ONLY else 0)
# Probes from the load balancer come over plain http on the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^metrics$"]
# The https origins the admin's forms are posted from, e.g. https://crm-bridge.example.com.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SESSION_COOKIE_HTTPONLY = True

# SECURITY: CRM credentials at rest are Fernet tokens under this key (integrations.crypto).
CRM_CREDENTIALS_KEY = env("CRM_CREDENTIALS_KEY")

# REDIS / CELERY
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# Three queues, so no import or purge ever waits in front of a call's ticket (docs/operations.md):
# live session work (events, CRM actions, status pushes) on the default queue, ticket imports on
# their own, and the periodic sweeps and purges on a third. Every worker host consumes all three,
# or runs a worker per queue; a queue nobody consumes is work that never happens.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="crmbridge")
IMPORTS_QUEUE = "imports"  # ticketsearch.tasks.IMPORT_QUEUE
MAINTENANCE_QUEUE = env("CELERY_MAINTENANCE_QUEUE", default="maintenance")
CELERY_TASK_ROUTES = {
    "ticketsearch.import_connection": {"queue": IMPORTS_QUEUE},
    "ticketsearch.schedule_imports": {"queue": MAINTENANCE_QUEUE},
    "ticketsearch.purge_expired_tickets": {"queue": MAINTENANCE_QUEUE},
    "records.sweep_sessions": {"queue": MAINTENANCE_QUEUE},
    "agentstatus.sweep_pushes": {"queue": MAINTENANCE_QUEUE},
    "agentstatus.prune_webhook_events": {"queue": MAINTENANCE_QUEUE},
}
# Redelivered after a worker crash: tasks are idempotent (see records.tasks).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 5 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 4 * 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Prefork, except that a pool child killed at start-up is replaced instead of ending the worker (ops.pool).
CELERY_WORKER_POOL = "ops.pool:TaskPool"
# django-celery-beat's schedules behind a database lock: any number of beats, one sends (ops.beat).
CELERY_BEAT_SCHEDULER = "ops.beat:SingleBeatScheduler"
# A broker outage never ends a worker: it reconnects for as long as it takes (config/broker.py has
# the fix that kept a Redis restart from killing it). A task running when the connection drops
# runs to its end; its unacknowledgeable message is redelivered later and finds its work done.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Messages not acknowledged within this window are redelivered to another worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 15 * 60}

# CRM CALLS
# CRM base URLs must be https to a public address (integrations.urlguard). On only where the CRM is a
# sandbox on this machine: the demo (`make run`'s .env), the tests and the benchmarks.
CRM_ALLOW_LOOPBACK = env.bool("CRM_ALLOW_LOOPBACK", default=False)
CRM_HTTP_TIMEOUT_SECONDS = env.float("CRM_HTTP_TIMEOUT_SECONDS", default=15.0)
# How many times an idempotent read (a GET, a search) that failed transiently is sent again in
# place, with a short backoff, before its action or task sees the failure (0: never).
CRM_READ_RETRIES = env.int("CRM_READ_RETRIES", default=2)
# Exponential backoff for failed CRM calls: base * 2**(attempt-1), capped, with equal jitter
# (integrations.failures, the one failure policy of every outbox and task).
CRM_RETRY_BACKOFF_SECONDS = env.float("CRM_RETRY_BACKOFF_SECONDS", default=2.0)
CRM_RETRY_BACKOFF_MAX_SECONDS = env.float("CRM_RETRY_BACKOFF_MAX_SECONDS", default=600.0)
# How long transient CRM trouble (5xx, timeouts, 429) is retried, counted from the first failure,
# before the work fails for good; a connection may set its own (config "retry_budget_seconds").
CRM_RETRY_BUDGET_SECONDS = env.float("CRM_RETRY_BUDGET_SECONDS", default=24 * 3600.0)
# Per-connection circuit breaker (integrations.circuit): after this many consecutive transient
# failures of a CRM's actions its work pauses for the cool-down, then one probe tries the CRM.
CRM_CIRCUIT_FAILURES = env.int("CRM_CIRCUIT_FAILURES", default=10)
CRM_CIRCUIT_COOL_DOWN_SECONDS = env.float("CRM_CIRCUIT_COOL_DOWN_SECONDS", default=30.0)
# ...spread over at least this long: random faults (a third of requests failing) do not trip it.
CRM_CIRCUIT_MIN_RUN_SECONDS = env.float("CRM_CIRCUIT_MIN_RUN_SECONDS", default=10.0)
# A request-limit answer without Retry-After (Salesforce's 403 REQUEST_LIMIT_EXCEEDED) pauses this long.
CRM_LIMIT_EXCEEDED_RETRY_SECONDS = env.float("CRM_LIMIT_EXCEEDED_RETRY_SECONDS", default=60.0)

# API
# Where the CRM reaches this product (the status webhook registered in Kustomer points here).
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
EVENTS_BATCH_MAX = 500
# A full batch with chat transcripts can pass Django's 2.5 MB default; larger bodies get a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=20 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM Bridge API",
    "DESCRIPTION": (
        "Contact-center platform events in, CRM records out. "
        "Authenticate platform calls with `Authorization: Api-Key <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets are served from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# QA SEARCH: the language (a locale, "en-US", "de") of imported tickets whose CRM gives none (Salesforce
# cases); it picks the stemming. Empty: such tickets are indexed word for word ('simple').
TICKETSEARCH_DEFAULT_LANGUAGE = env("TICKETSEARCH_DEFAULT_LANGUAGE", default="")

# How long /healthz waits for the workers to answer its ping.
HEALTHZ_WORKER_PING_SECONDS = env.float("HEALTHZ_WORKER_PING_SECONDS", default=2.0)

# METRICS: /metrics answers anyone unless this is set (then `Authorization: Bearer <token>`).
METRICS_BEARER_TOKEN = env("METRICS_BEARER_TOKEN", default="")

# LOGS: one JSON object a line on stderr, with every `extra=` field as a key of its own (json), or
# plain lines for a terminal (make run).
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Schedules (django-celery-beat copies them into the database, where the admin can change them).
CELERY_BEAT_SCHEDULE = {
    # The recovery of lost messages (broker down at commit, a killed worker's redelivery lost with
    # an emptied broker): every few seconds, two indexed queries each (records.tasks).
    "records.sweep_sessions": {"task": "records.sweep_sessions", "schedule": 5.0},
    "agentstatus.sweep_pushes": {"task": "agentstatus.sweep_pushes", "schedule": 5.0},
    "agentstatus.prune_webhook_events": {"task": "agentstatus.prune_webhook_events", "schedule": 300.0},
    # Fans out one import per connection; each reads only what changed since its cursor.
    "ticketsearch.schedule_imports": {"task": "ticketsearch.schedule_imports", "schedule": 15 * 60.0},
    # Drops expired week partitions, deletes the expired rows of the oldest week, makes the coming weeks.
    "ticketsearch.purge_expired_tickets": {"task": "ticketsearch.purge_expired_tickets", "schedule": 60 * 60.0},
}

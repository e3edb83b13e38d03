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
    "rest_framework.authtoken",
    "ticketsearch",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
        "DIRS": [],
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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

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
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="crmbridge")
# Redelivered after a worker crash: tasks are idempotent (see records.tasks).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 5 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 4 * 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Messages not acknowledged within this window are redelivered to another worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 15 * 60}

# CRM CALLS
CRM_HTTP_TIMEOUT_SECONDS = env.float("CRM_HTTP_TIMEOUT_SECONDS", default=15.0)
# Exponential backoff for failed CRM actions: base * 2**attempt, capped, with full jitter.
CRM_RETRY_BACKOFF_SECONDS = env.float("CRM_RETRY_BACKOFF_SECONDS", default=2.0)
CRM_RETRY_BACKOFF_MAX_SECONDS = env.float("CRM_RETRY_BACKOFF_MAX_SECONDS", default=600.0)
CRM_ACTION_MAX_ATTEMPTS = env.int("CRM_ACTION_MAX_ATTEMPTS", default=8)
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Schedules (django-celery-beat copies them into the database, where the admin can change them).
CELERY_BEAT_SCHEDULE = {
    "records.sweep_sessions": {"task": "records.sweep_sessions", "schedule": 60.0},
    "agentstatus.sweep_pushes": {"task": "agentstatus.sweep_pushes", "schedule": 60.0},
    "agentstatus.prune_webhook_events": {"task": "agentstatus.prune_webhook_events", "schedule": 300.0},
    # Fans out one import per connection; each reads only what changed since its cursor.
    "ticketsearch.schedule_imports": {"task": "ticketsearch.schedule_imports", "schedule": 15 * 60.0},
    # Drops expired day partitions, deletes the rest of the 91st day, makes the coming days' partitions.
    "ticketsearch.purge_expired_tickets": {"task": "ticketsearch.purge_expired_tickets", "schedule": 60 * 60.0},
}

"""Settings, all read from environment variables (see README "Configuration").

With nothing set, the embedded default runs: SQLite in WAL mode and Celery's filesystem broker
under ``var/``, so a machine with only Python runs everything. ``DATABASE_URL=postgres://...``
plus ``REDIS_URL`` (or ``CELERY_BROKER_URL``) switch to the production set-up. A malformed value
stops the process at start-up with the variable's name instead of failing later.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("IDDS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable; anything but a clear yes/no is an error, not a silent False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true/false, yes/no, on/off or 1/0")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer variable, refused at start-up when it does not parse or is below ``minimum``."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """A float variable, refused at start-up when it does not parse or is below ``minimum``."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env.str(name, default="")
    if raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str) -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (for container secrets)."""
    file_name = env.str(f"{name}_FILE", default="")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from None
    return env.str(name, default=default)


def env_mapping(name: str) -> dict[str, str]:
    """``key=value,key=value`` pairs, e.g. extra work types ``99=tests.worktypes.Countdown``."""
    result: dict[str, str] = {}
    for item in env_list(name, []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not of the form key=value")
        result[key.strip()] = value.strip()
    return result


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("IDDS_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set in production (IDDS_REQUIRE_SECRET_KEY=true)")
    # A per-checkout development key: good enough for the embedded demo, never for production.
    SECRET_KEY = "idds-insecure-development-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "requests_app",
    "carousel",
    "hpo",
    "activelearning",
    "monitor",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "idds_site.urls"
WSGI_APPLICATION = "idds_site.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'idds.sqlite3'}")
try:
    _db = env.db_url_config(DATABASE_URL)
except Exception as exc:  # django-environ raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} is not a database URL: {exc}") from None
if not _db.get("ENGINE"):
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r}: unknown database scheme")
IS_SQLITE = _db["ENGINE"].endswith("sqlite3")
if IS_SQLITE:
    # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE transactions
    # take the write lock up front so two writers wait (timeout) instead of failing to upgrade.
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db["CONN_MAX_AGE"] = 0
else:
    # Persistent connections: measured 100 -> 445 req/s on the list endpoint (STACK.md).
    _db["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["application_name"] = env.str("IDDS_DB_APPLICATION_NAME", default="idds")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/admin/login/"

# Request bodies over this size are refused with 400 (DATA_UPLOAD_MAX_MEMORY_SIZE is Django's).
IDDS_MAX_PAYLOAD_BYTES = env_int("IDDS_MAX_PAYLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = IDDS_MAX_PAYLOAD_BYTES

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "requests_app.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "requests_app.api.exceptions.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["requests_app.api.parsers.StrictJSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "iDDS-compatible Data Delivery Service API",
    "DESCRIPTION": "Native REST API: requests, transforms, processings, collections, contents, messages.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
_broker_default = REDIS_URL or "filesystem://"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_broker_default)
if "://" not in CELERY_BROKER_URL:
    raise ImproperlyConfigured(f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} is not a URL")
IS_FILESYSTEM_BROKER = CELERY_BROKER_URL.startswith("filesystem://")
if IS_FILESYSTEM_BROKER:
    _queue_dir = VAR_DIR / "broker" / "queue"
    _processed_dir = VAR_DIR / "broker" / "processed"
    # kombu writes its exchange bindings to control_folder, by default "control" in the working
    # directory (which is how a control/ folder once got committed): keep it under var/ too.
    _control_dir = VAR_DIR / "broker" / "control"
    for _folder in (_queue_dir, _processed_dir, _control_dir):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "control_folder": str(_control_dir),
        "store_processed": False,
        # The transport polls the folder; its 1 s default capped the demo at ~2 tasks/s.
        "polling_interval": 0.05,
    }
else:
    # Longer than the longest task or countdown, so a delayed poll is not redelivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
    if CELERY_BROKER_URL.startswith("redis://"):
        # kombu's Redis transport with the fix that keeps a worker alive across a Redis restart
        # under load (the reason is in idds_site/redis_transport.py).
        CELERY_BROKER_TRANSPORT = "idds_site.redis_transport:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540, minimum=5)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection before and after every task unless this
# is set, so every task paid a new PostgreSQL connection (a backend fork; 3 % of the worker's CPU
# in bench/carousel.py). Set, the fix-up closes only every 2 x this many tasks; in between the
# connections are recycled the way Django does per HTTP request (CONN_MAX_AGE, health checks,
# connections left broken by an error), before each task: see idds_site/celery.py.
CELERY_DB_REUSE_MAX = 10_000

# One queue per agent so each can be scaled on its own hosts; declared here so that a plain
# `celery -A idds_site worker` consumes all of them and `-Q` picks a subset.
IDDS_QUEUES = [
    "clerk",
    "transformer",
    "carrier",
    "conductor",
    "rollup",
    "watchdog",
    "carousel",
    "hpo",
    "hpo_generate",
    "activelearning",
]
# Each queue has its own direct exchange and routing key: without them Celery binds every queue
# to the default exchange with one key, and each task would be copied into every queue.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in IDDS_QUEUES]
CELERY_TASK_DEFAULT_QUEUE = "watchdog"
# Tasks are named <area>.<agent>.<step>; the agent part picks the queue.
CELERY_TASK_ROUTES = {
    "idds.clerk.*": {"queue": "clerk"},
    "idds.transformer.*": {"queue": "transformer"},
    "idds.carrier.*": {"queue": "carrier"},
    "idds.conductor.*": {"queue": "conductor"},
    "idds.rollup.*": {"queue": "rollup"},
    "idds.watchdog.*": {"queue": "watchdog"},
    "carousel.*": {"queue": "carousel"},
    "hpo.generate.*": {"queue": "hpo_generate"},
    "hpo.*": {"queue": "hpo"},
    "activelearning.*": {"queue": "activelearning"},
}

# Beat: the safety net behind event hand-off, and the clock for due polls.
IDDS_SWEEP_SECONDS = env_float("IDDS_SWEEP_SECONDS", 5.0, minimum=0.2)
CELERY_BEAT_SCHEDULE = {
    "watchdog-sweep": {"task": "idds.watchdog.sweep", "schedule": timedelta(seconds=IDDS_SWEEP_SECONDS)},
    "carrier-due-polls": {"task": "idds.carrier.enqueue_due_polls", "schedule": timedelta(seconds=1)},
    "conductor-deliver": {"task": "idds.conductor.deliver", "schedule": timedelta(seconds=2)},
    # Expired point leases back to the pool, study time-outs, leases of ended studies released.
    "hpo-sweep": {"task": "hpo.sweep", "schedule": timedelta(seconds=10)},
}

# --- Agents ---------------------------------------------------------------------------------
# How long a claim on a processing lasts; a worker that dies gives its work back after this.
IDDS_CLAIM_SECONDS = env_int("IDDS_CLAIM_SECONDS", 300, minimum=1)
IDDS_POLL_MIN_SECONDS = env_float("IDDS_POLL_MIN_SECONDS", 1.0, minimum=0.0)
IDDS_POLL_MAX_SECONDS = env_float("IDDS_POLL_MAX_SECONDS", 300.0, minimum=1.0)
IDDS_MAX_RETRIES = env_int("IDDS_MAX_RETRIES", 5, minimum=0)
# A row left New (its hand-off lost) for this long is picked up again by the watchdog.
IDDS_STALE_SECONDS = env_int("IDDS_STALE_SECONDS", 30, minimum=1)
# Messages per conductor batch: 500 measured 1,100 msg/s to ActiveMQ (200: ~600); bodies stay
# text, so even 500 messages of 2000 files hold only ~150 MB.
IDDS_MESSAGE_BATCH = env_int("IDDS_MESSAGE_BATCH", 500, minimum=1)
IDDS_MESSAGE_MAX_ATTEMPTS = env_int("IDDS_MESSAGE_MAX_ATTEMPTS", 10, minimum=1)

# --- Plugins --------------------------------------------------------------------------------
# Work types by iDDS request_type value; add more with IDDS_EXTRA_WORK_TYPES=99=pkg.mod.Class.
IDDS_WORK_TYPES = {
    "2": "carousel.worktype.StageInWorkType",
    "3": "activelearning.worktype.ActiveLearningWorkType",
    "4": "hpo.worktype.HyperParameterOptWorkType",
} | env_mapping("IDDS_EXTRA_WORK_TYPES")
# Message sinks, several at once: db (record only), stomp, redis (Redis Streams).
IDDS_MESSAGE_SINKS = env_list("IDDS_MESSAGE_SINKS", ["db"])
IDDS_SINK_CLASSES = {
    "db": "requests_app.sinks.db.DatabaseSink",
    "stomp": "requests_app.sinks.stomp.StompSink",
    "redis": "requests_app.sinks.redis_streams.RedisStreamSink",
} | env_mapping("IDDS_EXTRA_SINKS")
for _sink in IDDS_MESSAGE_SINKS:
    if _sink not in IDDS_SINK_CLASSES:
        raise ImproperlyConfigured(f"IDDS_MESSAGE_SINKS: unknown sink {_sink!r}; known: {sorted(IDDS_SINK_CLASSES)}")

# STOMP sink (messaging issue): hosts as host:port,host:port for fail-over.
IDDS_STOMP_HOSTS = env_list("IDDS_STOMP_HOSTS", ["127.0.0.1:61613"])
IDDS_STOMP_DESTINATION = env.str("IDDS_STOMP_DESTINATION", default="/topic/idds")
IDDS_STOMP_USER = env.str("IDDS_STOMP_USER", default="")
IDDS_STOMP_PASSWORD = env_secret("IDDS_STOMP_PASSWORD", "")
# Redis Streams sink.
IDDS_STREAM_REDIS_URL = env.str("IDDS_STREAM_REDIS_URL", default=REDIS_URL or "redis://127.0.0.1:6379/0")
IDDS_STREAM_NAME = env.str("IDDS_STREAM_NAME", default="idds")
IDDS_STREAM_MAXLEN = env_int("IDDS_STREAM_MAXLEN", 1_000_000, minimum=1000)

# Carousel: staging backend (simulator | rucio) and throttles.
IDDS_STAGING_BACKEND = env.str("IDDS_STAGING_BACKEND", default="simulator")
if IDDS_STAGING_BACKEND not in {"simulator", "rucio"}:
    raise ImproperlyConfigured(f"IDDS_STAGING_BACKEND={IDDS_STAGING_BACKEND!r}: use simulator or rucio")
IDDS_TAPE_TIME_SCALE = env_float("IDDS_TAPE_TIME_SCALE", 1.0, minimum=0.0)
# Throttles like a production carousel: per source tape at most N files queued or staging, of
# which at most a fraction staging at once, and a cap per destination.
IDDS_CAROUSEL_MAX_FILES_PER_SOURCE = env_int("IDDS_CAROUSEL_MAX_FILES_PER_SOURCE", 10_000, minimum=1)
IDDS_CAROUSEL_MAX_STAGING_RATIO = env_float("IDDS_CAROUSEL_MAX_STAGING_RATIO", 0.5, minimum=0.01)
IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION = env_int("IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION", 100_000, minimum=1)
# Stuck files: re-staged after this many (simulated) seconds, with at most this many extra rules.
IDDS_CAROUSEL_MAX_WAITING_TIME = env_int("IDDS_CAROUSEL_MAX_WAITING_TIME", 3 * 24 * 3600, minimum=1)
IDDS_CAROUSEL_MAX_EXTRA_RULES = env_int("IDDS_CAROUSEL_MAX_EXTRA_RULES", 1, minimum=0)
IDDS_RUCIO_HOST = env.str("IDDS_RUCIO_HOST", default="")
IDDS_RUCIO_AUTH_HOST = env.str("IDDS_RUCIO_AUTH_HOST", default="")
IDDS_RUCIO_ACCOUNT = env.str("IDDS_RUCIO_ACCOUNT", default="idds")
IDDS_RUCIO_AUTH_TYPE = env.str("IDDS_RUCIO_AUTH_TYPE", default="userpass")
IDDS_RUCIO_USERNAME = env.str("IDDS_RUCIO_USERNAME", default="")
IDDS_RUCIO_PASSWORD = env_secret("IDDS_RUCIO_PASSWORD", "")

# HPO: container runtime for user generators with a sandbox image (docker, podman, apptainer;
# unset = refuse sandboxed programs clearly), their working directories, the nevergrad venv.
HPO_CONTAINER_RUNTIME = env.str("HPO_CONTAINER_RUNTIME", default="") or None
HPO_WORK_DIR = env.str("HPO_WORK_DIR", default="") or None
HPO_NEVERGRAD_VENV = env.str("HPO_NEVERGRAD_VENV", default="") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

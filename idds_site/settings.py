"""Settings, all read from environment variables through ``idds_site/env.py`` (docs/configuration.md).

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

from idds_site.env import env_bool, env_float, env_int, env_list, env_mapping, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(
    env_str(
        "IDDS_VAR_DIR",
        str(BASE_DIR / "var"),
        doc_default="`var/` in the checkout",
        help="Directory for local state: the embedded SQLite database, the filesystem broker's folders and "
        "collected static files. Created at start-up.",
    )
)

DEBUG = env_bool("DEBUG", False, help="Django's debug mode: tracebacks in error pages. Never in production.")
SECRET_KEY = env_secret(
    "SECRET_KEY",
    "",
    help="Django's signing key (sessions, CSRF). Unset, a fixed development key is used, "
    "which is only fit for the embedded demo.",
)
if not SECRET_KEY:
    if not DEBUG and env_bool(
        "IDDS_REQUIRE_SECRET_KEY",
        False,
        help="Refuse to start without `SECRET_KEY` (unless `DEBUG` is on); set it in production.",
    ):
        raise ImproperlyConfigured("SECRET_KEY must be set in production (IDDS_REQUIRE_SECRET_KEY=true)")
    # A per-checkout development key: good enough for the embedded demo, never for production.
    SECRET_KEY = "idds-insecure-development-key-change-me"
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]", "testserver"],
    help="Host names the web server answers to (Django's `ALLOWED_HOSTS`).",
)
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS",
    [],
    help="Origins (`https://idds.example.org`) trusted for session-authenticated writes from another host, "
    "port or scheme, e.g. behind a TLS proxy (Django's `CSRF_TRUSTED_ORIGINS`).",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
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
DATABASE_URL = env_str(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'idds.sqlite3'}",
    doc_default="`sqlite:///$IDDS_VAR_DIR/idds.sqlite3`",
    help="The database: `postgres://user:password@host:5432/name` in production; the SQLite default "
    "(WAL mode) runs the embedded demo. The test suite needs PostgreSQL.",
)
try:
    _db = environ.Env.db_url_config(DATABASE_URL)
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
    # Persistent connections: measured 100 -> 445 req/s on the list endpoint on a 2-core machine.
    _db["CONN_MAX_AGE"] = env_int(
        "CONN_MAX_AGE",
        60,
        minimum=0,
        help="Seconds a PostgreSQL connection is kept for reuse, in web and Celery workers alike "
        "(0 = one per request or task). Ignored with SQLite.",
    )
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {})["application_name"] = env_str(
        "IDDS_DB_APPLICATION_NAME",
        "idds",
        help="PostgreSQL `application_name` of this process's connections (shown in `pg_stat_activity`).",
    )
DATABASES = {"default": _db}
IDDS_DB_PREPARED_STATEMENTS = env_bool(
    "IDDS_DB_PREPARED_STATEMENTS",
    True,
    help="PostgreSQL: the hot paths' fixed statements are prepared once per connection instead of planned on "
    "every call. Turn off behind a pooler that shares server sessions between clients (PgBouncer in "
    "transaction mode before 1.21).",
)
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
IDDS_MAX_PAYLOAD_BYTES = env_int(
    "IDDS_MAX_PAYLOAD_BYTES",
    10 * 1024 * 1024,
    minimum=1024,
    help="Largest request body accepted, in bytes; a larger one is refused with 400 before it is parsed.",
)
DATA_UPLOAD_MAX_MEMORY_SIZE = IDDS_MAX_PAYLOAD_BYTES

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Hashed tokens (requests_app.models.tokens.ApiToken); "Token <key>" or "Bearer <key>".
        "requests_app.auth.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Authenticated, and refuses study-scoped worker tokens outside the views that accept them.
    "DEFAULT_PERMISSION_CLASSES": ["requests_app.api.permissions.IsAuthenticatedUser"],
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
    # The error answers (one Error component) and request links are added by method and kind.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "requests_app.api.schema.add_error_responses",
    ],
}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env_str(
    "REDIS_URL",
    "",
    help="Redis for the Celery broker (unless `CELERY_BROKER_URL` is set) and the default of "
    "`IDDS_STREAM_REDIS_URL`, e.g. `redis://127.0.0.1:6379/0`.",
)
_broker_default = REDIS_URL or "filesystem://"
CELERY_BROKER_URL = env_str(
    "CELERY_BROKER_URL",
    _broker_default,
    doc_default="`REDIS_URL`, else `filesystem://`",
    help="Celery broker URL; `filesystem://` is the embedded broker (folders under `IDDS_VAR_DIR`), "
    "for one machine only.",
)
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
    # kombu's filesystem transport with messages written atomically (idds_site/filesystem_transport.py).
    CELERY_BROKER_TRANSPORT = "idds_site.filesystem_transport:Transport"
else:
    # Longer than the longest task or countdown, so a delayed poll is not redelivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int(
            "CELERY_VISIBILITY_TIMEOUT",
            3600,
            minimum=60,
            help="Seconds before the broker hands an unacknowledged task to another worker; keep it longer "
            "than the longest task or countdown. Not used by the filesystem broker.",
        )
    }
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
CELERY_TASK_TIME_LIMIT = env_int(
    "CELERY_TASK_TIME_LIMIT", 600, minimum=10, help="Seconds after which a worker kills a running task."
)
CELERY_TASK_SOFT_TIME_LIMIT = env_int(
    "CELERY_TASK_SOFT_TIME_LIMIT",
    540,
    minimum=5,
    help="Seconds after which a running task is interrupted (`SoftTimeLimitExceeded`) so it can clean up.",
)
CELERY_TASK_ALWAYS_EAGER = env_bool(
    "CELERY_TASK_ALWAYS_EAGER",
    False,
    help="Run tasks inside the calling process instead of sending them to workers (debugging only).",
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection before and after every task unless this
# is set, so every task paid a new PostgreSQL connection (a backend fork; 3 % of the worker's CPU
# in bench/carousel.py). Set, the fix-up closes only every 2 x this many tasks; in between the
# connections are recycled the way Django does per HTTP request (CONN_MAX_AGE, health checks,
# connections left broken by an error), before each task: see idds_site/celery.py.
CELERY_DB_REUSE_MAX = 10_000

# One queue per agent, and one per work type for its submit and poll steps (``WorkType.queue``,
# see requests_app/handoffs.py), so each can be scaled on its own hosts; declared here so that a
# plain `celery -A idds_site worker` consumes all of them and `-Q` picks a subset. ``carrier``
# serves the due-poll rescue and work types that name no queue of their own.
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
# Tasks are named <area>.<agent>.<service>; the agent part picks the queue (submit and poll are
# sent to their work type's queue explicitly).
CELERY_TASK_ROUTES = {
    "idds.clerk.*": {"queue": "clerk"},
    "idds.transformer.*": {"queue": "transformer"},
    "idds.carrier.*": {"queue": "carrier"},
    "idds.conductor.*": {"queue": "conductor"},
    "idds.rollup.*": {"queue": "rollup"},
    "idds.watchdog.*": {"queue": "watchdog"},
    "hpo.generate.*": {"queue": "hpo_generate"},
    "hpo.*": {"queue": "hpo"},
    "activelearning.*": {"queue": "activelearning"},
}

# Beat: the safety net behind event hand-off, and the clock for due polls.
IDDS_SWEEP_SECONDS = env_float(
    "IDDS_SWEEP_SECONDS",
    5.0,
    minimum=0.2,
    help="Period of the watchdog sweep (beat), which re-enqueues work whose hand-off was lost or whose claim expired.",
)
# Lifetimes are days long: a minute of lateness is nothing, and the sweep is one index scan.
IDDS_LIFETIME_SWEEP_SECONDS = env_float(
    "IDDS_LIFETIME_SWEEP_SECONDS",
    60.0,
    minimum=1.0,
    help="Period of the beat sweep that expires live or suspended requests past their `expired_at` "
    "(submission + the request's `lifetime` in days).",
)
CELERY_BEAT_SCHEDULE = {
    "watchdog-sweep": {"task": "idds.watchdog.watchdog_sweep", "schedule": timedelta(seconds=IDDS_SWEEP_SECONDS)},
    "carrier-due-polls": {"task": "idds.carrier.polls_enqueue_due", "schedule": timedelta(seconds=1)},
    "conductor-deliver": {"task": "idds.conductor.messages_deliver", "schedule": timedelta(seconds=2)},
    # Expired point leases back to the pool, study time-outs, leases of ended studies released.
    "hpo-sweep": {"task": "hpo.studies_sweep", "schedule": timedelta(seconds=10)},
    # Requests past their lifetime are expired (requests_app/services/lifetime.py).
    "requests-expire-overdue": {
        "task": "idds.watchdog.requests_expire_overdue",
        "schedule": timedelta(seconds=IDDS_LIFETIME_SWEEP_SECONDS),
    },
}

# --- Agents ---------------------------------------------------------------------------------
# How long a claim on a processing lasts; a worker that dies gives its work back after this.
IDDS_CLAIM_SECONDS = env_int(
    "IDDS_CLAIM_SECONDS",
    300,
    minimum=1,
    help="Seconds a worker's claim on a processing lasts; the work of a worker that died is taken up after it.",
)
IDDS_POLL_MIN_SECONDS = env_float(
    "IDDS_POLL_MIN_SECONDS",
    1.0,
    minimum=0.0,
    help="Poll period of a processing after a poll that changed something, and its first period.",
)
IDDS_POLL_MAX_SECONDS = env_float(
    "IDDS_POLL_MAX_SECONDS",
    300.0,
    minimum=1.0,
    help="Longest poll period: periods double while nothing changes up to it; also caps the back-off after "
    "failed polls and the carousel's wait for the next simulated event.",
)
IDDS_MAX_RETRIES = env_int(
    "IDDS_MAX_RETRIES",
    5,
    minimum=0,
    help="Transient failures of a plan, submit or poll tolerated before the transform or processing fails.",
)
# A row left New (its hand-off lost) for this long is picked up again by the watchdog.
IDDS_STALE_SECONDS = env_int(
    "IDDS_STALE_SECONDS",
    30,
    minimum=1,
    help="Age (since its last update) after which the watchdog re-enqueues a row whose hand-off was lost.",
)
# Messages per conductor batch: 500 measured 1,100 msg/s to ActiveMQ (200: ~600); bodies stay
# text, so even 500 messages of 2000 files hold only ~150 MB.
IDDS_MESSAGE_BATCH = env_int(
    "IDDS_MESSAGE_BATCH", 500, minimum=1, help="Messages the conductor hands to the sinks per batch."
)
# 0.1 s: under a stream of HPO reports, at most 20 conductor runs a second per process instead of
# about one per two messages. bench/hpo_service.py at 1 client: 175 round trips/s with 0.05 s,
# 214-237 with 0.1 s, 223 with 0.2 s; bench/messaging.py p99 commit-to-ack at 200 msg/s: 44-106 ms
# with no window, 136-171 ms with 0.1 s, 216-222 ms with 0.2 s. A lone message still wakes the
# conductor at once.
IDDS_CONDUCTOR_WAKE_SECONDS = env_float(
    "IDDS_CONDUCTOR_WAKE_SECONDS",
    0.1,
    minimum=0.0,
    help="New messages wake the conductor at most twice per this many seconds and process: at once, and "
    "once after the window for the messages that came within it (0: once per committed write).",
)
IDDS_MESSAGE_MAX_ATTEMPTS = env_int(
    "IDDS_MESSAGE_MAX_ATTEMPTS",
    10,
    minimum=1,
    help="Delivery attempts before a message is marked Failed (re-queue with `requeue_messages`).",
)

# --- Plugins --------------------------------------------------------------------------------
# Work types by iDDS request_type value; add more with IDDS_EXTRA_WORK_TYPES=99=pkg.mod.Class.
IDDS_WORK_TYPES = {
    "2": "carousel.worktype.StageInWorkType",
    "3": "activelearning.worktype.ActiveLearningWorkType",
    "4": "hpo.worktype.HyperParameterOptWorkType",
} | env_mapping(
    "IDDS_EXTRA_WORK_TYPES",
    help="More work types as `request_type=dotted.path.Class`, besides the built-in 2 (stage-in), "
    "3 (active learning) and 4 (HPO).",
)
# Message sinks, several at once: db (record only), stomp, redis (Redis Streams).
IDDS_MESSAGE_SINKS = env_list(
    "IDDS_MESSAGE_SINKS",
    ["db"],
    help="Where messages are delivered, several at once: `db` (recorded only), `stomp`, `redis` (Redis "
    "Streams) or a name from `IDDS_EXTRA_SINKS`; a message is Delivered once every sink confirmed it.",
)
IDDS_SINK_CLASSES = {
    "db": "requests_app.sinks.db.DatabaseSink",
    "stomp": "requests_app.sinks.stomp.StompSink",
    "redis": "requests_app.sinks.redis_streams.RedisStreamSink",
} | env_mapping(
    "IDDS_EXTRA_SINKS",
    help="More message sinks as `name=dotted.path.Class`, usable in `IDDS_MESSAGE_SINKS`.",
)
for _sink in IDDS_MESSAGE_SINKS:
    if _sink not in IDDS_SINK_CLASSES:
        raise ImproperlyConfigured(f"IDDS_MESSAGE_SINKS: unknown sink {_sink!r}; known: {sorted(IDDS_SINK_CLASSES)}")

# STOMP sink (messaging issue): hosts as host:port,host:port for fail-over.
IDDS_STOMP_HOSTS = env_list(
    "IDDS_STOMP_HOSTS",
    ["127.0.0.1:61613"],
    help="STOMP sink: brokers as `host:port`; the first reachable one is used (fail-over).",
)
IDDS_STOMP_DESTINATION = env_str(
    "IDDS_STOMP_DESTINATION", "/topic/idds", help="STOMP sink: the topic or queue messages are sent to."
)
IDDS_STOMP_USER = env_str("IDDS_STOMP_USER", "", help="STOMP sink: login (none when empty).")
IDDS_STOMP_PASSWORD = env_secret("IDDS_STOMP_PASSWORD", "", help="STOMP sink: passcode.")
IDDS_STOMP_TTL_MS = env_int(
    "IDDS_STOMP_TTL_MS",
    43_200_000,
    minimum=0,
    help="STOMP sink: the `ttl` header in milliseconds, as the original sends it (12 h); 0 leaves it out.",
)
IDDS_STOMP_VO = env_str(
    "IDDS_STOMP_VO",
    "atlas",
    help="STOMP sink: the `vo` header (a broker selector may match on it); empty leaves it out.",
)
IDDS_STOMP_FROM_IDDS = env_bool(
    "IDDS_STOMP_FROM_IDDS", True, help="STOMP sink: send the `from_idds: true` header, as the original does."
)
IDDS_STOMP_MSG_TYPE_HEADER = env_bool(
    "IDDS_STOMP_MSG_TYPE_HEADER", True, help="STOMP sink: send the message type in a `msg_type` header."
)
# /idds/ wire protocol (docs/idds-wire.md): x509_proxy identities from a TLS front end.
IDDS_X509_DN_HEADER = env_str(
    "IDDS_X509_DN_HEADER",
    "X-SSL-Client-S-DN",
    help="/idds/ x509_proxy auth: the header in which the TLS front end forwards the verified client DN.",
)
IDDS_X509_TRUSTED_PROXIES = env_list(
    "IDDS_X509_TRUSTED_PROXIES",
    [],
    help="/idds/ x509_proxy auth: addresses or networks (CIDR) of the TLS front ends whose DN header is "
    "believed; from anywhere else the header is ignored. Empty: x509_proxy is refused.",
)
# Redis Streams sink.
IDDS_STREAM_REDIS_URL = env_str(
    "IDDS_STREAM_REDIS_URL",
    REDIS_URL or "redis://127.0.0.1:6379/0",
    doc_default="`REDIS_URL`, else `redis://127.0.0.1:6379/0`",
    help="Redis Streams sink: the Redis server.",
)
IDDS_STREAM_NAME = env_str("IDDS_STREAM_NAME", "idds", help="Redis Streams sink: the stream's key.")
IDDS_STREAM_MAXLEN = env_int(
    "IDDS_STREAM_MAXLEN",
    1_000_000,
    minimum=1000,
    help="Redis Streams sink: entries kept; older ones are trimmed (approximately) as new ones arrive.",
)

# Carousel: staging backend (simulator | rucio) and throttles.
IDDS_STAGING_BACKEND = env_str(
    "IDDS_STAGING_BACKEND",
    "simulator",
    help="Where stage-in requests stage: `simulator` (a tape system kept in the database) or `rucio`.",
)
if IDDS_STAGING_BACKEND not in {"simulator", "rucio"}:
    raise ImproperlyConfigured(f"IDDS_STAGING_BACKEND={IDDS_STAGING_BACKEND!r}: use simulator or rucio")
IDDS_TAPE_TIME_SCALE = env_float(
    "IDDS_TAPE_TIME_SCALE",
    1.0,
    minimum=0.0,
    help="Simulator: simulated seconds per real second (0 = staging is instant); every process must use the "
    "same value.",
)
# Throttles like a production carousel: per source tape at most N files queued or staging, of
# which at most a fraction staging at once, and a cap per destination.
IDDS_CAROUSEL_MAX_FILES_PER_SOURCE = env_int(
    "IDDS_CAROUSEL_MAX_FILES_PER_SOURCE",
    10_000,
    minimum=1,
    help="Stage-in throttle: files in flight (queued or staging) per source; a request that would pass it waits "
    "in Throttling, unless the source has nothing in flight.",
)
IDDS_CAROUSEL_MAX_STAGING_RATIO = env_float(
    "IDDS_CAROUSEL_MAX_STAGING_RATIO",
    0.5,
    minimum=0.01,
    help="Stage-in throttle: a source takes another request only while its files in flight are at most this "
    "fraction of `IDDS_CAROUSEL_MAX_FILES_PER_SOURCE`.",
)
IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION = env_int(
    "IDDS_CAROUSEL_MAX_FILES_PER_DESTINATION",
    100_000,
    minimum=1,
    help="Stage-in throttle: files in flight per destination, with the same rule as per source.",
)
# Stuck files: re-staged after this many (simulated) seconds, with at most this many extra rules.
IDDS_CAROUSEL_MAX_WAITING_TIME = env_int(
    "IDDS_CAROUSEL_MAX_WAITING_TIME",
    3 * 24 * 3600,
    minimum=1,
    help="Stage-in: seconds a file may stay unstaged before it is re-staged from another source, when the "
    "request gives no `max_waiting_time`.",
)
IDDS_CAROUSEL_MAX_EXTRA_RULES = env_int(
    "IDDS_CAROUSEL_MAX_EXTRA_RULES",
    1,
    minimum=0,
    help="Stage-in: extra rules created for stuck files, when the request gives no `max_extra_rules`.",
)
IDDS_RUCIO_HOST = env_str("IDDS_RUCIO_HOST", "", help="Rucio backend: server URL (required with `rucio`).")
IDDS_RUCIO_AUTH_HOST = env_str(
    "IDDS_RUCIO_AUTH_HOST", "", help="Rucio backend: authentication server URL (empty = the client's default)."
)
IDDS_RUCIO_ACCOUNT = env_str("IDDS_RUCIO_ACCOUNT", "idds", help="Rucio backend: account.")
IDDS_RUCIO_AUTH_TYPE = env_str(
    "IDDS_RUCIO_AUTH_TYPE",
    "userpass",
    help="Rucio backend: authentication type: `userpass`, `x509`, `x509_proxy` or `oidc` (docs/rucio.md).",
)
if IDDS_RUCIO_AUTH_TYPE not in {"userpass", "x509", "x509_proxy", "oidc"}:
    raise ImproperlyConfigured(f"IDDS_RUCIO_AUTH_TYPE={IDDS_RUCIO_AUTH_TYPE!r}: use userpass, x509, x509_proxy or oidc")
IDDS_RUCIO_USERNAME = env_str("IDDS_RUCIO_USERNAME", "", help="Rucio backend: user name for `userpass`.")
IDDS_RUCIO_PASSWORD = env_secret("IDDS_RUCIO_PASSWORD", "", help="Rucio backend: password for `userpass`.")
IDDS_RUCIO_CLIENT_CERT = env_str(
    "IDDS_RUCIO_CLIENT_CERT", "", help="Rucio backend: X.509 certificate file for `x509` (PEM)."
)
IDDS_RUCIO_CLIENT_KEY = env_str(
    "IDDS_RUCIO_CLIENT_KEY", "", help="Rucio backend: X.509 private key file for `x509` (mode 400 or 600)."
)
IDDS_RUCIO_CLIENT_PROXY = env_str(
    "IDDS_RUCIO_CLIENT_PROXY", "", help="Rucio backend: X.509 proxy file for `x509_proxy`."
)
IDDS_RUCIO_CA_CERT = env_str(
    "IDDS_RUCIO_CA_CERT",
    "",
    help="Rucio backend: CA bundle or directory to verify the Rucio servers (empty = the system's).",
)
IDDS_RUCIO_TAPE_EXPRESSION = env_str(
    "IDDS_RUCIO_TAPE_EXPRESSION",
    "istape=True",
    help="Rucio backend: the RSE expression of every tape a re-stage may read from (the tape that failed is "
    "taken out of it). `istape` is an attribute operators set; `rse_type=TAPE` needs none.",
)
IDDS_RUCIO_OIDC_SCOPE = env_str(
    "IDDS_RUCIO_OIDC_SCOPE", "openid profile", help="Rucio backend: OIDC scope requested with `oidc`."
)
IDDS_RUCIO_OIDC_AUDIENCE = env_str("IDDS_RUCIO_OIDC_AUDIENCE", "", help="Rucio backend: OIDC audience with `oidc`.")
IDDS_RUCIO_OIDC_ISSUER = env_str(
    "IDDS_RUCIO_OIDC_ISSUER", "", help="Rucio backend: OIDC issuer (identity provider nickname on the Rucio server)."
)
IDDS_RUCIO_EVENTS = env_bool(
    "IDDS_RUCIO_EVENTS",
    False,
    help="Rucio backend: polls take landed files from Rucio's transfer-done messages, recorded by "
    "`manage.py carousel_rucio_events`, and list a rule's locks only when its counters disagree (docs/rucio.md).",
)
IDDS_RUCIO_EVENTS_STOMP = env_str(
    "IDDS_RUCIO_EVENTS_STOMP",
    "127.0.0.1:61613",
    help="Rucio events: `host:port` of the STOMP broker Rucio's Hermes sends its messages to.",
)
IDDS_RUCIO_EVENTS_DESTINATION = env_str(
    "IDDS_RUCIO_EVENTS_DESTINATION",
    "/topic/rucio.events",
    help="Rucio events: the topic or queue Hermes sends to (Hermes' `[messaging-hermes] destination`).",
)
IDDS_RUCIO_EVENTS_USERNAME = env_str("IDDS_RUCIO_EVENTS_USERNAME", "", help="Rucio events: broker user name.")
IDDS_RUCIO_EVENTS_PASSWORD = env_secret("IDDS_RUCIO_EVENTS_PASSWORD", "", help="Rucio events: broker password.")
IDDS_RUCIO_EVENTS_GRACE_SECONDS = env_float(
    "IDDS_RUCIO_EVENTS_GRACE_SECONDS",
    120.0,
    minimum=1.0,
    help="Rucio events: a rule whose OK-lock count is still above the files known landed this many seconds "
    "later has its locks listed in full (a message was lost or late: polling is the safety net).",
)
IDDS_RUCIO_EVENTS_RETENTION_SECONDS = env_float(
    "IDDS_RUCIO_EVENTS_RETENTION_SECONDS",
    86400.0,
    minimum=60.0,
    help="Rucio events: recorded events older than this are deleted by the event recorder.",
)

# Sandbox for user programs (docs/sandbox.md): bubblewrap by default, or a container engine. The host only
# for staff and only when allowed here. Limits are ceilings: a request may ask for less.
IDDS_SANDBOX_RUNTIME = env_str(
    "IDDS_SANDBOX_RUNTIME",
    "bubblewrap",
    help="Sandbox for user programs (HPO generators, active-learning decisions): `bubblewrap`, `docker`, "
    "`podman`, `apptainer`, or `host` (staff only, needs `IDDS_SANDBOX_ALLOW_HOST`). See docs/sandbox.md.",
)
if IDDS_SANDBOX_RUNTIME not in {"bubblewrap", "docker", "podman", "apptainer", "host"}:
    raise ImproperlyConfigured(
        f"IDDS_SANDBOX_RUNTIME={IDDS_SANDBOX_RUNTIME!r}: use bubblewrap, docker, podman, apptainer or host"
    )
IDDS_SANDBOX_BINARY = env_str(
    "IDDS_SANDBOX_BINARY",
    "",
    help="Sandbox: the runtime's program, a name on PATH or a path (empty = bwrap, docker, podman or apptainer).",
)
IDDS_SANDBOX_IMAGE = env_str(
    "IDDS_SANDBOX_IMAGE",
    "python:3.11-slim",
    help="Sandbox: image a container runtime runs programs in when the request names none (never pulled).",
)
IDDS_SANDBOX_ALLOW_HOST = env_bool(
    "IDDS_SANDBOX_ALLOW_HOST",
    False,
    help="Sandbox: let staff-owned requests run user programs on the host (nobody else, ever).",
)
if IDDS_SANDBOX_RUNTIME == "host" and not IDDS_SANDBOX_ALLOW_HOST:
    raise ImproperlyConfigured("IDDS_SANDBOX_RUNTIME=host needs IDDS_SANDBOX_ALLOW_HOST=true (staff only)")
IDDS_SANDBOX_WORK_DIR = env_str(
    "IDDS_SANDBOX_WORK_DIR",
    str(VAR_DIR / "sandbox"),
    doc_default="`var/sandbox` under `IDDS_VAR_DIR`",
    help="Sandbox: parent of the fresh working directory each program run gets (removed afterwards).",
)
IDDS_SANDBOX_UPLOAD_DIR = env_str(
    "IDDS_SANDBOX_UPLOAD_DIR",
    str(VAR_DIR / "uploads"),
    doc_default="`var/uploads` under `IDDS_VAR_DIR`",
    help="Sandbox: where uploaded sandbox tarballs live; a request may name no other host path.",
)
IDDS_SANDBOX_READ_ONLY_PATHS = env_list(
    "IDDS_SANDBOX_READ_ONLY_PATHS",
    [],
    help="Sandbox: host directories programs may read besides /usr and the Python prefix (e.g. a venv).",
)
IDDS_SANDBOX_UID_BASE = env_int(
    "IDDS_SANDBOX_UID_BASE",
    200_000,
    minimum=1000,
    help="Sandbox: bubblewrap runs started by root each get a fresh uid from here (keeps their process counts apart).",
)
IDDS_SANDBOX_CPU_SECONDS = env_int(
    "IDDS_SANDBOX_CPU_SECONDS", 600, minimum=1, help="Sandbox: CPU seconds a program may use (a ceiling)."
)
IDDS_SANDBOX_MEMORY_MB = env_int(
    "IDDS_SANDBOX_MEMORY_MB", 4096, minimum=64, help="Sandbox: address space a program may use, in MB (a ceiling)."
)
IDDS_SANDBOX_PROCESSES = env_int(
    "IDDS_SANDBOX_PROCESSES", 64, minimum=4, help="Sandbox: processes a program may run at once (a ceiling)."
)
IDDS_SANDBOX_OUTPUT_MB = env_int(
    "IDDS_SANDBOX_OUTPUT_MB", 64, minimum=1, help="Sandbox: largest file a program may write, stdout included, in MB."
)
IDDS_SANDBOX_WALL_SECONDS = env_int(
    "IDDS_SANDBOX_WALL_SECONDS",
    24 * 3600,
    minimum=1,
    help="Sandbox: wall-clock seconds before a program is killed with everything it started (a ceiling).",
)
HPO_NEVERGRAD_VENV = (
    env_str(
        "HPO_NEVERGRAD_VENV",
        "",
        doc_default="`var/nevergrad-venv` in the checkout",
        help="HPO: the virtual environment the nevergrad generator runs in (created on first use or by "
        "`manage.py setup_nevergrad`).",
    )
    or None
)
HPO_ROLLUP_DEBOUNCE_SECONDS = env_float(
    "HPO_ROLLUP_DEBOUNCE_SECONDS",
    0.5,
    minimum=0.0,
    help="HPO: reports of one study within this many seconds share one roll-up (run at the end of the window); "
    "0 runs one per report.",
)

# --- Monitor (monitor/, docs/monitor.md) ----------------------------------------------------
IDDS_MONITOR_REQUIRE_LOGIN = env_bool(
    "IDDS_MONITOR_REQUIRE_LOGIN",
    False,
    help="Monitor: pages and their JSON twins need a login (by default anyone may read them; "
    "the owner's actions always need one).",
)
IDDS_MONITOR_REFRESH_SECONDS = env_int(
    "IDDS_MONITOR_REFRESH_SECONDS",
    5,
    minimum=1,
    help="Monitor: seconds between refreshes of the live parts of a page while its work is active.",
)
IDDS_MONITOR_BEAT_MAX_AGE = env_int(
    "IDDS_MONITOR_BEAT_MAX_AGE",
    120,
    minimum=1,
    help="Monitor: `/healthz` answers 200 only if a beat-scheduled task started within this many seconds.",
)

# --- Active learning ------------------------------------------------------------------------
IDDS_AL_CALLABLES = env_mapping(
    "IDDS_AL_CALLABLES",
    help="Active learning: decisions that run in the worker process instead of the sandbox, as "
    "`name=dotted.path.function`; a request names only the key (`callable`). Empty: none allowed.",
)
IDDS_AL_HISTORY_LIMIT = env_int(
    "IDDS_AL_HISTORY_LIMIT",
    1000,
    minimum=0,
    help="Active learning: most recent reported parameter sets passed to a decision as `history` (and kept in "
    "its audit record).",
)
IDDS_AL_UPLOAD_MAX_MB = env_int(
    "IDDS_AL_UPLOAD_MAX_MB",
    50,
    minimum=1,
    help="Active learning: largest sandbox tarball accepted by the uploads endpoint, in MB.",
)
IDDS_AL_STEP_WAIT_SECONDS = env_float(
    "IDDS_AL_STEP_WAIT_SECONDS",
    30.0,
    minimum=0.0,
    help="Active learning: longest time a step call (mode b) waits for its decision before answering with "
    "the step's id to fetch later.",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_str("LOG_LEVEL", "INFO", help="Level of the root logger: DEBUG, INFO, WARNING, ERROR."),
    },
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

"""Settings for the model-governance service: every value comes from the environment.

The embedded default (no variables set) needs no server: SQLite under ``var/``, a
Celery broker on the local filesystem, served by a real worker process, and a secret key
generated once into ``var/secret_key``. Production sets
``DATABASE_URL`` (PostgreSQL), ``CELERY_BROKER_URL`` (Redis or RabbitMQ), ``SECRET_KEY``,
``ALLOWED_HOSTS`` and, for workers on several hosts, a shared object store.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from governance.append_only import LEDGER_LEGAL_FLOOR_MONTHS
from governance.env import env_bool, env_float, env_int, env_list, env_rate, env_str, secret_in_file

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

# The embedded default (no DATABASE_URL: SQLite under VAR_DIR) is one machine's install.
_embedded = env_str("DATABASE_URL") is None

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if _embedded:
        # The web server, the worker and every management command of the install must share
        # one key, without the operator having to set one: it is generated once beside the database.
        SECRET_KEY = secret_in_file(VAR_DIR / "secret_key")
    elif DEBUG:
        # A fixed, obviously unsafe key for development against a real database.
        SECRET_KEY = "insecure-debug-only-key-never-use-in-production-" + "x" * 20
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off and DATABASE_URL names a database "
                                   "(only the embedded SQLite default generates its own, in VAR_DIR/secret_key)")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "governance",
    "riskmodels",
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
    "governance.middleware.RequestIdMiddleware",
    "governance.middleware.ApiNotFoundMiddleware",
    # Last, so that it sees the lockout flag its backend set on the admin's login request.
    "axes.middleware.AxesMiddleware",
]
# Before CSRF reads a form: a body over its limit is refused before a byte of it is parsed.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.csrf.CsrfViewMiddleware"),
                  "governance.middleware.RequestSizeLimitMiddleware")

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"

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

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every write transaction take the write lock at BEGIN, so two
    # writers can never both read the same audit-chain head and fork the chain.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttle counters) ----------------------------------------------------------------
# Per process by default; CACHE_URL=redis://host:6379/1 shares the counters between gunicorn workers
# and hosts, which a throttle needs to mean what it says with more than one process.
_cache_url = env_str("CACHE_URL")
if _cache_url is None:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "governance"}}
elif _cache_url.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}}
else:
    raise ImproperlyConfigured(f"CACHE_URL={_cache_url!r}: use a redis://, rediss:// or unix:// URL, or leave it unset")

# --- Sign-in: brute-force lockout (django-axes) and the client address ------------------------
# The lockout must come first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Reverse proxies in front of the service that append to X-Forwarded-For. With 0 (the default) the
# address is the socket's peer and X-Forwarded-For is ignored, so a client cannot choose its own address
# (and with it escape a lockout or a throttle); with N, the N-th address from the right (what the
# outermost trusted proxy saw). Used by the lockout, the throttles and the audit log alike.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "governance.logins.client_address"
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Locked per (username, address) pair: a lockout per username alone would let anyone lock any known
# user out from anywhere; per address alone would lock out a whole office behind one NAT. Guessing
# across many usernames or from many addresses is slowed by the per-address login throttle instead.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A locked-out attempt is refused without checking the password and does not extend the cool-off,
# so the time a refusal names is when the sign-in is possible again.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "governance.admin.lockout_response"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and storage -----------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media-not-served/"  # artifacts are served only through authenticated API views


def storage_settings() -> dict:
    """Return the default storage from the environment: STORAGE_BACKEND=filesystem (MEDIA_ROOT) or s3.

    s3 puts datasets and artifacts in a shared S3-compatible object store (django-storages), so
    workers on several hosts see the same files; credentials come from the usual AWS variables.
    A function so that a test can point a process at a bucket exactly as the environment would.
    """
    backend = env_str("STORAGE_BACKEND", "filesystem")
    if backend == "filesystem":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(MEDIA_ROOT)}}
    if backend == "s3":
        if not env_str("S3_BUCKET"):
            raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs S3_BUCKET (and S3_ENDPOINT_URL for a store other than AWS)")
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env_str("S3_BUCKET"),
                "endpoint_url": env_str("S3_ENDPOINT_URL"),
                "default_acl": None,
                "querystring_auth": True,
                # django-storages reads a whole object into a spool that, at its default of 0,
                # never leaves memory; above this size it spills to a temporary file, so a
                # worker reading a large dataset holds a page of it, not all of it.
                "max_memory_size": env_int("S3_MAX_MEMORY_SIZE", 8 * 1024 * 1024, minimum=1),
            },
        }
    raise ImproperlyConfigured(f"STORAGE_BACKEND={backend!r}: use 'filesystem' or 's3'")


STORAGES = {
    "default": storage_settings(),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

# --- Upload limits ------------------------------------------------------------------------
# Dataset files may be large; anything above this is refused with 413 before parsing.
DATASET_MAX_UPLOAD_BYTES = env_int("DATASET_MAX_UPLOAD_BYTES", 512 * 1024 * 1024, minimum=1)
# A Parquet upload is compressed: its decoded columns may take at most this many bytes (a small file
# that decodes to gigabytes is refused while it is read, not after).
DATASET_MAX_DECODED_BYTES = env_int("DATASET_MAX_DECODED_BYTES", 4 * DATASET_MAX_UPLOAD_BYTES, minimum=1)
# Every uploaded file passes the counting handler first: a body of unknown length (chunked) is cut
# off at DATASET_MAX_UPLOAD_BYTES while it streams (governance/uploads.py).
FILE_UPLOAD_HANDLERS = [
    "governance.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Uploads above this size spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024, minimum=0)
# Non-file request bodies (JSON) stay small.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1)
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "governance.api.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "governance.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": None,
    # Scoped throttles on the costly operations (governance/api/throttles.py): requests per user
    # (per address for the anonymous login), counted in the default cache.
    "DEFAULT_THROTTLE_RATES": {
        "login": env_rate("THROTTLE_LOGIN", "20/min"),
        "upload": env_rate("THROTTLE_UPLOAD", "30/hour"),
        "training": env_rate("THROTTLE_TRAINING", "60/hour"),
        "scoring": env_rate("THROTTLE_SCORING", "600/min"),
        "batch_scoring": env_rate("THROTTLE_BATCH_SCORING", "60/hour"),
    },
}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_int("API_TOKEN_TTL_HOURS", 24 * 30, minimum=1)),
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_PREFIX": "cg_",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Credit-risk model governance API",
    "DESCRIPTION": (
        "Register datasets, train and evaluate model versions, explain them, and read the "
        "tamper-evident audit trail. Authenticate with `Authorization: Token <token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name (status, conclusion) or their values (high/medium/low).
    "ENUM_NAME_OVERRIDES": {
        "VersionStatusEnum": "riskmodels.models.registry.VersionStatus",
        "FindingStatusEnum": "riskmodels.models.lifecycle.Finding.Status",
        "ValidationConclusionEnum": "riskmodels.services.lifecycle.CONCLUSIONS",
        "ReviewConclusionEnum": "riskmodels.models.lifecycle.PeriodicReview.Conclusion",
        "LevelEnum": "riskmodels.models.registry.RiskTier",
        "AlertStatusEnum": "riskmodels.models.monitoring.Alert.Status",
        "MonitoringRunKindEnum": "riskmodels.models.monitoring.MonitoringRun.Kind",
        "JobKindEnum": "riskmodels.models.jobs.JobKind",
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Celery -------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu polls the folder; its 1 s default would add up to a second to every job and
        # every hop between a report's tasks. Listing a near-empty folder 100 times a second
        # costs well under 1% of a core.
        "polling_interval": 0.01,
    }
    # The same transport, but a worker whose slots are all busy sleeps until one is freed
    # instead of waking 100 times a second (governance/broker.py says why).
    CELERY_BROKER_TRANSPORT = "governance.broker:Transport"
else:
    # Must exceed the longest task's hard time limit, or Redis redelivers running tasks.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=60)}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 60, 5)
if CELERY_TASK_TIME_LIMIT >= CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", float("inf")):
    # Redis (and SQS) hand an unacknowledged message to another worker after the visibility
    # timeout: a task still running then would run twice, and its job be reaped under it.
    raise ImproperlyConfigured(f"CELERY_TASK_TIME_LIMIT={CELERY_TASK_TIME_LIMIT} must be below "
                               f"CELERY_VISIBILITY_TIMEOUT={CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']}")
# Messages carry ids as JSON and nothing else: a worker never unpickles what the broker hands it.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Job progress lives in the Job row (claimed, running, stage, percent): no STARTED result state.
CELERY_TASK_TRACK_STARTED = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # job state lives in database rows, not a result backend
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# How long the main process waits for a dead pool process's result before it reports the task's
# worker lost (Celery's default: 10 s). Results are not used here (job state is in the database),
# so only the wait before a killed job's retry depends on it.
CELERY_WORKER_LOST_WAIT = env_float("CELERY_WORKER_LOST_WAIT", 1.0, minimum=0.1)
# How long a running job may go without a heartbeat before it is reaped.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 120, minimum=2)

# The validation battery's thresholds by risk tier, over riskmodels.ml.validation.Thresholds' defaults
# (a model may override any of them): a high-tier model tolerates less overfitting and weaker segments.
BATTERY_THRESHOLDS_BY_TIER: dict[str, dict[str, float]] = {
    "high": {"overfit_auc_gap_warn": 0.03, "overfit_auc_gap_fail": 0.07, "segment_auc_drop_warn": 0.07},
    "medium": {},
    "low": {"overfit_auc_gap_warn": 0.07, "overfit_auc_gap_fail": 0.15, "segment_auc_drop_warn": 0.15},
}
# Months between periodic reviews of a champion, by risk tier (a model may set its own).
REVIEW_CADENCE_MONTHS = {
    "high": env_int("REVIEW_CADENCE_HIGH_MONTHS", 12, minimum=1),
    "medium": env_int("REVIEW_CADENCE_MEDIUM_MONTHS", 18, minimum=1),
    "low": env_int("REVIEW_CADENCE_LOW_MONTHS", 24, minimum=1),
}
# Worker processes per worker host; BLAS/OpenMP threads per process = cores // concurrency,
# so concurrency x threads never exceeds the cores (oversubscription slows every job).
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", os.cpu_count() or 1, minimum=1)
WORKER_THREADS = env_int("WORKER_THREADS", max(1, (os.cpu_count() or 1) // CELERY_WORKER_CONCURRENCY), minimum=1)
# SHAP reports: rows explained by default (a seeded sample above), the hard cap a request
# may ask for, rows per worker task, the worker time one report may cost (estimated before
# it starts; over it, a report is sampled down or refused), and rows per local request.
EXPLAIN_DEFAULT_MAX_ROWS = env_int("EXPLAIN_DEFAULT_MAX_ROWS", 10_000, minimum=1)
EXPLAIN_MAX_ROWS = env_int("EXPLAIN_MAX_ROWS", 1_000_000, minimum=1)
EXPLAIN_CHUNK_ROWS = env_int("EXPLAIN_CHUNK_ROWS", 20_000, minimum=1)
# Worker processes that share a report (all hosts): a report is cut into a multiple of this
# many chunks, so a small one still keeps every process busy; but no chunk below the minimum.
EXPLAIN_PARALLELISM = env_int("EXPLAIN_PARALLELISM", CELERY_WORKER_CONCURRENCY, minimum=1)
EXPLAIN_MIN_CHUNK_ROWS = env_int("EXPLAIN_MIN_CHUNK_ROWS", 2_000, minimum=1)
EXPLAIN_BUDGET_SECONDS = env_int("EXPLAIN_BUDGET_SECONDS", 1800, minimum=1)
EXPLAIN_LOCAL_MAX_ROWS = env_int("EXPLAIN_LOCAL_MAX_ROWS", 100, minimum=1)
# Scoring: applications per request; the estimated explainer time one request may cost (a
# model-agnostic explainer over it is refused and pointed at batch scoring, never left to hang).
SCORING_MAX_APPLICATIONS = env_int("SCORING_MAX_APPLICATIONS", 100, minimum=1)
SCORING_REQUEST_BUDGET_SECONDS = env_float("SCORING_REQUEST_BUDGET_SECONDS", 2.0, minimum=0.01)
SCORING_BATCH_CHUNK_ROWS = env_int("SCORING_BATCH_CHUNK_ROWS", 50_000, minimum=1)
# Monitoring traffic lights: green below amber, amber below red (a model may override any of them).
# PSI/CSI: the customary 0.10 / 0.25; performance: drops from the validation baseline.
MONITORING_THRESHOLDS = {
    "psi_amber": 0.10, "psi_red": 0.25, "csi_amber": 0.10, "csi_red": 0.25,
    "auc_drop_amber": 0.03, "auc_drop_red": 0.05, "ks_drop_amber": 0.05, "ks_drop_red": 0.10,
    "brier_rise_amber": 0.02, "brier_rise_red": 0.04,
    # The lowest adverse impact ratio of a protected column's groups: lower is worse, so red is below amber.
    "fairness_air_amber": 0.8, "fairness_air_red": 0.6,
}
MONITORING_WINDOW_DAYS = env_int("MONITORING_WINDOW_DAYS", 1, minimum=1)
# Outcomes: a decision's cohort is measured once it is this many days old (a performance run may
# ask for another maturity); a request records at most this many outcomes, all or nothing.
OUTCOME_MATURITY_DAYS = env_int("OUTCOME_MATURITY_DAYS", 365, minimum=0)
OUTCOMES_MAX_PER_REQUEST = env_int("OUTCOMES_MAX_PER_REQUEST", 10_000, minimum=1)
# Alert notifications: a webhook (HMAC-signed JSON POST) and/or e-mail; neither is sent unless configured.
ALERT_WEBHOOK_URL = env_str("ALERT_WEBHOOK_URL", "") or ""
ALERT_WEBHOOK_SECRET = env_str("ALERT_WEBHOOK_SECRET", "") or ""
if ALERT_WEBHOOK_URL and not ALERT_WEBHOOK_SECRET:
    # Never a default secret: an unsigned or guessable webhook would let anyone forge alerts to its receiver.
    raise ImproperlyConfigured("ALERT_WEBHOOK_URL is set but ALERT_WEBHOOK_SECRET is not: set the shared secret the "
                               "receiver verifies the X-Signature-SHA256 header with")
if ALERT_WEBHOOK_URL and not ALERT_WEBHOOK_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"ALERT_WEBHOOK_URL={ALERT_WEBHOOK_URL!r} is not an http(s) URL")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_float("ALERT_WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1)
ALERT_EMAIL_RECIPIENTS = env_list("ALERT_EMAIL_RECIPIENTS")
ALERT_NOTIFY_MAX_RETRIES = env_int("ALERT_NOTIFY_MAX_RETRIES", 4, minimum=0)
ALERT_NOTIFY_BACKOFF_SECONDS = env_int("ALERT_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)
# Django's mail settings (SMTP by default), used for alert e-mail.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "model-governance@localhost")
# Rows a stability run (or a reference) reads, scores and counts at a time: its memory bound.
MONITORING_CHUNK_ROWS = env_int("MONITORING_CHUNK_ROWS", 20_000, minimum=1)
# Features no counterfactual may suggest changing (besides protected ones), unless a model lists
# its actionable features itself.
COUNTERFACTUAL_IMMUTABLE_FEATURES = env_list("COUNTERFACTUAL_IMMUTABLE_FEATURES", [
    "age", "age_in_years", "personal_status_and_sex", "foreign_worker", "sex", "gender", "marital_status",
    "nationality", "race", "religion", "number_of_dependents",
    "number_of_people_being_liable_to_provide_maintenance_for"])
# Retention (months) per record type, purged by `manage.py purge_expired` (riskmodels/services/retention.py)
# unless the record's model is under a legal hold. The decision ledger may not be kept for less than
# the legal floor, which the database's own delete trigger enforces too (governance/append_only.py).
RETENTION_MONTHS = {
    "decision_ledger": env_int("RETENTION_DECISION_LEDGER_MONTHS", LEDGER_LEGAL_FLOOR_MONTHS, minimum=1),
    # The documentation pack's model registers its own entry; its period is configured here.
    "documentation_packs": env_int("RETENTION_DOCUMENTATION_PACK_MONTHS", 120, minimum=1),
    # A copy of ledger rows (references, PDs, decisions): never kept longer than the ledger by default.
    "batch_scoring_outputs": env_int("RETENTION_BATCH_SCORING_OUTPUT_MONTHS", LEDGER_LEGAL_FLOOR_MONTHS, minimum=1),
    # Personal data (default or not, protected attributes) recorded against a decision.
    "observed_outcomes": env_int("RETENTION_OBSERVED_OUTCOME_MONTHS", LEDGER_LEGAL_FLOOR_MONTHS, minimum=1),
}
if RETENTION_MONTHS["decision_ledger"] < LEDGER_LEGAL_FLOOR_MONTHS:
    raise ImproperlyConfigured(
        f"RETENTION_DECISION_LEDGER_MONTHS={RETENTION_MONTHS['decision_ledger']} is below the legal floor of "
        f"{LEDGER_LEGAL_FLOOR_MONTHS} months: credit decisions must be kept at least that long (the database "
        "refuses to delete younger ones anyway); set it to 25 or more")
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {"task": "riskmodels.reap_jobs", "schedule": float(env_int("JOB_REAP_INTERVAL_SECONDS", 30, minimum=1))},
    "flag-overdue-reviews": {"task": "riskmodels.flag_overdue_reviews", "schedule": 3600.0},
    # Daily, each over the last MONITORING_WINDOW_DAYS of the ledger.
    "schedule-stability-runs": {"task": "riskmodels.schedule_stability_runs", "schedule": 86400.0},
    # Daily, the records whose retention has ended (manage.py purge_expired does the same by hand).
    "purge-expired": {"task": "riskmodels.purge_expired", "schedule": 86400.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # WeasyPrint logs every rendering step at INFO (a documentation pack is a dozen lines); its warnings stay.
    # django-axes logs every attempt at INFO; failed sign-ins and lockouts are in the audit log already.
    "loggers": {"weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"},
                "axes": {"level": env_str("AXES_LOG_LEVEL", "WARNING")}},
}

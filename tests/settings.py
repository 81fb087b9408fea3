"""Test settings: the real settings module, with the environment a test run needs by default.

Only defaults are set here; CI overrides DATABASE_URL and CELERY_BROKER_URL to run the
same suite against PostgreSQL and Redis.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="governance-test-"))
# The suite reuses its personas' ids across tests: throttles stay out of its way, except in the tests
# of the throttles themselves, which set tiny rates.
for _scope in ("LOGIN", "UPLOAD", "TRAINING", "SCORING", "BATCH_SCORING"):
    os.environ.setdefault(f"THROTTLE_{_scope}", "100000/min")

from governance.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing for tests only

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns about a missing folder

# The manifest storage needs collectstatic; tests render admin pages without it.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405

# A file, not the in-memory default: worker processes started by integration tests and
# threads in concurrency tests must all see the same test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["VAR_DIR"], "test.sqlite3")}  # noqa: F405

# The same engines with a flush that suspends the append-only triggers between transactional
# tests (tests/db_backends says why); production keeps Django's, whose flush the triggers refuse.
DATABASES["default"]["ENGINE"] = {  # noqa: F405
    "django.db.backends.sqlite3": "tests.db_backends.sqlite3",
    "django.db.backends.postgresql": "tests.db_backends.postgresql",
}[DATABASES["default"]["ENGINE"]]  # noqa: F405
# A test hook, defined here only (never in production settings): the pool process running a job of
# this kind exits at once, every attempt, as a crash in native code would (riskmodels/jobs/runner.py).
# Set by the integration test of a poison job in its worker's environment.
JOBS_TEST_CRASH_KIND = os.environ.get("JOBS_TEST_CRASH_KIND", "")

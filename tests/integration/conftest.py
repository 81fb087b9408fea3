"""Start a real Celery worker process against the test database and the configured broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """A running ``celery worker`` subprocess with helpers to wait on it and kill it."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """SIGKILL the whole process group (pool children too), or send ``sig`` to the main process.

        A warm shutdown (SIGTERM) goes to the main process only, as Celery expects; if the
        worker lingers, the group is killed.
        """
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, sig)
        else:
            os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def start_worker(tmp_path: Path, *, concurrency: int = 1, extra_env: dict[str, str] | None = None) -> Worker:
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **(extra_env or {}),
    }
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=INFO",
         f"--concurrency={concurrency}", "--pool=prefork", f"--hostname=test-{os.getpid()}-{time.monotonic_ns()}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )
    worker = Worker(process, log)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            text = worker.output()
            worker.kill() if process.poll() is None else None
            raise RuntimeError(f"the worker did not start:\n{text}")
        time.sleep(0.2)
    return worker


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, worker: Worker | None = None):  # noqa: ANN001,ANN201
    """Poll ``predicate`` until it returns a truthy value; fail with the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    log = worker.output() if worker else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}\n--- worker log ---\n{log}")


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path, settings) -> Iterator[Worker]:  # noqa: ANN001
    """A real worker sharing this test's database, broker and storage; stopped after the test."""
    # Purge leftovers of earlier tests so this worker only sees this test's messages.
    from governance.celery import app

    app.control.purge()
    worker = start_worker(tmp_path)
    try:
        yield worker
    finally:
        if worker.process.poll() is None:
            worker.kill(signal.SIGTERM)

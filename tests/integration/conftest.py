"""Start a real Celery worker process against the test database and the configured broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


def process_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process started by a test: this test's database, broker and storage."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **(extra_env or {}),
    }


def start_worker(tmp_path: Path, *, concurrency: int = 1, extra_env: dict[str, str] | None = None) -> Worker:
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "worker", "--loglevel=INFO",
         f"--concurrency={concurrency}", "--pool=prefork", f"--hostname=test-{os.getpid()}-{time.monotonic_ns()}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=process_env(extra_env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
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


def start_beat(tmp_path: Path, *, extra_env: dict[str, str] | None = None) -> Worker:
    """Start a real ``celery beat`` process (its own schedule file) sending the settings' beat schedule."""
    log = tmp_path / f"beat-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "beat", "--loglevel=INFO",
         f"--schedule={tmp_path / f'beat-{time.monotonic_ns()}'}"],
        cwd=ROOT, env=process_env(extra_env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    beat = Worker(process, log)
    wait_for(lambda: "Sending due task" in beat.output() or process.poll() is not None, timeout=60, worker=beat)
    if process.poll() is not None:
        raise RuntimeError(f"celery beat did not start:\n{beat.output()}")
    return beat


def slow_dataset(tmp_path: Path) -> Path:
    """A synthetic credit file big enough that a large random forest takes several seconds."""
    rng = np.random.default_rng(7)
    n = 20_000
    x = rng.normal(size=(n, 8))
    logit = x[:, 0] * 1.2 - x[:, 1] * 0.8 + 0.5 * x[:, 2] * x[:, 3] - 1.0
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    path = tmp_path / "slow.csv"
    header = ",".join(f"x{i}" for i in range(8)) + ",default\n"
    body = "\n".join(",".join(f"{v:.5f}" for v in row) + f",{int(t)}" for row, t in zip(x, y, strict=True))
    path.write_text(header + body + "\n")
    return path


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


def slow_training_job(developer, tmp_path: Path, *, n_estimators: int = 400, name: str = "slow-model"):  # noqa: ANN001,ANN201
    """Queue a random forest on ``slow_dataset`` (several seconds of fitting), through the services."""
    from riskmodels.services.datasets import dataset_version_create
    from riskmodels.services.registry import registered_model_create
    from riskmodels.services.training import training_job_create

    path = slow_dataset(tmp_path)
    with path.open("rb") as handle:
        dataset, _ = dataset_version_create(actor=developer, name=f"{name}-data", source=handle, filename=path.name,
                                            target="default")
    model = registered_model_create(actor=developer, name=name, owner_team="retail credit risk",
                                    purpose="a model trained slowly enough to be interrupted")
    return training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                               request={"algorithm": "random_forest",
                                        "hyperparameters": {"n_estimators": n_estimators, "min_samples_leaf": 1}})


def pool_process_of(job, worker: Worker) -> int:  # noqa: ANN001
    """Return the pid of the worker's pool process that runs ``job`` (from the job's record), checked on /proc."""
    pid = int(job.worker.split(":")[1])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == worker.process.pid, f"process {pid} is not a pool process of worker {worker.process.pid}"
    return pid

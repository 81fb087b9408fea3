"""The Celery settings the job runner's failure handling depends on (no worker needed).

A killed pool process is redelivered only with late acks and reject-on-worker-lost; one task
at a time per process keeps a crash from taking prefetched messages down with it; a task must
end (soft, then hard limit) before Redis hands its message to another worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from governance.celery import app
from riskmodels.jobs import dispatch
from riskmodels.jobs.worker_lost import JobRequest

ROOT = Path(__file__).resolve().parents[2]
PRINT_LIMITS = ("from django.conf import settings as s; import json; print(json.dumps({"
                "'soft': s.CELERY_TASK_SOFT_TIME_LIMIT, 'hard': s.CELERY_TASK_TIME_LIMIT, "
                "'visibility': s.CELERY_BROKER_TRANSPORT_OPTIONS.get('visibility_timeout')}))")


@pytest.fixture(autouse=True)
def _tasks_registered() -> None:
    app.loader.import_default_modules()


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRINT_LIMITS], cwd=ROOT,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
                          capture_output=True, text=True, timeout=60)


def test_tasks_are_acknowledged_late_and_requeued_when_their_worker_process_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    # Reported within a second or so, not Celery's default 10 s: the retry of a killed job waits on it.
    assert app.conf.worker_lost_wait <= 2


def test_the_job_tasks_release_their_job_when_their_worker_process_dies():
    for name in (dispatch.RUN_JOB, dispatch.RUN_JOB_CHUNK):
        task = app.tasks[name]
        assert (task.acks_late, task.reject_on_worker_lost, task.ignore_result) == (True, True, True), name
    assert app.tasks[dispatch.RUN_JOB].Request is JobRequest


def test_messages_are_json_only_and_no_started_state_is_tracked():
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.task_track_started is False


def test_the_soft_time_limit_comes_before_the_hard_one_on_every_job_task():
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    for name in (dispatch.RUN_JOB, dispatch.RUN_JOB_CHUNK, dispatch.RENDER_EXPLANATION_PLOTS):
        task = app.tasks[name]
        assert 0 < task.soft_time_limit < task.time_limit, name


def test_on_redis_a_task_ends_before_its_message_becomes_visible_again():
    # Every broker but the embedded one gets the visibility timeout (SQS reads it as Redis does).
    result = _settings_with({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert result.returncode == 0, result.stderr
    limits = json.loads(result.stdout.strip().splitlines()[-1])
    assert limits["soft"] < limits["hard"] < limits["visibility"]


def test_a_hard_time_limit_at_or_over_the_visibility_timeout_is_refused():
    result = _settings_with({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "CELERY_TASK_TIME_LIMIT": "7200",
                             "CELERY_VISIBILITY_TIMEOUT": "3600"})
    assert result.returncode != 0
    assert "CELERY_TASK_TIME_LIMIT=7200 must be below CELERY_VISIBILITY_TIMEOUT=3600" in result.stderr

"""The job runner's failure modes with real worker processes and real signals.

A pool process killed mid-job, a whole worker killed, a job that crashes every attempt, a
warm shutdown: every case ends with the job finished or failed, never stuck, and with no
file that no record points at.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest
from django.utils import timezone

from governance.audit import audit_verify
from governance.models import AuditEvent
from riskmodels.models import Job, JobStatus, ModelVersion
from tests.conftest import stored_files
from tests.integration.conftest import pool_process_of, slow_training_job, start_worker, wait_for

pytestmark = pytest.mark.integration
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def _fitting(job_id: int) -> Job | None:
    return Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, progress_stage="fit").first()


def _leftovers(media) -> list[str]:  # noqa: ANN001
    """Files no record points at: artifacts of no version, and temporary files of interrupted writes."""
    recorded = set(ModelVersion.objects.values_list("artifact_path", flat=True))
    return [str(p.relative_to(media)) for p in stored_files(media)
            if (p.suffix == ".skops" and str(p.relative_to(media)) not in recorded) or p.suffix == ".tmp"]


def test_a_pool_process_killed_mid_training_is_retried_at_once_and_succeeds(
        celery_worker_process, developer, tmp_path, _isolated_media):  # noqa: ANN001
    job = slow_training_job(developer, tmp_path)
    running = wait_for(lambda: _fitting(job.pk), timeout=120, interval=0.05, worker=celery_worker_process)
    child = pool_process_of(running, celery_worker_process)
    killed_at = timezone.now()
    os.kill(child, signal.SIGKILL)

    # The worker's main process survives its child and hands the job to the redelivered message:
    # the second attempt starts well within the lease (120 s), not after it.
    retried = wait_for(lambda: Job.objects.filter(pk=job.pk, attempts=2, started_at__gt=killed_at).first(),
                       timeout=30, interval=0.05, worker=celery_worker_process)
    delay = (retried.started_at - killed_at).total_seconds()
    assert delay < 10, f"the retry started {delay:.1f}s after the kill"
    assert celery_worker_process.process.poll() is None

    done = wait_for(lambda: (j := Job.objects.get(pk=job.pk)).status in TERMINAL and j, timeout=300,
                    worker=celery_worker_process)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    version = ModelVersion.objects.get(training_job=done)
    artifact = (_isolated_media / version.artifact_path).read_bytes()
    assert hashlib.sha256(artifact).hexdigest() == version.artifact_sha256
    assert _leftovers(_isolated_media) == []
    lost = AuditEvent.objects.get(action="train_job.requeued", target_id=str(job.pk))
    assert lost.actor_username == "system:worker" and "signal 9" in lost.after["error"]
    assert audit_verify().ok
    print(f"\nretry started {delay:.2f}s after the kill of pool process {child}")


def test_a_pool_process_killed_on_the_last_attempt_fails_the_job_at_once_with_no_artifact(
        celery_worker_process, developer, tmp_path, _isolated_media):  # noqa: ANN001
    job = slow_training_job(developer, tmp_path)
    running = wait_for(lambda: _fitting(job.pk), timeout=120, interval=0.05, worker=celery_worker_process)
    Job.objects.filter(pk=job.pk).update(max_attempts=1)  # retries off for this job
    killed = time.monotonic()
    os.kill(pool_process_of(running, celery_worker_process), signal.SIGKILL)

    failed = wait_for(lambda: (j := Job.objects.get(pk=job.pk)).status in TERMINAL and j, timeout=30,
                      interval=0.05, worker=celery_worker_process)
    ended_after = time.monotonic() - killed
    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith("the worker process died") and failed.error.endswith("no attempts left")
    assert ended_after < 10, f"the job ended {ended_after:.1f}s after the kill"
    assert ModelVersion.objects.count() == 0 and _leftovers(_isolated_media) == []
    # The redelivered message finds the job ended and leaves it alone.
    time.sleep(2)
    assert Job.objects.get(pk=job.pk).attempts == 1
    assert audit_verify().ok

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
from pathlib import Path

import pytest
from django.utils import timezone

from governance.audit import audit_verify
from governance.models import AuditEvent
from riskmodels.models import Job, JobStatus, ModelVersion
from tests.conftest import stored_files
from tests.integration.conftest import pool_process_of, slow_training_job, start_beat, start_worker, wait_for

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


def test_a_job_that_crashes_its_worker_process_every_attempt_fails_after_the_cap_and_the_queue_drains(
        developer, tmp_path, transactional_db):  # noqa: ANN001
    from governance.celery import app
    from riskmodels.models import JobKind
    from riskmodels.services.training import training_job_create
    from tests.conftest import register_demo_dataset, register_model

    app.control.purge()
    # The poison: every evaluation job kills the pool process that runs it (tests/settings.py's hook).
    worker = start_worker(tmp_path, extra_env={"JOBS_TEST_CRASH_KIND": JobKind.EVALUATE})
    try:
        dataset, model = register_demo_dataset(developer), register_model(developer)
        first = training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                                    request={"algorithm": "logistic_regression"})
        poison = wait_for(lambda: Job.objects.filter(kind=JobKind.EVALUATE, status__in=TERMINAL).first(),
                          timeout=120, worker=worker)
        assert Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED
        assert poison.status == JobStatus.FAILED
        assert poison.attempts == poison.max_attempts == 2
        assert "exitcode 70" in poison.error and poison.error.endswith("no attempts left")
        actions = list(AuditEvent.objects.filter(target_id=str(poison.pk), action__startswith="evaluate_job.")
                       .order_by("id").values_list("action", flat=True))
        assert actions == ["evaluate_job.created", "evaluate_job.started", "evaluate_job.requeued",
                           "evaluate_job.started", "evaluate_job.failed"]
        # Both crashes were handled as they happened, not after a lease ran out.
        assert (poison.finished_at - poison.created_at).total_seconds() < 30

        # The worker lives on, and the next job runs.
        following = training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                                        request={"algorithm": "logistic_regression"})
        done = wait_for(lambda: (j := Job.objects.get(pk=following.pk)).status in TERMINAL and j, timeout=120,
                        worker=worker)
        assert done.status == JobStatus.SUCCEEDED, done.error
        assert worker.process.poll() is None
    finally:
        worker.kill(signal.SIGTERM)
    assert audit_verify().ok


LEASE_SECONDS, REAP_SECONDS = 5, 1


def test_a_whole_worker_killed_mid_training_is_reaped_by_the_beat_schedule_and_retried_by_another(
        developer, tmp_path, transactional_db, _isolated_media):  # noqa: ANN001
    from governance.celery import app

    app.control.purge()
    timing = {"JOB_LEASE_SECONDS": str(LEASE_SECONDS), "JOB_REAP_INTERVAL_SECONDS": str(REAP_SECONDS)}
    beat = start_beat(tmp_path, extra_env=timing)
    workers = [start_worker(tmp_path, extra_env=timing), start_worker(tmp_path, extra_env=timing)]
    try:
        job = slow_training_job(developer, tmp_path)
        running = wait_for(lambda: _fitting(job.pk), timeout=120, interval=0.05, worker=workers[0])
        parent = int(Path(f"/proc/{running.worker.split(':')[1]}/stat").read_text().rsplit(")", 1)[1].split()[1])
        [victim] = [w for w in workers if w.process.pid == parent]
        [survivor] = [w for w in workers if w is not victim]
        killed_at = timezone.now()
        victim.kill(signal.SIGKILL)  # the main process and its pool: nobody is left to report the loss

        requeued = wait_for(lambda: AuditEvent.objects.filter(action="train_job.requeued", target_id=str(job.pk),
                                                              actor_username="system:reaper").first(),
                            timeout=60, interval=0.1, worker=survivor)
        after = (requeued.created_at - killed_at).total_seconds()
        # Reaped once the lease ran out (the last heartbeat was at most a renewal interval before the
        # kill), at the next reaper run; two seconds of slack for a loaded machine.
        assert LEASE_SECONDS - 1 <= after <= LEASE_SECONDS + REAP_SECONDS + 2, f"requeued {after:.1f}s after the kill"
        done = wait_for(lambda: (j := Job.objects.get(pk=job.pk)).status in TERMINAL and j, timeout=300,
                        worker=survivor)
    finally:
        for process in [*workers, beat]:
            if process.process.poll() is None:
                process.kill(signal.SIGTERM)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    version = ModelVersion.objects.get(training_job=done)
    assert hashlib.sha256((_isolated_media / version.artifact_path).read_bytes()).hexdigest() == version.artifact_sha256
    assert _leftovers(_isolated_media) == []
    assert "riskmodels.reap_jobs" in beat.output()
    assert audit_verify().ok
    print(f"\nrequeued by the reaper {after:.2f}s after the kill (lease {LEASE_SECONDS}s, reaper every {REAP_SECONDS}s)")


def test_a_worker_told_to_stop_finishes_the_job_in_flight_and_the_next_worker_takes_the_rest(
        celery_worker_process, developer, tmp_path):  # noqa: ANN001
    from riskmodels.models import JobKind

    job = slow_training_job(developer, tmp_path, n_estimators=200)
    wait_for(lambda: _fitting(job.pk), timeout=120, interval=0.05, worker=celery_worker_process)
    celery_worker_process.process.send_signal(signal.SIGTERM)  # a warm shutdown, as a deployment sends it
    assert celery_worker_process.process.wait(timeout=180) == 0

    done = Job.objects.get(pk=job.pk)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1), done.error
    # The evaluation the training queued is either done by the stopping worker (its consumer can take
    # a message already delivered before it stops consuming) or waits for the next worker; never
    # left running by a worker that is gone.
    evaluation = Job.objects.get(kind=JobKind.EVALUATE)
    assert evaluation.status in (JobStatus.QUEUED, JobStatus.SUCCEEDED), evaluation.status
    successor = start_worker(tmp_path)
    try:
        evaluated = wait_for(lambda: (j := Job.objects.get(pk=evaluation.pk)).status in TERMINAL and j,
                             timeout=180, worker=successor)
    finally:
        successor.kill(signal.SIGTERM)
    assert evaluated.status == JobStatus.SUCCEEDED, evaluated.error
    assert audit_verify().ok

"""The job state machine: claim, lease, progress, cancellation, completion and reaping.

Workers never check-then-act on a status: every transition is a conditional UPDATE whose
row count says whether this worker won. A second delivery of the same message therefore
finds nothing to claim and exits quietly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict
from governance.policy import Capability, require
from riskmodels.jobs.dispatch import RUN_JOB, send_on_commit
from riskmodels.models import Job, JobStatus

logger = logging.getLogger(__name__)
WORKER_LABEL = "system:worker"


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was requested."""


class JobLost(Exception):
    """Raised when a running job was taken away from this worker (reaped or cancelled)."""


def job_dispatch(*, job: Job) -> None:
    """Send the job to the workers once the surrounding transaction commits."""
    send_on_commit(RUN_JOB, job_id=job.pk)


def _job_snapshot(job: Job) -> dict[str, Any]:
    return {"status": job.status, "attempts": job.attempts, "stage": job.progress_stage,
            "percent": job.progress_percent, "error": job.error[:2000]}


def worker_process_label(pid: int | None = None) -> str:
    """Name a worker process as a job records it: host and process id (``job_attempt_lost`` matches on it)."""
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def job_claim(*, job_id: int) -> Job | None:
    """Move a queued job to running for this worker; return None if another delivery won."""
    now = timezone.now()
    worker = f"{worker_process_label()}:{threading.get_native_id()}"
    with transaction.atomic():
        claimed = Job.objects.filter(
            id=job_id, status=JobStatus.QUEUED, cancel_requested=False, attempts__lt=F("max_attempts")
        ).update(status=JobStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
                 worker=worker, progress_stage="starting", progress_percent=0, error="")
        if not claimed:
            return None
        job = Job.objects.get(id=job_id)
        audit_record(actor=None, actor_label=WORKER_LABEL, action=f"{job.kind}_job.started", target=job,
                     after=_job_snapshot(job))
    return job


def job_progress(*, job_id: int, stage: str, percent: int, from_stage: str | None = None) -> bool:
    """Record progress and renew the lease; raise JobCancelled or JobLost when the job must stop.

    With ``from_stage``, progress is written only while the job is in that stage, and a running
    job that has moved on to another stage returns False instead: a stage change that exactly
    one of several tasks wins (the chunk tasks of a report, of which one merges). Returns True
    when the progress was written.
    """
    running = Job.objects.filter(id=job_id, status=JobStatus.RUNNING, cancel_requested=False)
    if from_stage is not None:
        running = running.filter(progress_stage=from_stage)
    if running.update(progress_stage=stage[:40], progress_percent=max(0, min(100, int(percent))),
                      heartbeat_at=timezone.now()):
        return True
    job = Job.objects.only("status", "cancel_requested").get(id=job_id)
    if job.status == JobStatus.RUNNING:
        if job.cancel_requested:
            raise JobCancelled()
        if from_stage is not None:
            return False
    raise JobLost(f"job {job_id} is {job.status}, no longer running here")


class LeaseKeeper:
    """Renew a running job's lease from a background thread while the main thread computes.

    Long fits give no progress callbacks; without this, a healthy job would look dead to
    the reaper. A killed worker stops renewing, so its job is reaped after the lease.
    """

    def __init__(self, job_id: int, interval: float | None = None) -> None:
        self.job_id = job_id
        self.interval = interval or max(1.0, settings.JOB_LEASE_SECONDS / 5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                Job.objects.filter(id=self.job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # noqa: BLE001 - a failed renewal only risks an early reap; log it
            logger.exception("lease renewal failed for job %s", self.job_id)
        finally:
            connection.close()


def job_finish(*, job_id: int, result: dict[str, Any], on_success: Callable[[Job], None] | None = None) -> Job:
    """Mark a running job succeeded inside one transaction with ``on_success`` (which writes the results)."""
    with transaction.atomic():
        done = Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(
            status=JobStatus.SUCCEEDED, progress_stage="done", progress_percent=100, finished_at=timezone.now(),
            heartbeat_at=timezone.now(), result=result,
        )
        if not done:
            raise JobLost(f"job {job_id} is no longer running here; its result was discarded")
        job = Job.objects.get(id=job_id)
        if on_success is not None:
            on_success(job)
        audit_record(actor=None, actor_label=WORKER_LABEL, action=f"{job.kind}_job.succeeded", target=job,
                     after={**_job_snapshot(job), "result": result})
    return job


def job_fail(*, job_id: int, error: str, cancelled: bool = False,
             on_failure: Callable[[Job], None] | None = None) -> bool:
    """End a running job as failed (keeping the error) or cancelled; return False if it was not running.

    ``on_failure`` writes rows that outlive the failure (a report kept for diagnosis) in the
    same transaction.
    """
    status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
    with transaction.atomic():
        ended = Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(
            status=status, error=error[:20000], finished_at=timezone.now(), progress_stage=status
        )
        if ended:
            job = Job.objects.get(id=job_id)
            if on_failure is not None:
                on_failure(job)
            audit_record(actor=None, actor_label=WORKER_LABEL, action=f"{job.kind}_job.{status}", target=job,
                         after=_job_snapshot(job))
    return bool(ended)


def job_cancel(*, actor: Any, job: Job) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next checkpoint."""
    require(actor, Capability.JOB_CANCEL, job)
    with transaction.atomic():
        if Job.objects.filter(id=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), progress_stage="cancelled", cancel_requested=True
        ):
            action = f"{job.kind}_job.cancelled"
        elif Job.objects.filter(id=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
            action = f"{job.kind}_job.cancel_requested"
        else:
            current = Job.objects.get(id=job.pk)
            raise Conflict(f"job {job.pk} has already ended ({current.status})", code="job_finished")
        job = Job.objects.get(id=job.pk)
        audit_record(actor=actor, action=action, target=job, after=_job_snapshot(job))
    return job


def job_attempt_lost(*, job_id: int, worker_pid: int, reason: str, redelivered: bool) -> str | None:
    """End the attempt of a job whose pool process died while its worker lived on: retry it at once, or end it.

    Called in the worker's main process when Celery reports the lost child. Without it the job
    would stay "running" until its lease ran out, and the redelivered message would find nothing
    to claim. The row is released only if that very process (host and pid) holds it, so a job a
    duplicate delivery runs elsewhere is left alone. A job with attempts left goes back to queued
    (the redelivered message, or with ``redelivered=False`` a new one, claims it); one without
    fails, or ends cancelled if that was asked. Returns "requeued", "failed", "cancelled" or None.
    """
    holder = Job.objects.filter(id=job_id, status=JobStatus.RUNNING,
                                worker__startswith=worker_process_label(worker_pid) + ":")
    with transaction.atomic():
        if holder.filter(attempts__lt=F("max_attempts"), cancel_requested=False).update(
                status=JobStatus.QUEUED, progress_stage="requeued", progress_percent=0, error=reason, worker=""):
            outcome = "requeued"
        elif holder.filter(cancel_requested=True).update(status=JobStatus.CANCELLED, finished_at=timezone.now(),
                                                         progress_stage="cancelled", error=reason):
            outcome = "cancelled"
        elif holder.update(status=JobStatus.FAILED, finished_at=timezone.now(), progress_stage="failed",
                           error=f"{reason}; no attempts left"):
            outcome = "failed"
        else:
            return None
        job = Job.objects.get(id=job_id)
        audit_record(actor=None, actor_label=WORKER_LABEL, action=f"{job.kind}_job.{outcome}", target=job,
                     after=_job_snapshot(job))
        if outcome == "requeued" and not redelivered:
            job_dispatch(job=job)
    return outcome


def jobs_reap(*, now: Any = None) -> dict[str, list[int]]:
    """Retry or fail running jobs whose lease expired (their worker died); resend lost queued jobs.

    A queued job whose message was lost (the broker restarted without persistence, or was down
    when the job was committed) would wait forever: one still unclaimed a lease after it was
    created or last sent is sent again. A duplicate message is harmless (the claim makes it a
    no-op), and ``heartbeat_at``, which a queued job does not otherwise use, records the send,
    so a long healthy backlog gets at most one extra message per job per lease.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    outcome: dict[str, list[int]] = {"requeued": [], "failed": [], "resent": []}
    unclaimed = (Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, created_at__lt=stale_before))
    waiting = Job.objects.filter(unclaimed, status=JobStatus.QUEUED, cancel_requested=False)
    for job_id in list(waiting.values_list("id", flat=True)):
        with transaction.atomic():
            if waiting.filter(id=job_id).update(heartbeat_at=now):
                job_dispatch(job=Job(pk=job_id))
                outcome["resent"].append(job_id)
    stale = list(Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before).values_list("id", flat=True))
    for job_id in stale:
        with transaction.atomic():
            base = Job.objects.filter(id=job_id, status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
            lost = f"the worker stopped renewing its lease (no heartbeat for over {settings.JOB_LEASE_SECONDS}s)"
            if base.filter(attempts__lt=F("max_attempts"), cancel_requested=False).update(
                status=JobStatus.QUEUED, progress_stage="requeued", progress_percent=0, error=lost, worker="",
                heartbeat_at=now,  # when it was sent again (see above)
            ):
                job = Job.objects.get(id=job_id)
                audit_record(actor=None, actor_label="system:reaper", action=f"{job.kind}_job.requeued", target=job,
                             after=_job_snapshot(job))
                job_dispatch(job=job)
                outcome["requeued"].append(job_id)
            elif base.update(status=JobStatus.FAILED, finished_at=now, progress_stage="failed",
                             error=lost + "; no attempts left"):
                job = Job.objects.get(id=job_id)
                audit_record(actor=None, actor_label="system:reaper", action=f"{job.kind}_job.failed", target=job,
                             after=_job_snapshot(job))
                outcome["failed"].append(job_id)
    return outcome

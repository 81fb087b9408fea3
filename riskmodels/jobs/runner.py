"""Run a job's work, and its chunks when the work is cut into parallel tasks: the one runner every kind uses.

A kind's ``work(job, progress, stored)`` runs under a lease, outside any transaction, and
appends the storage paths of the files it saves to ``stored``. It returns one of:

- ``Finished(result, write)``: the job succeeds; ``write(job)`` records its rows in the
  finishing transaction;
- ``Failed(error, write)``: the job fails with ``error``; ``write(job)`` records rows kept
  for diagnosis in the same transaction;
- ``FanOut(plan, result, stage, handover)``: the work continues as one task per chunk of
  ``plan``. The chunks run ``chunk_work(job, chunk)`` in any worker; the task that finishes
  the last one wins a conditional UPDATE of the job's stage and runs ``merge(job, chunks,
  stored)``, which returns ``Finished`` or ``Failed`` like a work. A chord without a result
  backend: its state lives in the database like every other job.

Unless a job succeeds, every file it stored is deleted. Hand-over files (written only for
the chunks, e.g. staged rows) are deleted when the job ends either way, and the job's result
stops naming them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from riskmodels.jobs.dispatch import RUN_JOB_CHUNK, send_on_commit
from riskmodels.jobs.state import JobCancelled, JobLost, LeaseKeeper, job_claim, job_fail, job_finish, job_progress
from riskmodels.models import Job, JobChunk, JobStatus
from riskmodels.storage import delete_quietly

logger = logging.getLogger(__name__)
Progress = Callable[[str, int], None]
Write = Callable[[Job], None]
# The key of a fanned-out job's result that the runner keeps for itself while the chunks run.
FAN_OUT_KEY = "fan_out"
# The key of a running job's result that lists the files its attempt has stored so far.
ATTEMPT_FILES_KEY = "attempt_files"


@dataclass(frozen=True)
class Finished:
    """The job succeeded with ``result``; ``write`` records its rows in the finishing transaction."""

    result: dict[str, Any]
    write: Write | None = None


@dataclass(frozen=True)
class Failed:
    """The job failed with ``error``; ``write`` records rows kept for diagnosis in the same transaction."""

    error: str
    write: Write | None = None


@dataclass(frozen=True)
class FanOut:
    """The work continues as one task per ``[start, stop)`` slice of ``plan``.

    ``result`` is recorded on the job while its chunks run (what they need to read);
    ``stage`` is the job's progress stage meanwhile; ``handover`` lists the stored files that
    only the chunks read, deleted when the job ends.
    """

    plan: list[tuple[int, int]]
    result: dict[str, Any]
    stage: str
    handover: list[str] = field(default_factory=list)


Outcome = Finished | Failed | FanOut
Work = Callable[[Job, Progress, list[str]], Outcome]
ChunkWork = Callable[[Job, JobChunk], str]
Merge = Callable[[Job, list[JobChunk], list[str]], Finished | Failed]


def job_run(*, job_id: int, work: Work) -> None:
    """Claim a job, run ``work`` under a lease, and end it, or fan it out (a duplicate delivery is a no-op)."""
    job = job_claim(job_id=job_id)
    if job is None:
        logger.info("job %s was not claimable (a duplicate delivery, cancelled or ended); skipping", job_id)
        return

    def progress(stage: str, percent: int) -> None:
        job_progress(job_id=job_id, stage=stage, percent=percent)

    stored = _AttemptFiles(job_id)
    if job.kind == getattr(settings, "JOBS_TEST_CRASH_KIND", ""):
        # A test hook (tests/settings.py only): the pool process dies as a crash in native code would.
        os._exit(70)
    try:
        _discard_previous_attempt(job)
        with LeaseKeeper(job_id):
            outcome = work(job, progress, stored)
        if isinstance(outcome, FanOut):
            _fan_out(job_id, outcome, stored)
        else:
            _end(job_id, outcome, result_base={})
    except Exception as exc:  # noqa: BLE001 - any failure of the work ends the job failed, with its error
        delete_quietly(stored)
        stored.forget()
        _log_and_fail(job_id, exc)


class _AttemptFiles(list):
    """The files an attempt stored, each also recorded on its running job as soon as it is stored.

    A process killed between storing a file and the finishing transaction cannot delete it; the
    record lets the next attempt do so (``_discard_previous_attempt``). The job's result is
    replaced when it finishes or fans out, which drops the record.
    """

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id

    def append(self, path: str) -> None:
        super().append(path)
        result = Job.objects.values_list("result", flat=True).get(id=self.job_id) or {}
        Job.objects.filter(id=self.job_id, status=JobStatus.RUNNING).update(
            result={**result, ATTEMPT_FILES_KEY: list(self)})

    def forget(self) -> None:
        """Drop the record once the files are deleted (the job's result must not name deleted files)."""
        if self:
            result = Job.objects.values_list("result", flat=True).get(id=self.job_id) or {}
            Job.objects.filter(id=self.job_id).update(
                result={k: v for k, v in result.items() if k != ATTEMPT_FILES_KEY})


def chunk_run(*, chunk_id: int, work: ChunkWork, merge: Merge) -> None:
    """Run one chunk of a fanned-out job; the task that finishes the last one merges (a duplicate is a no-op)."""
    claimed = JobChunk.objects.filter(id=chunk_id, status=JobChunk.Status.QUEUED, job__status=JobStatus.RUNNING
                                      ).update(status=JobChunk.Status.RUNNING)
    if not claimed:
        return
    chunk = JobChunk.objects.select_related("job__model_version__registered_model", "job__dataset_version",
                                            "job__registered_model").get(id=chunk_id)
    job = chunk.job
    try:
        with LeaseKeeper(job.pk):
            started = time.perf_counter()
            path = work(job, chunk)
        JobChunk.objects.filter(id=chunk_id).update(status=JobChunk.Status.DONE, path=path,
                                                    seconds=time.perf_counter() - started)
        if chunk_finished(job_id=job.pk):
            _merge(job.pk, merge)
    except Exception as exc:  # noqa: BLE001 - the whole job fails with this chunk's error
        fanned_out_job_fail(job_id=job.pk, exc=exc)


def chunk_finished(*, job_id: int) -> bool:
    """Count a chunk done in its job's progress; return True if the caller must merge.

    Progress is written only while the job is still in its fan-out stage (``job_progress``'s
    ``from_stage``), so exactly one caller moves it to "merging" once every chunk is done, and
    a chunk that counts late never moves a merging job back (which would let it merge too).
    A chunk of a job already merged has nothing to do; of a job that failed, JobLost; of a
    job whose cancellation was requested, JobCancelled.
    """
    # A job that has ended no longer records its fan-out: no stage matches, and it is handled below.
    stage = ((Job.objects.values_list("result", flat=True).get(id=job_id) or {}).get(FAN_OUT_KEY) or {}).get("stage", "")
    counts = JobChunk.objects.filter(job_id=job_id).aggregate(
        total=Count("id"), done=Count("id", filter=Q(status=JobChunk.Status.DONE)))
    last = counts["done"] == counts["total"]
    try:
        moved = job_progress(job_id=job_id, stage="merging" if last else stage,
                             percent=90 if last else 5 + 85 * counts["done"] // counts["total"], from_stage=stage)
    except JobLost:
        if Job.objects.filter(id=job_id, status=JobStatus.SUCCEEDED).exists():
            return False  # merged already, this chunk's file included
        raise
    return last and moved


def fanned_out_job_fail(*, job_id: int, exc: Exception) -> None:
    """End a fanned-out job failed (or cancelled) with ``exc`` and delete every file it stored.

    A job that succeeded owns its files: a task that fails after that (a late duplicate)
    deletes nothing.
    """
    if Job.objects.filter(id=job_id, status=JobStatus.SUCCEEDED).exists():
        logger.warning("job %s succeeded before this task failed (%s); its files are kept", job_id, exc)
        return
    job = Job.objects.get(id=job_id)
    delete_quietly(_job_files(job) + _chunk_files(job_id))
    _log_and_fail(job_id, exc)


def _log_and_fail(job_id: int, exc: Exception) -> None:
    if isinstance(exc, JobLost):
        logger.warning("job %s was taken from this worker; its work was discarded", job_id)
        return
    if not isinstance(exc, JobCancelled):
        logger.error("job %s failed: %s: %s", job_id, type(exc).__name__, exc, exc_info=exc)
    error = "cancelled on request" if isinstance(exc, JobCancelled) else f"{type(exc).__name__}: {exc}"
    job_fail(job_id=job_id, error=error, cancelled=isinstance(exc, JobCancelled))


def _fan_out(job_id: int, outcome: FanOut, stored: list[str]) -> None:
    """Record the chunks and what they read, then send one task per chunk, in one transaction."""
    result = {**outcome.result, "chunks": len(outcome.plan),
              FAN_OUT_KEY: {"stage": outcome.stage, "files": list(stored), "handover": list(outcome.handover)}}
    with transaction.atomic():
        if not Job.objects.filter(id=job_id, status=JobStatus.RUNNING, cancel_requested=False).update(
                progress_stage=outcome.stage, progress_percent=5, heartbeat_at=timezone.now(), result=result):
            current = Job.objects.get(id=job_id)
            if current.status == JobStatus.RUNNING:
                raise JobCancelled()
            raise JobLost(f"job {job_id} is {current.status}, no longer running here")
        JobChunk.objects.bulk_create([JobChunk(job_id=job_id, index=i, start=a, stop=b)
                                      for i, (a, b) in enumerate(outcome.plan)])
        for chunk_id in JobChunk.objects.filter(job_id=job_id).order_by("index").values_list("pk", flat=True):
            send_on_commit(RUN_JOB_CHUNK, chunk_id=chunk_id)


def _merge(job_id: int, merge: Merge) -> None:
    job = Job.objects.select_related("model_version__registered_model", "dataset_version", "registered_model"
                                     ).get(id=job_id)
    chunks = list(JobChunk.objects.filter(job_id=job_id).order_by("index"))
    stored: list[str] = []
    fan_out = job.result[FAN_OUT_KEY]
    try:
        outcome = merge(job, chunks, stored)
        # The result keeps what outlives the job, not the hand-over files deleted below.
        base = {k: v for k, v in job.result.items() if k != FAN_OUT_KEY and v not in fan_out["handover"]}
        _end(job_id, outcome, result_base=base)
    except BaseException:
        delete_quietly(stored)
        raise
    delete_quietly([c.path for c in chunks if c.path] + fan_out["handover"])


def _end(job_id: int, outcome: Finished | Failed, *, result_base: dict[str, Any]) -> None:
    if isinstance(outcome, Finished):
        job_finish(job_id=job_id, result={**result_base, **outcome.result}, on_success=outcome.write)
    elif not job_fail(job_id=job_id, error=outcome.error, on_failure=outcome.write):
        raise JobLost(f"job {job_id} ended while its failure was recorded")


def _job_files(job: Job) -> list[str]:
    """Return every file a fanned-out job's coordinator, or an unfinished attempt, stored."""
    result = job.result or {}
    return list((result.get(FAN_OUT_KEY) or {}).get("files", [])) + list(result.get(ATTEMPT_FILES_KEY, []))


def _chunk_files(job_id: int) -> list[str]:
    return list(JobChunk.objects.filter(job_id=job_id).exclude(path="").values_list("path", flat=True))


def _discard_previous_attempt(job: Job) -> None:
    """Remove what an earlier attempt of this job left (its worker died and the reaper requeued it)."""
    if job.attempts > 1:
        delete_quietly(_job_files(job) + _chunk_files(job.pk))
        JobChunk.objects.filter(job=job).delete()
        Job.objects.filter(id=job.pk, status=JobStatus.RUNNING).update(result={})

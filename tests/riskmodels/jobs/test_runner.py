"""The job runner on a kind of its own: fan-out, chunks in any order, merge by the last, failure and cancel.

These tests drive ``job_run``/``chunk_run`` with small work functions, so they say what any
new kind (batch scoring, monitoring runs, documentation packs) can rely on, apart from SHAP.
"""

from __future__ import annotations

import os

import pytest
from django.core.files.storage import default_storage

from governance.audit import audit_record, audit_verify
from governance.models import AuditEvent
from riskmodels.jobs import Failed, FanOut, Finished, chunk_run, job_run
from riskmodels.models import Job, JobChunk, JobKind, JobStatus
from riskmodels.storage import save_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(developer, german_credit_version):  # noqa: ANN001,ANN201
    return Job.objects.create(kind=JobKind.EXPLAIN, dataset_version=german_credit_version, params={},
                              requested_by=developer, requested_by_username=developer.username)


def _fan_out_work(job, progress, stored):  # noqa: ANN001,ANN202
    progress("planning", 2)
    stored.append(save_bytes(f"runner-test/job-{job.pk}/kept.bin", b"the plan"))
    stored.append(save_bytes(f"runner-test/job-{job.pk}/staged.bin", b"rows for the chunks"))
    return FanOut(plan=[(0, 10), (10, 20), (20, 25)], stage="testing", handover=[stored[1]],
                  result={"kept_path": stored[0], "staged_path": stored[1]})


def _chunk_work(job, chunk):  # noqa: ANN001,ANN202
    return save_bytes(f"runner-test/job-{job.pk}/chunk-{chunk.index}.bin", str(chunk.stop - chunk.start).encode())


def _sum_merge(job, chunks, stored):  # noqa: ANN001,ANN202
    total = sum(int(default_storage.open(c.path).read()) for c in chunks)
    stored.append(save_bytes(f"runner-test/job-{job.pk}/merged.bin", str(total).encode()))
    return Finished({"total": total, "merged_path": stored[0]})


def _files(job: Job) -> list[str]:
    folder = f"runner-test/job-{job.pk}"
    return sorted(default_storage.listdir(folder)[1]) if default_storage.exists(folder) else []


def _run_chunks(job: Job, *, merge=_sum_merge, order=reversed) -> None:  # noqa: ANN001
    for chunk_id in order(list(JobChunk.objects.filter(job=job).order_by("index").values_list("pk", flat=True))):
        chunk_run(chunk_id=chunk_id, work=_chunk_work, merge=merge)


def test_a_fanned_out_job_runs_its_chunks_in_any_order_and_the_last_one_merges(job):  # noqa: ANN001
    job_run(job_id=job.pk, work=_fan_out_work)
    job.refresh_from_db()
    assert (job.status, job.progress_stage, job.result["chunks"]) == (JobStatus.RUNNING, "testing", 3)
    assert JobChunk.objects.filter(job=job, status=JobChunk.Status.QUEUED).count() == 3
    _run_chunks(job)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["total"] == 25
    # What outlives the job stays and is named; the hand-over and the chunks' files are gone.
    assert _files(job) == ["kept.bin", "merged.bin"]
    assert "staged_path" not in job.result and "fan_out" not in job.result
    assert job.result["kept_path"].endswith("kept.bin")
    assert audit_verify().ok


def test_a_second_delivery_of_every_chunk_and_of_the_job_is_a_no_op(job):  # noqa: ANN001
    job_run(job_id=job.pk, work=_fan_out_work)
    _run_chunks(job)
    events, result = AuditEvent.objects.count(), Job.objects.get(pk=job.pk).result
    job_run(job_id=job.pk, work=_fan_out_work)
    _run_chunks(job)
    assert AuditEvent.objects.count() == events and Job.objects.get(pk=job.pk).result == result
    assert _files(job) == ["kept.bin", "merged.bin"]


def test_a_failing_chunk_fails_the_job_with_its_error_and_leaves_no_file(job):  # noqa: ANN001
    job_run(job_id=job.pk, work=_fan_out_work)
    first, *rest = JobChunk.objects.filter(job=job).order_by("index")
    chunk_run(chunk_id=first.pk, work=_chunk_work, merge=_sum_merge)

    def broken(job, chunk):  # noqa: ANN001,ANN202
        raise ValueError("the model could not read chunk 1")

    chunk_run(chunk_id=rest[0].pk, work=broken, merge=_sum_merge)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "ValueError: the model could not read chunk 1"
    assert _files(job) == []
    chunk_run(chunk_id=rest[1].pk, work=_chunk_work, merge=_sum_merge)  # a chunk still queued: nothing to do
    assert _files(job) == [] and Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    assert AuditEvent.objects.filter(action="explain_job.failed", target_id=str(job.pk)).count() == 1


def test_a_merge_that_fails_keeps_the_rows_it_records_for_diagnosis(job):  # noqa: ANN001
    def failing_merge(job, chunks, stored):  # noqa: ANN001,ANN202
        stored.append(save_bytes(f"runner-test/job-{job.pk}/diagnosis.bin", b"what went wrong"))

        def write(ended):  # noqa: ANN001,ANN202
            audit_record(actor=None, actor_label="system:worker", action="test.diagnosis_kept", target=ended,
                         after={"path": stored[0]})
        return Failed("the check failed", write)

    job_run(job_id=job.pk, work=_fan_out_work)
    _run_chunks(job, merge=failing_merge)
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "the check failed")
    assert AuditEvent.objects.filter(action="test.diagnosis_kept").count() == 1
    assert _files(job) == ["diagnosis.bin", "kept.bin"]  # what failed() recorded points at them


def test_a_cancel_requested_while_chunks_run_stops_the_job_and_removes_its_files(job, developer):  # noqa: ANN001
    from riskmodels.jobs import job_cancel

    job_run(job_id=job.pk, work=_fan_out_work)
    job_cancel(actor=developer, job=job)
    _run_chunks(job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and _files(job) == []


def test_a_job_whose_work_fails_before_fanning_out_leaves_nothing(job):  # noqa: ANN001
    def failing(job, progress, stored):  # noqa: ANN001,ANN202
        stored.append(save_bytes(f"runner-test/job-{job.pk}/half.bin", b"half"))
        raise RuntimeError("the dataset could not be read")

    job_run(job_id=job.pk, work=failing)
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "RuntimeError: the dataset could not be read")
    assert _files(job) == [] and not JobChunk.objects.filter(job=job).exists()


def test_the_retry_of_an_attempt_killed_after_storing_a_file_deletes_that_file(job):  # noqa: ANN001
    from riskmodels.jobs.state import job_attempt_lost

    class Killed(BaseException):
        """Stands for the process dying: nothing in the runner catches it."""

    def stores_then_dies(job, progress, stored):  # noqa: ANN001,ANN202
        stored.append(save_bytes(f"runner-test/job-{job.pk}/artifact.bin", b"never recorded"))
        raise Killed()

    with pytest.raises(Killed):
        job_run(job_id=job.pk, work=stores_then_dies)
    assert _files(job) == ["artifact.bin"]
    # The worker's main process saw its pool process die and released the job.
    assert job_attempt_lost(job_id=job.pk, worker_pid=os.getpid(), reason="the worker process died",
                            redelivered=True) == "requeued"

    def succeeds(job, progress, stored):  # noqa: ANN001,ANN202
        stored.append(save_bytes(f"runner-test/job-{job.pk}/result.bin", b"recorded"))
        return Finished({"path": stored[0]})

    job_run(job_id=job.pk, work=succeeds)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)
    assert _files(job) == ["result.bin"] and "attempt_files" not in job.result


def test_a_lost_pool_process_releases_only_the_job_it_holds(job):  # noqa: ANN001
    from riskmodels.jobs.state import job_attempt_lost, job_claim

    job_claim(job_id=job.pk)
    assert job_attempt_lost(job_id=job.pk, worker_pid=os.getpid() + 1, reason="another process died",
                            redelivered=True) is None
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    assert job_attempt_lost(job_id=job.pk, worker_pid=os.getpid(), reason="the worker process died",
                            redelivered=True) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "the worker process died; no attempts left")
    assert AuditEvent.objects.filter(action="explain_job.failed", target_id=str(job.pk)).count() == 1


def test_a_failed_job_names_none_of_the_files_it_deleted(job):  # noqa: ANN001
    def failing(job, progress, stored):  # noqa: ANN001,ANN202
        stored.append(save_bytes(f"runner-test/job-{job.pk}/half.bin", b"half"))
        raise RuntimeError("the fit diverged")

    job_run(job_id=job.pk, work=failing)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and _files(job) == [] and "attempt_files" not in job.result

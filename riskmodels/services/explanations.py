"""SHAP explanations: global reports computed in parallel chunks, and local explanations with reason codes.

A global report is an ``explain`` job. Its coordinator (one worker task) selects the rows,
fixes the background sample, copies the rows to explain into an Arrow file holding one record
batch per chunk (one pass over the dataset, a batch of rows at a time), and writes one
ExplanationChunk row per slice. It handles the rows a chunk at a time too: a report of every
row of a dataset holds no per-row index (see ``_stage_rows``), so no task's memory grows with
the report's length. Each chunk is a Celery task of its own (a group), claimed with
a conditional UPDATE, reading only its own record batch, so a worker's memory does not grow
with the report. The task that finishes the last chunk wins a conditional UPDATE on the job
and merges: a chord without a result backend, whose state lives in the database like every
other job.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.ml.explain import (
    ChunkResult,
    ExplainOptions,
    ExplanationError,
    FeatureImportance,
    GlobalReport,
    MergedReport,
    RowSelection,
    check_budget,
    chunk_rows_for,
    estimate_cost,
    explain_chunk,
    explain_local,
    make_explainer,
    merge_chunks_to_parquet,
    needs_background,
    plan_chunks,
    select_background,
    select_rows,
)
from riskmodels.ml.explain_plots import render_report_plots, render_waterfall, thinned_rows
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.ml.rowgroups import open_parquet, take_blocks, take_rows
from riskmodels.ml.training import split
from riskmodels.models import (
    DatasetVersion,
    ExplanationChunk,
    ExplanationPlot,
    ExplanationReport,
    Job,
    JobKind,
    JobStatus,
    ModelVersion,
    ReasonText,
)
from riskmodels.services.jobs import (
    JobCancelled,
    JobLost,
    LeaseKeeper,
    job_claim,
    job_dispatch,
    job_fail,
    job_progress,
)
from riskmodels.services.storage import read_verified, save_bytes, save_stream, verified_in_background

logger = logging.getLogger(__name__)
WORKER = "system:worker"
# Rows a report's plots draw (evenly spaced when there are more): more points only overplot,
# and the plots task would otherwise hold the whole report and its rows' features.
PLOT_MAX_ROWS = 20_000


# --- reading stored data -------------------------------------------------------------------

def _read_rows(version: DatasetVersion, rows: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """Read only ``rows`` (sorted dataset row numbers), a batch at a time; index = row numbers."""
    with default_storage.open(version.storage_path, "rb") as handle:
        try:
            table = take_rows(open_parquet(handle), rows, columns)
        except IndexError:
            raise ExplanationError(f"rows outside the dataset's {version.n_rows} rows were asked for") from None
    frame = table.to_pandas()
    frame.index = pd.Index(rows, name="row_id")
    return frame


class _ProcessCache:
    """Keep a few values per process, oldest dropped first, keyed by the immutable content they derive from."""

    def __init__(self, size: int) -> None:
        self.size, self.entries = size, dict[Any, Any]()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self.entries:
            value = compute()
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = value
        return self.entries[key]


_PIPELINES = _ProcessCache(4)
_BACKGROUNDS = _ProcessCache(8)
# Tree explainers of recent models: building one (HGB's tables) costs ~20 ms, paid once per
# process instead of once per chunk. They hold no state between calls and use no background.
_TREE_EXPLAINERS = _ProcessCache(4)


def _load_pipeline(version: ModelVersion) -> Any:
    """Load a version's artifact (hash-checked), kept per process: every chunk task needs it.

    Keyed by the verified SHA-256 of immutable content, so a cached model is the same model;
    a few entries only, so a worker's memory stays bounded.
    """
    return _PIPELINES.get(version.artifact_sha256, lambda: load_artifact(
        read_verified(version.artifact_path, version.artifact_sha256), expected_sha256=version.artifact_sha256))


def _training_background(version: ModelVersion, options: ExplainOptions) -> pd.DataFrame:
    """Return a version's background sample of training rows, kept per process (a copy each time).

    Local explanations need it on every request; finding it means reading the target column for
    the split and every row group of the training data. Keyed by the dataset's hash and the
    spec that fixes the split, both immutable.
    """
    def compute() -> pd.DataFrame:
        _, train_rows = _source_rows(version, "test_split")
        return _background(version, train_rows, options)

    key = (version.dataset_version.sha256, json.dumps(version.spec, sort_keys=True), options.background_size,
           options.seed)
    return _BACKGROUNDS.get(key, compute).copy()


def _source_rows(version: ModelVersion, scope: str, *, train: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (rows to explain from, training rows for the background) as dataset row numbers.

    The rows to explain from are None for a whole dataset version (its rows ``0 .. n - 1``,
    not held). With ``train=False`` (no background needed) a report on a whole dataset version
    does not read the training data at all; the training rows come back empty.
    """
    spec = TrainingSpec.from_dict(version.spec)
    if scope != "test_split" and not train:
        return None, np.empty(0, dtype=np.int64)
    needed = [spec.target] + ([spec.date_column] if spec.date_column else [])
    with default_storage.open(version.dataset_version.storage_path, "rb") as handle:
        narrow = pq.read_table(handle, columns=needed).to_pandas()
    train_idx, test_idx = split(narrow, spec)
    if scope == "test_split":
        return test_idx.astype(np.int64), train_idx.astype(np.int64)
    return None, train_idx.astype(np.int64)


def _background_rows(train_rows: np.ndarray, options: ExplainOptions) -> np.ndarray:
    """Return the (sorted) dataset row numbers of the seeded background sample."""
    chosen = select_background(pd.DataFrame(index=train_rows), size=options.background_size, seed=options.seed).index
    return np.asarray(chosen, dtype=np.int64)


def _background(version: ModelVersion, train_rows: np.ndarray, options: ExplainOptions) -> pd.DataFrame:
    spec = TrainingSpec.from_dict(version.spec)
    return _read_rows(version.dataset_version, _background_rows(train_rows, options), list(spec.features))


def _stage_rows(source: DatasetVersion, features: list[str], blocks: Iterable[np.ndarray], path: str) -> str:
    """Copy each block of dataset rows (sorted, in order) into an Arrow file as one record batch.

    One pass over the dataset, a batch of rows at a time, holding one block's rows (a chunk,
    at most EXPLAIN_CHUNK_ROWS), so the coordinator's memory does not grow with the dataset or
    the report; each chunk task then reads its own batch and nothing else.
    """
    def fill(handle: Any) -> None:
        with default_storage.open(source.storage_path, "rb") as data:
            writer: pa.ipc.RecordBatchFileWriter | None = None
            try:
                for table in take_blocks(open_parquet(data), blocks, features):
                    batch = table.combine_chunks().to_batches()[0]
                    if writer is None:
                        writer = pa.ipc.new_file(handle, batch.schema)
                    writer.write_batch(batch)
            except IndexError:
                raise ExplanationError(f"the dataset has {source.n_rows} rows; some of the rows to explain are "
                                       "not in it") from None
            if writer is None:
                raise ExplanationError("there are no rows to explain")
            writer.close()

    return save_stream(path, fill, durable=False)  # a hand-over to the chunk tasks


def _save_plan(path: str, plan: list[tuple[int, int]], positions: Callable[[int, int], np.ndarray],
               rows: Callable[[int, int], np.ndarray]) -> str:
    """Store a report's plan: an ``.npy`` file of shape (2, n), selection positions then dataset rows.

    ``positions(start, stop)`` and ``rows(start, stop)`` give those of selected rows
    ``start:stop``; the file is written a chunk at a time, so the coordinator never holds a
    whole index array of a report of every row.
    """
    def fill(handle: Any) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<i8")), "fortran_order": False,
                  "shape": (2, plan[-1][1])}
        np.lib.format.write_array_header_1_0(handle, header)
        for between in (positions, rows):
            for start, stop in plan:
                handle.write(np.ascontiguousarray(between(start, stop), dtype="<i8").data)

    return save_stream(path, fill)


def _plan_slice(path: str, start: int, stop: int, *, rows: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read (positions, dataset rows) ``start:stop`` of a report's plan (rows.npy), and nothing else.

    The plan holds two int64 rows of the report's length (16 MB at a million rows); a chunk
    task seeks to its own slices instead of loading it, so its memory does not grow with the
    report. ``rows=False`` reads the positions only (the merge checks the chunks against them).
    """
    with default_storage.open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if (len(shape) != 2 or shape[0] != 2 or fortran or dtype != np.dtype("<i8")
                or not 0 <= start <= stop <= shape[1]):
            raise ExplanationError(f"{path} is not this report's plan (shape {shape}, {dtype})")
        header, count, out = handle.tell(), stop - start, []
        for row in range(2 if rows else 1):
            handle.seek(header + (row * shape[1] + start) * 8)
            data = bytearray(count * 8)
            if handle.readinto(data) != len(data):
                raise ExplanationError(f"{path} is shorter than its header says")
            out.append(np.frombuffer(data, dtype=np.int64))
        return out[0], out[1] if rows else None


def _explainer(version: ModelVersion, spec: TrainingSpec, options: ExplainOptions,
               background: Callable[[], pd.DataFrame]) -> Any:
    """Return a version's explainer: a tree model's from this process's cache (it uses no background,
    so none is read), else a new one on ``background()``."""
    if not needs_background(spec.algorithm):
        return _TREE_EXPLAINERS.get((version.artifact_sha256, options.seed),
                                    lambda: make_explainer(_load_pipeline(version), spec, options=options))
    return make_explainer(_load_pipeline(version), spec, background=background(), options=options)


def _job_background(job: Job) -> pd.DataFrame:
    with default_storage.open(job.result["background_path"], "rb") as handle:
        return pq.read_table(handle).to_pandas()


def _chunk_rows(job: Job, chunk: ExplanationChunk, rows: np.ndarray) -> pd.DataFrame:
    """Read a chunk's rows (its record batch of the staged Arrow file); index = dataset row numbers."""
    with default_storage.open(job.result["features_path"], "rb") as handle:
        batch = pa.ipc.open_file(handle).get_batch(chunk.index)
    if batch.num_rows != len(rows):
        raise ExplanationError(f"chunk {chunk.index} holds {batch.num_rows} staged rows, its plan {len(rows)}")
    frame = batch.to_pandas()
    frame.index = pd.Index(rows, name="row_id")
    return frame


# --- requesting a global report -------------------------------------------------------------

def _chunk_rows_for(n_rows: int) -> int:
    return chunk_rows_for(n_rows, max_rows=settings.EXPLAIN_CHUNK_ROWS, parallelism=settings.EXPLAIN_PARALLELISM,
                          min_rows=settings.EXPLAIN_MIN_CHUNK_ROWS)


def explanation_job_create(*, actor: Any, model_version: ModelVersion, dataset_version: DatasetVersion | None = None,
                           max_rows: int | None = None, seed: int = 0) -> Job:
    """Check the request and its estimated cost, then queue a global SHAP report (202).

    By default the version's test split is explained, capped at EXPLAIN_DEFAULT_MAX_ROWS
    rows (a seeded, recorded sample above that). A report the budget cannot afford is
    sampled down, or refused with the reason.
    """
    require(actor, Capability.MODEL_EXPLAIN)
    cap = settings.EXPLAIN_MAX_ROWS
    if max_rows is None:
        max_rows = min(settings.EXPLAIN_DEFAULT_MAX_ROWS, cap)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValidationFailed(f"max_rows must be a positive integer; got {max_rows!r}", code="invalid",
                               details={"field": "max_rows"})
    if max_rows > cap:
        raise ValidationFailed(f"max_rows {max_rows} is over the configured cap of {cap} rows (EXPLAIN_MAX_ROWS)",
                               code="over_row_cap", details={"field": "max_rows"})
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValidationFailed(f"seed must be an integer between 0 and 2**32-1; got {seed!r}", code="invalid",
                               details={"field": "seed"})
    scope = "test_split" if dataset_version is None else "dataset"
    dataset_version = dataset_version or model_version.dataset_version
    missing = [f for f in model_version.spec["features"] if f not in {c["name"] for c in dataset_version.schema}]
    if missing:
        raise ValidationFailed(f"dataset version {dataset_version.pk} lacks features the model needs: "
                               f"{', '.join(missing)}", code="incompatible_dataset", details={"missing": missing})
    available = model_version.split_summary["n_test"] if scope == "test_split" else dataset_version.n_rows
    options = ExplainOptions(max_rows=max_rows, seed=seed, chunk_size=_chunk_rows_for(min(available, max_rows)))
    estimate = estimate_cost(_load_pipeline(model_version), min(available, max_rows), options=options)
    decision = check_budget(estimate, settings.EXPLAIN_BUDGET_SECONDS)
    if not decision.allowed:
        raise ValidationFailed(decision.message, code="over_budget", details={"estimate": estimate})
    if decision.action == "sample":
        options = ExplainOptions(max_rows=decision.rows, seed=seed, chunk_size=_chunk_rows_for(decision.rows))
    with transaction.atomic():
        job = Job.objects.create(
            kind=JobKind.EXPLAIN, registered_model=model_version.registered_model, model_version=model_version,
            dataset_version=dataset_version, requested_by=actor, requested_by_username=actor.username,
            params={"scope": scope, "options": options.to_dict(), "estimate": estimate, "budget": decision.to_dict()},
        )
        audit_record(actor=actor, action="explanation_report.requested", target=job,
                     after={"model_version": model_version.pk, "dataset_version": dataset_version.pk, **job.params})
        job_dispatch(job=job)
    return job


# --- the coordinator, the chunks and the merge ---------------------------------------------

def _fail(job_id: int, exc: BaseException, paths: list[str]) -> None:
    """End a report's job failed (or cancelled) with ``exc`` and delete ``paths``, its hand-over files.

    A report that succeeded owns its files (its plan stays as the record of what was
    explained): a task that fails after that, e.g. a late duplicate, deletes nothing.
    """
    if Job.objects.filter(id=job_id, status=JobStatus.SUCCEEDED).exists():
        logger.warning("job %s succeeded before this task failed (%s); its files are kept", job_id, exc)
        return
    for path in paths:
        default_storage.delete(path)
    with transaction.atomic():
        if Job.objects.filter(id=job_id, status=JobStatus.RUNNING).exists():
            job = Job.objects.get(id=job_id)
            audit_record(actor=None, actor_label=WORKER, action="explanation_report.failed", target=job,
                         after={"error": f"{type(exc).__name__}: {exc}"[:2000]})
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}", cancelled=isinstance(exc, JobCancelled))


def _prefix(job: Job) -> str:
    return f"explanations/{job.registered_model.name}/v{job.model_version.version}/job-{job.pk}"


def _job_files(job: Job) -> list[str]:
    """Return the files the coordinator stored for this job (the plan, staged rows and background)."""
    return [p for p in (job.result or {}).values() if isinstance(p, str) and p.startswith("explanations/")]


def _discard_previous_attempt(job: Job) -> None:
    """Remove what an earlier attempt of this job left (its worker died and it was requeued)."""
    previous = _job_files(job)
    previous += list(ExplanationChunk.objects.filter(job=job).exclude(path="").values_list("path", flat=True))
    for path in previous:
        default_storage.delete(path)
    ExplanationChunk.objects.filter(job=job).delete()


def explanation_job_run(*, job_id: int) -> None:
    """Coordinate a report: select rows, store the plan and background, and fan the chunks out."""
    from riskmodels.tasks import run_explanation_chunk

    job = job_claim(job_id=job_id)
    if job is None:
        return
    stored: list[str] = []
    try:
        _discard_previous_attempt(job)
        with LeaseKeeper(job_id):
            version = job.model_version
            options = ExplainOptions(**job.params["options"])
            job_progress(job_id=job_id, stage="selecting rows", percent=2)
            spec = TrainingSpec.from_dict(version.spec)
            # Path-dependent TreeSHAP uses no background: tree reports neither pick nor store one.
            with_background = needs_background(spec.algorithm)
            with verified_in_background(job.dataset_version.storage_path, job.dataset_version.sha256):
                source, train_rows = _source_rows(version, job.params["scope"], train=with_background)
                selection = select_rows(job.dataset_version.n_rows if source is None else len(source),
                                        max_rows=options.max_rows, seed=options.seed)
                plan = plan_chunks(selection.n_selected, options.chunk_size)

                def rows_between(start: int, stop: int) -> np.ndarray:
                    """The dataset rows of selected rows start:stop."""
                    positions = selection.positions_between(start, stop)
                    return positions if source is None else source[positions]

                stored.append(_stage_rows(job.dataset_version, list(spec.features),
                                          (rows_between(a, b) for a, b in plan), f"{_prefix(job)}/rows.arrow"))
                if with_background:  # from the training rows (tree reports use none)
                    background = _background(version, train_rows, options)
            stored.append(_save_plan(f"{_prefix(job)}/rows.npy", plan, selection.positions_between, rows_between))
            if with_background:
                sink = io.BytesIO()
                pq.write_table(pa.Table.from_pandas(background, preserve_index=True), sink)
                stored.append(save_bytes(f"{_prefix(job)}/background.parquet", sink.getvalue()))
        with transaction.atomic():
            updated = Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(
                progress_stage="explaining", progress_percent=5, heartbeat_at=timezone.now(),
                result={"features_path": stored[0], "rows_path": stored[1],
                        "background_path": stored[2] if with_background else None,
                        "selection": selection.to_dict(positions=False)
                        if selection.method == "all" else {**selection.to_dict(positions=False),
                                                           "positions": "stored in rows.npy"},
                        "chunks": len(plan)})
            if not updated:
                raise JobCancelled()
            ExplanationChunk.objects.bulk_create(
                [ExplanationChunk(job_id=job_id, index=i, start=a, stop=b) for i, (a, b) in enumerate(plan)])
            chunk_ids = list(ExplanationChunk.objects.filter(job_id=job_id).order_by("index").values_list("pk", flat=True))
            transaction.on_commit(lambda: [run_explanation_chunk.delay(chunk_id=c) for c in chunk_ids])
    except Exception as exc:  # noqa: BLE001 - the job ends failed with the error, and its files go
        logger.exception("explanation job %s failed while planning", job_id)
        _fail(job_id, exc, stored)


def explanation_chunk_run(*, chunk_id: int) -> None:
    """Explain one chunk; if it was the last, merge the report (a duplicate delivery is a no-op)."""
    claimed = ExplanationChunk.objects.filter(id=chunk_id, status=ExplanationChunk.Status.QUEUED,
                                              job__status=JobStatus.RUNNING).update(status=ExplanationChunk.Status.RUNNING)
    if not claimed:
        return
    chunk = ExplanationChunk.objects.select_related("job__model_version__registered_model", "job__dataset_version").get(
        id=chunk_id)
    job = chunk.job
    try:
        with LeaseKeeper(job.pk):
            started = time.perf_counter()
            version = job.model_version
            spec = TrainingSpec.from_dict(version.spec)
            options = ExplainOptions(**job.params["options"])
            positions, rows = _plan_slice(job.result["rows_path"], chunk.start, chunk.stop)
            explainer = _explainer(version, spec, options, lambda: _job_background(job))
            frame = _chunk_rows(job, chunk, rows)
            result = explain_chunk(explainer, frame, start=chunk.start, positions=positions, row_ids=rows)
            path = save_bytes(f"{_prefix(job)}/chunk-{chunk.index:05d}.parquet", result.to_parquet_bytes(),
                              durable=False)  # a hand-over to the merge
        ExplanationChunk.objects.filter(id=chunk_id).update(status=ExplanationChunk.Status.DONE, path=path,
                                                            seconds=time.perf_counter() - started)
        if _chunk_finished(job.pk):
            _merge(job.pk)
    except Exception as exc:  # noqa: BLE001 - the whole report fails with this chunk's error
        logger.exception("explanation chunk %s of job %s failed", chunk_id, job.pk)
        paths = list(ExplanationChunk.objects.filter(job_id=job.pk).exclude(path="").values_list("path", flat=True))
        _fail(job.pk, exc, paths + _job_files(job))


def _chunk_finished(job_id: int) -> bool:
    """Count a chunk done in its job's progress; return True if the caller must merge the report.

    Progress is written only while the job is still "explaining" (``job_progress``'s
    ``from_stage``), so exactly one caller moves it to "merging" once every chunk is done, and a
    chunk that counts late never moves a merging job back (which would let it merge as well).
    A chunk of a report already merged has nothing to do; of a job that failed, JobLost removes
    its file; of a job whose cancellation was requested, JobCancelled.
    """
    counts = ExplanationChunk.objects.filter(job_id=job_id).aggregate(
        total=Count("id"), done=Count("id", filter=Q(status=ExplanationChunk.Status.DONE)))
    last = counts["done"] == counts["total"]
    try:
        moved = job_progress(job_id=job_id, stage="merging" if last else "explaining",
                             percent=90 if last else 5 + 85 * counts["done"] // counts["total"],
                             from_stage="explaining")
    except JobLost:
        if Job.objects.filter(id=job_id, status=JobStatus.SUCCEEDED).exists():
            return False  # merged already, this chunk's file included
        raise
    return last and moved


class _Hashing:
    """A write-only file that hashes what passes through it (the values file's SHA-256)."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.position = handle, hashlib.sha256(), 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.position += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        self.handle.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True  # the handle belongs to save_stream


def _merge(job_id: int) -> None:
    job = Job.objects.select_related("model_version__registered_model", "dataset_version").get(id=job_id)
    chunks = list(ExplanationChunk.objects.filter(job_id=job_id).order_by("index"))
    recorded = job.result["selection"]
    # Every row: positions 0..n-1, not held. A sample: its positions, read from the plan (8 bytes a row).
    positions = (None if recorded["method"] == "all"
                 else _plan_slice(job.result["rows_path"], 0, chunks[-1].stop, rows=False)[0])
    selection = RowSelection(positions, recorded["n_available"], recorded["method"], recorded["seed"])
    merged: list[MergedReport] = []
    digests: list[str] = []

    def fill(handle: Any) -> None:
        # One chunk file at a time: the merging worker's memory does not grow with the report.
        sink = _Hashing(handle)
        merged.append(merge_chunks_to_parquet(
            (ChunkResult.from_parquet_bytes(default_storage.open(c.path, "rb").read()) for c in chunks),
            selection=selection, sink=sink))
        digests.append(sink.digest.hexdigest())

    stored = [save_stream(f"{_prefix(job)}/values.parquet", fill)]
    report = merged[0]
    try:
        _store_report(job, report, selection, stored[0], digests[0])
    except BaseException:
        default_storage.delete(stored[0])  # no report row points at it
        raise
    # The chunk files and the staged rows were only the hand-over between workers; the plan
    # (rows.npy) and the background stay with the report, as its record of what was explained.
    for chunk in chunks:
        default_storage.delete(chunk.path)
    default_storage.delete(job.result["features_path"])


def _store_report(job: Job, report: MergedReport, selection: RowSelection, values_path: str,
                  values_sha256: str) -> None:
    """Write the report row and end its job, succeeded or (additivity) failed, with the audit event."""
    job_id = job.pk
    with transaction.atomic():
        record = ExplanationReport.objects.create(
            model_version=job.model_version, dataset_version=job.dataset_version, scope=job.params["scope"],
            status=ExplanationReport.Status.OK if report.ok else ExplanationReport.Status.FAILED,
            message=report.message, fingerprint=report.fingerprint.to_dict(),
            selection=selection.to_dict(positions=False),
            importance=[item.to_dict() for item in report.importance()],
            additivity_error=report.additivity_error if np.isfinite(report.additivity_error) else None,
            base_value=report.base_value, n_rows=report.n_rows, values_path=values_path,
            values_sha256=values_sha256, job=job,
        )
        summary = {"report": record.pk, "status": record.status, "n_rows": record.n_rows,
                   "additivity_error": record.additivity_error, "top_features": [i["feature"] for i in record.importance[:5]]}
        if report.ok:
            if not Job.objects.filter(id=job_id, status=JobStatus.RUNNING).update(
                    status=JobStatus.SUCCEEDED, progress_stage="done", progress_percent=100,
                    finished_at=timezone.now(), result={**job.result, **summary}):
                raise JobLost(f"job {job_id} ended while its report was merged; the report is discarded")
            audit_record(actor=None, actor_label=WORKER, action="explanation_report.finished", target=record,
                         after={**summary, "fingerprint": record.fingerprint})
            from riskmodels.tasks import render_explanation_plots

            report_id = record.pk
            transaction.on_commit(lambda: render_explanation_plots.delay(report_id=report_id))
        else:
            audit_record(actor=None, actor_label=WORKER, action="explanation_report.failed", target=record,
                         after={**summary, "message": record.message})
            job_fail(job_id=job_id, error=f"additivity check failed: {report.message}")


def explanation_plots_render(*, report_id: int) -> None:
    """Render a passing report's plots from its stored values (a second delivery is a no-op)."""
    report = ExplanationReport.objects.select_related("model_version__registered_model", "job").get(pk=report_id)
    if report.status != ExplanationReport.Status.OK or ExplanationPlot.objects.filter(report=report).exists():
        return
    # An evenly spaced sample of at most PLOT_MAX_ROWS rows, read a row group at a time while
    # the whole file's hash is checked beside it; the bar plot uses the whole report's ranking.
    keep = thinned_rows(report.n_rows, PLOT_MAX_ROWS).astype(np.int64)
    with verified_in_background(report.values_path, report.values_sha256), \
            default_storage.open(report.values_path, "rb") as handle:
        stored = GlobalReport.from_parquet(handle, rows=keep)
    rows = np.asarray(stored.row_ids, dtype=np.int64)
    ranking = [FeatureImportance(i["feature"], i["mean_abs"], i["mean"], i["rank"]) for i in report.importance]
    feature_values = _read_rows(report.dataset_version, np.sort(rows), list(stored.features)).loc[rows]
    paths: dict[str, str] = {}
    try:
        for name, png in render_report_plots(stored, feature_values, dependence_features=[r.feature for r in ranking[:3]],
                                             ranking=ranking, total_rows=report.n_rows).items():
            paths[name] = save_bytes(f"{_prefix(report.job)}/{name.replace(':', '-')}.png", png)
        with transaction.atomic():
            ExplanationPlot.objects.bulk_create([ExplanationPlot(report=report, name=n, path=p) for n, p in paths.items()])
            audit_record(actor=None, actor_label=WORKER, action="explanation_report.plots_rendered", target=report,
                         after={"plots": sorted(paths)})
    except Exception:
        # A concurrent duplicate won, or rendering failed: leave no orphan files behind.
        for path in paths.values():
            default_storage.delete(path)
        raise


# --- local explanations ----------------------------------------------------------------------

def _check_rows(rows: Any, spec: TrainingSpec) -> pd.DataFrame:
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed("rows must be a non-empty list of objects (one per applicant)", code="empty_rows",
                               details={"field": "rows"})
    cap = settings.EXPLAIN_LOCAL_MAX_ROWS
    if len(rows) > cap:
        raise ValidationFailed(f"{len(rows)} rows requested; at most {cap} per request (EXPLAIN_LOCAL_MAX_ROWS)",
                               code="over_row_cap", details={"field": "rows"})
    categorical = set(spec.categorical)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationFailed(f"rows[{i}] must be an object of feature values", code="invalid_row")
        missing = [f for f in spec.features if f not in row]
        if missing:
            raise ValidationFailed(f"rows[{i}] lacks features the model needs: {', '.join(missing)}",
                                   code="missing_feature", details={"row": i, "missing": missing})
        for feature in spec.features:
            value = row[feature]
            if value is None:
                continue
            if feature in categorical and not isinstance(value, str | bool):
                raise ValidationFailed(f"rows[{i}].{feature} must be a string category; got {value!r}",
                                       code="wrong_type", details={"row": i, "feature": feature})
            if feature not in categorical and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValidationFailed(f"rows[{i}].{feature} must be a number; got {value!r}", code="wrong_type",
                                       details={"row": i, "feature": feature})
    return pd.DataFrame([{f: row[f] for f in spec.features} for row in rows])


def explanation_local(*, actor: Any, model_version: ModelVersion, rows: list[dict[str, Any]] | None = None,
                      dataset_version: DatasetVersion | None = None, row_ids: list[int] | None = None,
                      with_plots: bool = False) -> dict[str, Any]:
    """Explain given applicants: contributions, base value, output and up to four reason codes each.

    Rows come either as feature values (``rows``) or as row numbers of a dataset version.
    Protected attributes never appear among the reasons. Each explanation is audited:
    reason codes may be sent to an applicant, so what was said must be traceable.
    """
    require(actor, Capability.MODEL_EXPLAIN)
    spec = TrainingSpec.from_dict(model_version.spec)
    if (rows is None) == (row_ids is None):
        raise ValidationFailed("give either rows (feature values) or row_ids (with dataset_version)", code="invalid")
    if row_ids is not None:
        source = dataset_version or model_version.dataset_version
        if not isinstance(row_ids, list) or not row_ids:
            raise ValidationFailed("row_ids must be a non-empty list of row numbers", code="empty_rows")
        if len(row_ids) > settings.EXPLAIN_LOCAL_MAX_ROWS:
            raise ValidationFailed(f"{len(row_ids)} rows requested; at most {settings.EXPLAIN_LOCAL_MAX_ROWS} per "
                                   "request (EXPLAIN_LOCAL_MAX_ROWS)", code="over_row_cap")
        bad = [r for r in row_ids if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < source.n_rows]
        if bad:
            raise ValidationFailed(f"row ids out of range 0..{source.n_rows - 1}: {bad[:5]}", code="invalid_row_ids")
        missing = [f for f in spec.features if f not in {c["name"] for c in source.schema}]
        if missing:
            raise ValidationFailed(f"dataset version {source.pk} lacks features: {', '.join(missing)}",
                                   code="incompatible_dataset")
        order = np.asarray(row_ids, dtype=np.int64)
        frame = _read_rows(source, np.unique(order), list(spec.features)).loc[order]
    else:
        frame = _check_rows(rows, spec)
    options = ExplainOptions()
    explainer = _explainer(model_version, spec, options, lambda: _training_background(model_version, options))
    protected = {c["name"] for c in model_version.dataset_version.schema if c["role"] == "protected"}
    catalogue = dict(ReasonText.objects.filter(registered_model=model_version.registered_model)
                     .values_list("feature", "text"))
    try:
        report = explain_local(explainer, frame, protected=protected, catalogue=catalogue)
    except ExplanationError as exc:
        raise ValidationFailed(str(exc), code="unexplainable") from None
    body = report.to_dict()
    if with_plots:
        import base64

        for item, explanation in zip(body["explanations"], report.explanations, strict=True):
            item["waterfall_png_base64"] = base64.b64encode(render_waterfall(explanation)).decode()
    with transaction.atomic():
        audit_record(actor=actor, action="local_explanation.produced", target=model_version,
                     after={"rows": len(frame), "source": "row_ids" if row_ids is not None else "posted",
                            "row_ids": [int(r) for r in row_ids] if row_ids is not None else None,
                            "status": report.status,
                            "reasons": [[r.feature for r in e.reasons] for e in report.explanations]})
    return body

"""Global SHAP reports: requested with a cost estimate, planned by one task, explained in chunks, merged by the last.

An ``explain`` job runs through the job runner (riskmodels/jobs): its work selects the
rows, stores the plan and the staged rows (hand-over files, riskmodels/storage/handover.py)
and fans out; each chunk explains its own record batch; the merge streams the chunk files
into the report's values Parquet and records the report. No task holds a whole report, and
a report of every row of a dataset holds no per-row index.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Failed, FanOut, Finished, Progress, job_dispatch
from riskmodels.jobs.dispatch import RENDER_EXPLANATION_PLOTS, send_on_commit
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.explain import (
    ChunkResult,
    ExplainOptions,
    MergedReport,
    RowSelection,
    check_budget,
    chunk_rows_for,
    estimate_cost,
    explain_chunk,
    merge_chunks_to_parquet,
    needs_background,
    plan_chunks,
    select_rows,
)
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.models import DatasetVersion, ExplanationReport, Job, JobChunk, JobKind, ModelVersion
from riskmodels.services.explanations.cache import (
    background_read,
    explainer_for,
    pipeline_load,
    source_rows,
)
from riskmodels.storage import (
    HashingWriter,
    plan_save,
    plan_slice,
    rows_stage,
    save_bytes,
    save_stream,
    staged_rows,
    verified_in_background,
)


def _chunk_rows_for(n_rows: int) -> int:
    return chunk_rows_for(n_rows, max_rows=settings.EXPLAIN_CHUNK_ROWS, parallelism=settings.EXPLAIN_PARALLELISM,
                          min_rows=settings.EXPLAIN_MIN_CHUNK_ROWS)


def _check_int(value: Any, name: str, low: int, high: int | None, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value >= high):
        raise ValidationFailed(f"{name} must be {what}; got {value!r}", code="invalid", details={"field": name})


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
    _check_int(max_rows, "max_rows", 1, None, "a positive integer")
    if max_rows > cap:
        raise ValidationFailed(f"max_rows {max_rows} is over the configured cap of {cap} rows (EXPLAIN_MAX_ROWS)",
                               code="over_row_cap", details={"field": "max_rows"})
    _check_int(seed, "seed", 0, 2**32, "an integer between 0 and 2**32-1")
    scope = "test_split" if dataset_version is None else "dataset"
    dataset_version = dataset_version or model_version.dataset_version
    missing = [f for f in model_version.spec["features"] if f not in {c["name"] for c in dataset_version.schema}]
    if missing:
        raise ValidationFailed(f"dataset version {dataset_version.pk} lacks features the model needs: "
                               f"{', '.join(missing)}", code="incompatible_dataset", details={"missing": missing})
    available = model_version.split_summary["n_test"] if scope == "test_split" else dataset_version.n_rows
    options = ExplainOptions(max_rows=max_rows, seed=seed, chunk_size=_chunk_rows_for(min(available, max_rows)))
    estimate = estimate_cost(pipeline_load(model_version), min(available, max_rows), options=options)
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


def report_prefix(job: Job) -> str:
    """Return the storage folder of a report's files."""
    return f"explanations/{job.registered_model.name}/v{job.model_version.version}/job-{job.pk}"


def explanation_work(job: Job, progress: Progress, stored: list[str]) -> FanOut:
    """Plan a report: select the rows, store the plan, the staged rows and the background; fan the chunks out."""
    version = job.model_version
    options = ExplainOptions(**job.params["options"])
    progress("selecting rows", 2)
    spec = TrainingSpec.from_dict(version.spec)
    # Path-dependent TreeSHAP uses no background: tree reports neither pick nor store one.
    with_background = needs_background(spec.algorithm)
    with verified_in_background(job.dataset_version.storage_path, job.dataset_version.sha256):
        source, train_rows = source_rows(version, job.params["scope"], train=with_background)
        selection = select_rows(job.dataset_version.n_rows if source is None else len(source),
                                max_rows=options.max_rows, seed=options.seed)
        plan = plan_chunks(selection.n_selected, options.chunk_size)

        def rows_between(start: int, stop: int) -> np.ndarray:
            """The dataset rows of selected rows start:stop."""
            positions = selection.positions_between(start, stop)
            return positions if source is None else source[positions]

        features_path = rows_stage(job.dataset_version, list(spec.features),
                                   (rows_between(a, b) for a, b in plan), f"{report_prefix(job)}/rows.arrow")
        stored.append(features_path)
        if with_background:
            background = background_read(version, train_rows, options)
    stored.append(plan_save(f"{report_prefix(job)}/rows.npy", plan, selection.positions_between, rows_between))
    background_path = None
    if with_background:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(background, preserve_index=True), sink)
        background_path = save_bytes(f"{report_prefix(job)}/background.parquet", sink.getvalue())
        stored.append(background_path)
    recorded = selection.to_dict(positions=False)
    if selection.method != "all":
        recorded["positions"] = "stored in rows.npy"
    # The plan and the background stay with the report as its record of what was explained;
    # the staged rows are only the chunks' input.
    return FanOut(plan=plan, stage="explaining", handover=[features_path],
                  result={"features_path": features_path, "rows_path": stored[1], "background_path": background_path,
                          "selection": recorded})


def _job_background(job: Job) -> Any:
    with default_storage.open(job.result["background_path"], "rb") as handle:
        return pq.read_table(handle).to_pandas()


def explanation_chunk_work(job: Job, chunk: JobChunk) -> str:
    """Explain one chunk's rows; return the path of its values (a hand-over to the merge)."""
    version = job.model_version
    spec = TrainingSpec.from_dict(version.spec)
    options = ExplainOptions(**job.params["options"])
    positions, rows = plan_slice(job.result["rows_path"], chunk.start, chunk.stop)
    explainer = explainer_for(version, spec, options, lambda: _job_background(job))
    frame = staged_rows(job.result["features_path"], chunk.index, rows)
    result = explain_chunk(explainer, frame, start=chunk.start, positions=positions, row_ids=rows)
    return save_bytes(f"{report_prefix(job)}/chunk-{chunk.index:05d}.parquet", result.to_parquet_bytes(),
                      durable=False)


def explanation_merge(job: Job, chunks: list[JobChunk], stored: list[str]) -> Finished | Failed:
    """Stream the chunks' values into the report's Parquet and record the report (failed if additivity fails)."""
    recorded = job.result["selection"]
    # Every row: positions 0..n-1, not held. A sample: its positions, read from the plan.
    positions = (None if recorded["method"] == "all"
                 else plan_slice(job.result["rows_path"], 0, chunks[-1].stop, rows=False)[0])
    selection = RowSelection(positions, recorded["n_available"], recorded["method"], recorded["seed"])
    merged: list[MergedReport] = []
    digests: list[str] = []

    def fill(handle: Any) -> None:
        # One chunk file at a time: the merging worker's memory does not grow with the report.
        sink = HashingWriter(handle)
        merged.append(merge_chunks_to_parquet(
            (ChunkResult.from_parquet_bytes(default_storage.open(c.path, "rb").read()) for c in chunks),
            selection=selection, sink=sink))
        digests.append(sink.digest.hexdigest())

    values_path = save_stream(f"{report_prefix(job)}/values.parquet", fill)
    stored.append(values_path)
    return _report_outcome(merged[0], selection, values_path, digests[0])


def _report_outcome(report: MergedReport, selection: RowSelection, values_path: str,
                    values_sha256: str) -> Finished | Failed:
    """Return how the job ends: its report row is written either way (a failed one is kept for diagnosis)."""
    summary: dict[str, Any] = {}

    def write(job: Job) -> None:
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
        summary.update({"report": record.pk, "status": record.status, "n_rows": record.n_rows,
                        "additivity_error": record.additivity_error,
                        "top_features": [i["feature"] for i in record.importance[:5]]})
        if report.ok:
            Job.objects.filter(pk=job.pk).update(result={**job.result, **summary})
            audit_record(actor=None, actor_label=WORKER_LABEL, action="explanation_report.finished", target=record,
                         after={**summary, "fingerprint": record.fingerprint})
            send_on_commit(RENDER_EXPLANATION_PLOTS, report_id=record.pk)
        else:
            audit_record(actor=None, actor_label=WORKER_LABEL, action="explanation_report.failed", target=record,
                         after={**summary, "message": record.message})

    if report.ok:
        return Finished({}, write)
    return Failed(f"additivity check failed: {report.message}", write)

"""Batch scoring: every row of a dataset version scored by the champion, as a job fanned out over workers.

A ``batch_score`` job plans chunks of rows; each chunk reads only its rows, scores them in one
explainer pass, records their ledger entries and writes its part of the output; the last chunk
merges the parts into one Parquet (PD, decision, band and reasons per row), streaming one part
at a time. Memory per worker depends on the chunk size, never on the dataset's.

The gate holds for the whole run: every chunk checks that its version is still the champion,
so a version retired or replaced mid-run stops scoring. Each chunk's ledger entries are
committed together, keyed by (job, row), so a redelivered chunk records nothing twice; a job that
fails later keeps the entries of the chunks that were scored (each was a decision of the
champion) and its result says how many.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Failed, FanOut, Finished, Progress, job_dispatch
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.explain import check_budget, chunk_rows_for, estimate_cost, plan_chunks
from riskmodels.ml.scoring import ScoredBatch, ScoringError, ScoringPolicy, score_matrix
from riskmodels.models import (
    CreditDecision,
    DatasetVersion,
    Job,
    JobChunk,
    JobKind,
    LedgerInputs,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.services.explanations.cache import pipeline_load
from riskmodels.services.scoring import (
    NOT_APPROVED,
    canonical_inputs,
    champion_or_refuse,
    scorer_for,
    scoring_policy_of,
)
from riskmodels.storage import HashingWriter, dataset_rows, save_bytes, save_stream

_SCHEMA = pa.schema([("row", pa.int64()), ("reference", pa.string()), ("pd", pa.float64()),
                     ("decision", pa.string()), ("score_band", pa.string()),
                     ("reasons", pa.list_(pa.string())), ("flags", pa.list_(pa.string()))])


def batch_scoring_job_create(*, actor: Any, model: RegisteredModel, dataset_version: DatasetVersion,
                             reference_column: str | None = None) -> Job:
    """Queue the scoring of every row of ``dataset_version`` by the model's champion (202)."""
    require(actor, Capability.MODEL_SCORE)
    champion = champion_or_refuse(model)
    policy = scoring_policy_of(model)
    columns = {c["name"] for c in dataset_version.schema}
    missing = [f for f in champion.spec["features"] if f not in columns]
    if missing:
        raise ValidationFailed(f"dataset version {dataset_version.pk} lacks features the champion needs: "
                               f"{', '.join(missing)}", code="incompatible_dataset", details={"missing": missing})
    if reference_column is not None and reference_column not in columns:
        raise ValidationFailed(f"dataset version {dataset_version.pk} has no column {reference_column!r}",
                               code="invalid", details={"field": "reference_column"})
    estimate = estimate_cost(pipeline_load(champion), dataset_version.n_rows)
    budget = check_budget(estimate, settings.EXPLAIN_BUDGET_SECONDS, min_rows=dataset_version.n_rows)
    if not budget.allowed:
        raise ValidationFailed(f"scoring {dataset_version.n_rows} rows with reasons is estimated at "
                               f"{estimate['seconds']:.0f} s of worker time, over EXPLAIN_BUDGET_SECONDS",
                               code="over_budget", details={"estimate": estimate})
    chunk_rows = chunk_rows_for(dataset_version.n_rows, max_rows=settings.SCORING_BATCH_CHUNK_ROWS,
                                parallelism=settings.EXPLAIN_PARALLELISM, min_rows=settings.EXPLAIN_MIN_CHUNK_ROWS)
    with transaction.atomic():
        job = Job.objects.create(
            kind=JobKind.BATCH_SCORE, registered_model=model, model_version=champion, dataset_version=dataset_version,
            requested_by=actor, requested_by_username=actor.username,
            params={"reference_column": reference_column, "policy": policy.to_dict(), "chunk_rows": chunk_rows},
        )
        audit_record(actor=actor, action="batch_scoring.requested", target=job,
                     after={"model_version": champion.pk, "dataset_version": dataset_version.pk, **job.params})
        job_dispatch(job=job)
    return job


def _still_champion(job: Job) -> None:
    status = type(job.model_version).objects.values_list("status", flat=True).get(pk=job.model_version_id)
    if status != VersionStatus.CHAMPION:
        raise Conflict(f"version {job.model_version_id} is {status}, no longer the champion: batch scoring stopped",
                       code=NOT_APPROVED)


def output_prefix(job: Job) -> str:
    """Return the storage folder of a batch job's files."""
    return f"scoring/{job.registered_model.name}/v{job.model_version.version}/job-{job.pk}"


def batch_scoring_work(job: Job, progress: Progress, stored: list[str]) -> FanOut | Failed:
    """Check the gate and plan the chunks."""
    try:
        _still_champion(job)
    except Conflict as exc:
        return Failed(exc.message)
    progress("planning", 2)
    return FanOut(plan=plan_chunks(job.dataset_version.n_rows, job.params["chunk_rows"]), result={},
                  stage="scoring")


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# The ledger columns a batch chunk writes, in the order of its row tuples.
_LEDGER_COLUMNS = ("created_at", "reference", "registered_model_id", "model_version_id", "decisive", "source",
                   "features", "features_sha256", "pd", "outcome", "band", "reasons", "contributions",
                   "base_log_odds", "flags", "flag_details", "policy", "fingerprint_id", "request_id", "job_id", "row",
                   "actor_id", "actor_username")


def _ledger_rows(job: Job, scorer: Any, batch: ScoredBatch, frame: pd.DataFrame,
                 references: list[str]) -> list[tuple[Any, ...]]:
    """Return one ledger row per scored row, JSON already encoded (each value once, never per ORM object)."""
    keep = job.registered_model.ledger_inputs == LedgerInputs.FULL
    features = list(scorer.spec.features)
    policy = json.dumps(scorer.policy.to_dict())
    now = timezone.now()
    constant = (job.registered_model_id, job.model_version_id, True, CreditDecision.Source.BATCH)
    tail = (policy, scorer.fingerprint.pk, "", job.pk)
    # Column by column to Python values (missing ones None): one pass per column, not one call per cell.
    columns = [frame[f].astype(object).where(frame[f].notna(), None).tolist() for f in features]
    contributions = batch.contributions.tolist()
    adverse = (batch.reasons[:, 0] >= 0).tolist()
    flagged = batch.flagged.tolist()
    pds, decisions, bands = batch.pd.tolist(), batch.decision.tolist(), batch.band.tolist()
    rows = []
    for i, (row, *values) in enumerate(zip(frame.index.tolist(), *columns, strict=True)):
        # The canonical JSON of the inputs is both what is stored and what is hashed.
        inputs = canonical_inputs(dict(zip(features, values, strict=True)))
        flags, details = batch.flags(i) if flagged[i] else ((), {})
        reasons = json.dumps([r.to_dict() for r in batch.reason_list(i, scorer.catalogue)]) if adverse[i] else "[]"
        rows.append((now, references[i], *constant, inputs if keep else None,
                     hashlib.sha256(inputs.encode()).hexdigest(), pds[i], decisions[i], bands[i], reasons,
                     json.dumps(dict(zip(features, contributions[i], strict=True))), batch.base_log_odds,
                     json.dumps(list(flags)) if flagged[i] else "[]", json.dumps(details) if flagged[i] else "{}",
                     *tail, row, job.requested_by_id, job.requested_by_username))
    return rows


def _ledger_append(rows: list[tuple[Any, ...]]) -> None:
    """Append ledger rows in the caller's transaction: COPY on PostgreSQL, one prepared INSERT elsewhere.

    ``bulk_create`` spent about 220 µs a row here (model instances, per-value adaptation, and on
    PostgreSQL the quoting of every JSON value into array literals); COPY takes the tuples as
    they are (figures in bench/README.md).
    """
    table = connection.ops.quote_name(CreditDecision._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _LEDGER_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(_LEDGER_COLUMNS))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def batch_scoring_chunk_work(job: Job, chunk: JobChunk) -> str:
    """Score one chunk's rows, record their ledger entries, and store its part of the output."""
    _still_champion(job)
    version = job.model_version
    scorer = scorer_for(version, policy=ScoringPolicy.from_dict(job.params["policy"]))
    reference_column = job.params["reference_column"]
    columns = list(scorer.spec.features) + ([reference_column] if reference_column not in (None, *scorer.spec.features)
                                            else [])
    frame = dataset_rows(job.dataset_version, np.arange(chunk.start, chunk.stop, dtype=np.int64), columns)
    try:
        batch = score_matrix(scorer.explainer, frame[list(scorer.spec.features)], policy=scorer.policy,
                             protected=scorer.protected, known_categories=scorer.categories)
    except ScoringError as exc:
        raise ValidationFailed(str(exc), code="unscorable") from None
    references = ([str(_json_value(v)) for v in frame[reference_column]] if reference_column
                  else [f"row-{r}" for r in frame.index])
    rows = _ledger_rows(job, scorer, batch, frame, references)
    with transaction.atomic():
        # A chunk's rows are committed together, so a redelivered chunk finds all of them or none.
        if not CreditDecision.objects.filter(job=job, row__gte=chunk.start, row__lt=chunk.stop).exists():
            _ledger_append(rows)
    table = pa.Table.from_pydict({
        "row": frame.index.to_numpy(dtype=np.int64), "reference": references, "pd": batch.pd,
        "decision": batch.decision.tolist(), "score_band": batch.band.tolist(),
        "reasons": [[batch.features[j] for j in row if j >= 0] for row in batch.reasons],
        "flags": [list(batch.flags(i)[0]) if flagged else [] for i, flagged in enumerate(batch.flagged.tolist())]},
        schema=_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return save_bytes(f"{output_prefix(job)}/part-{chunk.index:05d}.parquet", sink.getvalue(), durable=False)


def batch_scoring_merge(job: Job, chunks: list[JobChunk], stored: list[str]) -> Finished:
    """Stream the chunks' parts into the output Parquet; record the counts; audit."""
    outcomes: dict[str, int] = {}
    digests: list[str] = []

    def fill(handle: Any) -> None:
        sink = HashingWriter(handle)
        with pq.ParquetWriter(sink, _SCHEMA, compression="zstd") as writer:
            for chunk in chunks:  # one part at a time
                with default_storage.open(chunk.path, "rb") as part:
                    table = pq.read_table(part)
                writer.write_table(table)
                for value, count in zip(*np.unique(table.column("decision").to_numpy(zero_copy_only=False),
                                                   return_counts=True), strict=True):
                    outcomes[str(value)] = outcomes.get(str(value), 0) + int(count)
        digests.append(sink.digest.hexdigest())

    path = save_stream(f"{output_prefix(job)}/decisions.parquet", fill)
    stored.append(path)
    result = {"output_path": path, "output_sha256": digests[0], "n_rows": sum(outcomes.values()),
              "outcomes": dict(sorted(outcomes.items()))}

    def write(finished: Job) -> None:
        audit_record(actor=None, actor_label=WORKER_LABEL, action="batch_scoring.finished", target=finished,
                     after={**result, "model_version": finished.model_version_id,
                            "dataset_version": finished.dataset_version_id})

    return Finished(result, write)


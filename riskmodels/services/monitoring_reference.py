"""The frozen monitoring reference of a champion: queued at its first promotion, computed once, never again.

The job scores the version's validation (test split) rows a chunk at a time and fits the bins
of riskmodels.ml.stability: deciles of the PDs and, per feature, quantile bins (numbers, with
missing values a bin of their own) or one bin per category (with "other" for unseen ones).
Stability runs (riskmodels/services/stability.py) count new data into these bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings

from governance.audit import audit_record
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.stability import fit_categorical, fit_numeric
from riskmodels.models import DatasetVersion, Evaluation, Job, JobKind, JobStatus, ModelVersion, MonitoringReference
from riskmodels.services.explanations.cache import pipeline_load, source_rows
from riskmodels.storage import dataset_rows

LIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def monitoring_reference_queue(*, actor: Any, version: ModelVersion) -> Job | None:
    """Queue the computation of a version's monitoring reference, unless it has one (or one is on its way).

    Call inside the transaction that makes the version champion: the reference is frozen the
    first time, so a version promoted again keeps the bins it was first monitored against.
    """
    if MonitoringReference.objects.filter(model_version=version).exists() or Job.objects.filter(
            kind=JobKind.MONITORING_REFERENCE, model_version=version, status__in=LIVE).exists():
        return None
    job = Job.objects.create(kind=JobKind.MONITORING_REFERENCE, registered_model_id=version.registered_model_id,
                             model_version=version, dataset_version_id=version.dataset_version_id, params={},
                             requested_by=actor, requested_by_username=actor.username)
    audit_record(actor=actor, action="monitoring_reference.requested", target=job,
                 after={"model_version": version.pk, "dataset_version": version.dataset_version_id})
    job_dispatch(job=job)
    return job


def rows_in_chunks(rows: np.ndarray) -> list[np.ndarray]:
    """Cut row numbers into chunks of ``MONITORING_CHUNK_ROWS``: what a monitoring job holds at a time."""
    size = settings.MONITORING_CHUNK_ROWS
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _pds(version: ModelVersion, dataset_version: DatasetVersion, rows: np.ndarray) -> np.ndarray:
    """Return the version's PD of some dataset rows (sorted row numbers), scored a chunk at a time."""
    spec = TrainingSpec.from_dict(version.spec)
    pipeline = pipeline_load(version)
    return np.concatenate([pipeline.predict_proba(prepare_features(
        dataset_rows(dataset_version, chunk, list(spec.features)), spec))[:, 1] for chunk in rows_in_chunks(rows)]
        or [np.empty(0)])


def _baseline(version: ModelVersion) -> dict[str, Any]:
    """Return the test-split evaluation's metrics: what performance runs compare against."""
    evaluation = (Evaluation.objects.filter(model_version=version, scope=Evaluation.Scope.TEST_SPLIT)
                  .order_by("-created_at").first())
    if evaluation is None:
        return {}
    return {"evaluation": evaluation.pk, **{k: evaluation.metrics.get(k) for k in ("auc", "gini", "ks", "brier", "n")}}


def monitoring_reference_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Score the version's validation (test split) rows and freeze the score and feature bins."""
    version = job.model_version
    existing = MonitoringReference.objects.filter(model_version=version).values_list("pk", flat=True).first()
    if existing is not None:  # frozen once: a second job never replaces it
        return Finished({"reference": existing, "recomputed": False})
    spec = TrainingSpec.from_dict(version.spec)
    progress("splitting", 5)
    rows, _ = source_rows(version, "test_split", train=False)
    progress("scoring", 15)
    score_bins = fit_numeric(_pds(version, job.dataset_version, rows))
    feature_bins: dict[str, Any] = {}
    # One column at a time: memory holds the rows' PDs and one feature, whatever the width.
    for i, feature in enumerate(spec.features):
        progress("binning", 40 + 55 * i // max(1, len(spec.features)))
        values = dataset_rows(job.dataset_version, rows, [feature])[feature].to_numpy()
        bins = fit_categorical(values) if feature in spec.categorical else fit_numeric(values)
        feature_bins[feature] = bins.to_dict()
    result = {"n_rows": len(rows), "features": len(feature_bins), "score_bins": len(score_bins.shares)}

    def write(finished: Job) -> None:
        reference = MonitoringReference.objects.create(
            model_version=version, dataset_version=finished.dataset_version, n_rows=len(rows),
            score_bins=score_bins.to_dict(), feature_bins=feature_bins, baseline=_baseline(version), job=finished)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="monitoring_reference.created", target=reference,
                     after={"model_version": version.pk, "dataset_version": finished.dataset_version_id,
                            "n_rows": len(rows), "score_edges": score_bins.to_dict()["edges"],
                            "features": sorted(feature_bins)})

    return Finished(result, write)

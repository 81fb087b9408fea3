"""The validation battery as a job: run after every test-split evaluation, its results stored, its findings proposed.

A validator starts from this evidence, not from a blank page: each test that does not pass
proposes a draft finding (riskmodels/services/findings.py accepts or dismisses it).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from governance.audit import audit_record
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.explain import ExplainOptions, explain_global, needs_background
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.training import binary_target, split
from riskmodels.ml.validation import (
    Thresholds,
    calibration,
    explanation_stability,
    leakage,
    overfitting,
    proxies,
    robustness,
    weak_segments,
    worst_outcome,
)
from riskmodels.models import Evaluation, Finding, Job, JobKind, ModelVersion, RegisteredModel, ValidationRun
from riskmodels.services.explanations.cache import pipeline_load, training_background
from riskmodels.storage import dataset_frame

BATTERY_LABEL = "system:validation-battery"
# Rows the battery scores (a seeded sample of the test split above it) and explains; enough
# for stable figures, bounded so the battery's cost does not grow with the dataset.
MAX_ROWS = 20_000
EXPLAIN_ROWS = 2_000
TOP_FEATURES = 5
FINDING_DUE_DAYS = 30


def validation_job_queue(*, version: ModelVersion, evaluation: Evaluation, requested_by: Any,
                         requested_by_username: str) -> Job:
    """Create and dispatch a battery job for ``version`` inside the caller's transaction."""
    job = Job.objects.create(kind=JobKind.VALIDATE, registered_model=version.registered_model, model_version=version,
                             dataset_version=version.dataset_version, params={"evaluation": evaluation.pk},
                             requested_by=requested_by, requested_by_username=requested_by_username)
    audit_record(actor=None, actor_label=WORKER_LABEL, action="validate_job.created", target=job,
                 after={"model_version": version.pk, "evaluation": evaluation.pk})
    job_dispatch(job=job)
    return job


def battery_thresholds(model: RegisteredModel) -> Thresholds:
    """Return the battery's thresholds for a model: the defaults, its tier's, then its own overrides."""
    return Thresholds(**{**settings.BATTERY_THRESHOLDS_BY_TIER.get(model.risk_tier, {}), **model.battery_thresholds})


def _sample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


def validation_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Run every test of the battery on the version's test split and record the run with its proposed findings."""
    started = time.perf_counter()
    version = job.model_version
    evaluation = Evaluation.objects.get(pk=job.params["evaluation"])
    spec = TrainingSpec.from_dict(version.spec)
    progress("loading", 5)
    pipeline = pipeline_load(version)
    # The columns recorded as protected (or suspected at upload) that are not features: proxies are checked
    # against them; they are read for this test only.
    dataset = version.dataset_version
    protected = [c["name"] for c in dataset.schema if c["role"] == "protected"]
    protected += [s["column"] for s in dataset.profile.get("protected_suspects", []) if s["column"] not in protected]
    protected = [c for c in protected if c not in spec.features]
    needed = [*spec.features, spec.target, *([spec.date_column] if spec.date_column else []), *protected]
    frame = dataset_frame(version.dataset_version, columns=list(dict.fromkeys(needed)))
    _, test_idx = split(frame, spec)
    rows = _sample(np.asarray(test_idx), MAX_ROWS, spec.seed)
    test = frame.iloc[rows].reset_index(drop=True)
    y = binary_target(test, spec)
    raw = test[list(spec.features)]

    def predict(features: Any) -> np.ndarray:
        return pipeline.predict_proba(prepare_features(features, spec))[:, 1]

    progress("scoring", 15)
    p = predict(raw)
    progress("explaining", 30)
    options = ExplainOptions(max_rows=EXPLAIN_ROWS, seed=spec.seed)
    explained = raw.iloc[_sample(np.arange(len(raw)), EXPLAIN_ROWS, spec.seed)]
    background = training_background(version, options) if needs_background(spec.algorithm) else None
    report = explain_global(pipeline, spec, explained, options=options, background=background)
    importance = dict(zip(report.features, np.abs(report.values).mean(axis=0).tolist(), strict=True))
    top = sorted(importance, key=importance.get, reverse=True)[:TOP_FEATURES]
    thresholds = battery_thresholds(version.registered_model)
    model_type = version.registered_model.model_type
    progress("testing", 50)
    results = [
        leakage(raw, y, float(evaluation.metrics["auc"]), importance, model_type=model_type, thresholds=thresholds),
        overfitting(evaluation.train_metrics or evaluation.metrics, evaluation.metrics, thresholds=thresholds),
        weak_segments(raw[top], y, p, thresholds=thresholds),
        robustness(predict, raw, y, numeric=list(spec.numeric), seed=spec.seed, thresholds=thresholds),
        explanation_stability(report.values, list(report.features), seed=spec.seed, thresholds=thresholds),
        calibration(y, p, thresholds=thresholds),
        proxies(raw, test[protected], thresholds=thresholds),
    ]
    outcome = worst_outcome(results)
    seconds = time.perf_counter() - started
    body = [r.to_dict() for r in results]

    def write(finished: Job) -> None:
        run = ValidationRun.objects.create(model_version=version, evaluation=evaluation, job=finished, outcome=outcome,
                                           results=body, thresholds=thresholds.to_dict(),
                                           n_rows=len(raw), seconds=seconds)
        due = timezone.localdate() + dt.timedelta(days=FINDING_DUE_DAYS)
        for result in results:
            draft = result.proposed_finding
            if draft is None:
                continue
            Finding.objects.create(model_version=version, title=draft["title"], description=result.message,
                                   category=draft["category"], severity=draft["severity"],
                                   status=Finding.Status.PROPOSED, due_date=due, raised_by=None,
                                   raised_by_username=BATTERY_LABEL, validation_run=run, test_name=result.name)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="validation_run.finished", target=run,
                     after={"model_version": version.pk, "outcome": outcome,
                            "tests": {r.name: r.outcome for r in results}, "n_rows": len(raw)})

    return Finished({"outcome": outcome, "tests": {r.name: r.outcome for r in results}, "seconds": seconds}, write)


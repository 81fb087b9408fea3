"""Evaluation jobs: credit-risk metrics of a model version on its test split or another dataset version."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.ml.fairness import fairness_report
from riskmodels.ml.metrics import compare, degradation, evaluate
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.plots import render_evaluation_plots
from riskmodels.ml.training import binary_target, split
from riskmodels.models import DatasetVersion, Evaluation, Job, JobKind, ModelVersion
from riskmodels.services.explanations.cache import pipeline_load
from riskmodels.services.validation import validation_job_queue
from riskmodels.storage import dataset_frame, read_verified, save_bytes

N_BOOTSTRAP = 200


def evaluation_job_queue(*, actor: Any, requested_by: Any, requested_by_username: str, model_version: ModelVersion,
                         dataset_version: DatasetVersion, scope: str, threshold: float) -> Job:
    """Create and dispatch an evaluation job inside the caller's transaction."""
    job = Job.objects.create(
        kind=JobKind.EVALUATE, registered_model=model_version.registered_model, model_version=model_version,
        dataset_version=dataset_version, params={"scope": scope, "threshold": float(threshold)},
        requested_by=requested_by, requested_by_username=requested_by_username,
    )
    audit_record(actor=actor, actor_label="system:worker", action="evaluate_job.created", target=job,
                 after={"model_version": model_version.pk, "dataset_version": dataset_version.pk, **job.params})
    job_dispatch(job=job)
    return job


def evaluation_job_create(*, actor: Any, model_version: ModelVersion, dataset_version: DatasetVersion,
                          threshold: float = 0.5) -> Job:
    """Queue an evaluation of ``model_version`` on a whole dataset version (developers and validators)."""
    require(actor, Capability.MODEL_EVALUATE)
    labelled_dataset_check(model_version=model_version, dataset_version=dataset_version)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise ValidationFailed(f"threshold must be strictly between 0 and 1; got {threshold!r}", code="invalid",
                               details={"field": "threshold"})
    with transaction.atomic():
        return evaluation_job_queue(actor=actor, requested_by=actor, requested_by_username=actor.username,
                                    model_version=model_version, dataset_version=dataset_version, scope="dataset",
                                    threshold=threshold)


def evaluation_fairness(*, model_version: ModelVersion, dataset_version: DatasetVersion, frame: Any, rows: np.ndarray,
                        y: np.ndarray, pd_scores: np.ndarray, threshold: float, seed: int) -> dict[str, Any]:
    """Return the fairness report of evaluated rows for every column the dataset version marks protected.

    The cutoff is the model's scoring policy's, when it has one, because that is where it decides;
    otherwise the evaluation's threshold. Which one was used is recorded with the report.
    """
    protected = [c["name"] for c in dataset_version.schema if c.get("role") == "protected"]
    if not protected:
        return {"columns": [], "note": f"dataset version {dataset_version.pk} marks no column protected; "
                                       "no fairness test was run"}
    policy_cutoff = (model_version.registered_model.scoring_policy or {}).get("cutoff")
    cutoff, source = (float(policy_cutoff), "scoring_policy") if policy_cutoff is not None else (threshold, "threshold")
    report = fairness_report(y, pd_scores, {name: frame[name].iloc[rows] for name in protected}, cutoff=cutoff,
                             n_bootstrap=N_BOOTSTRAP, seed=seed)
    return {**report.to_dict(), "cutoff_source": source}


def labelled_dataset_check(*, model_version: ModelVersion, dataset_version: DatasetVersion) -> None:
    """Refuse a dataset version that lacks a column the version needs to be measured on it (features, target)."""
    spec = model_version.spec
    columns = {c["name"] for c in dataset_version.schema}
    missing = [f for f in [*spec["features"], spec["target"]] if f not in columns]
    if missing:
        raise ValidationFailed(f"dataset version {dataset_version.pk} lacks columns the model needs: {', '.join(missing)}",
                               code="incompatible_dataset", details={"missing": missing})


def version_pds(pipeline: Any, frame: pd.DataFrame, spec: TrainingSpec) -> np.ndarray:
    """Return a version's PDs (the default class's probability) for the rows of ``frame``."""
    return pipeline.predict_proba(prepare_features(frame, spec))[:, 1]


def labelled_rows(*, version: ModelVersion,
                  dataset_version: DatasetVersion) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Return a dataset version's rows, their 0/1 targets (per the version's spec) and the version's PDs."""
    spec = TrainingSpec.from_dict(version.spec)
    frame = dataset_frame(dataset_version)
    return frame, binary_target(frame, spec), version_pds(pipeline_load(version), frame, spec)


def labelled_pds(*, version: ModelVersion, dataset_version: DatasetVersion) -> tuple[np.ndarray, np.ndarray]:
    """Return the 0/1 targets (per the version's spec) and the version's PDs for every row of a dataset version."""
    _, y, p = labelled_rows(version=version, dataset_version=dataset_version)
    return y, p


def evaluation_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Score the job's rows with the version, compute the credit metrics and plots, and record the evaluation."""
    version = job.model_version
    threshold = job.params["threshold"]
    scope = job.params["scope"]
    progress("loading model", 5)
    pipeline = load_artifact(read_verified(version.artifact_path, version.artifact_sha256),
                             expected_sha256=version.artifact_sha256)
    spec = TrainingSpec.from_dict(version.spec)
    progress("loading data", 15)
    frame = dataset_frame(job.dataset_version)
    y = binary_target(frame, spec)
    seed = spec.seed
    train_metrics = None
    if scope == "test_split":
        train_idx, test_idx = split(frame, spec)
        progress("scoring", 30)
        p_train = version_pds(pipeline, frame.iloc[train_idx], spec)
        train_metrics = evaluate(y[train_idx], p_train, threshold=threshold, n_bootstrap=0, seed=seed)
        rows = test_idx
    else:
        rows = np.arange(len(frame))
    progress("scoring", 45)
    p = version_pds(pipeline, frame.iloc[rows], spec)
    progress("metrics", 60)
    metrics = evaluate(y[rows], p, threshold=threshold, n_bootstrap=N_BOOTSTRAP, seed=seed)
    progress("fairness", 70)
    fairness = evaluation_fairness(model_version=version, dataset_version=job.dataset_version, frame=frame, rows=rows,
                                   y=y[rows], pd_scores=p, threshold=threshold, seed=seed)
    progress("plots", 80)
    plot_paths = {}
    base = f"models/{version.registered_model.name}/v{version.version}/evaluation-job-{job.pk}"
    for name, png in render_evaluation_plots(metrics).items():
        path = save_bytes(f"{base}/{name}.png", png)
        stored.append(path)
        plot_paths[name] = path
    drift = degradation(train_metrics, metrics) if train_metrics is not None else None

    def write(finished: Job) -> None:
        evaluation = Evaluation.objects.create(
            model_version=version, dataset_version=finished.dataset_version, scope=scope, threshold=threshold,
            metrics=metrics, train_metrics=train_metrics, degradation=drift, plots=plot_paths, fairness=fairness,
            job=finished,
        )
        audit_record(actor=None, actor_label="system:worker", action="evaluation.created", target=evaluation,
                     after={"model_version": version.pk, "dataset_version": finished.dataset_version_id,
                            "scope": scope, "threshold": threshold,
                            **{k: metrics.get(k) for k in ("auc", "gini", "ks", "brier", "log_loss", "n")},
                            "fairness": fairness_summary(fairness)})
        if scope == "test_split":  # every version's battery runs on its own test split
            validation_job_queue(version=version, evaluation=evaluation, requested_by=finished.requested_by,
                                 requested_by_username=finished.requested_by_username)

    summary = {k: metrics.get(k) for k in ("auc", "gini", "ks", "brier")}
    return Finished({"scope": scope, "metrics": summary, "fairness": fairness_summary(fairness)}, write)


def fairness_summary(fairness: dict[str, Any]) -> dict[str, Any]:
    """Return what the audit event keeps of a fairness report: the cutoff and each column's lowest ratio and flags."""
    if not fairness.get("columns"):
        return {"note": fairness.get("note")}
    return {"cutoff": fairness["cutoff"], "cutoff_source": fairness["cutoff_source"],
            "columns": {c["column"]: {"min_adverse_impact_ratio": c["min_adverse_impact_ratio"],
                                      "flagged_groups": c["flagged_groups"]} for c in fairness["columns"]}}


def model_versions_compare(*, champion: ModelVersion, challenger: ModelVersion,
                           dataset_version: DatasetVersion | None = None) -> dict[str, Any]:
    """Put two versions' metrics side by side on the same evaluation data.

    With ``dataset_version``, both must have a whole-dataset evaluation on it; without,
    both must share a training dataset version and split so their test splits are equal.
    """
    if dataset_version is not None:
        pairs = [Evaluation.objects.filter(model_version=v, dataset_version=dataset_version, scope="dataset")
                 .order_by("-created_at").first() for v in (champion, challenger)]
        where = f"dataset version {dataset_version.pk}"
    else:
        same_split = (champion.dataset_version_id == challenger.dataset_version_id
                      and {k: champion.spec[k] for k in ("seed", "test_size", "split", "date_column", "cutoff", "target")}
                      == {k: challenger.spec[k] for k in ("seed", "test_size", "split", "date_column", "cutoff", "target")})
        if not same_split:
            raise ValidationFailed("the versions were not trained on the same data and split; pass a dataset_version "
                                   "that both have been evaluated on", code="not_comparable")
        pairs = [Evaluation.objects.filter(model_version=v, scope="test_split").order_by("-created_at").first()
                 for v in (champion, challenger)]
        where = "their common test split"
    missing = [str(v) for v, e in zip((champion, challenger), pairs, strict=True) if e is None]
    if missing:
        raise ValidationFailed(f"no evaluation on {where} yet for: {', '.join(missing)}; request one first",
                               code="evaluation_missing")
    return {"champion": champion.pk, "challenger": challenger.pk, "evaluated_on": where,
            "comparison": compare(pairs[0].metrics, pairs[1].metrics)}

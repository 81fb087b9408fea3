"""Reproduction checks: re-train a version from its record and compare its predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction

from governance.audit import audit_record
from governance.policy import Capability, require
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.ml.persistence import environment_versions, load_artifact
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.training import split, train
from riskmodels.models import Job, JobKind, ModelVersion
from riskmodels.storage import dataset_frame, read_verified


def reproduction_job_create(*, actor: Any, model_version: ModelVersion) -> Job:
    """Queue a re-training of ``model_version`` from its record, to check it reproduces."""
    require(actor, Capability.MODEL_REPRODUCE)
    with transaction.atomic():
        job = Job.objects.create(kind=JobKind.REPRODUCE, registered_model=model_version.registered_model,
                                 model_version=model_version, dataset_version=model_version.dataset_version,
                                 params={}, requested_by=actor, requested_by_username=actor.username)
        audit_record(actor=actor, action="reproduce_job.created", target=job, after={"model_version": model_version.pk})
        job_dispatch(job=job)
    return job


def reproduction_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Re-train the version from its record on the same bytes and compare predictions on its test split."""
    version = job.model_version
    progress("loading", 5)
    original = load_artifact(read_verified(version.artifact_path, version.artifact_sha256),
                             expected_sha256=version.artifact_sha256)
    frame = dataset_frame(job.dataset_version)  # hash-checked: the same bytes the version was trained on
    spec = TrainingSpec.from_dict(version.spec)
    progress("re-training", 10)
    retrained = train(frame, spec, progress=lambda stage, pct: progress(stage, 10 + pct * 8 // 10),
                      predict=False).pipeline
    progress("comparing", 92)
    _, test_idx = split(frame, spec)
    X = prepare_features(frame.iloc[test_idx], spec)
    p_original = original.predict_proba(X)[:, 1]
    p_retrained = retrained.predict_proba(X)[:, 1]
    now_env = environment_versions()
    result = {
        "model_version": version.pk,
        "identical_predictions": bool(np.array_equal(p_original, p_retrained)),
        "max_abs_difference": float(np.max(np.abs(p_original - p_retrained))) if len(X) else 0.0,
        "rows_compared": int(len(X)),
        # Not the artifact hash: skops archives are not byte-reproducible (zip timestamps),
        # so equal models can hash differently. Predictions are what must reproduce.
        "environment_changed": {k: [version.environment.get(k), v] for k, v in now_env.items()
                                if version.environment.get(k) != v},
    }

    def write(finished: Job) -> None:
        audit_record(actor=None, actor_label="system:worker", action="model_version.reproduction_checked",
                     target=version, after=result)

    return Finished(result, write)

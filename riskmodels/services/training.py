"""Training jobs: validate a spec against its dataset, queue it, and run it in a worker."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Max

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.ml.persistence import dumps_artifact, environment_versions, sha256_hex
from riskmodels.ml.pipelines import (
    SpecError,
    TrainingSpec,
    default_features,
    describe_pipeline,
    infer_categorical,
    validate_against_schema,
)
from riskmodels.ml.training import train
from riskmodels.models import DatasetVersion, Job, JobKind, ModelVersion, RegisteredModel
from riskmodels.services.evaluation import evaluation_job_queue
from riskmodels.services.registry import registered_model_lock
from riskmodels.storage import dataset_frame, save_bytes

DEFAULT_THRESHOLD = 0.5


def _spec_error(exc: SpecError) -> ValidationFailed:
    field = getattr(exc, "field", "spec")
    return ValidationFailed(str(exc), code="invalid_spec", details={"field": field})


def _typed_counts(counts: Mapping[str, int] | None, positive_class: Any) -> dict[Any, int] | None:
    """Give the profile's class counts (JSON: string keys) the type of the positive class."""
    if counts is None:
        return None
    if isinstance(positive_class, bool):
        return {key.strip().lower() in ("true", "1"): n for key, n in counts.items()}
    if isinstance(positive_class, int):
        try:
            return {int(float(key)): n for key, n in counts.items()}
        except ValueError:
            return dict(counts)
    return dict(counts)


def build_spec(*, dataset_version: DatasetVersion, request: Mapping[str, Any]) -> tuple[TrainingSpec, list[str]]:
    """Turn a training request into a validated spec for this dataset version.

    Features default to the columns whose role is ``feature``; categorical columns are
    inferred from their types; the target and positive class come from the dataset's
    profile unless given. Returns the spec and the protected/excluded columns explicitly
    allowed as features (recorded with the version).
    """
    columns = {c["name"]: c["dtype"] for c in dataset_version.schema}
    roles = {c["name"]: c["role"] for c in dataset_version.schema}
    target_profile = dataset_version.profile.get("target") or {}
    target = request.get("target") or dataset_version.target
    if not dataset_version.target or target != dataset_version.target:
        # The registry validated (binary, class counts) only the declared target.
        raise ValidationFailed(
            f"models train on the dataset version's declared target ({dataset_version.target or 'none declared'}); "
            f"register a dataset version with target {target!r} to train on it",
            code="invalid_spec", details={"field": "target"})
    features = request.get("features") or list(default_features(columns, roles))
    feature_types = {f: columns[f] for f in features if f in columns}
    categorical = request.get("categorical")
    if categorical is None:
        categorical = list(infer_categorical(feature_types))
    positive_class = request.get("positive_class", target_profile.get("positive_class"))
    allow_protected = bool(request.get("allow_protected_features", False))
    allow_excluded = bool(request.get("allow_excluded_features", False))
    spec_data = {
        "algorithm": request.get("algorithm"), "target": target, "positive_class": positive_class,
        "features": features, "categorical": categorical, "hyperparameters": request.get("hyperparameters") or {},
        "seed": request.get("seed", 0), "test_size": request.get("test_size", 0.25),
        "split": request.get("split", "stratified"), "date_column": request.get("date_column"),
        "cutoff": request.get("cutoff"), "search": request.get("search"),
    }
    try:
        spec = TrainingSpec.from_dict(spec_data)
        counts = _typed_counts(target_profile.get("classes"), spec.positive_class)
        validate_against_schema(spec, columns, roles, counts, allow_protected=allow_protected,
                                allow_excluded=allow_excluded)
    except SpecError as exc:
        raise _spec_error(exc) from None
    suspects = {s["column"]: s for s in dataset_version.profile.get("protected_suspects", [])}
    flagged = [f for f in spec.features if f in suspects]
    if flagged and not allow_protected:
        named = ", ".join(f"{c!r} ({suspects[c]['characteristic']})" for c in flagged)
        raise ValidationFailed(
            f"columns that look like protected characteristics have no role: {named}; register the dataset again "
            "with their roles (protected, identifier or excluded), or set allow_protected_features to use them as "
            "features, recorded as an exception",
            code="protected_suspect", details={"field": "features", "columns": flagged})
    exceptions = [f for f in spec.features if roles.get(f) in ("protected", "excluded") or f in suspects]
    return spec, exceptions


def training_job_create(*, actor: Any, registered_model: RegisteredModel, dataset_version: DatasetVersion,
                        request: Mapping[str, Any]) -> Job:
    """Validate a training request and queue a training job (202); nothing is queued if it is invalid."""
    require(actor, Capability.MODEL_TRAIN)
    spec, exceptions = build_spec(dataset_version=dataset_version, request=request)
    threshold = request.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise ValidationFailed(f"threshold must be a number strictly between 0 and 1; got {threshold!r}",
                               code="invalid_spec", details={"field": "threshold"})
    with transaction.atomic():
        job = Job.objects.create(
            kind=JobKind.TRAIN, registered_model=registered_model, dataset_version=dataset_version,
            params={"spec": spec.to_dict(), "allowed_exceptions": exceptions, "threshold": float(threshold)},
            requested_by=actor, requested_by_username=actor.username,
        )
        audit_record(actor=actor, action="train_job.created", target=job,
                     after={"registered_model": registered_model.name, "dataset_version": dataset_version.pk,
                            "dataset_sha256": dataset_version.sha256, **job.params})
        job_dispatch(job=job)
    return job


def _scaled(progress: Progress, low: int, high: int) -> Progress:
    return lambda stage, percent: progress(stage, low + (high - low) * percent // 100)


def training_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Train a version from its job's spec, store the artifact, and record the version (then queue its evaluation)."""
    started = time.perf_counter()
    progress("loading data", 2)
    spec = TrainingSpec.from_dict(job.params["spec"])
    needed = [*spec.features, spec.target, *([spec.date_column] if spec.date_column else [])]
    frame = dataset_frame(job.dataset_version, columns=list(dict.fromkeys(needed)), categories=list(spec.categorical))
    loaded = time.perf_counter()
    # Predictions are left to the evaluation job that follows, so they are computed once.
    result = train(frame, spec, progress=_scaled(progress, 5, 90), predict=False)
    progress("saving artifact", 92)
    trained = time.perf_counter()
    artifact = dumps_artifact(result.pipeline)
    artifact_sha = sha256_hex(artifact)
    serialised = time.perf_counter()
    path = save_bytes(f"models/{job.registered_model.name}/job-{job.pk}-{artifact_sha[:16]}.skops", artifact)
    stored.append(path)
    now = time.perf_counter()
    timings = {"load_data": loaded - started, **result.timings, "serialise": serialised - trained,
               "store": now - serialised, "total": now - started}
    pipeline_text = describe_pipeline(result.pipeline)  # not inside the transaction that holds the write lock
    split_summary = {
        "n_train": int(len(result.train_index)), "n_test": int(len(result.test_index)),
        "train_positive_rate": float(result.y_train.mean()), "test_positive_rate": float(result.y_test.mean()),
    }

    def write(finished: Job) -> None:
        model = registered_model_lock(id=finished.registered_model_id)
        number = (model.versions.aggregate(m=Max("version"))["m"] or 0) + 1
        requester = finished.requested_by
        version = ModelVersion.objects.create(
            registered_model=model, version=number, dataset_version=finished.dataset_version,
            dataset_sha256=finished.dataset_version.sha256, spec=spec.to_dict(), algorithm=spec.algorithm,
            allowed_exceptions=finished.params.get("allowed_exceptions", []),
            preprocessing={"numeric": list(spec.numeric), "categorical": list(spec.categorical_in_order),
                           "pipeline": pipeline_text},
            environment=environment_versions(), artifact_path=path, artifact_sha256=artifact_sha,
            artifact_size=len(artifact), search_results=result.search_results, split_summary=split_summary,
            timings=timings, training_job=finished, created_by=requester,
            created_by_username=finished.requested_by_username,
        )
        audit_record(actor=None, actor_label="system:worker", action="model_version.created", target=version,
                     after={"registered_model": model.name, "version": number, "artifact_sha256": artifact_sha,
                            "dataset_sha256": version.dataset_sha256, "spec": version.spec,
                            "environment": version.environment, "requested_by": finished.requested_by_username})
        Job.objects.filter(pk=finished.pk).update(model_version=version)
        # Every version is evaluated on its own test split, by a job of its own.
        evaluation_job_queue(actor=None, requested_by=requester, requested_by_username=finished.requested_by_username,
                             model_version=version, dataset_version=finished.dataset_version,
                             scope="test_split", threshold=finished.params.get("threshold", DEFAULT_THRESHOLD))

    return Finished({"artifact_sha256": artifact_sha, "timings": timings, "warnings": result.warnings}, write)

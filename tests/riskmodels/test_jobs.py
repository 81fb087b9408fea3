"""Training, evaluation and reproduction jobs run in this process: the state machine and its results.

These use real commits (transactional tests), as a worker would see them; the worker-process
versions are in tests/integration.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from sklearn.metrics import brier_score_loss, roc_auc_score

from governance.audit import audit_verify
from governance.exceptions import Conflict, PermissionDenied
from governance.models import AuditEvent
from riskmodels.jobs import job_cancel, job_claim, jobs_reap
from riskmodels.jobs.kinds import job_execute
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec, describe_pipeline, prepare_features
from riskmodels.ml.training import binary_target, split
from riskmodels.models import Evaluation, Job, JobStatus, ModelVersion
from riskmodels.services.datasets import dataset_version_create
from riskmodels.services.evaluation import model_versions_compare
from riskmodels.services.reproduce import reproduction_job_create
from riskmodels.services.training import training_job_create
from riskmodels.storage import dataset_frame
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db(transaction=True)


def _train(developer, dataset_version, model, **request):  # noqa: ANN001,ANN202
    request = {"algorithm": "gradient_boosting", "hyperparameters": {"max_depth": 3}, **request}
    job = training_job_create(actor=developer, registered_model=model, dataset_version=dataset_version, request=request)
    job_execute(job_id=job.pk)
    return Job.objects.get(pk=job.pk)


def _evaluate_pending() -> list[Evaluation]:
    for job in Job.objects.filter(kind="evaluate", status=JobStatus.QUEUED):
        job_execute(job_id=job.pk)
    return list(Evaluation.objects.all())


def test_a_training_job_produces_an_immutable_reproducible_version(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = _train(developer, german_credit_version, retail_model)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.progress_percent, job.attempts) == (100, 1)
    version = ModelVersion.objects.get(training_job=job)
    assert version.version == 1 and version.algorithm == "gradient_boosting"
    assert version.dataset_sha256 == german_credit_version.sha256
    assert version.spec["seed"] == 0 and version.spec["hyperparameters"]["max_depth"] == 3
    assert {"python", "scikit-learn", "numpy", "shap"} <= set(version.environment)
    stored = default_storage.open(version.artifact_path).read()
    assert hashlib.sha256(stored).hexdigest() == version.artifact_sha256
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    for expected in ("train_job.created", "train_job.started", "model_version.created", "train_job.succeeded",
                     "evaluate_job.created"):
        assert expected in actions
    assert audit_verify().ok


@pytest.mark.parametrize("search", [None, {"method": "grid", "param_grid": {"max_depth": [2, 4]}, "cv": 2}])
def test_the_recorded_pipeline_text_is_the_fitted_pipelines(developer, german_credit_version, retail_model,  # noqa: ANN001
                                                            search):
    # With a search, the text is the winner's.
    job = _train(developer, german_credit_version, retail_model, search=search)
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = ModelVersion.objects.get(training_job=job)
    fitted = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    assert version.preprocessing["pipeline"] == describe_pipeline(fitted)
    assert all(f"'{feature}'" in version.preprocessing["pipeline"] for feature in version.spec["features"])
    winner = next(r["params"] for r in version.search_results if r["rank"] == 1) if search else {}
    depth = winner.get("max_depth", version.spec["hyperparameters"]["max_depth"])
    assert f"max_depth={depth}" in version.preprocessing["pipeline"]


def test_the_test_split_evaluation_agrees_with_scikit_learn(developer, german_credit_version, retail_model):  # noqa: ANN001
    _train(developer, german_credit_version, retail_model)
    [evaluation] = _evaluate_pending()
    version = evaluation.model_version
    # An independent reference: reload the artifact, rebuild the split, score with sklearn.
    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    spec = TrainingSpec.from_dict(version.spec)
    frame = dataset_frame(german_credit_version)
    _, test_idx = split(frame, spec)
    y = binary_target(frame, spec)[test_idx]
    p = pipeline.predict_proba(prepare_features(frame.iloc[test_idx], spec))[:, 1]
    metrics = evaluation.metrics
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["gini"] == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert metrics["n"] == len(test_idx) == 250
    assert 0.72 <= metrics["auc"] <= 0.85
    assert set(evaluation.plots) == {"roc", "pr", "calibration", "deciles"}
    assert evaluation.degradation["auc"]["train"] >= evaluation.degradation["auc"]["test"] == metrics["auc"]
    assert default_storage.open(evaluation.plots["roc"]).read().startswith(b"\x89PNG")


def test_text_categoricals_read_as_dictionaries_give_the_same_features_and_model(german_credit_version):  # noqa: ANN001
    from riskmodels.ml.pipelines import build_pipeline, infer_categorical

    plain = dataset_frame(german_credit_version)
    features = [c for c in plain.columns if c != german_credit_version.target]
    categorical = list(infer_categorical(plain[features].dtypes.to_dict()))
    coded = dataset_frame(german_credit_version, categories=[*categorical, "not-a-column"])
    assert categorical and all(isinstance(coded[c].dtype, pd.CategoricalDtype) for c in categorical
                               if pd.api.types.is_string_dtype(plain[c].dtype))
    assert all(coded[c].dtype == plain[c].dtype for c in plain.columns if c not in categorical)
    spec = TrainingSpec(algorithm="gradient_boosting", target=german_credit_version.target, positive_class="bad",
                        features=tuple(features), categorical=tuple(categorical), hyperparameters={})
    X_plain, X_coded = prepare_features(plain, spec), prepare_features(coded, spec)
    pd.testing.assert_frame_equal(X_plain, X_coded)
    y = binary_target(plain, spec)
    p_plain = build_pipeline(spec).fit(X_plain, y).predict_proba(X_plain)[:, 1]
    p_coded = build_pipeline(spec).fit(X_coded, y).predict_proba(X_coded)[:, 1]
    assert np.array_equal(p_plain, p_coded)


def test_a_second_delivery_of_a_finished_job_is_a_no_op(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = _train(developer, german_credit_version, retail_model)
    events = AuditEvent.objects.count()
    job_execute(job_id=job.pk)
    assert ModelVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_claim_succeeds_once(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    assert job_claim(job_id=job.pk) is not None
    assert job_claim(job_id=job.pk) is None


def test_cancelling_a_queued_job_means_it_never_runs(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    assert job_cancel(actor=developer, job=job).status == JobStatus.CANCELLED
    job_execute(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert ModelVersion.objects.count() == 0
    with pytest.raises(Conflict):
        job_cancel(actor=developer, job=job)


def test_a_running_job_asked_to_cancel_stops_and_leaves_no_artifact(developer, german_credit_version, retail_model,  # noqa: ANN001
                                                                      _isolated_media):
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    files_before = stored_files(_isolated_media)
    job_claim(job_id=job.pk)
    job_cancel(actor=developer, job=Job.objects.get(pk=job.pk))
    assert Job.objects.get(pk=job.pk).cancel_requested
    # The claimed job is run by the worker's loop; here the progress checkpoint sees the request.
    from riskmodels.jobs import JobCancelled, job_progress

    with pytest.raises(JobCancelled):
        job_progress(job_id=job.pk, stage="fit", percent=50)
    assert stored_files(_isolated_media) == files_before


def test_others_cannot_cancel_a_developers_job(developer, other_developer, german_credit_version, retail_model):  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    with pytest.raises(PermissionDenied):
        job_cancel(actor=other_developer, job=job)


def test_a_failed_job_keeps_its_error_and_leaves_no_version_or_artifact(developer, german_credit_version,  # noqa: ANN001
                                                                        retail_model, _isolated_media):
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    # Corrupt the stored dataset: the worker must refuse data whose hash no longer matches.
    with default_storage.open(german_credit_version.storage_path, "wb") as handle:
        handle.write(b"not the registered bytes")
    dataset_file = _isolated_media / german_credit_version.storage_path
    job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "StoredFileCorrupt" in job.error and "hash" in job.error
    assert ModelVersion.objects.count() == 0
    assert stored_files(_isolated_media) == [dataset_file]
    assert AuditEvent.objects.filter(action="train_job.failed", target_id=str(job.pk)).exists()


def test_the_reaper_requeues_a_job_whose_worker_died_then_fails_it_when_attempts_run_out(  # noqa: ANN201
        developer, german_credit_version, retail_model, settings):  # noqa: ANN001
    settings.JOB_LEASE_SECONDS = 10
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    job_claim(job_id=job.pk)  # a worker claimed it, then died: no more heartbeats
    later = timezone.now() + timedelta(seconds=60)
    assert jobs_reap(now=later) == {"requeued": [job.pk], "failed": [], "resent": []}
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and "lease" in job.error
    job_claim(job_id=job.pk)  # the second attempt dies too
    assert jobs_reap(now=timezone.now() + timedelta(seconds=60)) == {"requeued": [], "failed": [job.pk], "resent": []}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no attempts left" in job.error
    assert job.attempts == job.max_attempts


def test_the_reaper_leaves_jobs_with_a_fresh_lease_alone(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    job_claim(job_id=job.pk)
    assert jobs_reap() == {"requeued": [], "failed": [], "resent": []}


def test_the_reaper_resends_a_queued_job_whose_message_was_lost_once_per_lease(  # noqa: ANN201
        developer, german_credit_version, retail_model, settings, monkeypatch):  # noqa: ANN001
    from celery import current_app

    settings.JOB_LEASE_SECONDS = 10
    sent: list[dict] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, kwargs: sent.append({"name": name, **kwargs}))
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    sent.clear()  # the broker lost the message the service sent
    assert jobs_reap()["resent"] == []  # within its lease: the queue may just be long
    later = timezone.now() + timedelta(seconds=60)
    assert jobs_reap(now=later) == {"requeued": [], "failed": [], "resent": [job.pk]}
    assert sent == [{"name": "riskmodels.run_job", "job_id": job.pk}]
    assert jobs_reap(now=later + timedelta(seconds=5))["resent"] == []  # sent once per lease, not every pass
    events = AuditEvent.objects.count()
    assert jobs_reap(now=later + timedelta(seconds=20))["resent"] == [job.pk]
    assert AuditEvent.objects.count() == events  # a resend changes no state: nothing to audit
    job_claim(job_id=job.pk)  # claimed at last: a running job is the lease's business, not the resend's
    assert jobs_reap(now=timezone.now() + timedelta(seconds=5))["resent"] == []


def test_a_reproduction_check_reports_identical_predictions(developer, validator, german_credit_version,  # noqa: ANN001
                                                           retail_model):
    _train(developer, german_credit_version, retail_model, algorithm="random_forest",
           hyperparameters={"n_estimators": 30})
    version = ModelVersion.objects.get()
    job = reproduction_job_create(actor=validator, model_version=version)
    job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["identical_predictions"] is True
    assert job.result["max_abs_difference"] == 0.0
    assert AuditEvent.objects.filter(action="model_version.reproduction_checked").exists()


def test_champion_and_challenger_compare_on_their_common_test_split(developer, german_credit_version,  # noqa: ANN001
                                                                    retail_model):
    _train(developer, german_credit_version, retail_model, algorithm="logistic_regression", hyperparameters={})
    _train(developer, german_credit_version, retail_model, algorithm="gradient_boosting")
    _evaluate_pending()
    champion, challenger = ModelVersion.objects.order_by("version")
    result = model_versions_compare(champion=champion, challenger=challenger)
    auc = result["comparison"]["auc"]
    a = Evaluation.objects.get(model_version=champion).metrics["auc"]
    b = Evaluation.objects.get(model_version=challenger).metrics["auc"]
    assert (auc["a"], auc["b"]) == (a, b)
    assert auc["delta"] == pytest.approx(b - a)
    assert np.isfinite(auc["delta"])


def test_stored_files_are_written_whole_or_not_at_all(_isolated_media, monkeypatch):  # noqa: ANN001
    from riskmodels import storage

    path = storage.save_bytes("models/x/artifact.skops", b"complete bytes")
    assert default_storage.open(path).read() == b"complete bytes"

    import os

    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        storage.save_bytes("models/x/second.skops", b"never whole")
    # Nothing half-written: neither the target nor a temporary file is left.
    names = sorted(p.name for p in stored_files(_isolated_media))
    assert names == ["artifact.skops"]


def test_a_numeric_0_0_1_0_target_trains_without_naming_the_positive_class(developer, retail_model, tmp_path):  # noqa: ANN001
    import pandas as pd

    from tests.conftest import GERMAN_CREDIT, register_demo_dataset

    frame = pd.read_csv(GERMAN_CREDIT)
    frame["creditability"] = (frame["creditability"] == "bad").astype(float)  # 1.0 = default
    path = tmp_path / "numeric-target.csv"
    frame.to_csv(path, index=False)
    version = register_demo_dataset(developer, path, name="german-numeric-target")
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=version,
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert ModelVersion.objects.get().spec["positive_class"] == 1


def test_a_column_that_looks_protected_is_flagged_at_upload_and_refused_as_a_feature_until_decided(  # noqa: ANN201
        developer, retail_model):
    from governance.exceptions import ValidationFailed
    from tests.conftest import GERMAN_CREDIT

    with GERMAN_CREDIT.open("rb") as handle:  # uploaded without roles
        version, _ = dataset_version_create(actor=developer, name="german-no-roles", source=handle,
                                            filename="german.csv", target="creditability")
    suspects = {s["column"]: s["characteristic"] for s in version.profile["protected_suspects"]}
    assert suspects == {"age_in_years": "age", "personal_status_and_sex": "sex and gender",
                        "foreign_worker": "national origin and citizenship"}
    assert any("age_in_years" in w for w in version.profile["warnings"])
    with pytest.raises(ValidationFailed) as refused:
        training_job_create(actor=developer, registered_model=retail_model, dataset_version=version,
                            request={"algorithm": "logistic_regression"})
    assert refused.value.code == "protected_suspect" and "age_in_years" in refused.value.message
    assert not Job.objects.exists()
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=version,
                              request={"algorithm": "logistic_regression", "allow_protected_features": True})
    assert set(job.params["allowed_exceptions"]) == set(suspects)  # recorded with the version


def test_the_catalogue_is_edited_by_compliance_and_a_new_entry_flags_the_next_upload(developer, compliance_officer):  # noqa: ANN001
    from governance.exceptions import PermissionDenied, ValidationFailed
    from riskmodels.models import ProtectedCharacteristic
    from riskmodels.services.datasets import protected_characteristic_save
    from tests.conftest import GERMAN_CREDIT, GERMAN_CREDIT_ROLES

    with pytest.raises(PermissionDenied):
        protected_characteristic_save(actor=developer, name="tenure", name_words="present_residence*")
    with pytest.raises(ValidationFailed, match="comma-separated words"):
        protected_characteristic_save(actor=compliance_officer, name="bad", name_words="not a word!")
    protected_characteristic_save(actor=compliance_officer, name="residence as a proxy", name_words="residence")
    assert ProtectedCharacteristic.objects.filter(name="age").exists()  # the defaults were made explicit
    with GERMAN_CREDIT.open("rb") as handle:
        version, _ = dataset_version_create(actor=developer, name="german", source=handle, filename="german.csv",
                                            target="creditability", roles=GERMAN_CREDIT_ROLES)
    assert {s["column"] for s in version.profile["protected_suspects"]} == {"present_residence_since"}


def test_a_job_committed_while_the_broker_is_down_is_still_accepted_and_left_for_the_reaper(  # noqa: ANN201
        developer, german_credit_version, retail_model, monkeypatch):  # noqa: ANN001
    from celery import current_app
    from kombu.exceptions import OperationalError

    def refuse(name, kwargs):  # noqa: ANN001,ANN202
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(current_app, "send_task", refuse)
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert AuditEvent.objects.filter(action="train_job.created", target_id=str(job.pk)).exists()
    assert jobs_reap(now=timezone.now() + timedelta(minutes=10))["resent"] == [job.pk]

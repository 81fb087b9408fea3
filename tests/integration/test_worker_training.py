"""Training through the API alone, run by real worker processes; a worker killed mid-training."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from governance.audit import audit_verify
from riskmodels.jobs import jobs_reap
from riskmodels.models import Evaluation, Job, JobStatus, ModelVersion
from tests.conftest import GERMAN_CREDIT, GERMAN_CREDIT_ROLES, client_for, stored_files
from tests.integration.conftest import slow_dataset, start_worker, wait_for

pytestmark = pytest.mark.integration
ALGORITHMS = ["logistic_regression", "random_forest", "gradient_boosting", "mlp", "linear_svm"]


def _upload(client, path: Path, name: str, target: str, roles: dict | None = None) -> dict:  # noqa: ANN001
    import json

    with path.open("rb") as handle:
        data = {"name": name, "file": handle, "target": target}
        if roles:
            data["roles"] = json.dumps(roles)
        response = client.post("/api/v1/datasets/", data, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()


def _register_model(client, name: str = "retail-pd") -> None:  # noqa: ANN001
    response = client.post("/api/v1/models/", {"name": name, "owner_team": "retail risk",
                                               "purpose": "PD for instalment loans"}, format="json")
    assert response.status_code == 201, response.json()


def _job(client, job_id: int) -> dict:  # noqa: ANN001
    return client.get(f"/api/v1/jobs/{job_id}/").json()


def test_a_developer_trains_all_five_algorithms_through_the_api_and_reads_their_metrics(
        celery_worker_process, developer):  # noqa: ANN001
    client = client_for(developer)
    dataset = _upload(client, GERMAN_CREDIT, "german-credit", "creditability", GERMAN_CREDIT_ROLES)
    _register_model(client)
    job_ids = []
    for algorithm in ALGORITHMS:
        response = client.post("/api/v1/training-jobs/", {"registered_model": "retail-pd",
                                                          "dataset_version": dataset["id"], "algorithm": algorithm},
                               format="json")
        assert response.status_code == 202, response.json()
        job_ids.append(response.json()["id"])
    for job_id in job_ids:
        job = wait_for(lambda j=job_id: (b := _job(client, j))["status"] in ("succeeded", "failed") and b,
                       timeout=180, worker=celery_worker_process)
        assert job["status"] == "succeeded", job["error"]
    wait_for(lambda: Evaluation.objects.count() == len(ALGORITHMS), timeout=180, worker=celery_worker_process)

    versions = client.get("/api/v1/model-versions/", {"registered_model__name": "retail-pd"}).json()["results"]
    assert sorted(v["algorithm"] for v in versions) == sorted(ALGORITHMS)
    aucs = {}
    for version in versions:
        [evaluation] = version["evaluations"]
        metrics = evaluation["metrics"]
        assert {"auc", "gini", "ks", "brier", "log_loss", "confusion_matrix", "hosmer_lemeshow"} <= set(metrics)
        assert metrics["bootstrap"]["auc"]["lower"] <= metrics["auc"] <= metrics["bootstrap"]["auc"]["upper"]
        aucs[version["algorithm"]] = metrics["auc"]
        plot = client.get(evaluation["plots"]["roc"])
        assert plot.status_code == 200 and b"".join(plot.streaming_content).startswith(b"\x89PNG")
    # The range the literature reports for German Credit.
    assert 0.75 <= aucs["gradient_boosting"] <= 0.82, aucs
    artifact = client.get(f"/api/v1/model-versions/{versions[0]['id']}/artifact/")
    import hashlib

    assert hashlib.sha256(b"".join(artifact.streaming_content)).hexdigest() == versions[0]["artifact_sha256"]
    assert audit_verify().ok


def _start_slow_training(client, tmp_path: Path) -> int:  # noqa: ANN001
    dataset = _upload(client, slow_dataset(tmp_path), "synthetic-slow", "default")
    _register_model(client, "slow-model")
    response = client.post("/api/v1/training-jobs/", {
        "registered_model": "slow-model", "dataset_version": dataset["id"], "algorithm": "random_forest",
        "hyperparameters": {"n_estimators": 400, "min_samples_leaf": 1}}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_a_worker_killed_mid_training_is_reaped_and_the_job_retried_to_success(
        celery_worker_process, developer, tmp_path, _isolated_media, settings):  # noqa: ANN001
    client = client_for(developer)
    job_id = _start_slow_training(client, tmp_path)
    wait_for(lambda: Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, progress_stage="fit").exists(),
             timeout=120, interval=0.05, worker=celery_worker_process)
    celery_worker_process.kill(signal.SIGKILL)

    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.RUNNING  # nobody is left to say otherwise ...
    assert ModelVersion.objects.count() == 0
    assert not [p for p in stored_files(_isolated_media) if p.suffix == ".skops" or ".tmp" in p.name]

    # ... until the reaper sees the lease run out, and requeues the job for another worker.
    outcome = jobs_reap(now=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1))
    assert outcome == {"requeued": [job_id], "failed": [], "resent": []}
    second = start_worker(tmp_path)
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
                 timeout=300, worker=second)
    finally:
        second.kill(signal.SIGTERM)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    version = ModelVersion.objects.get()
    artifacts = [p for p in stored_files(_isolated_media) if p.suffix == ".skops"]
    assert [str(p.relative_to(_isolated_media)) for p in artifacts] == [version.artifact_path]
    assert audit_verify().ok


def test_a_running_job_cancelled_through_the_api_ends_cancelled_with_no_artifact(
        celery_worker_process, developer, tmp_path, _isolated_media):  # noqa: ANN001
    client = client_for(developer)
    job_id = _start_slow_training(client, tmp_path)
    wait_for(lambda: Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists(), timeout=120,
             interval=0.05, worker=celery_worker_process)
    response = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    wait_for(lambda: Job.objects.get(pk=job_id).status != JobStatus.RUNNING, timeout=300,
             worker=celery_worker_process)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED
    assert ModelVersion.objects.count() == 0
    assert not [p for p in stored_files(_isolated_media) if p.suffix == ".skops"]

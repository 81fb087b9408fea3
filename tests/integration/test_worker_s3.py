"""The S3 storage backend against a real S3-compatible server (moto's), shared by two worker processes.

Each worker has its own scratch folders (media, temp), so the only way a file one process
wrote can reach another is the object store: a dataset uploaded through the API, a model
trained by one worker, a SHAP report whose chunks both workers take, and the artifact and
report read back through the API.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from governance.audit import audit_verify
from riskmodels.models import DatasetVersion, ExplanationReport, Job, JobChunk, JobStatus, ModelVersion
from tests.conftest import GERMAN_CREDIT, GERMAN_CREDIT_ROLES, client_for, stored_files
from tests.integration.conftest import start_worker, wait_for

pytestmark = pytest.mark.integration
BUCKET = "governance-test"
# moto accepts any credentials; these are set explicitly so no real ones from the environment are used.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:  # noqa: ANN001
    """A moto S3 server on a free loopback port, stopped after the test; skip if it cannot start."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]'): the S3 test needs it")
    port = _free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.skip(f"moto_server did not start: {(tmp_path / 'moto.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def s3_client(s3_endpoint):  # noqa: ANN001,ANN201
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=CREDENTIALS["AWS_DEFAULT_REGION"])


@pytest.fixture
def s3_storage(s3_endpoint, s3_client, settings, monkeypatch):  # noqa: ANN001,ANN201
    """Point this process's storage at the bucket exactly as STORAGE_BACKEND=s3 does; return the workers' env."""
    s3_client.create_bucket(Bucket=BUCKET)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_BACKEND", "s3")
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    from governance.settings import storage_settings

    settings.STORAGES = {**settings.STORAGES, "default": storage_settings()}
    return {"STORAGE_BACKEND": "s3", "S3_BUCKET": BUCKET, "S3_ENDPOINT_URL": s3_endpoint, **CREDENTIALS}


def _bucket_objects(client) -> dict[str, str]:  # noqa: ANN001
    """Every object in the bucket and the SHA-256 of its bytes."""
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = hashlib.sha256(body).hexdigest()
    return objects


def _download(client, url: str) -> tuple[bytes, str]:  # noqa: ANN001
    response = client.get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content), response["X-Content-SHA256"]


def test_two_workers_share_datasets_models_and_a_chunked_report_only_through_s3(
        s3_storage, s3_client, developer, tmp_path, settings, transactional_db, _isolated_media):  # noqa: ANN001
    from governance.celery import app

    app.control.purge()
    settings.EXPLAIN_CHUNK_ROWS = 50  # 250 test rows -> 5 chunk tasks, for both workers to take
    scratch = {name: tmp_path / name for name in ("worker-a", "worker-b")}
    workers = []
    for folder in scratch.values():
        (folder / "media").mkdir(parents=True)
        (folder / "tmp").mkdir()
        workers.append(start_worker(tmp_path, extra_env={**s3_storage, "MEDIA_ROOT": str(folder / "media"),
                                                         "TMPDIR": str(folder / "tmp")}))
    client = client_for(developer)
    try:
        with GERMAN_CREDIT.open("rb") as handle:
            response = client.post("/api/v1/datasets/", {"name": "german-credit", "file": handle,
                                                         "target": "creditability",
                                                         "roles": json.dumps(GERMAN_CREDIT_ROLES)}, format="multipart")
        assert response.status_code == 201, response.json()
        dataset = response.json()
        response = client.post("/api/v1/models/", {"name": "retail-pd", "owner_team": "retail risk",
                                                   "purpose": "PD for instalment loans"}, format="json")
        assert response.status_code == 201, response.json()
        response = client.post("/api/v1/training-jobs/", {"registered_model": "retail-pd",
                                                          "dataset_version": dataset["id"],
                                                          "algorithm": "gradient_boosting"}, format="json")
        assert response.status_code == 202, response.json()
        training_id = response.json()["id"]
        wait_for(lambda: Job.objects.get(pk=training_id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
                 timeout=180, worker=workers[0])
        assert Job.objects.get(pk=training_id).status == JobStatus.SUCCEEDED, Job.objects.get(pk=training_id).error
        version = ModelVersion.objects.get()
        response = client.post(f"/api/v1/model-versions/{version.pk}/explanations/", {}, format="json")
        assert response.status_code == 202, response.json()
        report_id = response.json()["id"]
        wait_for(lambda: Job.objects.get(pk=report_id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
                 timeout=180, worker=workers[1])
        assert Job.objects.get(pk=report_id).status == JobStatus.SUCCEEDED, Job.objects.get(pk=report_id).error
        wait_for(lambda: ExplanationReport.objects.get(job_id=report_id).plot_files.count() >= 2, timeout=60,
                 worker=workers[0])
        # Every job the training queued (its evaluation, the validation battery) ran from S3 too.
        wait_for(lambda: not Job.objects.exclude(status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED)).exists(),
                 timeout=180, worker=workers[1])
    finally:
        for worker in workers:
            worker.kill(signal.SIGTERM)
    logs = [worker.output() for worker in workers]
    assert all("riskmodels.run_job_chunk" in log for log in logs), "both workers take chunks of the report"
    assert JobChunk.objects.filter(job_id=report_id, status="done").count() == 5
    failed = list(Job.objects.filter(status=JobStatus.FAILED).values_list("kind", "error"))
    assert not failed, failed

    # Every file a row points at is an object in the bucket, whose bytes hash to the recorded SHA-256.
    objects = _bucket_objects(s3_client)
    stored = DatasetVersion.objects.get(pk=dataset["id"])
    report = ExplanationReport.objects.get(job_id=report_id)
    assert objects[stored.storage_path] == stored.sha256
    assert objects[version.artifact_path] == version.artifact_sha256
    assert objects[report.values_path] == report.values_sha256
    assert {plot.path for plot in report.plot_files.all()} <= set(objects)
    # The hand-over files of the chunks were removed from the bucket after the merge.
    assert not [key for key in objects if "/chunk-" in key or key.endswith(".arrow")], sorted(objects)

    # The API serves the same bytes back from the bucket.
    artifact, artifact_header = _download(client, f"/api/v1/model-versions/{version.pk}/artifact/")
    assert hashlib.sha256(artifact).hexdigest() == version.artifact_sha256 == artifact_header
    values, values_header = _download(client, f"/api/v1/explanation-reports/{report.pk}/values.parquet")
    assert hashlib.sha256(values).hexdigest() == report.values_sha256 == values_header
    data, data_header = _download(client, f"/api/v1/dataset-versions/{stored.pk}/download/")
    assert hashlib.sha256(data).hexdigest() == stored.sha256 == data_header

    # Nothing went through a local folder: neither worker's media nor this process's.
    assert not [path for folder in scratch.values() for path in stored_files(folder / "media")]
    assert not stored_files(_isolated_media)
    assert audit_verify().ok

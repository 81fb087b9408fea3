"""A SHAP report fanned out over two real worker processes, requested and read through the API."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from django.core.files.storage import default_storage

from governance.audit import audit_verify
from riskmodels.ml.explain import GlobalReport
from riskmodels.models import ExplanationReport, Job, JobChunk, JobStatus, ModelVersion
from riskmodels.services.training import training_job_create
from tests.conftest import client_for, register_demo_dataset, register_model
from tests.integration.conftest import start_worker, wait_for

pytestmark = pytest.mark.integration


def test_a_report_is_split_across_two_workers_and_merged(developer, tmp_path, settings, transactional_db):  # noqa: ANN001
    from governance.celery import app

    app.control.purge()
    settings.EXPLAIN_CHUNK_ROWS = 50  # 250 test rows -> 5 chunk tasks
    workers = [start_worker(tmp_path), start_worker(tmp_path)]
    try:
        dataset = register_demo_dataset(developer)
        model = register_model(developer)
        job = training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                                  request={"algorithm": "gradient_boosting"})
        wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, timeout=120, worker=workers[0])
        version = ModelVersion.objects.get()
        client = client_for(developer)
        response = client.post(f"/api/v1/model-versions/{version.pk}/explanations/", {}, format="json")
        assert response.status_code == 202, response.json()
        job_id = response.json()["id"]
        wait_for(lambda: Job.objects.get(pk=job_id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED), timeout=180,
                 worker=workers[1])
        done = Job.objects.get(pk=job_id)
        assert done.status == JobStatus.SUCCEEDED, done.error
        # The plots follow the report, rendered by a task of their own.
        try:
            wait_for(lambda: ExplanationReport.objects.get(job_id=job_id).plot_files.count() >= 2, timeout=60)
        except AssertionError:
            raise AssertionError("\n=====\n".join(w.output()[-3000:] for w in workers)) from None
    finally:
        for worker in workers:
            worker.kill(signal.SIGTERM)
    logs = [w.output() for w in workers]
    # Both worker processes took chunk tasks.
    assert all("riskmodels.run_job_chunk" in log for log in logs), logs
    assert JobChunk.objects.filter(job_id=job_id, status="done").count() == 5
    report = ExplanationReport.objects.get(job_id=job_id)
    values = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())
    assert values.values.shape == (250, len(version.spec["features"]))
    assert np.all(np.diff(values.selection.positions) > 0)
    assert report.additivity_error < 1e-6
    body = client.get(f"/api/v1/explanation-reports/{report.pk}/").json()
    assert body["importance"][0]["rank"] == 1
    assert b"".join(client.get(body["plots"]["beeswarm"]).streaming_content).startswith(b"\x89PNG")
    assert audit_verify().ok

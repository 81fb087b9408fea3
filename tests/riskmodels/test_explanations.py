"""SHAP reports through the service: chunked in parallel tasks, merged exactly; local reason codes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shap
from django.core.files.storage import default_storage

from governance.audit import audit_verify
from governance.exceptions import ValidationFailed
from governance.models import AuditEvent
from riskmodels.jobs import chunk_finished, fanned_out_job_fail
from riskmodels.jobs.kinds import chunk_execute, job_execute
from riskmodels.ml.explain import ExplainOptions, GlobalReport, explain_global, make_explainer
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.models import ExplanationReport, Job, JobChunk, JobStatus, ModelVersion
from riskmodels.services.explanations import (
    explanation_job_create,
    explanation_local,
    explanation_plots_render,
)
from riskmodels.services.reasons import reason_text_set
from riskmodels.services.training import training_job_create
from riskmodels.storage import dataset_frame
from tests.conftest import client_for, stored_files

pytestmark = pytest.mark.django_db(transaction=True)
PROTECTED = {"personal_status_and_sex", "age_in_years", "foreign_worker"}


@pytest.fixture
def hgb_version(developer, german_credit_version, retail_model):  # noqa: ANN001,ANN201
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "gradient_boosting", "hyperparameters": {"max_depth": 3}})
    job_execute(job_id=job.pk)
    return ModelVersion.objects.get()


def _run_report(job: Job, *, reverse: bool = False) -> None:
    """Do what the workers do: the coordinator, then every chunk task (in any order)."""
    job_execute(job_id=job.pk)
    ids = list(JobChunk.objects.filter(job=job).order_by("index").values_list("pk", flat=True))
    for chunk_id in reversed(ids) if reverse else ids:
        chunk_execute(chunk_id=chunk_id)
    for report in ExplanationReport.objects.filter(job=job):
        explanation_plots_render(report_id=report.pk)


def test_a_chunked_report_equals_the_single_process_report_exactly(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_CHUNK_ROWS = 60  # 250 test rows -> 5 chunks, merged out of order
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job, reverse=True)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert JobChunk.objects.filter(job=job).count() == 5
    report = ExplanationReport.objects.get(job=job)
    assert report.status == "ok" and report.n_rows == 250
    assert report.additivity_error < 1e-6
    stored = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())

    # The reference: the library in one process, on the same artifact and test rows.
    spec = TrainingSpec.from_dict(hgb_version.spec)
    pipeline = load_artifact(default_storage.open(hgb_version.artifact_path).read(),
                             expected_sha256=hgb_version.artifact_sha256)
    frame = dataset_frame(hgb_version.dataset_version)
    from riskmodels.ml.training import split

    _, test_idx = split(frame, spec)
    single = explain_global(pipeline, spec, frame.iloc[test_idx][list(spec.features)],
                            options=ExplainOptions(max_rows=None))
    assert np.array_equal(stored.values, single.values)
    assert list(stored.features) == list(single.features)
    assert list(stored.row_ids) == [int(i) for i in test_idx]
    # Features are the original ones, not encoded columns.
    assert "purpose" in stored.features and not any("__" in f for f in stored.features)
    assert [i["feature"] for i in report.importance][:3] == [i.feature for i in single.importance()][:3]
    assert {"beeswarm", "bar"} <= set(report.plot_files.values_list("name", flat=True))
    assert report.plot_files.filter(name__startswith="dependence:").count() == 3
    # The chunk hand-over files are gone; values and plots remain.
    assert not [p for p in stored_files(settings.MEDIA_ROOT) if p.name.startswith("chunk-")]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"explanation_report.requested", "explanation_report.finished"} <= actions
    assert audit_verify().ok


def test_stored_values_equal_a_bare_shap_tree_explainer_on_one_hot_free_columns(hgb_version, developer):  # noqa: ANN001
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job)
    report = ExplanationReport.objects.get(job=job)
    stored = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())
    # Additivity against the model's own raw output (log-odds for gradient boosting).
    spec = TrainingSpec.from_dict(hgb_version.spec)
    pipeline = load_artifact(default_storage.open(hgb_version.artifact_path).read(),
                             expected_sha256=hgb_version.artifact_sha256)
    rows = dataset_frame(hgb_version.dataset_version).loc[stored.row_ids]
    raw = pipeline[-1].decision_function(pipeline[:-1].transform(prepare_features(rows, spec)))
    assert np.max(np.abs(stored.base_value + stored.values.sum(axis=1) - raw)) < 1e-6
    assert report.fingerprint["output_space"] == "log_odds"


def test_a_tree_report_keeps_no_background_and_its_chunks_share_one_explainer(hgb_version, developer, settings,  # noqa: ANN001
                                                                              monkeypatch):
    import riskmodels.services.explanations.cache as cache

    settings.EXPLAIN_CHUNK_ROWS = 60  # 250 test rows -> 5 chunks
    built = []
    real = cache.make_explainer
    monkeypatch.setattr(cache, "make_explainer", lambda *a, **k: (built.append(1), real(*a, **k))[1])
    monkeypatch.setattr(cache, "TREE_EXPLAINERS", cache.ProcessCache(4))
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["chunks"] == 5 and len(built) == 1  # built once in this "worker", used by five chunks
    assert job.result["background_path"] is None
    report = ExplanationReport.objects.get(job=job)
    assert report.fingerprint["background_size"] == 0 and report.fingerprint["background_sha256"] is None


def test_a_chunk_reads_only_its_slice_of_the_stored_plan(settings):  # noqa: ANN001
    from riskmodels.storage import HandoverError, plan_save, plan_slice

    positions, rows = np.arange(1000, dtype=np.int64), np.arange(1000, dtype=np.int64)[::-1] * 3
    plan = [(0, 300), (300, 600), (600, 900), (900, 1000)]  # written a chunk at a time
    path = plan_save("explanations/test/rows.npy", plan, lambda a, b: positions[a:b], lambda a, b: rows[a:b])
    assert np.array_equal(np.load(default_storage.open(path, "rb")), np.stack([positions, rows]))  # a plain .npy
    got_positions, got_rows = plan_slice(path, 250, 260)
    assert np.array_equal(got_positions, positions[250:260]) and np.array_equal(got_rows, rows[250:260])
    only, none = plan_slice(path, 0, 1000, rows=False)
    assert np.array_equal(only, positions) and none is None
    with pytest.raises(HandoverError, match="not this job's plan"):
        plan_slice(path, 990, 1010)
    other = io.BytesIO()
    np.save(other, np.zeros((3, 4)))
    from riskmodels.storage import save_bytes

    with pytest.raises(HandoverError, match="not this job's plan"):
        plan_slice(save_bytes("explanations/test/other.npy", other.getvalue()), 0, 1)


def test_a_small_report_is_cut_so_that_every_worker_process_shares_it(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_CHUNK_ROWS = 1_000
    settings.EXPLAIN_MIN_CHUNK_ROWS = 10
    settings.EXPLAIN_PARALLELISM = 1
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    assert job.params["options"]["chunk_size"] == 1_000  # 250 rows: one chunk for one process
    settings.EXPLAIN_PARALLELISM = 2
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    assert job.params["options"]["chunk_size"] == 125
    _run_report(job)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.result["chunks"] == 2


def test_a_second_delivery_of_a_chunk_is_a_no_op(hgb_version, developer):  # noqa: ANN001
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job)
    events = AuditEvent.objects.count()
    for chunk in JobChunk.objects.filter(job=job):
        chunk_execute(chunk_id=chunk.pk)
    job_execute(job_id=job.pk)
    report = ExplanationReport.objects.get()
    plots = report.plot_files.count()
    explanation_plots_render(report_id=report.pk)
    assert ExplanationReport.objects.count() == 1 and report.plot_files.count() == plots
    assert AuditEvent.objects.count() == events


def test_only_one_of_two_chunks_that_finish_together_merges(hgb_version, developer, settings):  # noqa: ANN001
    # Two workers save their chunks, then both count them done: only one may merge. A late
    # progress update used to move the job back from "merging" to "explaining", so the second
    # also merged, failed on the report's unique job and deleted the merged report's plan.
    settings.EXPLAIN_CHUNK_ROWS = 125
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    job_execute(job_id=job.pk)
    assert JobChunk.objects.filter(job=job).count() == 2
    JobChunk.objects.filter(job=job).update(status=JobChunk.Status.DONE)
    assert [chunk_finished(job_id=job.pk), chunk_finished(job_id=job.pk)] == [True, False]
    job.refresh_from_db()
    assert (job.status, job.progress_stage, job.progress_percent) == (JobStatus.RUNNING, "merging", 90)


def test_a_chunk_task_failing_after_its_report_succeeded_keeps_the_report_files(hgb_version, developer,  # noqa: ANN001
                                                                                settings):
    settings.EXPLAIN_CHUNK_ROWS = 125
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job)
    job.refresh_from_db()
    report = ExplanationReport.objects.get(job=job)
    kept = [job.result["rows_path"], report.values_path]
    events = AuditEvent.objects.count()
    assert chunk_finished(job_id=job.pk) is False  # a late count of a merged report: nothing to do
    fanned_out_job_fail(job_id=job.pk, exc=RuntimeError("a late duplicate failed"))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and all(default_storage.exists(p) for p in kept)
    assert AuditEvent.objects.count() == events


def test_a_report_whose_job_ended_while_merging_is_discarded_with_its_values(hgb_version, developer,  # noqa: ANN001
                                                                             settings, monkeypatch):
    from riskmodels.services.explanations import reports

    settings.EXPLAIN_CHUNK_ROWS = 125
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    real_outcome = reports._report_outcome

    def reaped_meanwhile(*args, **kwargs):  # noqa: ANN002,ANN003,ANN202
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="reaped")
        return real_outcome(*args, **kwargs)

    monkeypatch.setattr(reports, "_report_outcome", reaped_meanwhile)
    job_execute(job_id=job.pk)
    plan = Job.objects.get(pk=job.pk).result["rows_path"]
    for chunk in JobChunk.objects.filter(job=job):
        chunk_execute(chunk_id=chunk.pk)
    assert not ExplanationReport.objects.filter(job=job).exists()
    assert not default_storage.exists(plan)
    assert not default_storage.listdir(str(plan).rsplit("/", 1)[0])[1]  # no values, chunk or staged file left
    assert audit_verify().ok


def test_a_request_over_the_row_cap_is_refused(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_MAX_ROWS = 100
    with pytest.raises(ValidationFailed, match="over the configured cap of 100"):
        explanation_job_create(actor=developer, model_version=hgb_version, max_rows=500)
    assert not Job.objects.filter(kind="explain").exists()


def _per_row_cost(version) -> float:  # noqa: ANN001
    from riskmodels.ml.explain import estimate_cost

    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    return estimate_cost(pipeline, 1)["seconds_per_row"]


def test_a_report_over_budget_is_sampled_with_a_recorded_seed(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_BUDGET_SECONDS = _per_row_cost(hgb_version) * 220.5  # affords 220 of the 250 test rows
    job = explanation_job_create(actor=developer, model_version=hgb_version, seed=7)
    assert job.params["budget"]["action"] == "sample"
    assert job.params["options"]["max_rows"] == job.params["budget"]["rows"] == 220
    _run_report(job)
    report = ExplanationReport.objects.get(job=job)
    assert report.selection["method"] == "sample" and report.selection["seed"] == 7
    assert report.n_rows == 220


def test_a_report_the_budget_cannot_afford_is_refused_with_the_reason(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_BUDGET_SECONDS = _per_row_cost(hgb_version) * 50  # not even the 200-row minimum sample
    with pytest.raises(ValidationFailed, match="refused: even 200 rows would cost"):
        explanation_job_create(actor=developer, model_version=hgb_version)
    assert not Job.objects.filter(kind="explain").exists()


def test_local_explanations_give_reason_codes_without_protected_attributes(hgb_version, developer,  # noqa: ANN001
                                                                           compliance_officer):
    reason_text_set(actor=compliance_officer, registered_model=hgb_version.registered_model,
                    feature="duration_in_month", text="The requested loan term is long.")
    frame = dataset_frame(hgb_version.dataset_version)
    body = explanation_local(actor=developer, model_version=hgb_version, row_ids=list(range(40)))
    assert body["status"] == "ok" and len(body["explanations"]) == 40
    texts = set()
    for explanation in body["explanations"]:
        reasons = explanation["reasons"]
        assert len(reasons) <= 4
        assert not PROTECTED & {r["feature"] for r in reasons}
        assert all(explanation["contributions"][r["feature"]] > 0 for r in reasons)
        total = explanation["base_value"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(explanation["output"], abs=1e-6)
        texts |= {(r["feature"], r["text"]) for r in reasons}
    assert ("duration_in_month", "The requested loan term is long.") in texts
    # Posted feature values give the same answer as the stored row.
    spec = TrainingSpec.from_dict(hgb_version.spec)
    posted = frame.loc[[3], list(spec.features)].to_dict(orient="records")
    posted = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in posted]
    again = explanation_local(actor=developer, model_version=hgb_version, rows=posted)
    assert again["explanations"][0]["contributions"] == pytest.approx(body["explanations"][3]["contributions"])
    assert AuditEvent.objects.filter(action="local_explanation.produced").count() == 2


BAD_ROWS = {
    "empty row set": ({"rows": []}, "empty_rows"),
    "a missing column": ({"rows": [{"duration_in_month": 12}]}, "missing_feature"),
    "over the row cap": ({"row_ids": list(range(101))}, "over_row_cap"),
    "row ids out of range": ({"row_ids": [5000]}, "invalid_row_ids"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_local_requests_get_a_400_naming_the_problem(case, hgb_version, developer):  # noqa: ANN001
    payload, code = BAD_ROWS[case]
    response = client_for(developer).post(f"/api/v1/model-versions/{hgb_version.pk}/explain-rows/", payload,
                                          format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == code


def test_a_wrong_type_names_the_row_and_feature(hgb_version, developer):  # noqa: ANN001
    spec = TrainingSpec.from_dict(hgb_version.spec)
    frame = dataset_frame(hgb_version.dataset_version)
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in frame.loc[0, list(spec.features)].items()}
    row["credit_amount"] = "lots"
    response = client_for(developer).post(f"/api/v1/model-versions/{hgb_version.pk}/explain-rows/", {"rows": [row]},
                                          format="json")
    assert response.status_code == 400
    assert "rows[0].credit_amount must be a number" in response.json()["error"]["message"]


def test_the_report_api_serves_values_and_plots(hgb_version, developer, validator):  # noqa: ANN001
    client = client_for(validator)
    response = client.post(f"/api/v1/model-versions/{hgb_version.pk}/explanations/", {"max_rows": 100}, format="json")
    assert response.status_code == 202, response.json()
    _run_report(Job.objects.get(pk=response.json()["id"]))
    report_id = ExplanationReport.objects.get().pk
    body = client.get(f"/api/v1/explanation-reports/{report_id}/").json()
    assert body["status"] == "ok" and body["n_rows"] == 100 and body["selection"]["method"] == "sample"
    values = client.get(body["values_url"])
    table = pq.read_table(io.BytesIO(b"".join(values.streaming_content)))
    assert table.num_rows == 100 and "purpose" in table.column_names
    plot = client.get(body["plots"]["bar"])
    assert b"".join(plot.streaming_content).startswith(b"\x89PNG")
    listed = client.get(f"/api/v1/model-versions/{hgb_version.pk}/").json()["explanations"]
    assert listed[0]["id"] == report_id


def test_reason_texts_are_edited_only_by_compliance_and_audited(hgb_version, developer, compliance_officer):  # noqa: ANN001
    from governance.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        reason_text_set(actor=developer, registered_model=hgb_version.registered_model, feature="purpose", text="x")
    reason_text_set(actor=compliance_officer, registered_model=hgb_version.registered_model, feature="purpose",
                    text="The loan purpose carries elevated risk.")
    event = AuditEvent.objects.get(action="reason_text.set")
    assert event.actor_username == compliance_officer.username and event.after["feature"] == "purpose"


def test_tree_values_equal_a_bare_shap_call_on_a_random_forest(developer, german_credit_version, retail_model):  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "random_forest", "hyperparameters": {"n_estimators": 20}})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get()
    report_job = explanation_job_create(actor=developer, model_version=version)
    _run_report(report_job)
    report = ExplanationReport.objects.get(job=report_job)
    stored = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())
    spec = TrainingSpec.from_dict(version.spec)
    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    rows = dataset_frame(version.dataset_version).loc[stored.row_ids]
    X = pipeline[:-1].transform(prepare_features(rows, spec))
    bare = shap.TreeExplainer(pipeline[-1]).shap_values(X)
    bare = bare[:, :, 1] if bare.ndim == 3 else bare
    from riskmodels.ml.pipelines import feature_names_map

    owners = np.array(feature_names_map(pipeline))
    summed = np.column_stack([bare[:, owners == f].sum(axis=1) for f in stored.features])
    assert np.max(np.abs(summed - stored.values)) <= 1e-9
    assert isinstance(make_explainer(pipeline, spec), object)
    assert pd.Series(stored.values.sum(axis=1)).notna().all()


def test_a_requeued_report_plans_afresh_and_leaves_no_files_of_the_first_attempt(hgb_version, developer, settings):  # noqa: ANN001
    from datetime import timedelta

    from django.utils import timezone

    from riskmodels.jobs import jobs_reap

    settings.EXPLAIN_CHUNK_ROWS = 100
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    job_execute(job_id=job.pk)  # planned; then the worker "dies" before any chunk runs
    first = Job.objects.get(pk=job.pk).result
    assert jobs_reap(now=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1))["requeued"] == [job.pk]
    _run_report(job)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert not default_storage.exists(first["rows_path"]) or first["rows_path"] == job.result["rows_path"]
    prefix = settings.MEDIA_ROOT
    leftovers = [p.name for p in stored_files(prefix) if p.name.startswith(("rows", "background", "chunk-"))]
    # rows.arrow was a hand-over; a tree model's report has no background to keep.
    assert sorted(leftovers) == ["rows.npy"]


def test_staged_rows_give_each_chunk_exactly_its_rows_across_row_groups(settings):  # noqa: ANN001
    from types import SimpleNamespace

    import pyarrow as pa

    from riskmodels.storage import HandoverError, rows_stage, staged_rows

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=100), "grade": rng.choice(["A", "B", None], size=100),
                          "y": np.arange(100)})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, row_group_size=7)  # 15 row groups
    source = SimpleNamespace(storage_path=default_storage.save("datasets/staging.parquet", io.BytesIO(sink.getvalue())))
    source.n_rows = 100
    rows = np.sort(rng.choice(100, size=33, replace=False)).astype(np.int64)
    sizes = [10, 10, 10, 3]  # chunk boundaries fall inside row groups
    bounds = np.cumsum([0, *sizes])
    blocks = (rows[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
    path = rows_stage(source, ["grade", "x"], blocks, "explanations/t/rows.arrow")

    start = 0
    for index, size in enumerate(sizes):
        got = staged_rows(path, index, rows[start:start + size])
        pd.testing.assert_frame_equal(got, frame.loc[rows[start:start + size], ["grade", "x"]].rename_axis("row_id"),
                                      check_dtype=False)
        start += size

    with pytest.raises(HandoverError, match="the dataset has 100 rows; some of the rows asked for are not in it"):
        rows_stage(source, ["x"], [np.array([5, 120], dtype=np.int64)], "explanations/t/rows3.arrow")
    assert not default_storage.exists("explanations/t/rows3.arrow")  # nothing half-written is left


def test_a_report_on_another_dataset_version_explains_its_rows_against_the_training_background(  # noqa: ANN001
        developer, german_credit_version, retail_model, tmp_path):
    from riskmodels.ml.explain import select_background
    from riskmodels.ml.training import split
    from tests.conftest import GERMAN_CREDIT, register_demo_dataset

    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get()
    recent = pd.read_csv(GERMAN_CREDIT).iloc[::-3]  # another population: a third of the rows, reversed
    recent_path = tmp_path / "recent.csv"
    recent.to_csv(recent_path, index=False)
    other = register_demo_dataset(developer, recent_path, name="german-credit-recent")

    report_job = explanation_job_create(actor=developer, model_version=version, dataset_version=other)
    _run_report(report_job)
    report_job.refresh_from_db()
    assert report_job.status == JobStatus.SUCCEEDED, report_job.error
    report = ExplanationReport.objects.get(job=report_job)
    assert report.scope == "dataset" and report.n_rows == len(recent)
    stored = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())

    spec = TrainingSpec.from_dict(version.spec)
    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    training = dataset_frame(german_credit_version)
    train_idx, _ = split(training, spec)
    options = ExplainOptions(max_rows=None)
    background = select_background(training.iloc[train_idx][list(spec.features)], size=options.background_size,
                                   seed=options.seed)
    single = explain_global(pipeline, spec, dataset_frame(other)[list(spec.features)], options=options,
                            background=background)
    assert np.max(np.abs(stored.values - single.values)) <= 1e-9
    assert report.fingerprint["background_sha256"] == single.fingerprint.background_sha256
    from pathlib import Path

    assert not [p for p in stored_files(Path(default_storage.location)) if p.name == "rows.arrow" or
                p.name.startswith("chunk-")]


def test_plots_of_a_report_over_the_plot_cap_are_drawn_from_an_even_sample(hgb_version, developer, monkeypatch):  # noqa: ANN001
    from riskmodels.ml.explain_plots import render_bar
    from riskmodels.services.explanations import plots

    monkeypatch.setattr(plots, "PLOT_MAX_ROWS", 40)  # the report explains 250 rows
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    _run_report(job)
    report = ExplanationReport.objects.get(job=job)
    assert report.n_rows == 250
    names = set(report.plot_files.values_list("name", flat=True))
    assert {"beeswarm", "bar"} <= names and len([n for n in names if n.startswith("dependence:")]) == 3
    # The bar plot is the whole report's, drawn from the stored ranking.
    whole = GlobalReport.from_parquet_bytes(default_storage.open(report.values_path).read())
    bar = default_storage.open(report.plot_files.get(name="bar").path).read()
    assert bar == render_bar(whole)


def test_a_finished_reports_job_names_only_files_that_still_exist(hgb_version, developer, settings):  # noqa: ANN001
    settings.EXPLAIN_CHUNK_ROWS = 125
    job = explanation_job_create(actor=developer, model_version=hgb_version)
    job_execute(job_id=job.pk)
    staged = Job.objects.get(pk=job.pk).result["features_path"]  # the chunks' input while they run
    assert default_storage.exists(staged)
    for chunk_id in JobChunk.objects.filter(job=job).values_list("pk", flat=True):
        chunk_execute(chunk_id=chunk_id)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert not default_storage.exists(staged) and "features_path" not in job.result and "fan_out" not in job.result
    named = [v for v in job.result.values() if isinstance(v, str) and v.startswith("explanations/")]
    assert named == [job.result["rows_path"]] and all(default_storage.exists(p) for p in named)
    assert job.result["report"] == ExplanationReport.objects.get(job=job).pk

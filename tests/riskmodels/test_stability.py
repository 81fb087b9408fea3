"""Stability monitoring through the services and the API: the reference frozen at promotion, runs over the
ledger and over dataset versions, their lights and alerts, the daily schedule, and bad requests."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from governance.celery import app
from governance.models import AuditEvent
from governance.roles import Role
from riskmodels.jobs.dispatch import SCHEDULE_STABILITY_RUNS, TASK_NAMES
from riskmodels.jobs.kinds import job_execute
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.stability import EPSILON
from riskmodels.models import (
    Alert,
    CreditDecision,
    DatasetVersion,
    Job,
    JobKind,
    JobStatus,
    ModelVersion,
    MonitoringReference,
    MonitoringRun,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.services.explanations.cache import pipeline_load, source_rows
from riskmodels.services.lifecycle import version_promote
from riskmodels.services.monitoring_reference import monitoring_reference_work
from riskmodels.services.reviews import registered_model_inventory_update
from riskmodels.services.scoring import applications_score
from riskmodels.services.stability import stability_runs_schedule
from riskmodels.storage import dataset_rows
from tests.conftest import (
    GERMAN_CREDIT,
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    team_member,
    train_version,
)

pytestmark = pytest.mark.django_db

SHIFTED = "credit_amount"


@dataclass(frozen=True)
class World:
    model: RegisteredModel
    champion: ModelVersion  # promoted through version_promote, its reference computed by the job it queued
    dataset_version: DatasetVersion
    validation: list[dict[str, Any]]  # the champion's validation applicants, as the scoring API takes them
    other_champion: ModelVersion  # the champion of another model, without a reference


shared_media, _isolated_media = module_media("stability-media")




def _plain(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        owner, _ = team_member(username="owen-owner", role=Role.DEVELOPER)
        officer, _ = team_member(username="olga-officer", role=Role.COMPLIANCE_OFFICER)
        dataset_version = register_demo_dataset(owner)
        model = register_model(owner)
        champion = train_version(owner, model, dataset_version, "gradient_boosting")
        # Submission, validation and approval are tested in test_lifecycle; promotion itself runs here.
        ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.APPROVED)
        version_promote(actor=officer, version=ModelVersion.objects.get(pk=champion.pk), rationale="First champion.")
        reference_job = Job.objects.get(kind=JobKind.MONITORING_REFERENCE, model_version=champion)
        job_execute(job_id=reference_job.pk)
        model = registered_model_inventory_update(actor=officer, model=model,
                                                  changes={"scoring_policy": {"cutoff": 0.5, "refer_from": 0.35}})
        other_model = register_model(owner, name="other-pd")
        other_champion = train_version(owner, other_model, dataset_version, "logistic_regression")
        ModelVersion.objects.filter(pk=other_champion.pk).update(status=VersionStatus.CHAMPION)
        champion = ModelVersion.objects.get(pk=champion.pk)
        spec = TrainingSpec.from_dict(champion.spec)
        rows, _ = source_rows(champion, "test_split", train=False)
        frame = dataset_rows(dataset_version, rows, list(spec.features))
        validation = [{f: _plain(v) for f, v in record.items()} for record in frame.to_dict("records")]
        yield World(model=model, champion=champion, dataset_version=dataset_version, validation=validation,
                    other_champion=other_champion)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _score_all(user, world: World, rows: list[dict[str, Any]]) -> None:  # noqa: ANN001
    step = settings.SCORING_MAX_APPLICATIONS
    for start in range(0, len(rows), step):
        applications_score(actor=user, model=world.model, applications=[
            {"reference": f"APP-{start + i}", "features": row} for i, row in enumerate(rows[start:start + step])])


def _window() -> dict[str, str]:
    now = timezone.now()
    return {"since": (now - dt.timedelta(hours=1)).isoformat(), "until": (now + dt.timedelta(hours=1)).isoformat()}


def _request_and_run(user, world: World, body: dict[str, Any]) -> MonitoringRun:  # noqa: ANN001
    response = client_for(user).post(f"/api/v1/models/{world.model.name}/stability-runs/", body, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["kind"] == "stability"
    job_execute(job_id=response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    return MonitoringRun.objects.get(job=job)


def _direct_index(bins: dict[str, Any], values: list[Any]) -> float:
    """PSI/CSI of ``values`` against stored bins, written out independently of riskmodels.ml.stability."""
    counts = [0] * len(bins["shares"])
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            counts[-1] += 1
        elif bins["kind"] == "categorical":
            cats = bins["categories"]
            counts[cats.index(str(v)) if str(v) in cats else len(cats)] += 1
        else:
            counts[next((i for i, edge in enumerate(bins["edges"]) if v <= edge), len(bins["edges"]))] += 1
    total = sum(counts)
    return sum((max(c / total, EPSILON) - max(e, EPSILON)) * math.log(max(c / total, EPSILON) / max(e, EPSILON))
               for c, e in zip(counts, bins["shares"], strict=True))


# --- The frozen reference ------------------------------------------------------------------------------

def test_promotion_freezes_the_champions_score_and_feature_bins_from_its_validation_rows(world,  # noqa: ANN001
                                                                                      developer):
    reference = MonitoringReference.objects.get(model_version=world.champion)
    spec = TrainingSpec.from_dict(world.champion.spec)
    assert reference.n_rows == len(world.validation) == 250
    assert reference.dataset_version_id == world.dataset_version.pk
    pds = pipeline_load(world.champion).predict_proba(prepare_features(pd.DataFrame(world.validation), spec))[:, 1]
    expected_edges = sorted(set(np.quantile(pds, np.arange(1, 10) / 10, method="inverted_cdf")) - {pds.max()})
    assert reference.score_bins["edges"] == pytest.approx(expected_edges, abs=0, rel=0)
    assert len(reference.score_bins["shares"]) == len(expected_edges) + 2
    assert sum(reference.score_bins["shares"]) == pytest.approx(1.0)
    assert set(reference.feature_bins) == set(spec.features)
    purpose = reference.feature_bins["purpose"]
    assert purpose["kind"] == "categorical" and purpose["labels"][-2:] == ["other", "missing"]
    assert set(purpose["categories"]) == {r["purpose"] for r in world.validation}
    amount = reference.feature_bins[SHIFTED]
    assert amount["kind"] == "numeric" and amount["labels"][-1] == "missing" and len(amount["edges"]) == 9
    event = AuditEvent.objects.get(action="monitoring_reference.created")
    assert event.target_id == str(reference.pk) and event.after["n_rows"] == 250
    body = client_for(developer).get(f"/api/v1/model-versions/{world.champion.pk}/monitoring-reference/").json()
    assert body["score_bins"] == reference.score_bins and body["n_rows"] == 250


def test_a_version_promoted_again_keeps_its_reference_and_queues_no_new_job(world, compliance_officer):  # noqa: ANN001
    before = MonitoringReference.objects.get(model_version=world.champion)
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.APPROVED)
    version_promote(actor=compliance_officer, version=ModelVersion.objects.get(pk=world.champion.pk),
                    rationale="Back as champion.")
    assert Job.objects.filter(kind=JobKind.MONITORING_REFERENCE, model_version=world.champion).count() == 1
    # A reference job that runs anyway (e.g. queued before a race) leaves the frozen one as it is.
    job = Job.objects.create(kind=JobKind.MONITORING_REFERENCE, model_version=world.champion,
                             registered_model=world.model, dataset_version=world.dataset_version, params={},
                             requested_by_username="test")
    outcome = monitoring_reference_work(job, lambda stage, percent: None, [])
    assert outcome.result == {"reference": before.pk, "recomputed": False} and outcome.write is None
    assert MonitoringReference.objects.get(model_version=world.champion).score_bins == before.score_bins


def test_a_version_without_a_reference_answers_404(world, developer):  # noqa: ANN001
    response = client_for(developer).get(f"/api/v1/model-versions/{world.other_champion.pk}/monitoring-reference/")
    assert response.status_code == 404


# --- The done-when test: a shifted feature raises a red alert, the others none -------------------------

def test_traffic_with_one_shifted_feature_raises_a_red_alert_on_it_and_none_on_the_untouched_ones(  # noqa: ANN001
        world, underwriter, validator):
    shifted = [{**row, SHIFTED: row[SHIFTED] * 3} for row in world.validation]
    _score_all(underwriter, world, shifted)
    run = _request_and_run(validator, world, _window())

    assert run.kind == "stability" and run.n_rows == 250 and run.model_version_id == world.champion.pk
    metrics = run.results["metrics"]
    spec = TrainingSpec.from_dict(world.champion.spec)
    assert set(metrics) == {"psi:score"} | {f"csi:{f}" for f in spec.features}
    assert metrics[f"csi:{SHIFTED}"]["light"] == "red" and metrics[f"csi:{SHIFTED}"]["value"] >= 0.25
    untouched = [f for f in spec.features if f != SHIFTED]
    assert all(metrics[f"csi:{f}"]["value"] == pytest.approx(0.0, abs=1e-12) for f in untouched)
    assert run.light == "red"

    # Each value is the formula over the ledger's own rows, to 1e-12.
    reference = MonitoringReference.objects.get(model_version=world.champion)
    entries = list(CreditDecision.objects.filter(model_version=world.champion).values_list("pd", "features"))
    for feature in (SHIFTED, "purpose", "duration_in_month"):
        direct = _direct_index(reference.feature_bins[feature], [f[feature] for _, f in entries])
        assert metrics[f"csi:{feature}"]["value"] == pytest.approx(direct, abs=1e-12, rel=0)
    assert metrics["psi:score"]["value"] == pytest.approx(
        _direct_index(reference.score_bins, [p for p, _ in entries]), abs=1e-12, rel=0)
    amount_bins = metrics[f"csi:{SHIFTED}"]["bins"]
    assert [b["expected"] for b in amount_bins] == reference.feature_bins[SHIFTED]["shares"]
    assert sum(b["actual"] for b in amount_bins) == pytest.approx(1.0)

    alerts = list(Alert.objects.filter(run=run))
    by_metric = {a.metric: a for a in alerts}
    assert by_metric[f"csi:{SHIFTED}"].light == "red" and by_metric[f"csi:{SHIFTED}"].threshold == 0.25
    assert not {f"csi:{f}" for f in untouched} & set(by_metric)
    assert set(by_metric) <= {f"csi:{SHIFTED}", "psi:score"}
    assert all(a.light == metrics[a.metric]["light"] for a in alerts)
    finished = AuditEvent.objects.get(action="monitoring_run.finished")
    assert finished.target_id == str(run.pk) and finished.after["light"] == "red"
    assert AuditEvent.objects.filter(action="alert.raised").count() == len(alerts)

    listed = client_for(validator).get(f"/api/v1/models/{world.model.name}/stability-runs/").json()
    assert [r["id"] for r in listed] == [run.pk]
    detail = client_for(validator).get(f"/api/v1/monitoring-runs/{run.pk}/").json()
    assert detail["light"] == "red" and detail["results"]["metrics"][f"csi:{SHIFTED}"]["light"] == "red"


def test_traffic_like_the_validation_rows_is_green_throughout(world, underwriter, developer):  # noqa: ANN001
    _score_all(underwriter, world, world.validation)
    run = _request_and_run(developer, world, _window())
    assert run.light == "green" and not Alert.objects.exists()
    assert all(m["value"] == pytest.approx(0.0, abs=1e-9) for m in run.results["metrics"].values())


def test_a_run_counts_the_ledger_in_chunks_to_the_same_result(world, underwriter, developer, settings):  # noqa: ANN001
    _score_all(underwriter, world, [{**row, SHIFTED: row[SHIFTED] * 3} for row in world.validation[:120]])
    whole = _request_and_run(developer, world, _window())
    settings.MONITORING_CHUNK_ROWS = 7
    chunked = _request_and_run(developer, world, _window())
    assert chunked.results["metrics"] == whole.results["metrics"]
    listed = client_for(developer).get(f"/api/v1/models/{world.model.name}/stability-runs/").json()
    assert [r["id"] for r in listed] == [chunked.pk, whole.pk]  # newest first


def test_an_empty_window_finishes_green_with_no_rows_and_says_so(world, developer):  # noqa: ANN001
    run = _request_and_run(developer, world, _window())
    assert (run.n_rows, run.light, run.results["metrics"]) == (0, "green", {})
    assert "no decisive decisions" in run.results["notes"][0]
    assert not Alert.objects.exists()


def test_decisions_kept_only_as_a_hash_count_in_the_score_psi_only(world, underwriter, developer,  # noqa: ANN001
                                                                  compliance_officer):
    registered_model_inventory_update(actor=compliance_officer, model=world.model, changes={"ledger_inputs": "hash"})
    _score_all(underwriter, world, [{**row, SHIFTED: row[SHIFTED] * 3} for row in world.validation[:100]])
    assert not CreditDecision.objects.filter(features__isnull=False).exists()
    run = _request_and_run(developer, world, _window())
    assert run.n_rows == 100 and run.results["n_rows_with_features"] == 0
    assert set(run.results["metrics"]) == {"psi:score"}
    assert "only the SHA-256" in run.results["notes"][0]
    assert not Alert.objects.filter(metric__startswith="csi:").exists()


def test_a_run_over_a_dataset_version_scores_and_counts_all_its_rows(world, compliance_officer):  # noqa: ANN001
    run = _request_and_run(compliance_officer, world, {"dataset_version": world.dataset_version.pk})
    assert run.dataset_version_id == world.dataset_version.pk and run.window_start is None
    assert run.n_rows == 1000 and run.results["n_rows_with_features"] == 1000
    reference = MonitoringReference.objects.get(model_version=world.champion)
    frame = pd.read_csv(GERMAN_CREDIT)
    direct = _direct_index(reference.feature_bins["purpose"], frame["purpose"].tolist())
    assert run.results["metrics"]["csi:purpose"]["value"] == pytest.approx(direct, abs=1e-12, rel=0)
    # A champion's own data is stable: the test split is a quarter of it.
    assert run.results["metrics"]["csi:purpose"]["light"] == "green"


def test_a_models_own_thresholds_judge_its_runs(world, underwriter, developer, compliance_officer):  # noqa: ANN001
    registered_model_inventory_update(actor=compliance_officer, model=world.model,
                                      changes={"monitoring_thresholds": {"csi_amber": 5.0, "csi_red": 9.0}})
    _score_all(underwriter, world, [{**row, SHIFTED: row[SHIFTED] * 3} for row in world.validation[:100]])
    run = _request_and_run(developer, world, _window())
    assert run.thresholds["csi_red"] == 9.0
    assert run.results["metrics"][f"csi:{SHIFTED}"]["light"] == "green"
    assert not Alert.objects.filter(metric=f"csi:{SHIFTED}").exists()


# --- Bad requests: refused, nothing written ---------------------------------------------------------------

def _post(user, world: World, body: dict[str, Any]):  # noqa: ANN001,ANN202
    return client_for(user).post(f"/api/v1/models/{world.model.name}/stability-runs/", body, format="json")


def test_a_dataset_missing_a_model_feature_is_refused_naming_it(world, developer, tmp_path):  # noqa: ANN001
    narrow = tmp_path / "no-amount.csv"
    pd.read_csv(GERMAN_CREDIT).drop(columns=[SHIFTED]).to_csv(narrow, index=False)
    dataset_version = register_demo_dataset(developer, path=narrow, name="monitoring-narrow")
    response = _post(developer, world, {"dataset_version": dataset_version.pk})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "incompatible_dataset"
    assert SHIFTED in response.json()["error"]["message"]
    assert not Job.objects.filter(kind=JobKind.STABILITY).exists()


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, 400, "invalid_window"),
    ({"since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, 400, "invalid_window"),
    ({"since": "2026-12-01T00:00:00Z"}, 400, "invalid"),
    ({}, 400, "invalid"),
    ({"dataset_version": 99999}, 404, "not_found"),
])
def test_bad_requests_are_refused_and_nothing_is_queued(world, developer, body, status, code):  # noqa: ANN001
    response = _post(developer, world, body)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert not Job.objects.filter(kind=JobKind.STABILITY).exists()


def test_a_dataset_and_a_window_together_are_refused(world, developer):  # noqa: ANN001
    response = _post(developer, world, {"dataset_version": world.dataset_version.pk, **_window()})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert not Job.objects.filter(kind=JobKind.STABILITY).exists()


def test_a_model_without_a_champion_is_409(world, developer):  # noqa: ANN001
    ModelVersion.objects.filter(pk=world.champion.pk).update(status=VersionStatus.RETIRED)
    response = _post(developer, world, _window())
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_champion"
    assert not Job.objects.filter(kind=JobKind.STABILITY).exists()


def test_a_champion_whose_reference_is_not_ready_is_409(world, developer):  # noqa: ANN001
    response = client_for(developer).post("/api/v1/models/other-pd/stability-runs/", _window(), format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_monitoring_reference"


@pytest.mark.parametrize("persona", ["auditor", "underwriter", "outsider"])
def test_only_developers_validators_and_compliance_officers_request_runs(world, persona, request):  # noqa: ANN001
    response = _post(request.getfixturevalue(persona), world, _window())
    assert response.status_code == 403
    assert not Job.objects.filter(kind=JobKind.STABILITY).exists()


def test_a_run_of_unknown_id_is_404(world, developer):  # noqa: ANN001
    assert client_for(developer).get("/api/v1/monitoring-runs/99999/").status_code == 404


# --- The daily schedule ----------------------------------------------------------------------------------

def test_the_beat_task_queues_a_run_per_champion_with_a_reference_and_a_second_delivery_adds_none(  # noqa: ANN001
        world):
    assert SCHEDULE_STABILITY_RUNS in TASK_NAMES
    assert settings.CELERY_BEAT_SCHEDULE["schedule-stability-runs"] == {
        "task": SCHEDULE_STABILITY_RUNS, "schedule": 86400.0}
    app.loader.import_default_modules()  # the tasks, as a worker registers them (nothing imports them)
    queued = app.tasks[SCHEDULE_STABILITY_RUNS]()
    job = Job.objects.get(kind=JobKind.STABILITY)
    assert queued == [job.pk] and job.model_version_id == world.champion.pk  # not the champion without a reference
    start = dt.datetime.fromisoformat(job.params["window_start"])
    end = dt.datetime.fromisoformat(job.params["window_end"])
    assert end - start == dt.timedelta(days=settings.MONITORING_WINDOW_DAYS)
    assert abs((timezone.now() - end).total_seconds()) < 60
    assert job.requested_by is None and job.requested_by_username == "system:scheduler"
    assert app.tasks[SCHEDULE_STABILITY_RUNS]() == []  # still queued: a second delivery adds nothing
    job_execute(job_id=job.pk)
    assert MonitoringRun.objects.get(job=job).n_rows == 0
    later = timezone.now() + dt.timedelta(days=1)
    assert len(stability_runs_schedule(now=later)) == 1  # the next day's run

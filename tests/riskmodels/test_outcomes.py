"""Observed outcomes and performance runs, through the API: recording, bad input, matured cohorts, lights, alerts."""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from governance.accounts import user_upsert
from governance.models import AuditEvent
from governance.policy import REFUSALS, Capability
from governance.roles import Role
from riskmodels.jobs.kinds import job_execute
from riskmodels.ml.fairness import fairness_report
from riskmodels.models import (
    Alert,
    CreditDecision,
    DatasetVersion,
    Evaluation,
    Job,
    JobStatus,
    ModelVersion,
    MonitoringRun,
    ObservedOutcome,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.services.evaluation import labelled_pds
from riskmodels.services.reviews import registered_model_inventory_update
from riskmodels.services.training import training_job_create
from tests.conftest import GERMAN_CREDIT, GERMAN_CREDIT_ROLES, client_for, media_settings, module_media, register_demo_dataset, register_model
from tests.db_backends import triggers_suspended

pytestmark = pytest.mark.django_db

N_DECISIONS = 600
OLD, YOUNG = 400, 100  # days ago the cohort's decisions are dated: matured, and not yet at the default 365


@dataclass(frozen=True)
class World:
    model: RegisteredModel
    champion: ModelVersion
    dataset_version: DatasetVersion
    decisions: list[int]  # ledger ids of N_DECISIONS decisive entries, scored through the API


shared_media, _isolated_media = module_media("outcomes-media")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        owner, _ = user_upsert(username="owen-owner", role=Role.DEVELOPER)
        officer, _ = user_upsert(username="olga-officer", role=Role.COMPLIANCE_OFFICER)
        scorer, _ = user_upsert(username="ursula-underwriter", role=Role.UNDERWRITER)
        dataset_version = register_demo_dataset(owner)
        model = register_model(owner)
        job = training_job_create(actor=owner, registered_model=model, dataset_version=dataset_version,
                                  request={"algorithm": "logistic_regression"})
        job_execute(job_id=job.pk)
        champion = ModelVersion.objects.get(training_job=job)
        baseline = Job.objects.get(model_version=champion, kind="evaluate", status=JobStatus.QUEUED)
        job_execute(job_id=baseline.pk)  # the test-split evaluation: the validation baseline
        Job.objects.filter(status=JobStatus.QUEUED).delete()  # its battery: not needed here
        # The lifecycle that gets a version here is tested in test_lifecycle; these tests need its result.
        ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.CHAMPION)
        model = registered_model_inventory_update(actor=officer, model=model,
                                                  changes={"scoring_policy": {"cutoff": 0.5, "refer_from": 0.35}})
        features = list(champion.spec["features"])
        frame = pd.read_csv(GERMAN_CREDIT)[features].head(N_DECISIONS)
        records = [{f: (v.item() if isinstance(v, np.generic) else v) for f, v in r.items()}
                   for r in frame.to_dict("records")]
        client, decisions = client_for(scorer), []
        for start in range(0, N_DECISIONS, 100):
            apps = [{"reference": f"APP-{i}", "features": records[i]} for i in range(start, start + 100)]
            response = client.post(f"/api/v1/models/{model.name}/score/", {"applications": apps}, format="json")
            assert response.status_code == 200, response.json()
            decisions += [d["id"] for d in response.json()["decisions"]]
        # Decisions are stamped with the moment they are made (auto_now_add), and a cohort matures
        # only with time, so the tests date them in the past as only the database's owner could: the
        # ledger's append-only triggers refuse any UPDATE, so they are suspended for it.
        with transaction.atomic(), triggers_suspended({CreditDecision._meta.db_table}):
            CreditDecision.objects.filter(pk__in=decisions).update(created_at=timezone.now() - dt.timedelta(days=OLD))
        yield World(model=model, champion=ModelVersion.objects.get(pk=champion.pk), dataset_version=dataset_version,
                    decisions=decisions)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _post_outcomes(user: Any, items: list[dict[str, Any]]):  # noqa: ANN202
    client = user if isinstance(user, APIClient) else client_for(user)
    return client.post("/api/v1/outcomes/", {"outcomes": items}, format="json")


def _days_ago(days: int) -> str:
    return (timezone.now() - dt.timedelta(days=days)).date().isoformat()


def _item(decision: int, defaulted: bool = False, observed_on: str | None = None) -> dict[str, Any]:
    return {"decision": decision, "defaulted": defaulted, "observed_on": observed_on or _days_ago(10)}


def _error(response: Any) -> dict[str, Any]:
    return response.json()["error"]


SEX = "personal_status_and_sex"


# --- Recording outcomes -------------------------------------------------------------------------------

def test_a_developer_records_outcomes_all_at_once_with_one_audit_event(world, developer):  # noqa: ANN001
    items = [_item(world.decisions[0], True), _item(world.decisions[1]), _item(world.decisions[2], True)]

    response = _post_outcomes(developer, items)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["recorded"], body["defaulted"]) == (3, 2)
    assert body["decision_ids"] == {"min": min(world.decisions[:3]), "max": max(world.decisions[:3])}
    recorded = ObservedOutcome.objects.order_by("pk")
    assert [(o.decision_id, o.defaulted, o.recorded_by_username) for o in recorded] == [
        (world.decisions[0], True, developer.username), (world.decisions[1], False, developer.username),
        (world.decisions[2], True, developer.username)]
    assert body["outcome_ids"] == {"first": recorded[0].pk, "last": recorded[2].pk}
    event = AuditEvent.objects.get(action="outcomes.recorded")
    assert event.actor_username == developer.username and event.after == body


def test_outcomes_may_carry_protected_attributes_which_are_stored_with_them(world, developer):  # noqa: ANN001
    items = [{**_item(world.decisions[0]), "protected": {SEX: "A92", "age_in_years": 31}},
             {**_item(world.decisions[1], True), "protected": {"foreign_worker": "A201"}},
             _item(world.decisions[2])]

    response = _post_outcomes(developer, items)

    assert response.status_code == 201, response.json()
    assert list(ObservedOutcome.objects.order_by("decision_id").values_list("decision_id", "protected")) == [
        (world.decisions[0], {SEX: "A92", "age_in_years": 31}), (world.decisions[1], {"foreign_worker": "A201"}),
        (world.decisions[2], {})]


@pytest.fixture
def dev_api(developer) -> APIClient:  # noqa: ANN001
    return client_for(developer)


@pytest.fixture
def nothing_written(dev_api):  # noqa: ANN001,ANN201
    """Assert that the test's request left no outcome and no audit event behind (its token issued before)."""
    before = AuditEvent.objects.count()
    yield
    assert not ObservedOutcome.objects.exists()
    assert AuditEvent.objects.count() == before


def test_an_unknown_decision_is_refused_by_index_and_nothing_is_written(world, dev_api, nothing_written):  # noqa: ANN001
    response = _post_outcomes(dev_api, [_item(world.decisions[0]), _item(987654321)])

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "unknown_decision" and "987654321" in error["message"]
    assert error["details"] == {"index": 1, "decision": 987654321}


def test_a_protected_column_the_models_data_does_not_mark_protected_is_refused_and_nothing_is_written(  # noqa: ANN001
        world, dev_api, nothing_written):
    # credit_amount is a feature of the model, not a protected attribute.
    items = [{**_item(world.decisions[0]), "protected": {SEX: "A92"}},
             {**_item(world.decisions[1]), "protected": {"age_in_years": 40, "credit_amount": 1200}}]

    response = _post_outcomes(dev_api, items)

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "unknown_protected_column" and "credit_amount" in error["message"]
    assert "age_in_years" in error["message"]  # the columns that may be given are named
    assert error["details"] == {"index": 1, "decision": world.decisions[1], "field": "protected",
                                "column": "credit_amount"}


def test_a_shadow_score_takes_no_outcome(world, dev_api, nothing_written):  # noqa: ANN001
    # How shadow entries are scored is tested in test_scoring_api; here one decisive entry is
    # marked as one (rolled back with the test).
    with triggers_suspended({CreditDecision._meta.db_table}):
        CreditDecision.objects.filter(pk=world.decisions[5]).update(decisive=False)

    response = _post_outcomes(dev_api, [_item(world.decisions[4]), _item(world.decisions[5])])

    assert response.status_code == 400
    assert _error(response)["code"] == "shadow_decision"
    assert _error(response)["details"] == {"index": 1, "decision": world.decisions[5]}


def test_a_decision_named_twice_in_one_request_is_a_duplicate(world, dev_api, nothing_written):  # noqa: ANN001
    items = [_item(world.decisions[0]), _item(world.decisions[1]), _item(world.decisions[0], True)]

    response = _post_outcomes(dev_api, items)

    assert response.status_code == 409
    error = _error(response)
    assert error["code"] == "duplicate_outcome" and f"decision {world.decisions[0]}" in error["message"]
    assert error["details"] == {"index": 2, "decision": world.decisions[0]}


def test_a_decision_that_already_has_an_outcome_is_a_duplicate_and_the_whole_request_is_refused(world,  # noqa: ANN001
                                                                                                dev_api):
    assert _post_outcomes(dev_api, [_item(world.decisions[0])]).status_code == 201
    events = AuditEvent.objects.count()

    response = _post_outcomes(dev_api, [_item(world.decisions[1]), _item(world.decisions[0], True)])

    assert response.status_code == 409
    assert _error(response)["code"] == "duplicate_outcome"
    assert _error(response)["details"] == {"index": 1, "decision": world.decisions[0]}
    assert list(ObservedOutcome.objects.values_list("decision_id", "defaulted")) == [(world.decisions[0], False)]
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("observed_on", "code"), [(_days_ago(OLD + 1), "outcome_before_decision"),
                                                   (_days_ago(-2), "outcome_in_future")])
def test_an_outcome_dated_before_its_decision_or_in_the_future_is_refused(world, dev_api, nothing_written,  # noqa: ANN001
                                                                          observed_on, code):
    response = _post_outcomes(dev_api, [_item(world.decisions[0]), _item(world.decisions[1], True, observed_on)])

    assert response.status_code == 400
    assert _error(response)["code"] == code and observed_on in _error(response)["message"]
    assert _error(response)["details"] == {"index": 1, "decision": world.decisions[1], "field": "observed_on"}


@pytest.mark.parametrize(("item", "field"), [({"decision": "12", "defaulted": True, "observed_on": "2026-01-01"},
                                               "decision"),
                                              ({"decision": 12, "defaulted": "yes", "observed_on": "2026-01-01"},
                                               "defaulted"),
                                              ({"decision": 12, "defaulted": True, "observed_on": "31/01/2026"},
                                               "observed_on"),
                                              ({"decision": 12, "defaulted": True}, "observed_on"),
                                              ({"decision": 12, "defaulted": True, "observed_on": "2026-01-01",
                                                "protected": ["A92"]}, "protected"),
                                              ({"decision": 12, "defaulted": True, "observed_on": "2026-01-01",
                                                "protected": {SEX: {"code": "A92"}}}, "protected")])
def test_a_malformed_item_is_refused_naming_its_index_and_field(world, dev_api, nothing_written, item,  # noqa: ANN001
                                                                 field):
    response = _post_outcomes(dev_api, [_item(world.decisions[0]), item])

    assert response.status_code == 400
    details = _error(response)["details"]
    assert {k: v for k, v in details.items() if k != "column"} == {"index": 1, "field": field}
    if isinstance(item.get("protected"), dict):
        assert details["column"] == SEX


def test_more_outcomes_than_a_request_may_carry_are_refused(world, dev_api, nothing_written, settings):  # noqa: ANN001
    settings.OUTCOMES_MAX_PER_REQUEST = 2

    response = _post_outcomes(dev_api, [_item(d) for d in world.decisions[:3]])

    assert response.status_code == 400
    assert _error(response)["code"] == "over_batch_cap" and "OUTCOMES_MAX_PER_REQUEST" in _error(response)["message"]


def test_an_underwriter_may_not_record_outcomes(world, underwriter):  # noqa: ANN001
    response = _post_outcomes(underwriter, [_item(world.decisions[0])])

    assert (response.status_code, _error(response)["message"]) == (403, REFUSALS[Capability.OUTCOME_RECORD])
    assert not ObservedOutcome.objects.exists()


# --- Performance runs ------------------------------------------------------------------------------

def _record(user: Any, decisions: list[int], defaulted: np.ndarray) -> None:
    items = [_item(d, bool(flag), _days_ago(30)) for d, flag in zip(decisions, defaulted, strict=True)]
    response = _post_outcomes(user, items)
    assert response.status_code == 201, response.json()


def _pds(decisions: list[int]) -> np.ndarray:
    by_id = dict(CreditDecision.objects.filter(pk__in=decisions).values_list("pk", "pd"))
    return np.array([by_id[d] for d in decisions])


def _run(user: Any, world: World, **body: Any) -> dict[str, Any]:
    """Request a run through the API, execute it as a worker would, and read it back through the API."""
    client = client_for(user)
    response = client.post(f"/api/v1/models/{world.model.name}/performance-runs/", body, format="json")
    assert response.status_code == 202, response.json()
    job_execute(job_id=response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    run = MonitoringRun.objects.get(job=job)
    detail = client.get(f"/api/v1/performance-runs/{run.pk}/")
    assert detail.status_code == 200
    return detail.json()


COHORT = {"decided_since": _days_ago(OLD + 5), "decided_until": _days_ago(OLD - 5)}


def test_outcomes_drawn_from_the_models_own_pds_keep_it_green(world, developer, validator):  # noqa: ANN001
    pds = _pds(world.decisions)
    _record(developer, world.decisions, np.random.default_rng(11).random(len(pds)) < pds)
    events_before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    run = _run(validator, world, **COHORT)

    results = run["results"]
    assert (run["kind"], run["light"], run["alerts"], run["n_rows"]) == ("performance", "green", [], N_DECISIONS)
    assert results["status"] == "measured" and results["message"] is None
    baseline = Evaluation.objects.get(model_version=world.champion, scope="test_split")
    for name in ("auc", "ks", "brier"):
        metric = results["metrics"][name]
        assert metric["light"] == "green" and metric["baseline"] == baseline.metrics[name]
        assert metric["ci"]["lower"] <= metric["value"] <= metric["ci"]["upper"]
    assert results["hosmer_lemeshow"]["n_groups"] == 10 and results["hosmer_lemeshow"]["p_value"] > 0.01
    assert sum(band["n"] for band in results["bands"]) == N_DECISIONS
    assert {band["band"] for band in results["bands"]} == set(
        CreditDecision.objects.filter(pk__in=world.decisions).values_list("band", flat=True))
    assert results["source"]["matured_with_outcome"] == N_DECISIONS
    assert run["thresholds"]["auc_drop_red"] == 0.05 and run["thresholds"]["fairness_air_amber"] == 0.8
    assert results["fairness"] == {"computed": False, "columns": [], "note": "no outcome of the cohort carries "
                                   "protected attributes; no fairness test was run"}
    assert not Alert.objects.exists()
    finished = AuditEvent.objects.get(action="monitoring_run.finished")
    assert finished.after["light"] == "green" and finished.after["alerts"] == []
    new = AuditEvent.objects.filter(pk__gt=events_before).exclude(action="api_token.issued")
    assert list(new.order_by("pk").values_list("action", flat=True)) == [
        "performance_run.requested", "performance_job.started", "monitoring_run.finished", "performance_job.succeeded"]


def test_outcomes_that_contradict_the_model_collapse_its_auc_and_raise_a_red_alert(world, developer):  # noqa: ANN001
    pds = _pds(world.decisions)
    _record(developer, world.decisions, pds < np.median(pds))  # the safest half defaults

    run = _run(developer, world, **COHORT)

    auc = run["results"]["metrics"]["auc"]
    assert run["light"] == "red" and auc["light"] == "red" and auc["value"] < 0.2
    assert auc["change"] == pytest.approx(auc["baseline"] - auc["value"])
    alert = Alert.objects.get(metric="auc")
    assert (alert.light, alert.run_id, alert.model_version_id, alert.status) == ("red", run["id"], world.champion.pk,
                                                                                "open")
    assert alert.value == pytest.approx(auc["change"]) and alert.threshold == 0.05
    assert "AUC fell by" in alert.message and f"on {N_DECISIONS} observed outcomes" in alert.message
    assert alert.window == {"start": run["window_start"].replace("Z", "+00:00"),
                            "end": run["window_end"].replace("Z", "+00:00")}
    assert {a["metric"] for a in run["alerts"]} >= {"auc"}
    assert AuditEvent.objects.filter(action="alert.raised").count() == len(run["alerts"])
    listed = client_for(developer).get(f"/api/v1/models/{world.model.name}/performance-runs/").json()
    assert [r["id"] for r in listed["results"]] == [run["id"]]


def test_decisions_younger_than_the_maturity_are_left_out_of_the_cohort(world, developer):  # noqa: ANN001
    young = world.decisions[:200]
    with triggers_suspended({CreditDecision._meta.db_table}):  # as in the world: only the database's owner could
        CreditDecision.objects.filter(pk__in=young).update(created_at=timezone.now() - dt.timedelta(days=YOUNG))
    pds = _pds(world.decisions)
    _record(developer, world.decisions, np.random.default_rng(5).random(len(pds)) < pds)
    window = {"decided_since": _days_ago(OLD + 5), "decided_until": _days_ago(0)}

    by_default = _run(developer, world, **window)
    sooner = _run(developer, world, **window, maturity_days=YOUNG - 10)

    assert by_default["n_rows"] == N_DECISIONS - len(young)
    assert by_default["results"]["source"]["maturity_days"] == 365
    assert by_default["results"]["source"]["decisions_in_window"] == N_DECISIONS
    assert sooner["n_rows"] == N_DECISIONS


def test_a_cohort_with_too_few_outcomes_finishes_with_a_message_and_no_alert(world, developer):  # noqa: ANN001
    _record(developer, world.decisions[:12], np.array([True, False] * 6))

    run = _run(developer, world, **COHORT)

    assert run["results"]["status"] == "insufficient"
    assert run["results"]["message"].startswith("12 matured outcomes (6 defaults, 6 non-defaults)")
    assert (run["light"], run["n_rows"], run["alerts"]) == ("green", 12, [])
    assert run["results"]["fairness"]["computed"] is False
    json.dumps(MonitoringRun.objects.get(pk=run["id"]).results, allow_nan=False)
    assert not Alert.objects.exists()


def test_a_labelled_dataset_version_is_scored_with_the_champion_and_measured(world, validator):  # noqa: ANN001
    run = _run(validator, world, dataset_version=world.dataset_version.pk)

    results = run["results"]
    assert (run["dataset_version"], run["window_start"], run["n_rows"]) == (world.dataset_version.pk, None, 1000)
    assert results["status"] == "measured" and results["n_defaults"] == 300  # German Credit: 300 bad of 1,000
    assert [band["band"] for band in results["bands"]] == sorted(band["band"] for band in results["bands"])
    # The whole dataset holds the training rows, so the champion does no worse than on its test split.
    assert results["metrics"]["auc"]["value"] >= results["metrics"]["auc"]["baseline"] - 0.01
    assert all(results["metrics"][name]["light"] == "green" for name in ("auc", "ks", "brier"))


def test_a_dataset_version_run_tests_fairness_on_the_datasets_protected_columns(world, validator):  # noqa: ANN001
    run = _run(validator, world, dataset_version=world.dataset_version.pk)

    fairness = run["results"]["fairness"]
    assert fairness["computed"] is True
    assert (fairness["n"], fairness["cutoff"], fairness["cutoff_source"]) == (1000, 0.5, "scoring_policy")
    assert [c["column"] for c in fairness["columns"]] == list(GERMAN_CREDIT_ROLES)
    # The same rows, scored by the champion, tested independently.
    y, p = labelled_pds(version=world.champion, dataset_version=world.dataset_version)
    frame = pd.read_csv(GERMAN_CREDIT)
    expected = fairness_report(y, p, {c: frame[c] for c in GERMAN_CREDIT_ROLES}, cutoff=0.5, n_bootstrap=0)
    assert [c["min_adverse_impact_ratio"] for c in fairness["columns"]] == pytest.approx(
        [c.min_adverse_impact_ratio for c in expected.columns])
    below = {f"fairness:{c.column}": c.min_adverse_impact_ratio for c in expected.columns
             if c.min_adverse_impact_ratio < 0.8}
    assert {a.metric: a.value for a in Alert.objects.filter(run_id=run["id"])} == pytest.approx(below)
    assert run["light"] == ("green" if not below else "red" if min(below.values()) < 0.6 else "amber")


def _groups(decisions: list[int], pds: np.ndarray) -> dict[int, str]:
    """Label applicants so that group B holds the riskiest third (mostly declined at 0.5) and A the rest."""
    riskiest = set(np.array(decisions)[np.argsort(pds)[-len(decisions) // 3:]].tolist())
    return {d: "B" if d in riskiest else "A" for d in decisions}


def _record_with_protected(user: Any, decisions: list[int], defaulted: np.ndarray,
                           protected: dict[int, dict[str, Any]]) -> None:
    items = [{**_item(d, bool(flag), _days_ago(30)), **({"protected": protected[d]} if d in protected else {})}
             for d, flag in zip(decisions, defaulted, strict=True)]
    response = _post_outcomes(user, items)
    assert response.status_code == 201, response.json()


def _expected_airs(pds: np.ndarray, labels: list[str]) -> dict[str, float]:
    approved = pds < 0.5
    rates = {g: approved[[label == g for label in labels]].mean() for g in sorted(set(labels))}
    return {g: rate / max(rates.values()) for g, rate in rates.items()}


def test_a_cohort_whose_group_b_is_mostly_declined_is_flagged_and_raises_a_fairness_alert(world, developer):  # noqa: ANN001
    pds = _pds(world.decisions)
    groups = _groups(world.decisions, pds)
    # The first 60 outcomes come without the attribute: a group of their own, "missing".
    protected = {d: {SEX: groups[d]} for d in world.decisions[60:]}
    _record_with_protected(developer, world.decisions, np.random.default_rng(11).random(len(pds)) < pds, protected)
    labels = [protected[d][SEX] if d in protected else "missing" for d in world.decisions]
    expected = _expected_airs(pds, labels)
    assert expected["B"] < 0.6  # the construction: B is declined far more often

    run = _run(developer, world, **COHORT)

    fairness = run["results"]["fairness"]
    assert (fairness["computed"], fairness["n"], fairness["cutoff_source"]) == (True, N_DECISIONS, "scoring_policy")
    [column] = fairness["columns"]
    assert column["column"] == SEX and column["flagged_groups"] == ["B"]
    airs = {g["group"]: g["adverse_impact_ratio"] for g in column["groups"]}
    assert airs == pytest.approx(expected)
    assert {g["group"]: g["n"] for g in column["groups"]} == {g: labels.count(g) for g in ("A", "B", "missing")}
    alert = Alert.objects.get(run_id=run["id"], metric=f"fairness:{SEX}")
    assert (alert.light, alert.threshold, alert.status) == ("red", 0.6, "open")
    assert alert.value == pytest.approx(expected["B"]) and "B (" in alert.message and "four-fifths" in alert.message
    assert run["light"] == "red"
    assert {a["metric"] for a in run["alerts"]} == {f"fairness:{SEX}"}  # performance itself is green
    assert AuditEvent.objects.get(action="monitoring_run.finished").after["fairness_flagged"] == [f"fairness:{SEX}"]
    assert AuditEvent.objects.filter(action="alert.raised", after__metric=f"fairness:{SEX}").count() == 1


def test_a_models_fairness_thresholds_decide_the_light(world, developer, compliance_officer):  # noqa: ANN001
    pds = _pds(world.decisions)
    groups = _groups(world.decisions, pds)
    _record_with_protected(developer, world.decisions, np.random.default_rng(11).random(len(pds)) < pds,
                           {d: {SEX: groups[d]} for d in world.decisions})
    air_b = _expected_airs(pds, [groups[d] for d in world.decisions])["B"]
    registered_model_inventory_update(actor=compliance_officer, model=world.model, changes={
        "monitoring_thresholds": {"fairness_air_amber": 0.95, "fairness_air_red": air_b / 2}})

    run = _run(developer, world, **COHORT)

    alert = Alert.objects.get(run_id=run["id"], metric=f"fairness:{SEX}")
    assert (alert.light, alert.threshold) == ("amber", 0.95) and run["light"] == "amber"
    assert run["thresholds"]["fairness_air_red"] == pytest.approx(air_b / 2)


def test_a_second_delivery_of_a_performance_job_records_nothing_twice(world, developer):  # noqa: ANN001
    run = _run(developer, world, **COHORT)

    job_execute(job_id=run["job"])

    assert MonitoringRun.objects.filter(job_id=run["job"]).count() == 1
    assert AuditEvent.objects.filter(action="monitoring_run.finished").count() == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "dataset_version"),
    ({**COHORT, "dataset_version": 1}, "dataset_version"),
    ({"decided_since": _days_ago(OLD)}, "decided_until"),
    ({"decided_since": _days_ago(OLD), "decided_until": _days_ago(OLD + 1)}, "decided_until"),
    ({"decided_since": "last year", "decided_until": _days_ago(1)}, "decided_since"),
])
def test_a_run_needs_one_well_formed_source(world, developer, body, field):  # noqa: ANN001
    body = {**body, **({"dataset_version": world.dataset_version.pk} if "dataset_version" in body else {})}

    response = client_for(developer).post(f"/api/v1/models/{world.model.name}/performance-runs/", body, format="json")

    assert response.status_code == 400
    assert _error(response)["details"]["field"] == field
    assert not Job.objects.filter(kind="performance").exists()


def test_a_run_without_a_validation_baseline_is_refused(world, developer):  # noqa: ANN001
    Evaluation.objects.filter(model_version=world.champion).update(scope="dataset")  # rolled back with the test

    response = client_for(developer).post(f"/api/v1/models/{world.model.name}/performance-runs/", COHORT,
                                          format="json")

    assert response.status_code == 409 and _error(response)["code"] == "no_baseline"


def test_performance_runs_are_requested_by_the_monitoring_roles_and_read_by_auditors(world, auditor,  # noqa: ANN001
                                                                                          developer):
    refused = client_for(auditor).post(f"/api/v1/models/{world.model.name}/performance-runs/", COHORT, format="json")
    run = _run(developer, world, **COHORT)

    assert (refused.status_code, _error(refused)["message"]) == (403, REFUSALS[Capability.MONITORING_RUN])
    assert client_for(auditor).get(f"/api/v1/performance-runs/{run['id']}/").status_code == 200
    assert client_for(auditor).get("/api/v1/performance-runs/999999/").status_code == 404

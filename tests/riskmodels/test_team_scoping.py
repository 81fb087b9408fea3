"""Teams bound what a user sees: another team's object is answered exactly as a missing one (404).

The matrix is generated from the URL conf: every API endpoint with an ``id`` or ``name`` in its
path is called, with every method it has, on team beta's object by a member of team alpha, and
must answer 404 with the words it uses for an object that does not exist. An endpoint missing
from ``OTHER_TEAMS_OBJECT`` fails the suite, so no future endpoint escapes the matrix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone

from governance.models import AuditEvent, Team
from governance.roles import Role
from riskmodels.models import (
    CreditDecision,
    DatasetVersion,
    DocumentationPack,
    Evaluation,
    ExplanationReport,
    Finding,
    Job,
    JobKind,
    JobStatus,
    LegalHold,
    ModelVersion,
    MonitoringReference,
    MonitoringRun,
    RegisteredModel,
    ValidationRun,
    VersionStatus,
)
from tests.conftest import (
    GERMAN_CREDIT,
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    run_queued_jobs,
    team_member,
    train_submittable_version,
)

pytestmark = pytest.mark.django_db

shared_media, _isolated_media = module_media("team-scoping-media")


@dataclass
class TeamWorld:
    """One team's objects, one of each kind an endpoint takes."""

    developer: Any
    dataset_version: DatasetVersion
    model: RegisteredModel
    version: ModelVersion
    job: Job
    evaluation: Evaluation
    report: ExplanationReport
    finding: Finding
    validation_run: ValidationRun
    decision: CreditDecision
    alert: Any
    stability_run: MonitoringRun
    performance_run: MonitoringRun
    batch_job: Job
    hold: LegalHold
    pack: DocumentationPack


@dataclass
class World:
    alpha: TeamWorld
    beta: TeamWorld
    underwriter_alpha: Any
    officer_alpha: Any
    validator_alpha: Any
    validator_all: Any
    auditor_all: Any
    auditor_alpha: Any


def _applications(version: ModelVersion, n: int = 2) -> list[dict[str, Any]]:
    from riskmodels.ml.pipelines import TrainingSpec
    from riskmodels.storage import dataset_rows

    spec = TrainingSpec.from_dict(version.spec)
    rows = dataset_rows(version.dataset_version, list(range(n)), list(spec.features))
    return [{"reference": f"APP-{i}", "features": {f: (v.item() if hasattr(v, "item") else v) for f, v in row.items()}}
            for i, (_, row) in enumerate(rows.iterrows())]


def _run(version: ModelVersion, kind: str) -> MonitoringRun:
    end = timezone.now()
    job = Job.objects.create(kind=JobKind.EVALUATE, params={}, registered_model=version.registered_model,
                             model_version=version, dataset_version=version.dataset_version,
                             requested_by_username="system:scheduler", status=JobStatus.SUCCEEDED)
    return MonitoringRun.objects.create(model_version=version, kind=kind, window_start=end - dt.timedelta(days=1),
                                        window_end=end, n_rows=10, results={}, light="green", thresholds={}, job=job)


def _team_world(slug: str, officer: Any) -> TeamWorld:
    """Build one team's objects through the services where it is cheap, directly where a job would be slow."""
    from riskmodels.services.reviews import registered_model_inventory_update
    from riskmodels.services.scoring import applications_score
    from tests.riskmodels.alerting import raise_alerts

    developer, _ = team_member(username=f"{slug}-developer", role=Role.DEVELOPER, teams=[slug])
    dataset_version = register_demo_dataset(developer, GERMAN_CREDIT, name=f"{slug}-credit")
    model = register_model(developer, name=f"{slug}-pd")
    version = train_submittable_version(developer, model, dataset_version)
    run_queued_jobs(drain=True)  # the validation battery the evaluation queued
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHAMPION)
    model = registered_model_inventory_update(actor=officer, model=model,
                                              changes={"scoring_policy": {"cutoff": 0.5, "refer_from": 0.35}})
    MonitoringReference.objects.create(model_version=version, dataset_version=dataset_version, n_rows=1,
                                       feature_bins={}, score_bins={"kind": "numeric", "edges": [],
                                                                    "labels": ["(-inf, inf)", "missing"],
                                                                    "shares": [1.0, 0.0]})
    decision = CreditDecision.objects.get(pk=applications_score(actor=developer, model=model,
                                                                applications=_applications(version)).decisions[0].id)
    finding = Finding.objects.create(model_version=version, title="t", description="d", category="data",
                                     severity="low", due_date=dt.date(2030, 1, 1), raised_by_username="v")
    batch_job = Job.objects.create(kind=JobKind.BATCH_SCORE, status=JobStatus.SUCCEEDED, params={},
                                   registered_model=model, model_version=version, dataset_version=dataset_version,
                                   result={"output_path": "nowhere.parquet", "output_sha256": "0" * 64},
                                   requested_by=developer, requested_by_username=developer.username)
    alert = raise_alerts(version)[0]
    hold = LegalHold.objects.create(registered_model=model, reason="examination", placed_by_username="o")
    pack_job = Job.objects.create(kind=JobKind.DOCUMENTATION_PACK, status=JobStatus.SUCCEEDED, params={},
                                  registered_model=model, model_version=version, dataset_version=dataset_version,
                                  requested_by_username=developer.username)
    pack = DocumentationPack.objects.create(
        model_version=version, job=pack_job, schema="riskgov.docpack/1", pdf_pages=1,
        created_by_username=developer.username,
        **{f"{ext}_{field}": value for ext in ("json", "html", "pdf")
           for field, value in (("path", f"nowhere.{ext}"), ("sha256", "0" * 64), ("size", 1))})
    # The stand-in jobs of the runs above never reach a worker.
    Job.objects.filter(status=JobStatus.QUEUED).update(status=JobStatus.SUCCEEDED)
    version = ModelVersion.objects.get(pk=version.pk)
    return TeamWorld(
        developer=developer, dataset_version=dataset_version, model=model, version=version, job=version.training_job,
        evaluation=version.evaluations.get(scope=Evaluation.Scope.TEST_SPLIT), report=version.explanations.get(),
        finding=finding, validation_run=version.validation_runs.get(), decision=decision,
        alert=alert, stability_run=_run(version, MonitoringRun.Kind.STABILITY),
        performance_run=_run(version, MonitoringRun.Kind.PERFORMANCE), batch_job=batch_job, hold=hold, pack=pack)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        for slug in ("alpha", "beta"):
            Team.objects.create(name=slug, slug=slug)
        officer, _ = team_member(username="olga-officer", role=Role.COMPLIANCE_OFFICER, teams=[],
                                 sees_all_teams=True)
        yield World(
            alpha=_team_world("alpha", officer), beta=_team_world("beta", officer),
            underwriter_alpha=team_member(username="uwe-underwriter", role=Role.UNDERWRITER, teams=["alpha"])[0],
            officer_alpha=team_member(username="oscar-officer", role=Role.COMPLIANCE_OFFICER, teams=["alpha"])[0],
            validator_alpha=team_member(username="vic-validator", role=Role.VALIDATOR, teams=["alpha"])[0],
            validator_all=team_member(username="val-all", role=Role.VALIDATOR, teams=[], sees_all_teams=True)[0],
            auditor_all=team_member(username="ada-all", role=Role.AUDITOR, teams=[], sees_all_teams=True)[0],
            auditor_alpha=team_member(username="abe-alpha", role=Role.AUDITOR, teams=["alpha"])[0])
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


# --- The matrix: every endpoint with an object in its path -------------------------------------------

@dataclass(frozen=True)
class Target:
    """How to fill an endpoint's path with a team's object, and who calls it (a member of the other team)."""

    kwargs: Callable[[TeamWorld], dict[str, Any]]
    # The caller, a member of the other team whose role passes the endpoint's capability gate (checked
    # before any lookup): "developer", "underwriter", "validator" or "officer" (compliance officer).
    persona: str = "developer"
    body: dict[str, Any] | None = None  # instead of the shared body, for an endpoint that refuses unknown fields


def _id(attribute: str, persona: str = "developer", **extra: str) -> Target:
    return Target(lambda t: {"id": getattr(t, attribute).pk, **extra}, persona=persona)


def _name(**extra: str) -> Target:
    return Target(lambda t: {"name": t.model.name, **extra})


OTHER_TEAMS_OBJECT: dict[str, Target] = {
    "dataset-version-detail": _id("dataset_version"),
    "dataset-version-download": _id("dataset_version"),
    "registered-model-detail": _name(),
    "registered-model-inventory-update": Target(lambda t: {"name": t.model.name}, persona="officer",
                                                body={"risk_tier": "low"}),
    "job-detail": _id("job"),
    "job-cancel": _id("job"),
    "model-version-detail": _id("version"),
    "model-version-artifact": _id("version"),
    "evaluation-create": _id("version"),
    "reproduction-create": _id("version"),
    "evaluation-detail": _id("evaluation"),
    "evaluation-plot": _id("evaluation", plot="roc"),
    "evaluation-fairness-plot": _id("evaluation", column="age_in_years"),
    "explanation-report-create": _id("version"),
    "explain-rows": _id("version"),
    "explanation-report-detail": _id("report"),
    "explanation-values": _id("report"),
    "explanation-plot": _id("report", plot="bar"),
    "model-version-submit": _id("version"),
    "model-version-take": _id("version", persona="validator"),
    "model-version-validate": _id("version", persona="validator"),
    "model-version-return": _id("version", persona="validator"),
    "model-version-reject": _id("version", persona="validator"),
    "model-version-approve": _id("version", persona="officer"),
    "model-version-promote": _id("version", persona="officer"),
    "model-version-retire": _id("version", persona="officer"),
    "model-version-decision-list": _id("version"),
    "finding-raise": _id("version", persona="validator"),
    "finding-detail": _id("finding"),
    "finding-remediate": _id("finding"),
    "finding-close": _id("finding", persona="validator"),
    "finding-accept": _id("finding", persona="validator"),
    "finding-dismiss": _id("finding", persona="validator"),
    "model-version-validation-runs": _id("version"),
    "validation-run-detail": _id("validation_run"),
    "periodic-review-create": _id("version", persona="validator"),
    "model-score": _name(),
    "decision-stats": _name(),
    "batch-scoring-create": _name(),
    "batch-scoring-output": _id("batch_job"),
    "stability-runs": _name(),
    "monitoring-plot": _name(plot="psi"),
    "monitoring-run-detail": _id("stability_run"),
    "monitoring-reference-detail": _id("version"),
    "decision-detail": _id("decision"),
    "decision-reproduce": _id("decision"),
    "decision-notice": _id("decision"),
    "decision-override": Target(lambda t: {"id": t.decision.pk}, persona="underwriter"),
    "performance-runs": _name(),
    "performance-run-detail": _id("performance_run"),
    "alert-detail": _id("alert"),
    "alert-acknowledge": _id("alert", persona="validator"),
    "legal-holds": Target(lambda t: {"name": t.model.name}, persona="officer"),
    "legal-hold-lift": Target(lambda t: {"id": t.hold.pk}, persona="officer"),
    "documentation-packs": _id("version"),
    "documentation-pack-detail": _id("pack"),
    "documentation-pack-file": _id("pack", file_format="pdf"),
}
# Endpoints with an id in their path whose object belongs to no team, and why.
NOT_TEAM_OBJECTS = {
    # An audit export is a file of the audit log, which is read whole by audit.read holders (developers
    # and underwriters never hold it); a model filter on an export goes through the model's scoped selector.
    "audit-export-bundle": "an audit export belongs to the audit log, not to a team",
    "audit-export-file": "an audit export belongs to the audit log, not to a team",
}
OBJECT_KWARGS = {"id", "name"}
MISSING = {"id": 2_000_000_000, "name": "no-such-model"}
METHODS = ("get", "post", "put", "patch", "delete")


def _api_patterns() -> list[tuple[str, URLPattern]]:
    from governance.urls import api_v1

    found: list[tuple[str, URLPattern]] = []

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif pattern.name:
                found.append((pattern.name, pattern))
    walk(api_v1)
    return found


def _object_endpoints() -> list[tuple[str, str]]:
    """Return (URL name, method) of every API endpoint with an object (id or name) in its path."""
    endpoints = []
    for name, pattern in _api_patterns():
        if OBJECT_KWARGS & set(pattern.pattern.converters) and name not in NOT_TEAM_OBJECTS:
            view = pattern.callback.view_class
            endpoints += [(name, method) for method in METHODS if hasattr(view, method)]
    return endpoints


def _body(world: World) -> dict[str, Any]:
    # Valid for every endpoint's input serializer (each reads only its own fields), so the request
    # reaches the object lookup; every object it names is the caller's own team's.
    own = world.alpha
    return {"rationale": "probe", "conclusion": "fit_for_purpose", "title": "t", "description": "d",
            "category": "data", "severity": "low", "due_date": "2030-01-01", "remediation": "r", "evidence": "e",
            "reason": "other", "comment": "c", "outcome": "approve", "text": "t",
            "dataset_version": own.dataset_version.pk, "evaluation": own.evaluation.pk,
            "applications": _applications(own.version, 1), "rows": [], "risk_tier": "low"}


def _call(client: Any, method: str, url: str, world: World, target: Target) -> Any:
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, target.body if target.body is not None else _body(world), format="json")


def test_every_api_endpoint_with_an_object_in_its_path_is_in_the_matrix():
    named = {name for name, _ in _object_endpoints()}
    assert named - set(OTHER_TEAMS_OBJECT) == set(), (
        "add these endpoints to OTHER_TEAMS_OBJECT (how to fill their path with another team's object)")
    assert set(OTHER_TEAMS_OBJECT) - named == set(), "remove endpoints that no longer exist from the table"


@pytest.mark.parametrize(("url_name", "method"), _object_endpoints())
def test_another_teams_object_answers_404_like_a_missing_one(world, url_name, method):  # noqa: ANN001
    target = OTHER_TEAMS_OBJECT[url_name]
    caller = {"developer": world.alpha.developer, "underwriter": world.underwriter_alpha,
              "validator": world.validator_alpha, "officer": world.officer_alpha}[target.persona]
    client = client_for(caller)
    kwargs = target.kwargs(world.beta)
    events = AuditEvent.objects.count()

    response = _call(client, method, reverse(url_name, kwargs=kwargs), world, target)

    missing_kwargs = {k: MISSING.get(k, v) for k, v in kwargs.items()}
    missing = _call(client, method, reverse(url_name, kwargs=missing_kwargs), world, target)
    assert missing.status_code == 404, (url_name, missing.status_code, missing.content[:300])
    assert response.status_code == 404, (url_name, method, response.status_code, response.content[:300])
    key = next(k for k in OBJECT_KWARGS if k in kwargs)
    said = response.json()["error"]["message"].replace(str(kwargs[key]), "<object>")
    assert said == missing.json()["error"]["message"].replace(str(missing_kwargs[key]), "<object>")
    # Nothing of the other team's was touched or read: no audit event (a download would write one).
    assert AuditEvent.objects.count() == events


# --- Objects named in a request body -------------------------------------------------------------------

def test_training_on_another_teams_dataset_version_answers_404(world):  # noqa: ANN001
    response = client_for(world.alpha.developer).post("/api/v1/training-jobs/", {
        "registered_model": world.alpha.model.name, "dataset_version": world.beta.dataset_version.pk,
        "algorithm": "logistic_regression"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"dataset version {world.beta.dataset_version.pk} does not exist"


def test_evaluating_ones_own_version_on_another_teams_data_answers_404(world):  # noqa: ANN001
    response = client_for(world.alpha.developer).post(f"/api/v1/model-versions/{world.alpha.version.pk}/evaluations/",
                                                      {"dataset_version": world.beta.dataset_version.pk}, format="json")
    assert response.status_code == 404


def test_an_overseer_of_both_teams_cannot_mix_one_teams_model_with_the_others_data(world):  # noqa: ANN001
    # A validator who sees both teams may explain either's models, but never on the other team's data.
    response = client_for(world.validator_all).post(f"/api/v1/model-versions/{world.alpha.version.pk}/explanations/",
                                                  {"dataset_version": world.beta.dataset_version.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "team_mismatch"


def test_outcomes_for_another_teams_decision_are_refused_as_unknown(world):  # noqa: ANN001
    item = {"decision": world.beta.decision.pk, "defaulted": False,
            "observed_on": timezone.now().astimezone(dt.UTC).date().isoformat()}
    response = client_for(world.alpha.developer).post("/api/v1/outcomes/", {"outcomes": [item]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_decision"
    assert response.json()["error"]["message"].endswith(f"decision {world.beta.decision.pk} is not in the ledger")


def test_a_developer_registers_a_model_only_in_a_team_they_belong_to(world):  # noqa: ANN001
    client = client_for(world.alpha.developer)
    body = {"name": "gamma-pd", "owner_team": "retail", "purpose": "PD"}
    refused = client.post("/api/v1/models/", {**body, "team": "beta"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_a_team_member"
    created = client.post("/api/v1/models/", body, format="json")  # their only team by default
    assert created.status_code == 201 and created.json()["team"] == "alpha"


def test_a_member_of_several_teams_must_say_which(world):  # noqa: ANN001
    both, _ = team_member(username="bo-both", role=Role.DEVELOPER, teams=["alpha", "beta"])
    client = client_for(both)
    body = {"name": "delta-pd", "owner_team": "retail", "purpose": "PD"}
    response = client.post("/api/v1/models/", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "team_required"
    assert "say which team" in response.json()["error"]["message"]
    assert client.post("/api/v1/models/", {**body, "team": "beta"}, format="json").json()["team"] == "beta"


def test_a_dataset_name_of_another_team_is_taken_without_saying_whose(world):  # noqa: ANN001
    with GERMAN_CREDIT.open("rb") as handle:
        response = client_for(world.alpha.developer).post("/api/v1/datasets/", {
            "name": world.beta.dataset_version.dataset.name, "file": handle, "target": "creditability"},
            format="multipart")
    assert response.status_code == 409
    assert "beta" not in response.json()["error"]["message"].replace(world.beta.dataset_version.dataset.name, "")


# --- Lists ------------------------------------------------------------------------------------------------

LISTS = {
    "/api/v1/datasets/": lambda t: t.dataset_version.dataset_id,
    "/api/v1/dataset-versions/": lambda t: t.dataset_version.pk,
    "/api/v1/models/": lambda t: t.model.pk,
    "/api/v1/model-versions/": lambda t: t.version.pk,
    "/api/v1/jobs/": lambda t: t.job.pk,
    "/api/v1/findings/": lambda t: t.finding.pk,
    "/api/v1/alerts/": lambda t: t.alert.pk,
    "/api/v1/decisions/": lambda t: t.decision.pk,
}


def _ids(client: Any, url: str) -> set[int]:
    body = client.get(url).json()
    rows = body["results"] if isinstance(body, dict) else body
    return {row["id"] for row in rows}


@pytest.mark.parametrize("url", list(LISTS))
def test_lists_show_only_the_callers_teams(world, url):  # noqa: ANN001
    ids = _ids(client_for(world.alpha.developer), url)
    assert LISTS[url](world.alpha) in ids
    assert LISTS[url](world.beta) not in ids


@pytest.mark.parametrize("url", list(LISTS))
def test_an_auditor_of_all_teams_sees_both_and_an_auditor_of_one_sees_that_one(world, url):  # noqa: ANN001
    assert {LISTS[url](world.alpha), LISTS[url](world.beta)} <= _ids(client_for(world.auditor_all), url)
    ids = _ids(client_for(world.auditor_alpha), url)
    assert LISTS[url](world.alpha) in ids and LISTS[url](world.beta) not in ids


def test_the_decision_export_holds_only_the_callers_teams_decisions(world):  # noqa: ANN001
    response = client_for(world.alpha.developer).get("/api/v1/decisions/export/")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert world.alpha.model.name in body and world.beta.model.name not in body


def test_an_auditor_of_all_teams_reads_both_teams_objects(world):  # noqa: ANN001
    client = client_for(world.auditor_all)
    for team in (world.alpha, world.beta):
        assert client.get(f"/api/v1/model-versions/{team.version.pk}/").status_code == 200
        assert client.get(f"/api/v1/findings/{team.finding.pk}/").status_code == 200


def test_an_auditor_of_one_team_reads_that_team_only(world):  # noqa: ANN001
    client = client_for(world.auditor_alpha)
    assert client.get(f"/api/v1/model-versions/{world.alpha.version.pk}/").status_code == 200
    assert client.get(f"/api/v1/model-versions/{world.beta.version.pk}/").status_code == 404


# --- Reading a file is an audit event ----------------------------------------------------------------

def test_downloading_a_dataset_version_and_an_artifact_are_audited_before_the_bytes_flow(world):  # noqa: ANN001
    client = client_for(world.alpha.developer)
    response = client.get(f"/api/v1/dataset-versions/{world.alpha.dataset_version.pk}/download/")
    assert response.status_code == 200
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.target_id, event.actor_username) == (
        "dataset_version.downloaded", str(world.alpha.dataset_version.pk), world.alpha.developer.username)
    b"".join(response.streaming_content)

    response = client.get(f"/api/v1/model-versions/{world.alpha.version.pk}/artifact/")
    assert response.status_code == 200
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.target_id, event.after["artifact_sha256"]) == (
        "model_version.artifact_downloaded", str(world.alpha.version.pk), world.alpha.version.artifact_sha256)
    b"".join(response.streaming_content)


# --- The admin reads through the same selectors ----------------------------------------------------------

@pytest.mark.parametrize("model", ["dataset", "datasetversion", "registeredmodel", "modelversion", "job",
                                   "evaluation", "explanationreport", "alert", "creditdecision"])
def test_the_admin_lists_and_pages_show_only_the_users_teams(world, client, model):  # noqa: ANN001
    from django.apps import apps

    objects = {"dataset": lambda t: t.dataset_version.dataset, "datasetversion": lambda t: t.dataset_version,
               "registeredmodel": lambda t: t.model, "modelversion": lambda t: t.version, "job": lambda t: t.job,
               "evaluation": lambda t: t.evaluation, "explanationreport": lambda t: t.report,
               "alert": lambda t: t.alert, "creditdecision": lambda t: t.decision}[model]
    apps.get_model("riskmodels", model)  # the name is a model's
    client.force_login(world.auditor_alpha)
    own = client.get(reverse(f"admin:riskmodels_{model}_change", args=[objects(world.alpha).pk]))
    other = client.get(reverse(f"admin:riskmodels_{model}_change", args=[objects(world.beta).pk]))
    assert own.status_code == 200
    # The stock admin redirects to its index with "does not exist" for an object outside get_queryset.
    assert other.status_code == 302
    listing = client.get(reverse(f"admin:riskmodels_{model}_changelist"))
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == listing.context["cl"].queryset.count()
    assert objects(world.beta).pk not in set(listing.context["cl"].queryset.values_list("pk", flat=True))

"""Who may do what, checked where people meet it: every capability of every role through the API,
the object rule of cancelling a job, and the admin permissions each role's group carries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import RequestFactory, override_settings

from governance.accounts import role_groups_sync, user_upsert
from governance.exceptions import PermissionDenied
from governance.policy import (
    ADMIN_PERMISSIONS,
    GRANTS,
    REFUSALS,
    Capability,
    access_of,
    admin_permissions_of,
    capabilities_of,
    refusal,
)
from governance.roles import Role
from riskmodels.models import DatasetVersion, Finding, Job, ModelVersion, ReasonText, RegisteredModel, VersionStatus
from riskmodels.services.reasons import reason_text_set
from riskmodels.services.training import training_job_create
from tests.conftest import (
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    train_submittable_version,
)

pytestmark = pytest.mark.django_db

# The personas of tests/conftest.py (fixture name -> role).
PERSONAS = {
    "developer": Role.DEVELOPER,
    "validator": Role.VALIDATOR,
    "compliance_officer": Role.COMPLIANCE_OFFICER,
    "auditor": Role.AUDITOR,
    "underwriter": Role.UNDERWRITER,
    "outsider": None,
}


# --- A world shared by the whole module --------------------------------------------------------
# Training a version costs about a second; every probe only reads it, and each test's own
# writes roll back, so the module trains once and commits it, then removes it at the end.

@dataclass(frozen=True)
class World:
    dataset_version: DatasetVersion
    model_version: ModelVersion
    others_job: Job  # queued, requested by a developer who is none of the personas


# Every test here reads the world's files, made once for the module.
shared_media, _isolated_media = module_media("policy-media")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        owner, _ = user_upsert(username="owen-owner", role=Role.DEVELOPER)
        dataset_version = register_demo_dataset(owner)
        model = register_model(owner)
        # With its test-split evaluation and SHAP report, so that the submit probe can succeed.
        model_version = train_submittable_version(owner, model, dataset_version)
        RegisteredModel.objects.filter(pk=model.pk).update(scoring_policy={"cutoff": 0.3})
        others_job = Job.objects.create(kind="train", params={}, registered_model=model,
                                        dataset_version=dataset_version, requested_by=owner,
                                        requested_by_username=owner.username)
        yield World(dataset_version=dataset_version, model_version=model_version, others_job=others_job)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


# --- One probe per capability --------------------------------------------------------------------

Answer = tuple[int, "str | None"]  # the status, and the error message of a refusal or failure


def _answer(response: Any) -> Answer:
    return response.status_code, response.json()["error"]["message"] if response.status_code >= 400 else None


@dataclass(frozen=True)
class Probe:
    """One request that uses a capability, the status it gets when allowed, and the capabilities
    checked before it (in order): every API endpoint first admits only users with a role."""

    run: Callable[[Any, World], Answer]
    ok: int
    gates: tuple[Capability, ...] = (Capability.DOMAIN_READ,)


def _read_dataset_version(user: Any, world: World) -> Answer:
    return _answer(client_for(user).get(f"/api/v1/dataset-versions/{world.dataset_version.pk}/"))


def _upload_dataset(user: Any, world: World) -> Answer:
    csv = SimpleUploadedFile("probe.csv", b"a,b,target\n1,2,0\n3,4,1\n5,6,0\n")
    return _answer(client_for(user).post("/api/v1/datasets/", {"name": "policy-probe", "file": csv, "target": "target"},
                                         format="multipart"))


def _register_model(user: Any, world: World) -> Answer:
    body = {"name": "policy-probe", "owner_team": "retail credit risk", "purpose": "probe"}
    return _answer(client_for(user).post("/api/v1/models/", body, format="json"))


def _train(user: Any, world: World) -> Answer:
    body = {"registered_model": world.model_version.registered_model.name,
            "dataset_version": world.dataset_version.pk, "algorithm": "logistic_regression"}
    return _answer(client_for(user).post("/api/v1/training-jobs/", body, format="json"))


def _evaluate(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/model-versions/{world.model_version.pk}/evaluations/",
                                         {"dataset_version": world.dataset_version.pk}, format="json"))


def _reproduce(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/model-versions/{world.model_version.pk}/reproduce/"))


def _explain_a_row(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/model-versions/{world.model_version.pk}/explain-rows/",
                                         {"row_ids": [0]}, format="json"))


def _cancel_own_job(user: Any, world: World) -> Answer:
    # Made directly: an auditor or an outsider cannot request a job, yet must not cancel one of theirs.
    job = Job.objects.create(kind="train", params={}, registered_model=world.model_version.registered_model,
                             dataset_version=world.dataset_version, requested_by=user,
                             requested_by_username=user.username)
    return _answer(client_for(user).post(f"/api/v1/jobs/{job.pk}/cancel/"))


def _cancel_others_job(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/jobs/{world.others_job.pk}/cancel/"))


def _edit_reason_text(user: Any, world: World) -> Answer:
    # No API endpoint edits reason texts today: the admin does, through the service. Both
    # must agree: the admin offers "add" exactly to those the service lets through.
    request = RequestFactory().get("/admin/riskmodels/reasontext/add/")
    request.user = user
    offered = admin.site._registry[ReasonText].has_add_permission(request)
    try:
        reason_text_set(actor=user, registered_model=world.model_version.registered_model, feature="purpose",
                        text="The loan purpose carries elevated risk.")
    except PermissionDenied as exc:
        assert not offered, "the admin offers what the service refuses"
        return 403, exc.message
    assert offered, "the service allows what the admin hides"
    return 200, None


def _edit_protected_catalogue(user: Any, world: World) -> Answer:
    # Like reason texts: edited in the admin, through the service; both must agree.
    from riskmodels.models import ProtectedCharacteristic
    from riskmodels.services.datasets import protected_characteristic_save

    request = RequestFactory().get("/admin/riskmodels/protectedcharacteristic/add/")
    request.user = user
    offered = admin.site._registry[ProtectedCharacteristic].has_add_permission(request)
    try:
        protected_characteristic_save(actor=user, name="tenure as a proxy", name_words="tenure")
    except PermissionDenied as exc:
        assert not offered, "the admin offers what the service refuses"
        return 403, exc.message
    assert offered, "the service allows what the admin hides"
    return 200, None


def _read_audit_log(user: Any, world: World) -> Answer:
    return _answer(client_for(user).get("/api/v1/audit-events/"))


def _edit_inventory(user: Any, world: World) -> Answer:
    return _answer(client_for(user).patch(f"/api/v1/models/{world.model_version.registered_model.name}/inventory/",
                                          {"limitations": "Not for small-business loans."}, format="json"))


def _move_version(path: str, status: VersionStatus, **body: Any) -> Callable[[Any, World], Answer]:
    """A probe that puts the world's version in ``status`` (rolled back with the test) and moves it."""
    def probe(user: Any, world: World) -> Answer:
        ModelVersion.objects.filter(pk=world.model_version.pk).update(status=status)
        return _answer(client_for(user).post(f"/api/v1/model-versions/{world.model_version.pk}/{path}/",
                                             {"rationale": "probe", **body}, format="json"))
    return probe


def _remediate_finding(user: Any, world: World) -> Answer:
    finding = Finding.objects.create(model_version=world.model_version, title="probe", description="probe",
                                     category="data", severity="low", due_date="2030-01-01",
                                     raised_by_username="someone", owner=user)  # the object rule admits its owner
    return _answer(client_for(user).post(f"/api/v1/findings/{finding.pk}/remediate/",
                                         {"remediation": "fixed"}, format="json"))


def _applications(world: World) -> list[dict[str, Any]]:
    from riskmodels.ml.pipelines import TrainingSpec
    from riskmodels.storage import dataset_rows

    spec = TrainingSpec.from_dict(world.model_version.spec)
    row = dataset_rows(world.dataset_version, [0], list(spec.features)).iloc[0]
    return [{"reference": "probe", "features": {f: (v.item() if hasattr(v, "item") else v) for f, v in row.items()}}]


def _as_champion(world: World) -> None:
    ModelVersion.objects.filter(pk=world.model_version.pk).update(status=VersionStatus.CHAMPION)


def _score(user: Any, world: World) -> Answer:
    _as_champion(world)
    return _answer(client_for(user).post(f"/api/v1/models/{world.model_version.registered_model.name}/score/",
                                         {"applications": _applications(world)}, format="json"))


def _a_decision(world: World) -> Any:
    from riskmodels.services.scoring import applications_score

    _as_champion(world)
    owner = get_user_model().objects.get(username="owen-owner")
    return applications_score(actor=owner, model=RegisteredModel.objects.get(pk=world.model_version.registered_model_id),
                              applications=_applications(world)).decisions[0]


def _read_decision(user: Any, world: World) -> Answer:
    return _answer(client_for(user).get(f"/api/v1/decisions/{_a_decision(world).pk}/"))


def _override(user: Any, world: World) -> Answer:
    decision = _a_decision(world)
    outcome = "approve" if decision.outcome != "approve" else "decline"
    response = client_for(user).post(f"/api/v1/decisions/{decision.pk}/override/",
                                     {"outcome": outcome, "reason": "other", "text": "probe"}, format="json")
    return _answer(response)


def _record_outcome(user: Any, world: World) -> Answer:
    import datetime as dt

    decision = _a_decision(world)
    item = {"decision": decision.pk, "defaulted": False, "observed_on": dt.datetime.now(dt.UTC).date().isoformat()}
    return _answer(client_for(user).post("/api/v1/outcomes/", {"outcomes": [item]}, format="json"))


def _acknowledge_alert(user: Any, world: World) -> Answer:
    from tests.riskmodels.alerting import raise_alerts

    alert = raise_alerts(world.model_version)[0]
    return _answer(client_for(user).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"comment": "Seen; revalidating."},
                                         format="json"))


def _request_stability_run(user: Any, world: World) -> Answer:
    # The champion's frozen reference is made directly (rolled back with the test): its job is tested elsewhere.
    from riskmodels.models import MonitoringReference

    _as_champion(world)
    MonitoringReference.objects.get_or_create(model_version=world.model_version, defaults={
        "dataset_version": world.dataset_version, "n_rows": 1, "feature_bins": {},
        "score_bins": {"kind": "numeric", "edges": [], "labels": ["(-inf, inf)", "missing"], "shares": [1.0, 0.0]}})
    return _answer(client_for(user).post(f"/api/v1/models/{world.model_version.registered_model.name}/stability-runs/",
                                         {"dataset_version": world.dataset_version.pk}, format="json"))


def _place_legal_hold(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/models/{world.model_version.registered_model.name}/legal-holds/",
                                         {"reason": "Litigation: applicant complaint"}, format="json"))
def _generate_documentation_pack(user: Any, world: World) -> Answer:
    return _answer(client_for(user).post(f"/api/v1/model-versions/{world.model_version.pk}/documentation-packs/"))


PROBES: dict[Capability, Probe] = {
    Capability.DOMAIN_READ: Probe(_read_dataset_version, ok=200, gates=()),
    Capability.DATASET_UPLOAD: Probe(_upload_dataset, ok=201),
    Capability.MODEL_REGISTER: Probe(_register_model, ok=201),
    Capability.MODEL_TRAIN: Probe(_train, ok=202),
    Capability.MODEL_EVALUATE: Probe(_evaluate, ok=202),
    Capability.MODEL_REPRODUCE: Probe(_reproduce, ok=202),
    Capability.MODEL_EXPLAIN: Probe(_explain_a_row, ok=200),
    Capability.JOB_CANCEL: Probe(_cancel_own_job, ok=200),
    Capability.JOB_CANCEL_ANY: Probe(_cancel_others_job, ok=200,
                                     gates=(Capability.DOMAIN_READ, Capability.JOB_CANCEL)),
    Capability.REASON_TEXT_EDIT: Probe(_edit_reason_text, ok=200, gates=()),
    Capability.PROTECTED_CATALOGUE_EDIT: Probe(_edit_protected_catalogue, ok=200, gates=()),
    Capability.AUDIT_READ: Probe(_read_audit_log, ok=200),
    Capability.MODEL_INVENTORY_EDIT: Probe(_edit_inventory, ok=200),
    Capability.VERSION_SUBMIT: Probe(_move_version("submit", VersionStatus.TRAINED), ok=200),
    Capability.VERSION_VALIDATE: Probe(_move_version("take", VersionStatus.SUBMITTED), ok=200),
    Capability.VERSION_APPROVE: Probe(_move_version("approve", VersionStatus.VALIDATED), ok=200),
    Capability.VERSION_PROMOTE: Probe(_move_version("promote", VersionStatus.APPROVED), ok=200),
    Capability.VERSION_RETIRE: Probe(_move_version("retire", VersionStatus.TRAINED), ok=200),
    Capability.FINDING_REMEDIATE: Probe(_remediate_finding, ok=200),
    Capability.MODEL_SCORE: Probe(_score, ok=200, gates=()),
    Capability.DECISION_READ: Probe(_read_decision, ok=200, gates=()),
    Capability.DECISION_OVERRIDE: Probe(_override, ok=201, gates=()),
    Capability.OUTCOME_RECORD: Probe(_record_outcome, ok=201, gates=()),
    Capability.ALERT_ACKNOWLEDGE: Probe(_acknowledge_alert, ok=200),
    Capability.MONITORING_RUN: Probe(_request_stability_run, ok=202),
    Capability.LEGAL_HOLD_MANAGE: Probe(_place_legal_hold, ok=201),
    Capability.DOCPACK_GENERATE: Probe(_generate_documentation_pack, ok=202),
}


def test_every_capability_has_a_probe():
    # A capability added to the policy without a probe would go untested through the interfaces.
    assert set(PROBES) == set(Capability), f"add a probe for {sorted(set(Capability) - set(PROBES))}"


def test_every_capability_is_granted_and_explains_its_refusal():
    assert set(GRANTS) == set(Capability) == set(REFUSALS)
    assert set(ADMIN_PERMISSIONS) <= set(Capability)


@pytest.mark.parametrize("capability", list(PROBES))
def test_whoever_holds_a_capability_also_holds_what_its_probe_passes_first(capability):  # noqa: ANN001
    # Otherwise a probe could be refused at a gate, and the matrix would not test the capability.
    assert all(GRANTS[capability] <= GRANTS[gate] for gate in PROBES[capability].gates)


@pytest.mark.parametrize(("persona", "capability"),
                         [(persona, capability) for capability in GRANTS for persona in PERSONAS],
                         ids=lambda value: getattr(value, "value", value))
def test_each_role_may_use_exactly_the_capabilities_the_policy_grants(persona, capability, world,  # noqa: ANN001
                                                                      request):
    probe = PROBES.get(capability)
    assert probe is not None, f"no probe for {capability}: add one to PROBES"
    role = PERSONAS[persona]
    status, message = probe.run(request.getfixturevalue(persona), world)
    if role in GRANTS[capability]:
        assert (status, message) == (probe.ok, None)
    else:
        first_missing = next(c for c in (*probe.gates, capability) if role not in GRANTS[c])
        assert (status, message) == (403, REFUSALS[first_missing])


@pytest.mark.parametrize("persona", list(PERSONAS))
def test_me_lists_the_roles_and_capabilities_the_policy_grants(persona, request):  # noqa: ANN001
    role = PERSONAS[persona]
    body = client_for(request.getfixturevalue(persona)).get("/api/v1/me/").json()
    assert body["roles"] == ([role.value] if role else [])
    assert body["capabilities"] == sorted(c.value for c in (capabilities_of(role) if role else ()))


# --- The object rule of cancelling a job ------------------------------------------------------------

def test_the_requester_may_cancel_their_own_job(developer):  # noqa: ANN001
    assert refusal(developer, Capability.JOB_CANCEL, SimpleNamespace(requested_by_id=developer.pk)) is None


def test_another_developer_may_not_cancel_it_and_is_told_who_may(developer, other_developer):  # noqa: ANN001
    job = SimpleNamespace(requested_by_id=developer.pk)
    assert refusal(other_developer, Capability.JOB_CANCEL, job) == REFUSALS[Capability.JOB_CANCEL_ANY]


def test_a_compliance_officer_may_cancel_anyones_job(developer, compliance_officer):  # noqa: ANN001
    assert refusal(compliance_officer, Capability.JOB_CANCEL, SimpleNamespace(requested_by_id=developer.pk)) is None


def test_a_requester_whose_role_was_taken_away_may_not_cancel_their_own_job(developer):  # noqa: ANN001
    job = SimpleNamespace(requested_by_id=developer.pk)
    developer.groups.clear()
    del developer._governance_roles  # the roles are cached on the user for one request
    assert access_of(developer).roles == frozenset()
    assert refusal(developer, Capability.JOB_CANCEL, job) == REFUSALS[Capability.JOB_CANCEL]


def test_the_api_refuses_anothers_job_with_the_rules_reason_and_lets_the_requester_cancel(  # noqa: ANN001
        developer, other_developer, world):
    job = training_job_create(actor=developer, registered_model=world.model_version.registered_model,
                              dataset_version=world.dataset_version, request={"algorithm": "logistic_regression"})
    response = client_for(other_developer).post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 403
    assert response.json()["error"] == {"status": 403, "code": "permission_denied",
                                        "message": REFUSALS[Capability.JOB_CANCEL_ANY], "details": {}}
    assert client_for(developer).post(f"/api/v1/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"


# --- The admin permissions of each role's group ----------------------------------------------------

@pytest.mark.parametrize("role", list(Role))
def test_each_roles_group_carries_exactly_the_admin_permissions_of_its_capabilities(role):  # noqa: ANN001
    stray = Permission.objects.get(content_type__app_label="auth", codename="delete_user")
    role_groups_sync()[role].permissions.add(stray)  # a hand-made change that the next sync undoes
    group = role_groups_sync()[role]
    carried = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert carried == set(admin_permissions_of(role))


def test_only_compliance_officers_groups_may_change_anything_in_the_admin():
    for role in Role:
        changes = [p for p in admin_permissions_of(role) if not p.split(".")[1].startswith("view_")]
        expected = {Role.DEVELOPER: ["riskmodels.add_datasetversion"],
                    Role.COMPLIANCE_OFFICER: ["riskmodels.add_protectedcharacteristic", "riskmodels.add_reasontext",
                                              "riskmodels.change_protectedcharacteristic",
                                              "riskmodels.change_reasontext",
                                              "riskmodels.delete_protectedcharacteristic",
                                              "riskmodels.delete_reasontext"]}.get(role, [])
        assert changes == expected, role


# --- The README's table of roles ---------------------------------------------------------------------

def test_the_readme_table_of_capabilities_says_what_the_policy_grants():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    roles = [Role(name) for name in header[1:]]
    table = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0].startswith("`"):
            table[Capability(cells[0].split("`")[1])] = frozenset(r for r, cell in zip(roles, cells[1:]) if cell)
    assert set(roles) == set(Role)
    assert table == GRANTS

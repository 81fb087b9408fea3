"""The version lifecycle through the REST API: every (state, action, role) of the transition table,
separation of duties, the happy path to champion, findings, inventory, the review schedule,
refused input that writes nothing, and two approvals racing."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from governance.audit import audit_verify
from governance.models import AuditEvent
from governance.roles import Role
from riskmodels.jobs.kinds import job_execute
from riskmodels.models import Decision, Finding, ModelVersion, RegisteredModel, VersionStatus
from riskmodels.services.evaluation import evaluation_job_create
from riskmodels.services.training import training_job_create
from tests.conftest import (
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    team_member,
    train_submittable_version,
)

pytestmark = pytest.mark.django_db
S = VersionStatus
PERSONAS = ("developer", "validator", "compliance_officer", "auditor", "outsider")


# --- A world shared by the module -----------------------------------------------------------------
# Three submittable versions (trained, test-split evaluation, SHAP report) cost a few seconds:
# the module builds them once, committed, and each test's writes roll back.

@dataclass(frozen=True)
class World:
    model: RegisteredModel
    table: ModelVersion  # put in any state by the tests
    first: ModelVersion  # the happy path's first champion
    second: ModelVersion  # ... and the one that replaces it
    clients: dict[str, APIClient]  # by persona, for the 360 cases of the table


# Every test here reads the world's files, made once for the module.
shared_media, _isolated_media = module_media("lifecycle-media")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        # The trainer is the ``developer`` persona (the fixture finds this same user).
        trainer, _ = team_member(username="dana-developer", role=Role.DEVELOPER, password="dana-developer-pass-123")
        dataset_version = register_demo_dataset(trainer)
        model = register_model(trainer)
        versions = [train_submittable_version(trainer, model, dataset_version) for _ in range(3)]
        # The personas of tests/conftest.py (the fixtures find these same users), and an outsider of its own.
        users = {"developer": trainer, **{persona: team_member(username=name, role=Role(persona))[0] for persona, name in (
            ("validator", "vera-validator"), ("compliance_officer", "carl-compliance"), ("auditor", "ada-auditor"))},
                 "outsider": get_user_model().objects.create_user(username="otto-outsider")}
        yield World(model, *versions, clients={persona: client_for(user) for persona, user in users.items()})
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _set_status(version: ModelVersion, status: str) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(status=status)


def _post(user: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    return client_for(user).post(f"/api/v1/{path}", body or {}, format="json")


def _move(user: Any, version: ModelVersion, action: str, **body: Any) -> Any:
    return _post(user, f"model-versions/{version.pk}/{action}/", {"rationale": f"{action}: reasons", **body})


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _add_role(user: Any, role: Role) -> None:
    # user_upsert gives one role; a second is a second group (as an administrator could in the admin).
    user.groups.add(Group.objects.get(name=role.value))
    user.__dict__.pop("_governance_roles", None)


# --- The transition table ---------------------------------------------------------------------------
# action -> (the states it moves from -> the state it moves to, the role that may take it)

TABLE: dict[str, tuple[dict[str, str], str]] = {
    "submit": ({S.TRAINED: S.SUBMITTED, S.RETURNED: S.SUBMITTED}, "developer"),
    "take": ({S.SUBMITTED: S.IN_VALIDATION}, "validator"),
    "validate": ({S.IN_VALIDATION: S.VALIDATED}, "validator"),
    "return": ({S.IN_VALIDATION: S.RETURNED}, "validator"),
    "reject": ({S.SUBMITTED: S.REJECTED, S.IN_VALIDATION: S.REJECTED, S.VALIDATED: S.REJECTED}, "validator"),
    "approve": ({S.VALIDATED: S.APPROVED}, "compliance_officer"),
    "promote": ({S.APPROVED: S.CHAMPION}, "compliance_officer"),
    "retire": ({S.TRAINED: S.RETIRED, S.RETURNED: S.RETIRED, S.VALIDATED: S.RETIRED, S.APPROVED: S.RETIRED,
                S.CHAMPION: S.RETIRED}, "compliance_officer"),
}
# Who may act depends on the state for one action: a validated version is rejected at approval.
ROLE_IN_STATE = {("reject", S.VALIDATED): "compliance_officer"}


def _expected(state: str, action: str, persona: str) -> tuple[int, str]:
    moves, role = TABLE[action]
    if persona != ROLE_IN_STATE.get((action, state), role):
        return 403, "permission_denied"
    if state in moves:
        return 200, moves[state]
    return 409, f"version_{state}"


def test_the_table_names_every_action_and_every_state():
    assert set(TABLE) == {"submit", "take", "validate", "return", "reject", "approve", "promote", "retire"}
    assert {s for moves, _ in TABLE.values() for s in (*moves, *moves.values())} == set(S.values)


@pytest.mark.parametrize(("state", "action", "persona"),
                         [(state, action, persona) for state in S.values for action in TABLE for persona in PERSONAS])
def test_each_role_moves_a_version_exactly_as_the_transition_table_says(state, action, persona, world):  # noqa: ANN001
    _set_status(world.table, state)
    decisions = Decision.objects.count()
    response = world.clients[persona].post(f"/api/v1/model-versions/{world.table.pk}/{action}/",
                                           {"rationale": f"{action}: reasons", "conclusion": "fit_for_purpose"},
                                           format="json")
    expected_status, expected = _expected(state, action, persona)
    world.table.refresh_from_db()
    if expected_status == 200:
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["status"] == expected == world.table.status
        assert body["model_version"] == world.table.pk
        assert body["decision"]["action"] == action
        assert (body["decision"]["from_status"], body["decision"]["to_status"]) == (state, expected)
        assert body["decision"]["rationale"] == f"{action}: reasons"
        assert Decision.objects.count() == decisions + 1
    else:
        assert _error(response) == (expected_status, expected)
        assert world.table.status == state
        assert Decision.objects.count() == decisions


# --- Separation of duties, one rule at a time -----------------------------------------------------------

def _refused_for_separation_of_duties(response: Any, version: ModelVersion, state: str) -> str:
    assert _error(response) == (403, "separation_of_duties")
    version.refresh_from_db()
    assert version.status == state
    return response.json()["error"]["message"]


def test_the_trainer_may_not_validate_their_own_version_even_as_a_validator(developer, world):  # noqa: ANN001
    _add_role(developer, Role.VALIDATOR)
    _set_status(world.table, S.SUBMITTED)
    message = _refused_for_separation_of_duties(_move(developer, world.table, "take"), world.table, S.SUBMITTED)
    assert "trained" in message


def test_the_submitter_may_not_validate_the_version_they_submitted(other_developer, world):  # noqa: ANN001
    _add_role(other_developer, Role.VALIDATOR)
    assert _move(other_developer, world.table, "submit").status_code == 200
    message = _refused_for_separation_of_duties(_move(other_developer, world.table, "take"), world.table,
                                                S.SUBMITTED)
    assert "submitted" in message


def test_the_validator_of_a_version_may_not_approve_it(validator, world):  # noqa: ANN001
    _add_role(validator, Role.COMPLIANCE_OFFICER)
    _set_status(world.table, S.IN_VALIDATION)
    assert _move(validator, world.table, "validate", conclusion="fit_for_purpose").status_code == 200
    message = _refused_for_separation_of_duties(_move(validator, world.table, "approve"), world.table, S.VALIDATED)
    assert "validator" in message


def test_a_high_tier_model_needs_two_distinct_approvers(compliance_officer, world):  # noqa: ANN001
    RegisteredModel.objects.filter(pk=world.model.pk).update(risk_tier="high")
    _set_status(world.table, S.VALIDATED)
    first = _move(compliance_officer, world.table, "approve")
    assert first.status_code == 200
    assert first.json()["status"] == S.VALIDATED  # one approval of two
    assert first.json()["decision"]["evidence"]["approvals"] == 1
    message = _refused_for_separation_of_duties(_move(compliance_officer, world.table, "approve"), world.table,
                                                S.VALIDATED)
    assert "two distinct approvers" in message


def test_a_developer_turned_compliance_officer_may_not_approve_the_version_they_trained(developer, world):  # noqa: ANN001
    team_member(username=developer.username, role=Role.COMPLIANCE_OFFICER)  # the role changed; the record did not
    _set_status(world.table, S.VALIDATED)
    message = _refused_for_separation_of_duties(_move(developer, world.table, "approve"), world.table, S.VALIDATED)
    assert "trained" in message


# --- The happy path ---------------------------------------------------------------------------------------

def _moved(response: Any, status: str) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == status
    return response.json()


def test_a_version_goes_from_trained_to_champion_and_a_second_champion_replaces_it(  # noqa: ANN001
        developer, validator, compliance_officer, world):
    first, second = world.first, world.second
    _moved(_move(developer, first, "submit"), S.SUBMITTED)
    _moved(_move(validator, first, "take"), S.IN_VALIDATION)
    raised = _post(validator, f"model-versions/{first.pk}/findings/", {
        "title": "Unstable bins", "description": "The age bins move between folds.", "category": "performance",
        "severity": "high", "due_date": "2030-06-30", "owner": developer.username})
    assert raised.status_code == 201, raised.json()
    finding = raised.json()
    assert (finding["status"], finding["severity"], finding["owner"]) == ("open", "high", developer.username)
    remediated = _post(developer, f"findings/{finding['id']}/remediate/", {"remediation": "Bins fixed on quantiles."})
    assert remediated.json()["status"] == "remediated"
    closed = _post(validator, f"findings/{finding['id']}/close/", {"evidence": "Stable over five folds."})
    assert (closed.json()["status"], closed.json()["closed_by_username"]) == ("closed", validator.username)
    validated = _moved(_move(validator, first, "validate", conclusion="fit_for_purpose"), S.VALIDATED)
    assert validated["decision"]["evidence"]["findings"] == [finding["id"]]
    _moved(_move(compliance_officer, first, "approve"), S.APPROVED)
    _moved(_move(compliance_officer, first, "promote"), S.CHAMPION)
    model = client_for(developer).get(f"/api/v1/models/{world.model.name}/").json()
    assert model["champion"] == first.pk
    assert model["next_review_date"] is not None

    _moved(_move(developer, second, "submit"), S.SUBMITTED)
    _moved(_move(validator, second, "take"), S.IN_VALIDATION)
    _moved(_move(validator, second, "validate", conclusion="fit_with_conditions",
                 conditions="Monitor the PSI of age monthly."), S.VALIDATED)
    _moved(_move(compliance_officer, second, "approve"), S.APPROVED)
    promoted = _moved(_move(compliance_officer, second, "promote"), S.CHAMPION)
    assert promoted["decision"]["evidence"]["replaced"] == first.pk

    reader = client_for(developer)
    model = reader.get(f"/api/v1/models/{world.model.name}/").json()
    assert model["champion"] == second.pk
    assert {v["id"]: v["status"] for v in model["versions"]}[first.pk] == S.APPROVED
    assert reader.get(f"/api/v1/model-versions/{first.pk}/").json()["status"] == S.APPROVED
    history = reader.get(f"/api/v1/model-versions/{first.pk}/decisions/").json()
    assert [d["action"] for d in history] == ["submit", "take", "validate", "approve", "promote", "replace"]
    assert [d["actor_username"] for d in history[:3]] == [developer.username, validator.username, validator.username]
    assert history[3]["actor_roles"] == ["compliance_officer"]
    result = audit_verify()
    assert result.ok, result.reason


def test_an_open_high_finding_blocks_approval(validator, compliance_officer, world):  # noqa: ANN001
    _set_status(world.table, S.IN_VALIDATION)
    raised = _post(validator, f"model-versions/{world.table.pk}/findings/", {
        "title": "Leakage", "description": "A post-default field.", "category": "data", "severity": "high",
        "due_date": "2030-01-31"})
    _set_status(world.table, S.VALIDATED)
    response = _move(compliance_officer, world.table, "approve")
    assert _error(response) == (409, "open_high_findings")
    assert response.json()["error"]["details"]["findings"] == [raised.json()["id"]]


# --- Findings: reading and filtering ---------------------------------------------------------------------

def _finding(version: ModelVersion, *, severity: str = "medium", status: str = "open",
             due: dt.date | None = None) -> Finding:
    return Finding.objects.create(model_version=version, title=f"{severity} {status}", description="d",
                                  category="documentation", severity=severity, status=status,
                                  due_date=due or timezone.localdate() + dt.timedelta(days=30),
                                  raised_by_username="vera-validator")


def test_findings_are_listed_and_filtered_by_version_status_severity_and_overdue(auditor, world):  # noqa: ANN001
    late = timezone.localdate() - dt.timedelta(days=3)
    high_open = _finding(world.table, severity="high")
    low_late = _finding(world.table, severity="low", due=late)
    closed_late = _finding(world.table, status="closed", due=late)
    elsewhere = _finding(world.first, severity="high")
    reader = client_for(auditor)

    def ids(query: str) -> set[int]:
        response = reader.get(f"/api/v1/findings/{query}")
        assert response.status_code == 200, response.json()
        return {f["id"] for f in response.json()["results"]}

    assert ids("") == {high_open.pk, low_late.pk, closed_late.pk, elsewhere.pk}
    assert ids(f"?model_version={world.table.pk}") == {high_open.pk, low_late.pk, closed_late.pk}
    assert ids("?severity=high") == {high_open.pk, elsewhere.pk}
    assert ids("?status=closed") == {closed_late.pk}
    assert ids("?overdue=1") == {low_late.pk}
    assert ids(f"?overdue=1&model_version={world.first.pk}") == set()
    one = reader.get(f"/api/v1/findings/{low_late.pk}/").json()
    assert (one["overdue"], one["registered_model"], one["severity"]) == (True, world.model.name, "low")
    assert reader.get("/api/v1/findings/999999/").status_code == 404
    assert _error(reader.get("/api/v1/findings/?severity=urgent"))[0] == 400


def test_an_outsider_may_not_read_findings(outsider):  # noqa: ANN001
    assert _error(client_for(outsider).get("/api/v1/findings/")) == (403, "permission_denied")


def test_a_periodic_review_on_newer_data_is_recorded_and_moves_the_next_review(developer, validator, world):  # noqa: ANN001
    newer = register_demo_dataset(developer, name="german-credit-2027")  # another dataset version, same columns
    job = evaluation_job_create(actor=validator, model_version=world.table, dataset_version=newer)
    job_execute(job_id=job.pk)
    evaluation = world.table.evaluations.get(dataset_version=newer)
    _set_status(world.table, S.CHAMPION)
    was_due = timezone.localdate() - dt.timedelta(days=2)
    RegisteredModel.objects.filter(pk=world.model.pk).update(next_review_date=was_due)
    response = _post(validator, f"model-versions/{world.table.pk}/reviews/", {
        "evaluation": evaluation.pk, "conclusion": "fit_for_purpose", "rationale": "Stable on 2027 data."})
    assert response.status_code == 201, response.json()
    review = response.json()
    assert (review["reviewer_username"], review["due_date"]) == (validator.username, was_due.isoformat())
    world.model.refresh_from_db()
    assert world.model.next_review_date.isoformat() == review["next_review_date"] > timezone.localdate().isoformat()
    assert client_for(developer).get("/api/v1/reviews/due/").json() == []


# --- Refused input writes nothing --------------------------------------------------------------------------

def _counts() -> tuple[int, int, int]:
    return Decision.objects.count(), Finding.objects.count(), AuditEvent.objects.count()


FINDING = {"title": "t", "description": "d", "category": "data", "severity": "high", "due_date": "2030-01-31"}
BAD_INPUT = {
    "a missing rationale": (S.TRAINED, "developer", "submit", {}, 400, "invalid", "rationale"),
    "a blank rationale": (S.IN_VALIDATION, "validator", "return", {"rationale": "  "}, 400, "invalid", "rationale"),
    "an unknown conclusion": (S.IN_VALIDATION, "validator", "validate",
                              {"rationale": "r", "conclusion": "fine"}, 400, "invalid", "conclusion"),
    "conditions missing": (S.IN_VALIDATION, "validator", "validate",
                           {"rationale": "r", "conclusion": "fit_with_conditions"}, 400, "conditions_required",
                           "conditions"),
    "an unknown finding severity": (S.IN_VALIDATION, "validator", "findings", {**FINDING, "severity": "urgent"},
                                    400, "invalid", "severity"),
    "an unknown finding category": (S.IN_VALIDATION, "validator", "findings", {**FINDING, "category": "vibes"},
                                    400, "invalid", "category"),
    "a bad due date": (S.IN_VALIDATION, "validator", "findings", {**FINDING, "due_date": "31/01/2030"},
                       400, "invalid", "due_date"),
    "an unknown finding owner": (S.IN_VALIDATION, "validator", "findings", {**FINDING, "owner": "nobody"},
                                 400, "invalid", "owner"),
    "a finding on a retired version": (S.RETIRED, "validator", "findings", FINDING, 409, "version_retired", None),
    "approving a rejected version": (S.REJECTED, "compliance_officer", "approve", {"rationale": "r"},
                                     409, "version_rejected", None),
    "approving a retired version": (S.RETIRED, "compliance_officer", "approve", {"rationale": "r"},
                                    409, "version_retired", None),
    "promoting an unapproved version": (S.VALIDATED, "compliance_officer", "promote", {"rationale": "r"},
                                        409, "version_validated", None),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_refused_input_answers_with_its_code_and_writes_nothing(case, world, request):  # noqa: ANN001
    state, persona, action, body, status, code, field = BAD_INPUT[case]
    _set_status(world.table, state)
    user = request.getfixturevalue(persona)
    client = client_for(user)  # issuing the token is audited: count after it
    before = _counts()
    response = client.post(f"/api/v1/model-versions/{world.table.pk}/{action}/", body, format="json")
    assert _error(response) == (status, code)
    if field:
        error = response.json()["error"]
        assert error["message"].startswith(f"{field}:") or error["details"].get("field") == field, error
    assert _counts() == before
    world.table.refresh_from_db()
    assert world.table.status == state
    result = audit_verify()
    assert result.ok, result.reason


def test_an_unknown_version_is_a_404(compliance_officer):  # noqa: ANN001
    response = _post(compliance_officer, "model-versions/999999/approve/", {"rationale": "r"})
    assert _error(response) == (404, "not_found")


def test_a_finding_closed_twice_is_a_conflict(validator, world):  # noqa: ANN001
    finding = _finding(world.table, status="closed")
    assert _error(_post(validator, f"findings/{finding.pk}/close/", {"evidence": "again"})) == (409, "finding_closed")


# --- The inventory ---------------------------------------------------------------------------------------------

def test_a_compliance_officer_sets_inventory_fields_and_the_model_shows_them(compliance_officer, developer,  # noqa: ANN001
                                                                             world):
    response = client_for(compliance_officer).patch(f"/api/v1/models/{world.model.name}/inventory/", {
        "risk_tier": "high", "owner": developer.username, "review_cadence_months": 6, "min_auc": 0.7,
        "business_use": "Retail instalment loan decisions."}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["risk_tier"], body["owner"], body["review_cadence_months"], body["review_cadence_in_force"],
            body["min_auc"], body["champion"]) == ("high", developer.username, 6, 6, 0.7, None)
    assert body["model_type"] == "other" and body["limitations"] == ""  # untouched
    event = AuditEvent.objects.filter(action="registered_model.inventory_updated").latest("seq")
    assert (event.before["risk_tier"], event.after["risk_tier"]) == ("medium", "high")
    shown = client_for(developer).get("/api/v1/models/").json()["results"][0]
    assert (shown["risk_tier"], shown["owner"], shown["min_auc"]) == ("high", developer.username, 0.7)


def test_the_cadence_in_force_is_the_tiers_default_until_one_is_set(developer, world, settings):  # noqa: ANN001
    body = client_for(developer).get(f"/api/v1/models/{world.model.name}/").json()
    assert body["review_cadence_months"] is None
    assert body["review_cadence_in_force"] == settings.REVIEW_CADENCE_MONTHS["medium"]


@pytest.mark.parametrize(("body", "field"), [
    ({"risk_tier": "extreme"}, "risk_tier"),
    ({"review_cadence_months": 0}, "review_cadence_months"),
    ({"min_auc": 1.5}, "min_auc"),
    ({"owner": "nobody"}, "owner"),
    ({"colour": "blue"}, "colour"),
    ({}, None),
])
def test_bad_inventory_input_is_refused_naming_the_field(body, field, compliance_officer, world):  # noqa: ANN001
    client = client_for(compliance_officer)
    before = AuditEvent.objects.count()
    response = client.patch(f"/api/v1/models/{world.model.name}/inventory/", body, format="json")
    assert _error(response) == (400, "invalid")
    if field:
        assert response.json()["error"]["message"].startswith(f"{field}:")
    assert AuditEvent.objects.count() == before


# --- The review schedule ----------------------------------------------------------------------------------------

def test_reviews_due_lists_champions_overdue_or_due_soon_with_days_overdue(auditor, world):  # noqa: ANN001
    today = timezone.localdate()
    _set_status(world.first, S.CHAMPION)
    RegisteredModel.objects.filter(pk=world.model.pk).update(next_review_date=today - dt.timedelta(days=5))
    reader = client_for(auditor)
    due = reader.get("/api/v1/reviews/due/").json()
    assert due == [{"registered_model": world.model.name, "risk_tier": "medium", "owner": None,
                    "champion": world.first.pk, "next_review_date": (today - dt.timedelta(days=5)).isoformat(),
                    "days_overdue": 5, "overdue": True}]
    RegisteredModel.objects.filter(pk=world.model.pk).update(next_review_date=today + dt.timedelta(days=20))
    assert reader.get("/api/v1/reviews/due/").json()[0]["days_overdue"] == -20
    assert reader.get("/api/v1/reviews/due/?within_days=10").json() == []
    assert _error(reader.get("/api/v1/reviews/due/?within_days=soon")) == (400, "invalid")


def test_a_model_without_a_champion_has_no_review_due(auditor, world):  # noqa: ANN001
    RegisteredModel.objects.filter(pk=world.model.pk).update(next_review_date=timezone.localdate())
    assert client_for(auditor).get("/api/v1/reviews/due/").json() == []


def test_a_periodic_review_is_of_a_champion(validator, world):  # noqa: ANN001
    evaluation = world.table.evaluations.get()
    body = {"evaluation": evaluation.pk, "conclusion": "fit_for_purpose", "rationale": "r"}
    response = _post(validator, f"model-versions/{world.table.pk}/reviews/", body)
    assert _error(response) == (409, "version_trained")
    _set_status(world.table, S.CHAMPION)
    # The test-split evaluation is on the training data: a review needs newer data.
    response = _post(validator, f"model-versions/{world.table.pk}/reviews/", body)
    assert _error(response) == (400, "invalid_evaluation")
    assert _error(_post(validator, f"model-versions/{world.table.pk}/reviews/",
                        {**body, "conclusion": "meh"})) == (400, "invalid")


def test_a_validators_reject_fails_if_the_version_was_validated_between_the_check_and_the_move(  # noqa: ANN001
        validator, world, monkeypatch):
    import riskmodels.services.lifecycle as lifecycle

    real_require = lifecycle.require

    def require_then_someone_validates(*args: Any, **kwargs: Any) -> None:
        real_require(*args, **kwargs)
        _set_status(world.table, S.VALIDATED)  # what a concurrent conclusion would do

    monkeypatch.setattr(lifecycle, "require", require_then_someone_validates)
    _set_status(world.table, S.IN_VALIDATION)
    response = _move(validator, world.table, "reject")
    assert _error(response) == (409, "version_validated")  # rejecting now is a compliance officer's decision
    world.table.refresh_from_db()
    assert world.table.status == S.VALIDATED


# --- Two approvals at once -----------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_of_a_low_tier_version_let_exactly_one_through(developer, compliance_officer):  # noqa: ANN001
    """Each thread has its own connection (PostgreSQL in CI; a SQLite file here)."""
    model = register_model(developer, name="race-pd")
    RegisteredModel.objects.filter(pk=model.pk).update(risk_tier="low")
    job = training_job_create(actor=developer, registered_model=model, dataset_version=register_demo_dataset(developer),
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get(training_job=job)
    _set_status(version, S.VALIDATED)
    second_officer, _ = team_member(username="cora-compliance", role=Role.COMPLIANCE_OFFICER)
    clients = [client_for(compliance_officer), client_for(second_officer)]
    barrier = threading.Barrier(len(clients))
    responses: list[Any] = []
    errors: list[BaseException] = []

    def approve(client: Any) -> None:
        try:
            barrier.wait()
            responses.append(client.post(f"/api/v1/model-versions/{version.pk}/approve/", {"rationale": "race"},
                                         format="json"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json()["error"]["code"] in {"concurrent_transition", "version_approved"}
    version.refresh_from_db()
    assert version.status == S.APPROVED
    assert Decision.objects.filter(model_version=version, action="approve").count() == 1
    result = audit_verify()
    assert result.ok, result.reason

"""The version lifecycle in the service layer: moves, evidence, findings, floors, separation of duties, reviews."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from governance.audit import audit_verify
from governance.exceptions import Conflict, PermissionDenied, ValidationFailed
from governance.models import AuditEvent
from governance.roles import Role
from riskmodels.models import (
    Decision,
    Evaluation,
    Finding,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.selectors import registered_model_champion
from riskmodels.services.explanations import explanation_job_create
from riskmodels.services.findings import finding_close, finding_raise, finding_remediate
from riskmodels.services.lifecycle import (
    add_months,
    version_approve,
    version_promote,
    version_reject,
    version_retire,
    version_submit,
    version_take,
    version_validate,
)
from riskmodels.services.reviews import periodic_review_record, registered_model_inventory_update, reviews_flag_overdue
from riskmodels.services.training import training_job_create
from tests.conftest import _persona, run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)
S = VersionStatus


def _trained(developer, dataset_version, model) -> ModelVersion:  # noqa: ANN001
    before = set(ModelVersion.objects.values_list("pk", flat=True))
    training_job_create(actor=developer, registered_model=model, dataset_version=dataset_version,
                        request={"algorithm": "gradient_boosting", "hyperparameters": {"max_depth": 2, "max_iter": 20}})
    run_queued_jobs()  # training, then its test-split evaluation
    return ModelVersion.objects.exclude(pk__in=before).get()


def _explained(developer, version: ModelVersion) -> ModelVersion:  # noqa: ANN001
    explanation_job_create(actor=developer, model_version=version)
    run_queued_jobs()
    return version


@pytest.fixture
def validator2(db):  # noqa: ANN001,ANN201
    return _persona("val-two", Role.VALIDATOR)


@pytest.fixture
def compliance2(db):  # noqa: ANN001,ANN201
    return _persona("carla-compliance", Role.COMPLIANCE_OFFICER)


@pytest.fixture
def version(developer, german_credit_version, retail_model):  # noqa: ANN001,ANN201
    return _explained(developer, _trained(developer, german_credit_version, retail_model))


def _to_validated(version, developer, validator):  # noqa: ANN001,ANN202
    version_submit(actor=developer, version=version, rationale="ready for validation")
    version_take(actor=validator, version=version, rationale="I will validate it")
    version_validate(actor=validator, version=version, rationale="sound", conclusion="fit_for_purpose")
    return version


def _add_role(user, role: Role):  # noqa: ANN001,ANN202
    user.groups.add(Group.objects.get(name=role.value))
    if hasattr(user, "_governance_roles"):
        del user._governance_roles
    return user


def test_a_version_goes_from_trained_to_champion_with_a_decision_and_an_audit_event_for_each_move(  # noqa: ANN201
        version, developer, validator, compliance_officer):
    _to_validated(version, developer, validator)
    version_approve(actor=compliance_officer, version=version, rationale="meets the policy")
    version_promote(actor=compliance_officer, version=version, rationale="replaces the scorecard")
    version.refresh_from_db()
    assert version.status == S.CHAMPION
    history = list(version.decisions.values_list("action", "from_status", "to_status", "actor_username"))
    assert history == [("submit", "trained", "submitted", developer.username),
                       ("take", "submitted", "in_validation", validator.username),
                       ("validate", "in_validation", "validated", validator.username),
                       ("approve", "validated", "approved", compliance_officer.username),
                       ("promote", "approved", "champion", compliance_officer.username)]
    submit = version.decisions.get(action="submit")
    assert submit.evidence["evaluations"] and submit.evidence["reports"] and submit.actor_roles == ["developer"]
    actions = list(AuditEvent.objects.filter(action__startswith="model_version.").values_list("action", flat=True))
    assert actions[-5:] == ["model_version.submit", "model_version.take", "model_version.validate",
                            "model_version.approve", "model_version.promote"]
    assert registered_model_champion(registered_model=version.registered_model) == version
    model = RegisteredModel.objects.get(pk=version.registered_model_id)
    assert model.next_review_date == add_months(dt.date.today(), 18)  # medium tier
    assert audit_verify().ok


def test_submission_needs_a_finished_evaluation_and_shap_report(developer, german_credit_version, retail_model):  # noqa: ANN001
    bare = _trained(developer, german_credit_version, retail_model)
    Evaluation.objects.filter(model_version=bare).delete()
    events = AuditEvent.objects.count()
    with pytest.raises(Conflict) as refused:
        version_submit(actor=developer, version=bare, rationale="ready")
    assert refused.value.code == "evidence_missing"
    assert refused.value.details["missing"] == ["a finished test-split evaluation", "a finished SHAP report"]
    assert AuditEvent.objects.count() == events and not Decision.objects.exists()


@pytest.mark.parametrize("rationale", ["", "   ", None])
def test_every_decision_needs_a_rationale_and_nothing_is_written_without_one(version, developer, rationale):  # noqa: ANN001
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        version_submit(actor=developer, version=version, rationale=rationale)
    assert refused.value.code == "rationale_required"
    assert AuditEvent.objects.count() == events and ModelVersion.objects.get(pk=version.pk).status == S.TRAINED


def test_a_move_out_of_order_is_a_conflict_naming_the_state(version, developer, compliance_officer):  # noqa: ANN001
    with pytest.raises(Conflict) as refused:
        version_approve(actor=compliance_officer, version=version, rationale="skip validation")
    assert refused.value.code == "version_trained" and refused.value.details["state"] == "trained"
    with pytest.raises(Conflict) as refused:
        version_promote(actor=compliance_officer, version=version, rationale="use it now")
    assert refused.value.code == "version_trained"
    version_retire(actor=compliance_officer, version=version, rationale="superseded before review")
    with pytest.raises(Conflict) as refused:
        version_submit(actor=developer, version=version, rationale="try again")
    assert refused.value.code == "version_retired"
    assert audit_verify().ok


# --- separation of duties: one test per rule ---------------------------------------------------

def test_sod_whoever_trained_a_version_cannot_validate_it(version, developer):  # noqa: ANN001
    version_submit(actor=developer, version=version, rationale="ready")
    _add_role(developer, Role.VALIDATOR)
    with pytest.raises(PermissionDenied) as refused:
        version_take(actor=developer, version=version, rationale="I know it best")
    assert refused.value.code == "separation_of_duties" and "trained" in refused.value.message


def test_sod_whoever_submitted_a_version_cannot_validate_it(version, other_developer):  # noqa: ANN001
    version_submit(actor=other_developer, version=version, rationale="ready")
    _add_role(other_developer, Role.VALIDATOR)
    with pytest.raises(PermissionDenied) as refused:
        version_take(actor=other_developer, version=version, rationale="I will check it")
    assert refused.value.code == "separation_of_duties" and "submitted" in refused.value.message


def test_sod_the_validator_of_a_version_cannot_approve_it(version, developer, validator):  # noqa: ANN001
    _to_validated(version, developer, validator)
    _add_role(validator, Role.COMPLIANCE_OFFICER)
    with pytest.raises(PermissionDenied) as refused:
        version_approve(actor=validator, version=version, rationale="I validated it")
    assert refused.value.code == "separation_of_duties" and "validator" in refused.value.message


def test_sod_a_role_change_does_not_let_a_trainer_approve_their_own_work(version, developer, validator):  # noqa: ANN001
    from tests.conftest import team_member

    _to_validated(version, developer, validator)
    promoted, _ = team_member(username=developer.username, role=Role.COMPLIANCE_OFFICER)  # now only compliance
    with pytest.raises(PermissionDenied) as refused:
        version_approve(actor=promoted, version=version, rationale="approving as compliance now")
    assert refused.value.code == "separation_of_duties" and "trained" in refused.value.message


def test_sod_a_high_tier_model_needs_two_distinct_approvers(version, developer, validator, compliance_officer,  # noqa: ANN001
                                                            compliance2):
    registered_model_inventory_update(actor=compliance_officer, model=version.registered_model,
                                      changes={"risk_tier": "high"})
    _to_validated(version, developer, validator)
    version_approve(actor=compliance_officer, version=version, rationale="first approval")
    assert ModelVersion.objects.get(pk=version.pk).status == S.VALIDATED  # one of two
    with pytest.raises(PermissionDenied) as refused:
        version_approve(actor=compliance_officer, version=version, rationale="approving again")
    assert refused.value.code == "separation_of_duties" and "two distinct approvers" in refused.value.message
    version_approve(actor=compliance2, version=version, rationale="second approval")
    version.refresh_from_db()
    assert version.status == S.APPROVED
    assert version.decisions.get(to_status=S.APPROVED).evidence["approvals"] == 2


def test_roles_without_the_capability_are_refused(version, developer, validator, auditor):  # noqa: ANN001
    with pytest.raises(PermissionDenied) as refused:
        version_submit(actor=validator, version=version, rationale="submitting for them")
    assert refused.value.code == "permission_denied"
    version_submit(actor=developer, version=version, rationale="ready")
    with pytest.raises(PermissionDenied):
        version_take(actor=auditor, version=version, rationale="looking")


# --- findings and floors ----------------------------------------------------------------------

def test_an_open_high_finding_blocks_approval_until_a_validator_closes_it(version, developer, validator,  # noqa: ANN001
                                                                         compliance_officer):
    version_submit(actor=developer, version=version, rationale="ready")
    version_take(actor=validator, version=version, rationale="mine")
    high = finding_raise(actor=validator, version=version, title="Leakage suspected", description="check dates",
                         category="data", severity="high", due_date=dt.date.today() + dt.timedelta(days=14))
    medium = finding_raise(actor=validator, version=version, title="Thin segment", description="few young applicants",
                           category="performance", severity="medium", due_date=dt.date.today())
    version_validate(actor=validator, version=version, rationale="sound apart from findings",
                     conclusion="fit_with_conditions", conditions="monitor the young segment")
    with pytest.raises(Conflict) as refused:
        version_approve(actor=compliance_officer, version=version, rationale="approve")
    assert refused.value.code == "open_high_findings" and refused.value.details["findings"] == [high.pk]
    with pytest.raises(PermissionDenied):
        finding_close(actor=developer, finding=high, evidence="I fixed it")  # only a validator closes
    finding_remediate(actor=developer, finding=high, remediation="dates excluded from the features")
    finding_close(actor=validator, finding=high, evidence="retested: no leakage")
    decision = version_approve(actor=compliance_officer, version=version, rationale="approve with conditions")
    assert decision.to_status == S.APPROVED and f"Finding #{medium.pk}" in decision.conditions
    assert list(Finding.objects.order_by("id").values_list("status", flat=True)) == ["closed", "open"]
    assert audit_verify().ok


def test_a_finding_with_an_unknown_severity_is_refused_and_nothing_is_written(version, developer, validator):  # noqa: ANN001
    version_submit(actor=developer, version=version, rationale="ready")
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        finding_raise(actor=validator, version=version, title="x", description="y", category="data",
                      severity="critical", due_date=dt.date.today())
    assert refused.value.code == "invalid_severity"
    assert not Finding.objects.exists() and AuditEvent.objects.count() == events


def test_approving_below_a_floor_needs_a_recorded_policy_exception(version, developer, validator,  # noqa: ANN001
                                                                  compliance_officer, compliance2):
    registered_model_inventory_update(actor=compliance_officer, model=version.registered_model,
                                      changes={"min_auc": 0.99})
    _to_validated(version, developer, validator)
    submitted = version.decisions.get(action="submit")
    assert [b["floor"] for b in submitted.evidence["floor_breaches"]] == ["min_auc"]  # recorded at submission
    with pytest.raises(Conflict) as refused:
        version_approve(actor=compliance2, version=version, rationale="good enough")
    assert refused.value.code == "below_performance_floor"
    decision = version_approve(actor=compliance2, version=version, rationale="good enough",
                               policy_exception="the portfolio is small; AUC floor waived for one year")
    assert decision.policy_exception.startswith("the portfolio is small")
    assert decision.evidence["floor_breaches"][0]["floor"] == "min_auc"


def test_a_rejected_version_stays_rejected(version, developer, validator, compliance_officer):  # noqa: ANN001
    version_submit(actor=developer, version=version, rationale="ready")
    version_take(actor=validator, version=version, rationale="mine")
    version_reject(actor=validator, version=version, rationale="conceptually unsound")
    with pytest.raises(Conflict) as refused:
        version_approve(actor=compliance_officer, version=version, rationale="approve anyway")
    assert refused.value.code == "version_rejected"


# --- champions --------------------------------------------------------------------------------

def test_promoting_a_challenger_replaces_the_champion_and_records_it(version, developer, validator,  # noqa: ANN001
                                                                    compliance_officer, german_credit_version):
    _to_validated(version, developer, validator)
    version_approve(actor=compliance_officer, version=version, rationale="ok")
    version_promote(actor=compliance_officer, version=version, rationale="first champion")
    challenger = _explained(developer, _trained(developer, german_credit_version, version.registered_model))
    _to_validated(challenger, developer, validator)
    version_approve(actor=compliance_officer, version=challenger, rationale="better KS")
    version_promote(actor=compliance_officer, version=challenger, rationale="challenger wins")
    assert ModelVersion.objects.get(pk=version.pk).status == S.APPROVED
    assert ModelVersion.objects.get(pk=challenger.pk).status == S.CHAMPION
    replaced = Decision.objects.get(model_version=version, action="replace")
    assert replaced.evidence == {"champion": challenger.pk}
    assert registered_model_champion(registered_model=version.registered_model) == challenger


def test_the_database_refuses_a_second_champion(version, german_credit_version, developer):  # noqa: ANN001
    from django.db import IntegrityError, transaction

    other = _trained(developer, german_credit_version, version.registered_model)
    ModelVersion.objects.filter(pk=version.pk).update(status=S.CHAMPION)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=other.pk).update(status=S.CHAMPION)


def test_of_two_concurrent_approvals_exactly_one_succeeds(version, developer, validator, compliance_officer,  # noqa: ANN001
                                                          compliance2):
    _to_validated(version, developer, validator)
    barrier, outcomes = threading.Barrier(2), []

    def approve(user) -> None:  # noqa: ANN001
        try:
            barrier.wait()
            version_approve(actor=user, version=ModelVersion.objects.get(pk=version.pk), rationale="approve")
            outcomes.append("approved")
        except Conflict as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(u,)) for u in (compliance_officer, compliance2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[0] == "approved" and sorted(outcomes)[1] in {"concurrent_transition", "version_approved"}
    assert Decision.objects.filter(model_version=version, action="approve").count() == 1
    assert audit_verify().ok


# --- periodic review --------------------------------------------------------------------------

def test_an_overdue_review_is_audited_once_and_a_review_moves_the_next_date(version, developer, validator,  # noqa: ANN001
                                                                             compliance_officer, tmp_path):
    from riskmodels.services.evaluation import evaluation_job_create
    from tests.conftest import GERMAN_CREDIT, register_demo_dataset

    _to_validated(version, developer, validator)
    version_approve(actor=compliance_officer, version=version, rationale="ok")
    version_promote(actor=compliance_officer, version=version, rationale="champion")
    model = RegisteredModel.objects.get(pk=version.registered_model_id)
    later = model.next_review_date + dt.timedelta(days=3)
    assert reviews_flag_overdue(today=later) == [model.pk]
    assert reviews_flag_overdue(today=later + dt.timedelta(days=1)) == []  # once per due date
    assert AuditEvent.objects.get(action="registered_model.review_overdue").after["days_overdue"] == 3

    recent = tmp_path / "recent.csv"
    recent.write_text(GERMAN_CREDIT.read_text())
    newer = register_demo_dataset(developer, recent, name="german-credit-2027")
    evaluation_job_create(actor=validator, model_version=version, dataset_version=newer)
    run_queued_jobs()
    evaluation = Evaluation.objects.get(model_version=version, dataset_version=newer)
    with pytest.raises(ValidationFailed):
        periodic_review_record(actor=validator, version=version, evaluation=version.evaluations.get(scope="test_split"),
                               conclusion="fit_for_purpose", rationale="same data")
    review = periodic_review_record(actor=validator, version=ModelVersion.objects.get(pk=version.pk),
                                    evaluation=evaluation, conclusion="fit_for_purpose", rationale="stable")
    model.refresh_from_db()
    assert review.due_date == later - dt.timedelta(days=3)
    assert model.next_review_date == add_months(dt.date.today(), 18) and model.overdue_flagged_for is None
    assert audit_verify().ok


def test_add_months_keeps_the_day_or_the_months_last():
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 11, 15), 18) == dt.date(2028, 5, 15)


def test_a_validator_cannot_reject_a_version_once_it_is_validated(version, developer, validator):  # noqa: ANN001
    _to_validated(version, developer, validator)
    with pytest.raises(PermissionDenied) as refused:
        version_reject(actor=validator, version=version, rationale="changed my mind")
    assert refused.value.code == "permission_denied" and "compliance" in refused.value.message


def test_a_finding_is_answered_by_the_versions_developer_not_any_developer(version, developer, other_developer,  # noqa: ANN001
                                                                          validator):
    version_submit(actor=developer, version=version, rationale="ready")
    version_take(actor=validator, version=version, rationale="mine")
    finding = finding_raise(actor=validator, version=version, title="t", description="d", category="data",
                            severity="low", due_date=dt.date.today())
    with pytest.raises(PermissionDenied) as refused:
        finding_remediate(actor=other_developer, finding=finding, remediation="not my model")
    assert "developers of its version" in refused.value.message
    assert finding_remediate(actor=developer, finding=finding, remediation="fixed").status == "remediated"


def test_changing_the_tier_reschedules_the_champions_review_from_its_promotion(version, developer, validator,  # noqa: ANN001
                                                                              compliance_officer):
    _to_validated(version, developer, validator)
    version_approve(actor=compliance_officer, version=version, rationale="ok")
    version_promote(actor=compliance_officer, version=version, rationale="champion")
    model = registered_model_inventory_update(actor=compliance_officer, model=version.registered_model,
                                              changes={"risk_tier": "high"})
    assert model.next_review_date == add_months(dt.date.today(), 12)
    model = registered_model_inventory_update(actor=compliance_officer, model=model,
                                              changes={"review_cadence_months": 3})
    assert model.next_review_date == add_months(dt.date.today(), 3)

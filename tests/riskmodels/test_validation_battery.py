"""The validation battery as a job: run after every test-split evaluation, results stored, findings proposed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance.audit import audit_verify
from governance.exceptions import Conflict
from riskmodels.models import Finding, ModelVersion, RegisteredModel, ValidationRun
from riskmodels.services.explanations import explanation_job_create
from riskmodels.services.findings import finding_accept, finding_dismiss
from riskmodels.services.lifecycle import version_approve, version_submit, version_take, version_validate
from riskmodels.services.training import training_job_create
from tests.conftest import GERMAN_CREDIT, register_demo_dataset, run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def _version(developer, dataset_version, model) -> ModelVersion:  # noqa: ANN001
    training_job_create(actor=developer, registered_model=model, dataset_version=dataset_version,
                        request={"algorithm": "gradient_boosting", "hyperparameters": {"max_depth": 3}})
    run_queued_jobs(drain=True)
    version = ModelVersion.objects.order_by("-pk").first()
    explanation_job_create(actor=developer, model_version=version)
    run_queued_jobs(drain=True)
    return version


@pytest.fixture
def leaky_version(developer, retail_model, tmp_path):  # noqa: ANN001,ANN201
    frame = pd.read_csv(GERMAN_CREDIT)
    rng = np.random.default_rng(0)
    frame["total_repaid"] = (frame["creditability"] == "good") * 1000 + rng.normal(0, 20, len(frame))
    path = tmp_path / "leaky.csv"
    frame.to_csv(path, index=False)
    return _version(developer, register_demo_dataset(developer, path, name="german-leaky"), retail_model)


def test_every_version_gets_a_battery_run_with_each_test_after_its_evaluation(developer, german_credit_version,  # noqa: ANN001
                                                                            retail_model):
    version = _version(developer, german_credit_version, retail_model)
    run = ValidationRun.objects.get(model_version=version)
    assert [r["name"] for r in run.results] == ["leakage", "overfitting", "weak_segments", "robustness",
                                                "explanation_stability", "calibration", "proxies"]
    assert run.outcome in {"pass", "warn", "fail"} and run.n_rows == version.split_summary["n_test"]
    drafts = Finding.objects.filter(validation_run=run)
    assert {f.test_name for f in drafts} == {r["name"] for r in run.results if r["outcome"] != "pass"}
    assert all(f.status == Finding.Status.PROPOSED for f in drafts)
    assert audit_verify().ok


def test_a_planted_leak_fails_the_battery_and_submission_needs_a_justification(leaky_version, developer):  # noqa: ANN001
    run = ValidationRun.objects.get(model_version=leaky_version)
    leakage = next(r for r in run.results if r["name"] == "leakage")
    assert run.outcome == "fail" and leakage["outcome"] == "fail" and "total_repaid" in leakage["message"]
    draft = Finding.objects.get(validation_run=run, test_name="leakage")
    assert (draft.severity, draft.category, draft.status) == ("high", "data", "proposed")
    with pytest.raises(Conflict) as refused:
        version_submit(actor=developer, version=leaky_version, rationale="ready")
    assert refused.value.code == "battery_failed" and "leakage" in refused.value.details["failed"]
    decision = version_submit(actor=developer, version=leaky_version, rationale="ready",
                              justification="total_repaid is known at application for refinancing loans")
    assert decision.policy_exception.startswith("total_repaid is known")
    assert decision.evidence["battery_outcome"] == "fail"


def test_a_validator_accepts_or_dismisses_proposed_findings_and_only_accepted_ones_block(  # noqa: ANN201
        leaky_version, developer, validator, compliance_officer):
    version_submit(actor=developer, version=leaky_version, rationale="ready", justification="see the data notes")
    version_take(actor=validator, version=leaky_version, rationale="mine")
    drafts = list(Finding.objects.filter(model_version=leaky_version, status="proposed").order_by("id"))
    leak = next(f for f in drafts if f.test_name == "leakage")
    accepted = finding_accept(actor=validator, finding=leak, title="Repayment total observed after the loan")
    assert accepted.status == "open" and accepted.raised_by_username == validator.username
    for other in drafts:
        if other.pk != leak.pk:
            dismissed = finding_dismiss(actor=validator, finding=other, reason="within our tolerance for this tier")
            assert dismissed.status == "dismissed" and dismissed.dismissal_reason
    with pytest.raises(Conflict):
        finding_dismiss(actor=validator, finding=leak, reason="too late")  # accepted already
    version_validate(actor=validator, version=leaky_version, rationale="sound otherwise",
                     conclusion="fit_with_conditions", conditions="remove the leak")
    with pytest.raises(Conflict) as refused:
        version_approve(actor=compliance_officer, version=leaky_version, rationale="approve")
    assert refused.value.code == "open_high_findings" and refused.value.details["findings"] == [leak.pk]
    assert audit_verify().ok


def test_the_battery_through_the_api_runs_a_failed_submission_and_proposed_findings(  # noqa: ANN201
        leaky_version, developer, validator):
    from tests.conftest import client_for

    dev, val = client_for(developer), client_for(validator)
    runs = dev.get(f"/api/v1/model-versions/{leaky_version.pk}/validation-runs/").json()
    assert len(runs) == 1 and runs[0]["outcome"] == "fail"
    assert dev.get(f"/api/v1/validation-runs/{runs[0]['id']}/").json()["results"][0]["name"] == "leakage"
    refused = dev.post(f"/api/v1/model-versions/{leaky_version.pk}/submit/", {"rationale": "ready"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "battery_failed"
    submitted = dev.post(f"/api/v1/model-versions/{leaky_version.pk}/submit/",
                         {"rationale": "ready", "justification": "known at application"}, format="json")
    assert submitted.status_code == 200 and submitted.json()["decision"]["policy_exception"] == "known at application"
    val.post(f"/api/v1/model-versions/{leaky_version.pk}/take/", {"rationale": "mine"}, format="json")
    proposed = val.get(f"/api/v1/findings/?model_version={leaky_version.pk}&status=proposed").json()["results"]
    leak = next(f for f in proposed if f["test_name"] == "leakage")
    accepted = val.post(f"/api/v1/findings/{leak['id']}/accept/", {"severity": "medium"}, format="json")
    assert accepted.status_code == 200 and (accepted.json()["status"], accepted.json()["severity"]) == ("open", "medium")
    assert val.post(f"/api/v1/findings/{leak['id']}/dismiss/", {"reason": "x"}, format="json").status_code == 409
    missing = val.post(f"/api/v1/findings/{proposed[-1]['id']}/dismiss/", {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["error"]["message"]
    assert dev.post(f"/api/v1/findings/{leak['id']}/accept/", {}, format="json").status_code == 403


def test_the_battery_thresholds_come_from_the_tier_then_the_model(developer, retail_model, compliance_officer):  # noqa: ANN001
    from governance.exceptions import ValidationFailed
    from riskmodels.services.reviews import registered_model_inventory_update
    from riskmodels.services.validation import battery_thresholds
    from tests.conftest import client_for

    assert battery_thresholds(retail_model).overfit_auc_gap_fail == 0.10  # medium: the defaults
    model = registered_model_inventory_update(actor=compliance_officer, model=retail_model,
                                              changes={"risk_tier": "high"})
    assert battery_thresholds(model).overfit_auc_gap_fail == 0.07
    response = client_for(compliance_officer).patch(f"/api/v1/models/{model.name}/inventory/",
                                                    {"battery_thresholds": {"overfit_auc_gap_fail": 0.05}},
                                                    format="json")
    assert response.status_code == 200 and response.json()["battery_thresholds"] == {"overfit_auc_gap_fail": 0.05}
    assert battery_thresholds(RegisteredModel.objects.get(pk=model.pk)).overfit_auc_gap_fail == 0.05
    with pytest.raises(ValidationFailed, match="'overfit' is not a threshold"):
        registered_model_inventory_update(actor=compliance_officer, model=model,
                                          changes={"battery_thresholds": {"overfit": 0.1}})

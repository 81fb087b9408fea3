"""Every evaluation tests approval fairness on the dataset's protected columns, stores it, audits it and serves it."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from governance.models import AuditEvent
from riskmodels.jobs.kinds import job_execute
from riskmodels.ml.fairness import FOUR_FIFTHS_CAVEAT, band_ages
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.training import binary_target, split
from riskmodels.models import Evaluation, Job, JobStatus, ModelVersion, RegisteredModel
from riskmodels.services.datasets import dataset_version_create
from riskmodels.services.evaluation import evaluation_job_create
from riskmodels.services.training import training_job_create
from riskmodels.storage import dataset_frame
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

PROTECTED = {"personal_status_and_sex", "age_in_years", "foreign_worker"}


def _train_and_evaluate(developer, dataset_version, model) -> Evaluation:  # noqa: ANN001
    job = training_job_create(actor=developer, registered_model=model, dataset_version=dataset_version,
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    for queued in Job.objects.filter(kind="evaluate", status=JobStatus.QUEUED):
        job_execute(job_id=queued.pk)
    return Evaluation.objects.get(model_version__training_job=job, scope="test_split")


def _approvals_by_hand(version: ModelVersion, column: str, cutoff: float) -> dict[str, float]:
    """Rebuild the test split from the record, score it and count approvals per group: an independent reference."""
    pipeline = load_artifact(default_storage.open(version.artifact_path).read(), expected_sha256=version.artifact_sha256)
    spec = TrainingSpec.from_dict(version.spec)
    frame = dataset_frame(version.dataset_version)
    _, test_idx = split(frame, spec)
    p = pipeline.predict_proba(prepare_features(frame.iloc[test_idx], spec))[:, 1]
    values = frame[column].iloc[test_idx].reset_index(drop=True)
    groups = band_ages(values) if column == "age_in_years" else values.astype(str)
    return {g: float(np.mean(p[(groups == g).to_numpy()] < cutoff)) for g in groups.unique()}


def test_a_test_split_evaluation_stores_fairness_for_every_protected_column(developer, german_credit_version,  # noqa: ANN001
                                                                              retail_model):
    evaluation = _train_and_evaluate(developer, german_credit_version, retail_model)
    fairness = evaluation.fairness
    assert {c["column"] for c in fairness["columns"]} == PROTECTED
    assert (fairness["cutoff"], fairness["cutoff_source"]) == (0.5, "threshold")  # the model has no scoring policy
    assert fairness["n"] == evaluation.metrics["n"] == 250 and fairness["caveat"] == FOUR_FIFTHS_CAVEAT
    columns = {c["column"]: c for c in fairness["columns"]}
    assert columns["age_in_years"]["grouping"] == "age bands"
    assert {g["group"] for g in columns["foreign_worker"]["groups"]} == {"yes", "no"}
    for column in PROTECTED:
        by_hand = _approvals_by_hand(evaluation.model_version, column, 0.5)
        groups = {g["group"]: g for g in columns[column]["groups"]}
        assert set(groups) == set(by_hand)
        assert {g: groups[g]["approval_rate"] for g in groups} == pytest.approx(by_hand)
        best = max(by_hand.values())
        assert {g: groups[g]["adverse_impact_ratio"] for g in groups} == pytest.approx(
            {g: rate / best for g, rate in by_hand.items()})
        assert sum(g["n"] for g in groups.values()) == 250
        assert columns[column]["flagged_groups"] == [g for g, row in groups.items() if row["adverse_impact_ratio"] < 0.8]

    # The API serves it and the evaluation's audit event keeps each column's lowest ratio.
    response = client_for(developer).get(f"/api/v1/evaluations/{evaluation.pk}/")
    assert response.status_code == 200 and response.json()["fairness"] == fairness
    event = AuditEvent.objects.get(action="evaluation.created", target_id=str(evaluation.pk))
    assert {name: c["min_adverse_impact_ratio"] for name, c in event.after["fairness"]["columns"].items()} == {
        c["column"]: c["min_adverse_impact_ratio"] for c in fairness["columns"]}


def test_the_scoring_policy_cutoff_is_used_when_the_model_has_one(developer, validator, german_credit_version,  # noqa: ANN001
                                                                 retail_model):
    evaluation = _train_and_evaluate(developer, german_credit_version, retail_model)
    RegisteredModel.objects.filter(pk=retail_model.pk).update(scoring_policy={"cutoff": 0.3})
    job = evaluation_job_create(actor=validator, model_version=evaluation.model_version,
                                dataset_version=german_credit_version, threshold=0.5)
    job_execute(job_id=job.pk)
    on_dataset = Evaluation.objects.get(job=job)
    fairness = on_dataset.fairness
    assert (on_dataset.threshold, fairness["cutoff"], fairness["cutoff_source"]) == (0.5, 0.3, "scoring_policy")
    assert fairness["n"] == 1000
    foreign = {g["group"]: g for c in fairness["columns"] if c["column"] == "foreign_worker" for g in c["groups"]}
    assert foreign["no"]["n"] + foreign["yes"]["n"] == 1000 and foreign["no"]["n"] == 37  # the German data's count
    strict = sum(g["approval_rate"] * g["n"] for g in foreign.values()) / 1000
    lenient = sum(g["approval_rate"] * g["n"] for c in evaluation.fairness["columns"] if c["column"] == "foreign_worker"
                  for g in c["groups"]) / 250
    assert strict < lenient  # a lower cutoff approves fewer


def test_data_without_protected_columns_gets_an_empty_report_with_a_note(developer, retail_model, tmp_path):  # noqa: ANN001
    rows = ["x,y,target"] + [f"{i},{i % 7},{int(i % 3 == 0)}" for i in range(300)]
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(rows) + "\n")
    version, _ = dataset_version_create(actor=developer, name="plain", source=str(path), filename="plain.csv",
                                        target="target")
    evaluation = _train_and_evaluate(developer, version, retail_model)
    assert evaluation.fairness["columns"] == [] and "marks no column protected" in evaluation.fairness["note"]
    response = client_for(developer).get(f"/api/v1/evaluations/{evaluation.pk}/")
    assert response.json()["fairness"] == evaluation.fairness

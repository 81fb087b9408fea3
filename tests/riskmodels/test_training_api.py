"""Queueing training through the API: validation before anything is queued."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent
from riskmodels.models import Job
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/training-jobs/"


def _request(dataset_version, **overrides):  # noqa: ANN001,ANN202
    return {"registered_model": "retail-pd", "dataset_version": dataset_version.pk, "algorithm": "gradient_boosting",
            **overrides}


def test_registering_a_model_is_audited_and_names_are_unique(dev_client, developer):  # noqa: ANN001
    body = {"name": "retail-pd", "owner_team": "retail", "purpose": "PD for instalment loans"}
    assert dev_client.post("/api/v1/models/", body, format="json").status_code == 201
    assert AuditEvent.objects.filter(action="registered_model.created").exists()
    again = dev_client.post("/api/v1/models/", body, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_name"


def test_only_developers_register_models(validator):  # noqa: ANN001
    body = {"name": "retail-pd", "owner_team": "retail", "purpose": "PD"}
    assert client_for(validator).post("/api/v1/models/", body, format="json").status_code == 403


def test_a_valid_request_queues_a_job_and_answers_202(dev_client, german_credit_version, retail_model):  # noqa: ANN001
    response = dev_client.post(URL, _request(german_credit_version, hyperparameters={"max_depth": 3}), format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "train"
    spec = body["params"]["spec"]
    assert spec["target"] == "creditability" and spec["positive_class"] == "bad"
    # Protected attributes are never features by default.
    assert not {"age_in_years", "personal_status_and_sex", "foreign_worker"} & set(spec["features"])
    assert "purpose" in spec["categorical"]
    assert AuditEvent.objects.filter(action="train_job.created", target_id=str(body["id"])).exists()


BAD_REQUESTS = {
    "unknown algorithm": ({"algorithm": "deep_magic"}, "algorithm"),
    "hyperparameter of the wrong type": ({"hyperparameters": {"max_depth": "3"}}, "max_depth"),
    "hyperparameter out of range": ({"hyperparameters": {"max_depth": 99}}, "max_depth"),
    "unknown hyperparameter": ({"hyperparameters": {"depth": 3}}, "depth"),
    "features not in the dataset": ({"features": ["duration_in_month", "shoe_size"]}, "shoe_size"),
    "target among the features": ({"features": ["duration_in_month", "creditability"]}, "creditability"),
    "protected attribute without an exception": ({"features": ["duration_in_month", "age_in_years"]}, "age_in_years"),
    "bad seed": ({"seed": "seven"}, "seed"),
    "threshold out of range": ({"threshold": 1.5}, "threshold"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_each_bad_request_is_a_400_naming_the_problem_and_queues_nothing(case, dev_client,  # noqa: ANN001
                                                                         german_credit_version, retail_model):
    overrides, named = BAD_REQUESTS[case]
    events = AuditEvent.objects.count()
    response = dev_client.post(URL, _request(german_credit_version, **overrides), format="json")
    assert response.status_code == 400, response.json()
    assert named in response.json()["error"]["message"]
    assert Job.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_too_few_rows_per_class_is_refused(dev_client, developer, retail_model, tmp_path):  # noqa: ANN001
    rows = ["x,y,target"] + [f"{i},{i % 7},0" for i in range(200)] + [f"{i},{i % 5},1" for i in range(5)]
    path = tmp_path / "rare.csv"
    path.write_text("\n".join(rows) + "\n")
    from riskmodels.services.datasets import dataset_version_create

    version, _ = dataset_version_create(actor=developer, name="rare", source=str(path), filename="rare.csv",
                                        target="target")
    response = dev_client.post(URL, _request(version, algorithm="logistic_regression"), format="json")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "too few rows per class" in message and "1=5" in message
    assert Job.objects.count() == 0


def test_a_numeric_zero_one_target_is_accepted_with_one_as_default(dev_client, developer, retail_model,  # noqa: ANN001
                                                                   tmp_path):
    rows = ["x,y,target"] + [f"{i},{i % 7},{int(i % 3 == 0)}" for i in range(300)]
    path = tmp_path / "numeric.csv"
    path.write_text("\n".join(rows) + "\n")
    from riskmodels.services.datasets import dataset_version_create

    version, _ = dataset_version_create(actor=developer, name="numeric", source=str(path), filename="numeric.csv",
                                        target="target")
    response = dev_client.post(URL, _request(version, algorithm="logistic_regression"), format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["params"]["spec"]["positive_class"] == 1


def test_a_protected_attribute_may_be_used_by_explicit_exception(dev_client, german_credit_version,  # noqa: ANN001
                                                                 retail_model):
    response = dev_client.post(URL, _request(german_credit_version, features=["duration_in_month", "age_in_years"],
                                             allow_protected_features=True), format="json")
    assert response.status_code == 202
    assert response.json()["params"]["allowed_exceptions"] == ["age_in_years"]


def test_only_developers_train(validator, german_credit_version, retail_model):  # noqa: ANN001
    response = client_for(validator).post(URL, _request(german_credit_version), format="json")
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_unknown_model_or_dataset_version_is_a_404(dev_client, german_credit_version, retail_model):  # noqa: ANN001
    assert dev_client.post(URL, _request(german_credit_version, registered_model="nope"), format="json").status_code == 404
    assert dev_client.post(URL, {**_request(german_credit_version), "dataset_version": 999}, format="json").status_code == 404


def test_the_algorithm_catalogue_lists_hyperparameters(dev_client):  # noqa: ANN001
    body = dev_client.get("/api/v1/algorithms/").json()
    assert set(body) == {"logistic_regression", "random_forest", "gradient_boosting", "mlp", "linear_svm"}
    assert "max_depth" in body["gradient_boosting"]

"""Read operations of the ML domain, with the object-level permission checks every interface uses."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.models import Dataset, DatasetVersion


def dataset_list_for_user(*, user: Any) -> QuerySet[Dataset]:
    """Return the datasets the user may see (every dataset, for any role)."""
    require(user, Capability.DOMAIN_READ)
    return Dataset.objects.all()


def dataset_version_list_for_user(*, user: Any) -> QuerySet[DatasetVersion]:
    """Return the dataset versions the user may see."""
    require(user, Capability.DOMAIN_READ)
    return DatasetVersion.objects.select_related("dataset", "created_by")


def dataset_version_get_for_user(*, user: Any, id: int) -> DatasetVersion:
    """Return one dataset version, or raise NotFound / PermissionDenied."""
    require(user, Capability.DOMAIN_READ)
    try:
        return DatasetVersion.objects.select_related("dataset", "created_by").get(pk=id)
    except (DatasetVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"dataset version {id} does not exist") from None


def registered_model_list_for_user(*, user: Any) -> QuerySet:
    """Return the model inventory (every model, for any role)."""
    from riskmodels.models import RegisteredModel

    require(user, Capability.DOMAIN_READ)
    return RegisteredModel.objects.all()


def registered_model_get_for_user(*, user: Any, name: str):  # noqa: ANN201
    """Return one registered model by name, or raise NotFound / PermissionDenied."""
    from riskmodels.models import RegisteredModel

    require(user, Capability.DOMAIN_READ)
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"model {name!r} does not exist") from None


def model_version_list_for_user(*, user: Any) -> QuerySet:
    """Return the model versions the user may see."""
    from riskmodels.models import ModelVersion

    require(user, Capability.DOMAIN_READ)
    return ModelVersion.objects.select_related("registered_model", "dataset_version__dataset").prefetch_related(
        "evaluations", "explanations")


def model_version_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one model version, or raise NotFound / PermissionDenied."""
    try:
        return model_version_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"model version {id} does not exist") from None


def job_list_for_user(*, user: Any) -> QuerySet:
    """Return the jobs the user may see."""
    from riskmodels.models import Job

    require(user, Capability.DOMAIN_READ)
    return Job.objects.select_related("registered_model", "model_version", "dataset_version")


def job_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one job, or raise NotFound / PermissionDenied."""
    try:
        return job_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"job {id} does not exist") from None


def evaluation_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one evaluation, or raise NotFound / PermissionDenied."""
    from riskmodels.models import Evaluation

    require(user, Capability.DOMAIN_READ)
    try:
        return Evaluation.objects.select_related("model_version__registered_model").get(pk=id)
    except (Evaluation.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"evaluation {id} does not exist") from None


def explanation_report_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one SHAP report, or raise NotFound / PermissionDenied."""
    from riskmodels.models import ExplanationReport

    require(user, Capability.DOMAIN_READ)
    try:
        return ExplanationReport.objects.select_related("model_version__registered_model").get(pk=id)
    except (ExplanationReport.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"explanation report {id} does not exist") from None


def registered_model_champion(*, registered_model: Any):  # noqa: ANN201
    """Return the one version of ``registered_model`` that may score now (its champion), or None.

    Not scoped to a user: this is the gate the scoring service asks, after its own permission check.
    """
    from riskmodels.models import ModelVersion, VersionStatus

    return ModelVersion.objects.filter(registered_model=registered_model, status=VersionStatus.CHAMPION).first()

"""Read operations of the ML domain, with the object-level permission checks every interface uses."""

from __future__ import annotations

from typing import Any

import datetime as dt
from typing import TypedDict

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

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
    """Return the model inventory (every model, for any role), each with ``champion_version_id``."""
    from riskmodels.models import ModelVersion, RegisteredModel, VersionStatus

    require(user, Capability.DOMAIN_READ)
    champion = ModelVersion.objects.filter(registered_model=OuterRef("pk"), status=VersionStatus.CHAMPION)
    return RegisteredModel.objects.select_related("owner").annotate(
        champion_version_id=Subquery(champion.values("pk")[:1]))


def registered_model_get_for_user(*, user: Any, name: str):  # noqa: ANN201
    """Return one registered model by name, or raise NotFound / PermissionDenied."""
    from riskmodels.models import RegisteredModel

    try:
        return registered_model_list_for_user(user=user).get(name=name)
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


def decision_list_for_user(*, user: Any, model_version_id: int | None = None) -> QuerySet:
    """Return the lifecycle decisions the user may see, oldest first (of one version, if given)."""
    from riskmodels.models import Decision

    require(user, Capability.DOMAIN_READ)
    decisions = Decision.objects.select_related("model_version__registered_model").order_by("created_at", "id")
    return decisions if model_version_id is None else decisions.filter(model_version_id=model_version_id)


def finding_list_for_user(*, user: Any) -> QuerySet:
    """Return the findings the user may see (every finding, for any role)."""
    from riskmodels.models import Finding

    require(user, Capability.DOMAIN_READ)
    return Finding.objects.select_related("model_version__registered_model", "owner")


def finding_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one finding, or raise NotFound / PermissionDenied."""
    try:
        return finding_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"finding {id} does not exist") from None


class ReviewDue(TypedDict):
    registered_model: str
    risk_tier: str
    owner: str | None
    champion: int
    next_review_date: dt.date
    days_overdue: int  # negative: days left before it falls due
    overdue: bool


def reviews_due_list_for_user(*, user: Any, within_days: int, today: dt.date | None = None) -> list[ReviewDue]:
    """Return the models whose champion's periodic review is overdue or due within ``within_days``, most late first."""
    from riskmodels.models import ModelVersion, RegisteredModel, VersionStatus

    require(user, Capability.DOMAIN_READ)
    today = today or timezone.localdate()
    champions = ModelVersion.objects.filter(registered_model=OuterRef("pk"), status=VersionStatus.CHAMPION)
    models = (RegisteredModel.objects.select_related("owner")
              .filter(next_review_date__lte=today + dt.timedelta(days=within_days))
              .annotate(champion_version_id=Subquery(champions.values("pk")[:1]))
              .filter(champion_version_id__isnull=False).order_by("next_review_date", "name"))
    return [ReviewDue(registered_model=m.name, risk_tier=m.risk_tier, owner=m.owner.username if m.owner_id else None,
                      champion=m.champion_version_id, next_review_date=m.next_review_date,
                      days_overdue=(today - m.next_review_date).days, overdue=m.next_review_date < today)
            for m in models]


def validation_run_list_for_user(*, user: Any) -> QuerySet:
    """Return the validation battery runs the user may see (every run, for any role), newest first."""
    from riskmodels.models import ValidationRun

    require(user, Capability.DOMAIN_READ)
    return ValidationRun.objects.select_related("model_version__registered_model").order_by("-created_at")


def validation_run_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one validation battery run, or raise NotFound / PermissionDenied."""
    try:
        return validation_run_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"validation run {id} does not exist") from None

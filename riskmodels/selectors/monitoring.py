"""Reads of monitoring: a model's stability runs, one monitoring run, a version's frozen reference."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.models import ModelVersion, MonitoringReference, MonitoringRun, RegisteredModel
from riskmodels.selectors import scoped


def monitoring_run_list_for_user(*, user: Any) -> QuerySet[MonitoringRun]:
    """Return the monitoring runs the user may see, newest first."""
    require(user, Capability.DOMAIN_READ)
    return scoped(MonitoringRun.objects.select_related("model_version__registered_model"), user=user).order_by(
        "-created_at", "-id")


def stability_run_list_for_user(*, user: Any, model: RegisteredModel) -> QuerySet[MonitoringRun]:
    """Return a model's stability runs (of any of its versions), newest first."""
    return monitoring_run_list_for_user(user=user).filter(model_version__registered_model=model,
                                                          kind=MonitoringRun.Kind.STABILITY)


def monitoring_run_get_for_user(*, user: Any, id: int) -> MonitoringRun:
    """Return one monitoring run, or raise NotFound / PermissionDenied."""
    try:
        return monitoring_run_list_for_user(user=user).get(pk=id)
    except (MonitoringRun.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"monitoring run {id} does not exist") from None


def monitoring_reference_get_for_user(*, user: Any, version: ModelVersion) -> MonitoringReference:
    """Return a version's frozen monitoring reference, or raise NotFound (never promoted, or still computing)."""
    require(user, Capability.DOMAIN_READ)
    reference = scoped(MonitoringReference.objects.filter(model_version=version), user=user).first()
    if reference is None:
        raise NotFound(f"model version {version.pk} has no monitoring reference: it is frozen by a job queued when "
                       "the version is first promoted")
    return reference

"""Reads of performance runs: a model's runs on observed outcomes, and one run, for any reader of the domain."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.models import MonitoringRun, RegisteredModel
from riskmodels.selectors import scoped


def _performance_runs(user: Any) -> QuerySet[MonitoringRun]:
    return scoped(MonitoringRun.objects.filter(kind=MonitoringRun.Kind.PERFORMANCE), user=user).select_related(
        "model_version__registered_model")


def performance_run_list_for_user(*, user: Any, model: RegisteredModel) -> QuerySet[MonitoringRun]:
    """Return a model's performance runs, newest first."""
    require(user, Capability.DOMAIN_READ)
    return _performance_runs(user).filter(model_version__registered_model=model).prefetch_related("alerts")


def performance_run_get_for_user(*, user: Any, id: Any) -> MonitoringRun:
    """Return one performance run with its alerts, or raise NotFound / PermissionDenied."""
    require(user, Capability.DOMAIN_READ)
    try:
        return _performance_runs(user).prefetch_related("alerts").get(pk=id)
    except (MonitoringRun.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"performance run {id} does not exist") from None

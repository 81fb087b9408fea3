"""Reads of the decision ledger: queries, one entry, the model a caller may score with, and override rates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from governance.exceptions import NotFound, ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import CreditDecision, DecisionOverride, Job, JobKind, JobStatus, Outcome, RegisteredModel


def _model_named(name: str) -> RegisteredModel:
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise NotFound(f"model {name!r} does not exist")
    return model


def scoring_model_get_for_user(*, user: Any, name: str) -> RegisteredModel:
    """Return the registered model a caller wants to score with (underwriters see no other domain data)."""
    require(user, Capability.MODEL_SCORE)
    return _model_named(name)


def decision_model_get_for_user(*, user: Any, name: str) -> RegisteredModel:
    """Return the registered model whose decisions a caller wants to read."""
    require(user, Capability.DECISION_READ)
    return _model_named(name)


def _day(value: Any, field: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(f"{field} must be an ISO date or date-time, e.g. 2026-12-01; got {value!r}",
                               code="invalid_date", details={"field": field}) from None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)


def credit_decision_list_for_user(*, user: Any, reference: str | None = None, model: str | None = None,
                                  version: Any = None, since: Any = None, until: Any = None,
                                  decisive: Any = None) -> QuerySet[CreditDecision]:
    """Return ledger entries, newest first, filtered by reference, model name, version id and [since, until)."""
    require(user, Capability.DECISION_READ)
    entries = CreditDecision.objects.select_related("registered_model", "model_version", "override")
    if reference:
        entries = entries.filter(reference=reference)
    if model:
        entries = entries.filter(registered_model__name=model)
    if version not in (None, ""):
        try:
            entries = entries.filter(model_version_id=int(version))
        except (TypeError, ValueError):
            raise ValidationFailed(f"version must be a version id; got {version!r}", code="invalid",
                                   details={"field": "version"}) from None
    start, end = _day(since, "since"), _day(until, "until")
    if start is not None:
        entries = entries.filter(created_at__gte=start)
    if end is not None:
        entries = entries.filter(created_at__lt=end)
    if decisive in ("true", "false", True, False):
        entries = entries.filter(decisive=decisive in ("true", True))
    return entries.order_by("-id")


def credit_decision_get_for_user(*, user: Any, id: Any) -> CreditDecision:
    """Return one ledger entry, or raise NotFound / PermissionDenied."""
    require(user, Capability.DECISION_READ)
    try:
        return CreditDecision.objects.select_related("registered_model", "model_version__dataset_version",
                                                     "fingerprint").get(pk=id)
    except (CreditDecision.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"decision {id} does not exist") from None


def decision_override_list_for_user(*, user: Any) -> QuerySet[DecisionOverride]:
    """Return every override with its ledger entry, newest first."""
    require(user, Capability.DECISION_READ)
    return DecisionOverride.objects.select_related("decision__registered_model").order_by("-id")


@dataclass(frozen=True)
class DecisionStats:
    """A model's decisive decisions over a window: volume, approve rate, overrides by reason and direction."""

    model: str
    since: dt.datetime
    decisions: int
    approved: int
    referred: int
    declined: int
    overridden: int
    overrides_by_reason: dict[str, int]
    overrides_by_direction: dict[str, int]

    @property
    def approve_rate(self) -> float | None:
        return self.approved / self.decisions if self.decisions else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.decisions if self.decisions else None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "since": self.since, "decisions": self.decisions, "approved": self.approved,
                "referred": self.referred, "declined": self.declined, "approve_rate": self.approve_rate,
                "overridden": self.overridden, "override_rate": self.override_rate,
                "overrides_by_reason": self.overrides_by_reason, "overrides_by_direction": self.overrides_by_direction}


def decision_stats_for_user(*, user: Any, model: RegisteredModel, days: int = 30,
                            now: dt.datetime | None = None) -> DecisionStats:
    """Return a model's decision volume, approve rate and override rates over the last ``days`` days."""
    require(user, Capability.DECISION_READ)
    since = (now or timezone.now()) - dt.timedelta(days=days)
    entries = CreditDecision.objects.filter(registered_model=model, decisive=True, created_at__gte=since)
    counts = entries.aggregate(total=Count("id"), approved=Count("id", filter=Q(outcome=Outcome.APPROVE)),
                               referred=Count("id", filter=Q(outcome=Outcome.REFER)),
                               declined=Count("id", filter=Q(outcome=Outcome.DECLINE)))
    overrides = DecisionOverride.objects.filter(decision__in=entries)
    by_reason = dict(overrides.values_list("reason").annotate(n=Count("id")).order_by("reason"))
    by_direction: dict[str, int] = {}
    for before, after, n in (overrides.values_list("decision__outcome", "outcome").annotate(n=Count("id"))
                             .order_by("decision__outcome", "outcome")):
        by_direction[f"{before}_to_{after}"] = n
    return DecisionStats(model=model.name, since=since, decisions=counts["total"], approved=counts["approved"],
                         referred=counts["referred"], declined=counts["declined"], overridden=sum(by_reason.values()),
                         overrides_by_reason=by_reason, overrides_by_direction=by_direction)


def batch_scoring_job_get_for_user(*, user: Any, id: Any) -> Job:
    """Return a finished batch scoring job whose output the user may download, or raise NotFound."""
    require(user, Capability.DECISION_READ)
    job = Job.objects.filter(pk=id, kind=JobKind.BATCH_SCORE).select_related("registered_model").first()
    if job is None:
        raise NotFound(f"batch scoring job {id} does not exist")
    if job.status != JobStatus.SUCCEEDED:
        raise NotFound(f"batch scoring job {id} has no output: it is {job.status}")
    if "output_path" not in (job.result or {}):
        raise NotFound(f"batch scoring job {id}'s output was purged at the end of its retention period "
                       f"({job.result.get('output_purged_at')}); the decision ledger keeps its rows")
    return job

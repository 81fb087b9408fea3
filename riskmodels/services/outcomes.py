"""Observed outcomes: what became of decided applicants, posted by model teams, recorded all or nothing."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import CreditDecision, DatasetVersion, ModelVersion, ObservedOutcome
from riskmodels.selectors import scoped

DUPLICATE_OUTCOME = "duplicate_outcome"


@dataclass(frozen=True)
class _Item:
    index: int
    decision: int
    defaulted: bool
    observed_on: dt.date
    protected: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomesRecorded:
    """What one request recorded: how many outcomes, how many defaults, and the id ranges."""

    recorded: int
    defaulted: int
    outcome_ids: tuple[int, int]
    decision_ids: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "defaulted": self.defaulted,
                "outcome_ids": {"first": self.outcome_ids[0], "last": self.outcome_ids[1]},
                "decision_ids": {"min": self.decision_ids[0], "max": self.decision_ids[1]}}


def _refuse(index: int, message: str, *, code: str = "invalid", **details: Any) -> ValidationFailed:
    return ValidationFailed(f"outcomes[{index}]: {message}", code=code, details={"index": index, **details})


def _parse(index: int, item: Any) -> _Item:
    if not isinstance(item, dict):
        raise _refuse(index, "must be an object with decision, defaulted and observed_on (and optionally protected)")
    unknown = sorted(set(item) - {"decision", "defaulted", "observed_on", "protected"})
    if unknown:
        raise _refuse(index, f"unknown field(s) {', '.join(unknown)}", field=unknown[0])
    decision = item.get("decision")
    if isinstance(decision, bool) or not isinstance(decision, int) or decision < 1:
        raise _refuse(index, f"decision must be a ledger id (a positive integer); got {decision!r}", field="decision")
    defaulted = item.get("defaulted")
    if not isinstance(defaulted, bool):
        raise _refuse(index, f"defaulted must be true or false; got {defaulted!r}", field="defaulted")
    observed = item.get("observed_on")
    try:
        observed_on = dt.date.fromisoformat(observed) if isinstance(observed, str) else None
    except ValueError:
        observed_on = None
    if observed_on is None:
        raise _refuse(index, f"observed_on must be an ISO date such as 2026-06-30; got {observed!r}",
                      field="observed_on")
    return _Item(index=index, decision=decision, defaulted=defaulted, observed_on=observed_on,
                 protected=_parse_protected(index, item.get("protected", {})))


def _parse_protected(index: int, protected: Any) -> dict[str, str | int | float | bool]:
    if not isinstance(protected, dict):
        raise _refuse(index, f"protected must be an object of protected column names and values; got {protected!r}",
                      field="protected")
    for column, value in protected.items():
        # A scalar per column, as in a dataset row; an unknown value is left out (a missing group).
        if not isinstance(value, str | int | float) or (isinstance(value, float) and not math.isfinite(value)):
            raise _refuse(index, f"protected {column} must be a string or a number (leave an unknown value out); "
                          f"got {value!r}", field="protected", column=column)
    return protected


def _protected_columns(version_ids: set[int]) -> dict[int, list[str]]:
    """Return, per model version, the columns its training dataset version marks protected."""
    dataset_of = dict(ModelVersion.objects.filter(pk__in=version_ids).values_list("pk", "dataset_version_id"))
    schemas = dict(DatasetVersion.objects.filter(pk__in=set(dataset_of.values())).values_list("pk", "schema"))
    return {version: [c["name"] for c in schemas[dataset] if c.get("role") == "protected"]
            for version, dataset in dataset_of.items()}


def _duplicate(decision: int, index: int, message: str) -> Conflict:
    return Conflict(f"outcomes[{index}]: {message}", code=DUPLICATE_OUTCOME,
                    details={"index": index, "decision": decision})


def _check_against_ledger(items: list[_Item], today: dt.date, actor: Any) -> None:
    """Refuse the first item whose decision is unknown, a shadow, already has an outcome, or is dated impossibly.

    Another team's decision is unknown here, with the same words as a missing one.
    """
    decisions = {row["pk"]: row for row in scoped(CreditDecision.objects.filter(pk__in=[i.decision for i in items]),
                                                  user=actor)
                 .values("pk", "decisive", "created_at", "model_version_id")}
    recorded = set(ObservedOutcome.objects.filter(decision_id__in=list(decisions))
                   .values_list("decision_id", flat=True))
    protected_of = _protected_columns({d["model_version_id"] for d in decisions.values()}) if any(
        i.protected for i in items) else {}
    for item in items:
        decision = decisions.get(item.decision)
        if decision is None:
            raise _refuse(item.index, f"decision {item.decision} is not in the ledger", code="unknown_decision",
                          decision=item.decision)
        if not decision["decisive"]:
            raise _refuse(item.index, f"decision {item.decision} is a shadow score, not a decision: outcomes are "
                          "recorded against the decisive (champion) entry", code="shadow_decision",
                          decision=item.decision)
        if item.decision in recorded:
            raise _duplicate(item.decision, item.index, f"decision {item.decision} already has an outcome")
        decided_on = decision["created_at"].astimezone(dt.UTC).date()
        if item.observed_on < decided_on:
            raise _refuse(item.index, f"observed_on {item.observed_on} is before decision {item.decision} was made "
                          f"({decided_on})", code="outcome_before_decision", decision=item.decision,
                          field="observed_on")
        if item.observed_on > today:
            raise _refuse(item.index, f"observed_on {item.observed_on} is in the future (today is {today})",
                          code="outcome_in_future", decision=item.decision, field="observed_on")
        if item.protected:
            allowed = protected_of[decision["model_version_id"]]
            unknown = sorted(set(item.protected) - set(allowed))
            if unknown:
                # Only what the model's data marks protected: anything else would be applicant data
                # kept for no stated purpose.
                raise _refuse(item.index, f"protected column(s) {', '.join(unknown)} not marked protected in the "
                              f"data model version {decision['model_version_id']} was trained on (protected: "
                              f"{', '.join(allowed) or 'none'})", code="unknown_protected_column",
                              decision=item.decision, field="protected", column=unknown[0])


def outcomes_record(*, actor: Any, items: Any, today: dt.date | None = None) -> OutcomesRecorded:
    """Record observed outcomes of ledger decisions, all or nothing, with one audit event.

    Every problem is refused naming the item's index and decision before anything is written:
    400 for a malformed item, an unknown or shadow decision, an observation dated before the
    decision or after today (UTC), or a ``protected`` column (the applicant's protected
    attributes, kept for fairness monitoring only) that the data the decision's model version was
    trained on does not mark protected; 409 ``duplicate_outcome`` for a decision named twice or
    one that already has an outcome.
    """
    require(actor, Capability.OUTCOME_RECORD)
    cap = settings.OUTCOMES_MAX_PER_REQUEST
    if not isinstance(items, list) or not items:
        raise ValidationFailed("outcomes must be a non-empty list of {decision, defaulted, observed_on} objects",
                               code="empty_batch", details={"field": "outcomes"})
    if len(items) > cap:
        raise ValidationFailed(f"{len(items)} outcomes; at most {cap} per request (OUTCOMES_MAX_PER_REQUEST)",
                               code="over_batch_cap", details={"field": "outcomes"})
    parsed = [_parse(i, item) for i, item in enumerate(items)]
    first_seen: dict[int, int] = {}
    for item in parsed:
        if item.decision in first_seen:
            raise _duplicate(item.decision, item.index,
                             f"decision {item.decision} is also outcomes[{first_seen[item.decision]}]")
        first_seen[item.decision] = item.index
    _check_against_ledger(parsed, today or timezone.now().astimezone(dt.UTC).date(), actor)
    try:
        with transaction.atomic():
            rows = ObservedOutcome.objects.bulk_create([
                ObservedOutcome(decision_id=i.decision, defaulted=i.defaulted, observed_on=i.observed_on,
                                protected=i.protected, recorded_by=actor, recorded_by_username=actor.username) for i in parsed])
            ids = sorted(row.pk for row in rows)
            summary = OutcomesRecorded(recorded=len(rows), defaulted=sum(i.defaulted for i in parsed),
                                       outcome_ids=(ids[0], ids[-1]),
                                       decision_ids=(min(first_seen), max(first_seen)))
            audit_record(actor=actor, action="outcomes.recorded", target_type="riskmodels.observedoutcome",
                         target_id=ids[0], target_repr=f"{len(rows)} observed outcomes", after=summary.to_dict())
    except IntegrityError:
        # Another request recorded one of these decisions between the check and the insert: the
        # one-per-decision constraint refused it and this whole request rolled back.
        taken = ObservedOutcome.objects.filter(decision_id__in=list(first_seen)).values_list("decision_id", flat=True)
        decision = min(taken, default=parsed[0].decision)
        raise _duplicate(decision, first_seen[decision], f"decision {decision} already has an outcome") from None
    return summary

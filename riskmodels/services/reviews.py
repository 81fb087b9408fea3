"""Periodic reviews of champions, the review schedule, and the model inventory fields that drive it."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.audit import audit_chain_lock, audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.ml.scoring import ScoringError, ScoringPolicy
from riskmodels.ml.validation import Thresholds
from riskmodels.models import (
    Decision,
    Evaluation,
    LedgerInputs,
    ModelType,
    ModelVersion,
    PeriodicReview,
    RegisteredModel,
    RiskTier,
    VersionStatus,
)
from riskmodels.services.lifecycle import add_months, review_cadence_months, version_actors
from riskmodels.services.registry import registered_model_lock

INVENTORY_TEXT = ("business_use", "limitations")
INVENTORY_FLOORS = ("min_auc", "min_ks", "max_brier", "max_calibration_gap")
INVENTORY_SCORING = ("scoring_policy", "ledger_inputs", "actionable_features", "monitoring_thresholds")


def _inventory(model: RegisteredModel) -> dict[str, Any]:
    return {"risk_tier": model.risk_tier, "model_type": model.model_type, "business_use": model.business_use,
            "limitations": model.limitations, "owner": model.owner.username if model.owner_id else None,
            "review_cadence_months": model.review_cadence_months, "next_review_date": model.next_review_date,
            **{name: getattr(model, name) for name in INVENTORY_FLOORS}, "battery_thresholds": model.battery_thresholds,
            "scoring_policy": model.scoring_policy, "ledger_inputs": model.ledger_inputs,
            "actionable_features": model.actionable_features, "monitoring_thresholds": model.monitoring_thresholds}


# Monitoring thresholds (by prefix of their *_amber/*_red pair) where a lower value is the worse one.
LOWER_IS_WORSE = ("fairness_air",)


def monitoring_thresholds_check(value: Any) -> dict[str, float]:
    """Return a model's monitoring threshold overrides, or refuse them naming the problem."""
    known = set(settings.MONITORING_THRESHOLDS)
    if not isinstance(value, dict):
        raise ValidationFailed("monitoring_thresholds must be an object of threshold names and numbers",
                               code="invalid", details={"field": "monitoring_thresholds"})
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValidationFailed(f"unknown monitoring thresholds: {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                               code="invalid", details={"field": "monitoring_thresholds"})
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number < 10:
            raise ValidationFailed(f"monitoring threshold {name} must be a positive number; got {number!r}",
                                   code="invalid", details={"field": "monitoring_thresholds"})
    merged = {**settings.MONITORING_THRESHOLDS, **value}
    for name in LOWER_IS_WORSE:
        for level in ("amber", "red"):
            if merged[f"{name}_{level}"] > 1:
                raise ValidationFailed(f"{name}_{level} is a ratio of approval rates, at most 1; got "
                                       f"{merged[f'{name}_{level}']}", code="invalid_thresholds",
                                       details={"field": "monitoring_thresholds"})
    for amber in (k for k in merged if k.endswith("_amber")):
        prefix = amber[: -len("_amber")]
        red = prefix + "_red"
        # Red is the worse side of amber: above it for a drift or a drop, below it for a ratio.
        if prefix in LOWER_IS_WORSE and merged[amber] <= merged[red]:
            raise ValidationFailed(f"{amber} ({merged[amber]}) must be above {red} ({merged[red]}): lower is worse",
                                   code="invalid_thresholds", details={"field": "monitoring_thresholds"})
        if prefix not in LOWER_IS_WORSE and merged[amber] >= merged[red]:
            raise ValidationFailed(f"{amber} ({merged[amber]}) must be below {red} ({merged[red]})",
                                   code="invalid_thresholds", details={"field": "monitoring_thresholds"})
    return {k: float(v) for k, v in value.items()}


def monitoring_thresholds_of(model: RegisteredModel) -> dict[str, float]:
    """Return the monitoring thresholds in force for a model: the settings, overridden by the model's own."""
    return {**settings.MONITORING_THRESHOLDS, **model.monitoring_thresholds}


def _check_scoring(name: str, value: Any) -> Any:
    """Return a scoring setting in its stored form, or refuse it naming the problem."""
    if name == "scoring_policy":
        if not isinstance(value, dict):
            raise ValidationFailed("scoring_policy must be an object with at least a cutoff", code="invalid",
                                   details={"field": name})
        try:
            return ScoringPolicy.from_dict(value).to_dict() if value else {}
        except (ScoringError, TypeError) as exc:
            raise ValidationFailed(f"scoring_policy: {exc}", code="invalid_scoring_policy",
                                   details={"field": name}) from None
    if name == "monitoring_thresholds":
        return monitoring_thresholds_check(value)
    if name == "ledger_inputs":
        if value not in LedgerInputs.values:
            raise ValidationFailed(f"ledger_inputs must be one of {', '.join(LedgerInputs.values)}", code="invalid",
                                   details={"field": name})
        return value
    if not isinstance(value, list) or not all(isinstance(f, str) and f for f in value) or len(set(value)) != len(value):
        raise ValidationFailed("actionable_features must be a list of distinct feature names", code="invalid",
                               details={"field": name})
    return value


def _check_thresholds(value: Any) -> None:
    known = {f.name for f in dataclasses.fields(Thresholds)}
    if not isinstance(value, dict):
        raise ValidationFailed("battery_thresholds must be an object of threshold names and numbers", code="invalid",
                               details={"field": "battery_thresholds"})
    for key, number in value.items():
        if key not in known:
            raise ValidationFailed(f"battery_thresholds: {key!r} is not a threshold; known: {', '.join(sorted(known))}",
                                   code="invalid", details={"field": "battery_thresholds"})
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise ValidationFailed(f"battery_thresholds: {key} must be a non-negative number", code="invalid",
                                   details={"field": "battery_thresholds"})


def _last_reviewed(model: RegisteredModel) -> Any:
    """Return the date the model's champion was last reviewed, or promoted if never reviewed since."""
    dates = [d.date() for d in (
        PeriodicReview.objects.filter(model_version__registered_model=model).order_by("-created_at")
        .values_list("created_at", flat=True).first(),
        Decision.objects.filter(model_version__registered_model=model, action=Decision.Action.PROMOTE)
        .order_by("-created_at").values_list("created_at", flat=True).first()) if d is not None]
    return max(dates) if dates else timezone.localdate()


def registered_model_inventory_update(*, actor: Any, model: RegisteredModel, changes: dict[str, Any]) -> RegisteredModel:
    """Set a model's inventory fields (tier, type, use, limitations, owner, cadence, floors, scoring policy);
    audited before/after."""
    require(actor, Capability.MODEL_INVENTORY_EDIT)
    unknown = sorted(set(changes) - {"risk_tier", "model_type", "owner", "review_cadence_months", *INVENTORY_TEXT,
                                     *INVENTORY_FLOORS, "battery_thresholds", *INVENTORY_SCORING})
    if unknown:
        raise ValidationFailed(f"unknown inventory fields: {', '.join(unknown)}", code="invalid",
                               details={"fields": unknown})
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "risk_tier" and value not in RiskTier.values:
            raise ValidationFailed(f"risk_tier must be one of {', '.join(RiskTier.values)}", code="invalid_risk_tier",
                                   details={"field": name})
        if name == "model_type" and value not in ModelType.values:
            raise ValidationFailed(f"model_type must be one of {', '.join(ModelType.values)}",
                                   code="invalid_model_type", details={"field": name})
        if name in INVENTORY_TEXT and not isinstance(value, str):
            raise ValidationFailed(f"{name} must be text", code="invalid", details={"field": name})
        if name == "review_cadence_months" and value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 120):
            raise ValidationFailed("review_cadence_months must be a whole number of months from 1 to 120 (or null "
                                   "for the tier's default)", code="invalid", details={"field": name})
        if name in INVENTORY_FLOORS and value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise ValidationFailed(f"{name} must be a number between 0 and 1 (or null for none)", code="invalid",
                                   details={"field": name})
        if name == "battery_thresholds":
            _check_thresholds(value)
        if name in INVENTORY_SCORING:
            value = _check_scoring(name, value)
        clean[name] = value
    with transaction.atomic():
        current = registered_model_lock(id=model.pk)
        before = _inventory(current)
        for name, value in clean.items():
            setattr(current, name, value)
        fields = list(clean)
        if {"risk_tier", "review_cadence_months"} & set(clean) and current.next_review_date is not None:
            # A new cadence counts from the champion's last review (or its promotion), not from today.
            current.next_review_date = add_months(_last_reviewed(current), review_cadence_months(current))
            fields.append("next_review_date")
        current.save(update_fields=fields)
        audit_record(actor=actor, action="registered_model.inventory_updated", target=current, before=before,
                     after=_inventory(current))
    return current


def periodic_review_record(*, actor: Any, version: ModelVersion, evaluation: Evaluation, conclusion: str,
                           rationale: str) -> PeriodicReview:
    """Record a periodic review of a champion on a newer dataset version; move the next review date."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=version))
    if conclusion not in PeriodicReview.Conclusion.values:
        raise ValidationFailed(f"conclusion must be one of {', '.join(PeriodicReview.Conclusion.values)}",
                               code="invalid_conclusion", details={"field": "conclusion"})
    if not isinstance(rationale, str) or not rationale.strip():
        raise ValidationFailed("a rationale is required", code="rationale_required", details={"field": "rationale"})
    status = ModelVersion.objects.values_list("status", flat=True).get(pk=version.pk)
    if status != VersionStatus.CHAMPION:
        raise Conflict(f"periodic reviews are of champions; {version} is {status}",
                       code=f"version_{status}", details={"state": status})
    if evaluation.model_version_id != version.pk or evaluation.dataset_version_id == version.dataset_version_id:
        raise ValidationFailed("a review rests on an evaluation of this version on a newer dataset version than the "
                               "one it was trained on", code="invalid_evaluation", details={"field": "evaluation"})
    with transaction.atomic():
        model = registered_model_lock(id=version.registered_model_id)
        due = add_months(timezone.localdate(), review_cadence_months(model))
        review = PeriodicReview.objects.create(
            model_version=version, evaluation=evaluation, conclusion=conclusion, rationale=rationale.strip(),
            reviewer=actor, reviewer_username=actor.username, due_date=model.next_review_date, next_review_date=due)
        RegisteredModel.objects.filter(pk=model.pk).update(next_review_date=due, overdue_flagged_for=None)
        audit_record(actor=actor, action="periodic_review.recorded", target=review,
                     after={"model_version": version.pk, "evaluation": evaluation.pk, "conclusion": conclusion,
                            "rationale": review.rationale, "was_due": model.next_review_date,
                            "next_review_date": due})
    return review


def reviews_flag_overdue(*, today: Any = None) -> list[int]:
    """Write one audit event for each model whose champion's review has fallen overdue; return the model ids.

    A model is flagged once per due date, however often this runs.
    """
    today = today or timezone.localdate()
    flagged = []
    due = (RegisteredModel.objects.filter(next_review_date__lt=today, versions__status=VersionStatus.CHAMPION)
           .exclude(overdue_flagged_for=F("next_review_date")).distinct())
    for model in due:
        with transaction.atomic():
            audit_chain_lock()  # before the UPDATE's row lock (audit_chain_lock says why)
            if RegisteredModel.objects.filter(pk=model.pk, next_review_date=model.next_review_date).exclude(
                    overdue_flagged_for=model.next_review_date).update(overdue_flagged_for=model.next_review_date):
                audit_record(actor=None, actor_label="system:scheduler", action="registered_model.review_overdue",
                             target=model, after={"next_review_date": model.next_review_date,
                                                  "days_overdue": (today - model.next_review_date).days})
                flagged.append(model.pk)
    return flagged

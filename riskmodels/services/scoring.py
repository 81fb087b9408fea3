"""Score applicants with a model's champion, write each decision to the ledger, and reproduce ledger entries.

The gate: only the champion decides. A named approved challenger may be scored beside it in
shadow mode (recorded, not decisive). Anything else is refused with ``not_approved`` before
anything is written. The ledger rows and the audit event of a request are written in one
transaction: a request is recorded whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction

from governance.audit import audit_record, current_correlation_id
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.ml.explain import ExplainOptions, ExplanationError
from riskmodels.ml.pipelines import TrainingSpec, known_categories
from riskmodels.ml.scoring import ScoredApplicant, ScoringError, ScoringPolicy, score_rows
from riskmodels.models import (
    CreditDecision,
    ExplainerRecord,
    LedgerInputs,
    ModelVersion,
    ReasonText,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.selectors import registered_model_champion
from riskmodels.services.explanations.budget import request_budget_check
from riskmodels.services.explanations.cache import ProcessCache, explainer_for, pipeline_load, training_background

NOT_APPROVED = "not_approved"
_CATEGORIES = ProcessCache(8)


@dataclass(frozen=True)
class Scorer:
    """What scoring with one version needs, ready to use: its explainer, policy, protected set and texts."""

    version: ModelVersion
    spec: TrainingSpec
    policy: ScoringPolicy
    explainer: Any
    protected: frozenset[str]
    catalogue: dict[str, str]
    categories: dict[str, list[Any]]
    fingerprint: ExplainerRecord

    def score(self, frame: pd.DataFrame) -> list[ScoredApplicant]:
        try:
            return score_rows(self.explainer, frame, policy=self.policy, protected=self.protected,
                              catalogue=self.catalogue, known_categories=self.categories)
        except (ScoringError, ExplanationError) as exc:
            raise ValidationFailed(str(exc), code="unscorable") from None


def scoring_policy_of(model: RegisteredModel) -> ScoringPolicy:
    """Return the model's scoring policy, or refuse: nothing scores before a cutoff is set."""
    if not model.scoring_policy:
        raise Conflict(f"model {model.name!r} has no scoring policy: a compliance officer sets its cutoff "
                       f"(PATCH /api/v1/models/{model.name}/inventory/ with scoring_policy)", code="no_scoring_policy")
    return ScoringPolicy.from_dict(model.scoring_policy)


def _fingerprint_row(data: dict[str, Any]) -> ExplainerRecord:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    row = ExplainerRecord.objects.filter(pk=digest).first()
    if row is None:
        with transaction.atomic():
            row, _ = ExplainerRecord.objects.get_or_create(sha256=digest, defaults={"data": data})
    return row


def scorer_for(version: ModelVersion, *, policy: ScoringPolicy) -> Scorer:
    """Build (from this process's caches) everything scoring with ``version`` needs."""
    spec = TrainingSpec.from_dict(version.spec)
    options = ExplainOptions()
    explainer = explainer_for(version, spec, options, lambda: training_background(version, options))
    # Only explainers without a row encoder need the categories (the encoder knows its own).
    categories = ({} if explainer.encoder is not None else
                  _CATEGORIES.get(version.artifact_sha256, lambda: known_categories(pipeline_load(version))))
    return Scorer(
        version=version, spec=spec, policy=policy, explainer=explainer,
        protected=frozenset(c["name"] for c in version.dataset_version.schema if c["role"] == "protected"),
        catalogue=dict(ReasonText.objects.filter(registered_model_id=version.registered_model_id)
                       .values_list("feature", "text")),
        categories=categories, fingerprint=_fingerprint_row(explainer.fingerprint.to_dict()))


def canonical_inputs(ordered: dict[str, Any]) -> str:
    """Return an applicant's features (already in the model's feature order) as the canonical JSON that is
    stored and hashed: compact, in that order, no NaN."""
    return json.dumps(ordered, separators=(",", ":"), allow_nan=False)


def features_sha256(features: dict[str, Any], spec: TrainingSpec) -> str:
    """Return the SHA-256 of an applicant's features as canonical JSON, in the model's feature order."""
    return hashlib.sha256(canonical_inputs({f: features.get(f) for f in spec.features}).encode()).hexdigest()


def _feature_errors(i: int, features: Any, spec: TrainingSpec) -> dict[str, Any]:
    where = f"applications[{i}].features"
    if not isinstance(features, dict):
        raise ValidationFailed(f"{where} must be an object of feature values", code="invalid_application",
                               details={"row": i, "field": "features"})
    missing = [f for f in spec.features if f not in features]
    if missing:
        raise ValidationFailed(f"{where} lacks features the model needs: {', '.join(missing)}",
                               code="missing_feature", details={"row": i, "missing": missing})
    extra = sorted(set(features) - set(spec.features))
    if extra:
        raise ValidationFailed(f"{where} has features the model does not use: {', '.join(extra)}",
                               code="unknown_feature", details={"row": i, "unknown": extra})
    categorical = set(spec.categorical)
    for feature in spec.features:
        value = features[feature]
        if value is None:
            continue  # a missing value: the pipeline imputes it as it did in training
        if feature in categorical:
            if not isinstance(value, str | bool):
                raise ValidationFailed(f"{where}.{feature} must be a string category; got {value!r}",
                                       code="wrong_type", details={"row": i, "feature": feature})
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationFailed(f"{where}.{feature} must be a finite number or null; got {value!r}",
                                   code="wrong_type", details={"row": i, "feature": feature})
    return features


def applications_check(applications: Any, spec: TrainingSpec) -> tuple[list[str], list[dict[str, Any]]]:
    """Check posted applications (``[{reference, features}]``); return references and feature dicts.

    Every problem is refused naming the row and the field, before anything is scored or written.
    """
    cap = settings.SCORING_MAX_APPLICATIONS
    if not isinstance(applications, list) or not applications:
        raise ValidationFailed("applications must be a non-empty list of {reference, features} objects",
                               code="empty_batch", details={"field": "applications"})
    if len(applications) > cap:
        raise ValidationFailed(f"{len(applications)} applications; at most {cap} per request "
                               "(SCORING_MAX_APPLICATIONS); score a whole dataset with a batch scoring job",
                               code="over_batch_cap", details={"field": "applications"})
    references: list[str] = []
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(applications):
        if not isinstance(item, dict):
            raise ValidationFailed(f"applications[{i}] must be an object with reference and features",
                                   code="invalid_application", details={"row": i})
        unknown = sorted(set(item) - {"reference", "features"})
        if unknown:
            raise ValidationFailed(f"applications[{i}] has unknown fields: {', '.join(unknown)}",
                                   code="invalid_application", details={"row": i, "unknown": unknown})
        reference = item.get("reference")
        if not isinstance(reference, str) or not reference.strip() or len(reference) > 200:
            raise ValidationFailed(f"applications[{i}].reference must be a non-empty string of at most 200 "
                                   "characters", code="invalid_reference", details={"row": i, "field": "reference"})
        if reference in seen:
            raise ValidationFailed(f"applications[{i}].reference {reference!r} repeats applications[{seen[reference]}]",
                                   code="duplicate_reference", details={"row": i, "field": "reference"})
        seen[reference] = i
        references.append(reference)
        rows.append(_feature_errors(i, item.get("features"), spec))
    return references, rows


def _frame(rows: Sequence[dict[str, Any]], spec: TrainingSpec) -> pd.DataFrame:
    return pd.DataFrame([{f: row[f] for f in spec.features} for row in rows], columns=list(spec.features))


def _shadow_version(model: RegisteredModel, shadow: int | None) -> ModelVersion | None:
    if shadow is None:
        return None
    version = ModelVersion.objects.select_related("dataset_version").filter(pk=shadow, registered_model=model).first()
    if version is None or version.status != VersionStatus.APPROVED:
        state = version.status if version else "not a version of this model"
        raise Conflict(f"shadow scoring needs an approved challenger of {model.name!r}; version {shadow} is {state}",
                       code=NOT_APPROVED, details={"field": "shadow_version"})
    return version


def champion_or_refuse(model: RegisteredModel) -> ModelVersion:
    """Return the model's champion, or refuse with ``not_approved``: nothing else decides."""
    champion = registered_model_champion(registered_model=model)
    if champion is None:
        raise Conflict(f"model {model.name!r} has no champion: only an approved version promoted to champion "
                       "scores decisions", code=NOT_APPROVED)
    return champion


def ledger_rows(scorer: Scorer, *, references: Sequence[str], rows: Sequence[dict[str, Any]],
                results: Sequence[ScoredApplicant], decisive: bool, actor: Any, source: str,
                job: Any = None) -> list[CreditDecision]:
    """Return unsaved ledger entries for scored applicants (the caller saves them in its transaction)."""
    keep = scorer.version.registered_model.ledger_inputs == LedgerInputs.FULL
    request_id = current_correlation_id()[:100]
    username = getattr(actor, "username", "") or "system"
    return [CreditDecision(
        reference=reference, registered_model_id=scorer.version.registered_model_id, model_version=scorer.version,
        decisive=decisive, source=source, features=dict(row) if keep else None,
        features_sha256=features_sha256(row, scorer.spec), pd=result.pd, outcome=result.decision,
        band=result.band, reasons=[r.to_dict() for r in result.reasons], contributions=result.contributions,
        base_log_odds=result.base_log_odds, flags=list(result.flags), flag_details=result.flag_details,
        policy=scorer.policy.to_dict(), fingerprint=scorer.fingerprint, request_id=request_id, job=job,
        actor=actor if getattr(actor, "pk", None) else None, actor_username=username[:150],
    ) for reference, row, result in zip(references, rows, results, strict=True)]


@dataclass(frozen=True)
class ScoreResult:
    model: RegisteredModel
    champion: ModelVersion
    decisions: list[CreditDecision]
    shadow: list[CreditDecision]


def applications_score(*, actor: Any, model: RegisteredModel, applications: Any,
                       shadow_version: int | None = None) -> ScoreResult:
    """Score applications with the model's champion (and an approved challenger in shadow); ledger + audit."""
    require(actor, Capability.MODEL_SCORE)
    champion = champion_or_refuse(model)
    shadow = _shadow_version(model, shadow_version)
    policy = scoring_policy_of(model)
    scorer = scorer_for(champion, policy=policy)
    references, rows = applications_check(applications, scorer.spec)
    request_budget_check(champion, scorer.spec, len(rows))
    results = scorer.score(_frame(rows, scorer.spec))
    entries = ledger_rows(scorer, references=references, rows=rows, results=results, decisive=True, actor=actor,
                          source=CreditDecision.Source.API)
    shadow_entries: list[CreditDecision] = []
    if shadow is not None:
        shadow_scorer = scorer_for(shadow, policy=policy)
        if set(shadow_scorer.spec.features) != set(scorer.spec.features):
            # The request was checked against the champion's features; a challenger on other
            # features would need other inputs.
            raise ValidationFailed(f"the challenger (version {shadow.pk}) uses other features than the champion; "
                                   "it cannot be scored in shadow on the same applications",
                                   code="shadow_features_differ", details={"field": "shadow_version"})
        request_budget_check(shadow, shadow_scorer.spec, len(rows))
        shadow_results = shadow_scorer.score(_frame(rows, shadow_scorer.spec))
        shadow_entries = ledger_rows(shadow_scorer, references=references, rows=rows, results=shadow_results,
                                     decisive=False, actor=actor, source=CreditDecision.Source.API)
    with transaction.atomic():
        saved = CreditDecision.objects.bulk_create(entries + shadow_entries)
        audit_record(actor=actor, action="decisions.scored", target=model, after={
            "model_version": champion.pk, "shadow_version": shadow.pk if shadow else None,
            "decisions": [d.pk for d in saved[: len(entries)]], "shadow_decisions": [d.pk for d in saved[len(entries):]],
            "outcomes": [d.outcome for d in saved[: len(entries)]], "fingerprint": scorer.fingerprint.sha256,
        })
    return ScoreResult(model=model, champion=champion, decisions=saved[: len(entries)], shadow=saved[len(entries):])


def decision_features(decision: CreditDecision, features: Any) -> dict[str, Any]:
    """Return a ledger entry's input features: stored ones, or posted ones that match its stored hash."""
    spec = TrainingSpec.from_dict(decision.model_version.spec)
    if decision.features is not None:
        if features is not None and features_sha256(features, spec) != decision.features_sha256:
            raise ValidationFailed("the posted features differ from the ones this decision was made on",
                                   code="features_mismatch", details={"field": "features"})
        return decision.features
    if features is None:
        raise ValidationFailed("this model's ledger keeps only a hash of the inputs: post the application's features "
                               "to reproduce the decision", code="features_required", details={"field": "features"})
    _feature_errors(0, features, spec)
    if features_sha256(features, spec) != decision.features_sha256:
        raise ValidationFailed("the posted features do not match the hash recorded with this decision",
                               code="features_mismatch", details={"field": "features"})
    return features


def decision_rescore(*, actor: Any, decision: CreditDecision, features: Any = None) -> dict[str, Any]:
    """Score a ledger entry again with its own version and policy; say whether PD and reasons are the same.

    Not a decision (no ledger row, no gate: a retired version still reproduces); audited, because
    an examiner's reproduction is evidence too.
    """
    require(actor, Capability.DECISION_READ)
    inputs = decision_features(decision, features)
    scorer = scorer_for(decision.model_version, policy=ScoringPolicy.from_dict(decision.policy))
    result = scorer.score(_frame([inputs], scorer.spec))[0]
    reasons_now = [r.to_dict() for r in result.reasons]
    same = (result.pd == decision.pd and result.decision == decision.outcome
            and [r["feature"] for r in reasons_now] == [r["feature"] for r in decision.reasons]
            and all(math.isclose(a["contribution"], b["contribution"], rel_tol=0, abs_tol=1e-12)
                    for a, b in zip(reasons_now, decision.reasons, strict=True)))
    body = {"decision": decision.pk, "reproduced": same,
            "same_explainer": scorer.fingerprint.sha256 == decision.fingerprint_id, "pd_recorded": decision.pd, "pd_now": result.pd,
            "outcome_recorded": decision.outcome, "outcome_now": result.decision,
            "reasons_recorded": decision.reasons, "reasons_now": reasons_now,
            "fingerprint_recorded": decision.fingerprint_id, "fingerprint_now": scorer.fingerprint.sha256}
    with transaction.atomic():
        audit_record(actor=actor, action="decision.reproduced", target=decision,
                     after={"reproduced": same, "pd_now": result.pd, "outcome_now": result.decision})
    return body

"""Adverse-action notices: the principal reasons in plain words, and what would have changed the decision.

The counterfactual is searched against the same version that decided, on the applicant's own
inputs, over values seen in its training data, changing at most two actionable features:
never a protected one, never one listed as immutable. Issuing a notice is audited with the
SHA-256 of what it said, because it is what the applicant was told.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import Conflict
from governance.policy import Capability, require
from riskmodels.ml.counterfactual import CandidateSet, candidate_grid, counterfactual_search
from riskmodels.ml.explain import select_background
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.scoring import DECLINE, FLAG_PROTECTED_OUTWEIGHS, FLAG_UNSEEN_CATEGORY, ScoringPolicy
from riskmodels.models import CreditDecision, ModelVersion
from riskmodels.services.explanations.cache import ProcessCache, pipeline_load, source_rows
from riskmodels.services.scoring import decision_features
from riskmodels.storage import dataset_rows

# Training rows the candidate values are drawn from: quantiles of 5,000 rows are stable to
# well under one grid step, and reading them costs one pass over a few row groups.
_GRID_ROWS = 5_000
_GRIDS = ProcessCache(8)


def actionable_features(version: ModelVersion) -> list[str]:
    """Return the features a counterfactual may change for ``version``: never protected, never immutable."""
    spec = TrainingSpec.from_dict(version.spec)
    protected = {c["name"] for c in version.dataset_version.schema if c["role"] == "protected"}
    listed = version.registered_model.actionable_features or [
        f for f in spec.features if f not in set(settings.COUNTERFACTUAL_IMMUTABLE_FEATURES)]
    return [f for f in listed if f in spec.features and f not in protected]


def _grid(version: ModelVersion, actionable: list[str]) -> dict[str, CandidateSet]:
    def compute() -> dict[str, CandidateSet]:
        _, train_rows = source_rows(version, "test_split")
        chosen = select_background(pd.DataFrame(index=train_rows), size=_GRID_ROWS, seed=0).index
        train = dataset_rows(version.dataset_version, np.asarray(chosen, dtype=np.int64), actionable)
        return candidate_grid(train, TrainingSpec.from_dict(version.spec), actionable)

    return _GRIDS.get((version.artifact_sha256, version.dataset_version.sha256, tuple(actionable)), compute)


def _statement(decision: CreditDecision, reasons: list[str], flagged: bool, counterfactual: dict[str, Any]) -> str:
    verb = "declined" if decision.outcome == DECLINE else "referred for review"
    parts = [f"Your application {decision.reference} was {verb} on {decision.created_at:%d %B %Y}."]
    if reasons:
        parts.append("The principal reasons were: " + "; ".join(f"({i}) {t}" for i, t in enumerate(reasons, 1)) + ".")
    else:
        parts.append("No single factor was material enough to be named as a principal reason.")
    if flagged:
        parts.append("This decision has been flagged for review by our compliance staff.")
    parts.append(counterfactual["message"])
    return " ".join(parts)


def decision_notice(*, actor: Any, decision: CreditDecision, features: Any = None) -> dict[str, Any]:
    """Return the adverse-action notice of a decisive decline or refer, with its counterfactual; audited."""
    require(actor, Capability.DECISION_READ)
    if not decision.decisive:
        raise Conflict("a shadow decision decided nothing: it has no notice", code="not_decisive")
    if decision.outcome not in ("decline", "refer"):
        raise Conflict(f"decision {decision.pk} approved the application: there is no adverse action to explain",
                       code="not_adverse")
    inputs = decision_features(decision, features)
    version = decision.model_version
    spec = TrainingSpec.from_dict(version.spec)
    policy = ScoringPolicy.from_dict(decision.policy)
    # A decline must get below the cutoff; a refer below the refer band.
    target = policy.cutoff if decision.outcome == DECLINE else policy.refer_from or policy.cutoff
    actionable = actionable_features(version)
    pipeline = pipeline_load(version)

    def predict_pd(frame: pd.DataFrame) -> np.ndarray:
        return pipeline.predict_proba(prepare_features(frame, spec))[:, 1]

    if actionable:
        found = counterfactual_search(predict_pd, pd.DataFrame([{f: inputs[f] for f in spec.features}]),
                                      cutoff=target, grid=_grid(version, actionable)).to_dict()
    else:
        found = {"found": False, "changes": [], "message": "No feature of this model is one an applicant can change."}
    reasons = [r["text"] for r in decision.reasons]
    flagged = FLAG_PROTECTED_OUTWEIGHS in decision.flags
    override = getattr(decision, "override", None)  # a missing reverse one-to-one raises an AttributeError
    notice = {
        "decision": decision.pk, "reference": decision.reference, "decided_at": decision.created_at.isoformat(),
        "model": decision.registered_model.name, "model_version": version.pk, "version": version.version,
        "outcome": decision.outcome, "principal_reasons": reasons, "reasons": decision.reasons,
        "flagged_for_review": flagged, "unseen_categories": decision.flag_details.get(FLAG_UNSEEN_CATEGORY, []),
        "actionable_features": actionable, "counterfactual": found,
        "override": {"outcome": override.outcome, "reason": override.reason} if override else None,
        "statement": _statement(decision, reasons, flagged, found),
    }
    digest = hashlib.sha256(json.dumps(notice, sort_keys=True, default=str).encode()).hexdigest()
    with transaction.atomic():
        audit_record(actor=actor, action="decision.notice_issued", target=decision,
                     after={"notice_sha256": digest, "counterfactual_found": bool(found["found"]),
                            "principal_reasons": reasons})
    return {**notice, "notice_sha256": digest}

"""Explain single applicants and derive the reason codes of an adverse-action notice.

A reason code names a feature that pushed this applicant's estimated risk *up*. Adverse-action
rules (ECOA / Regulation B in the US, similar duties elsewhere) require the principal reasons to
be specific and forbid basing them on prohibited characteristics, so protected attributes are
never reasons, even when a model was trained with an approved exception that lets it use them.
Their contributions stay in the explanation, where a fair-lending reviewer needs to see them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskmodels.ml.explain.base import ExplainerFingerprint, ExplanationError, ModelExplainer
from riskmodels.ml.explain.reports import ADDITIVITY_TOLERANCE, STATUS_FAILED, STATUS_OK, additivity_error

__all__ = [
    "MAX_REASONS",
    "LocalExplanation",
    "LocalReport",
    "ReasonCode",
    "default_reason_text",
    "explain_local",
    "reason_codes",
]

# Regulation B's commentary: more than four principal reasons are unlikely to help an applicant.
MAX_REASONS = 4


def default_reason_text(feature: str) -> str:
    """Return the reason text used when the catalogue has none for ``feature``."""
    return f"{feature} increased the estimated risk"


@dataclass(frozen=True)
class ReasonCode:
    """Name one feature that raised the estimated risk, with its contribution and text."""

    rank: int
    feature: str
    contribution: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Return the reason as a JSON-serialisable dict."""
        return {"rank": self.rank, "feature": self.feature, "contribution": self.contribution, "text": self.text}


def reason_codes(
    contributions: Mapping[str, float],
    *,
    protected: Collection[str],
    catalogue: Mapping[str, str] | None = None,
    limit: int = MAX_REASONS,
) -> tuple[ReasonCode, ...]:
    """Return up to ``limit`` features with the largest positive contribution toward default.

    Only strictly positive, finite contributions qualify; features in ``protected`` never do.
    Ties are broken by feature name so the codes are stable. ``catalogue`` maps a feature to
    its reason text; :func:`default_reason_text` fills the gaps.
    """
    if limit < 1:
        raise ExplanationError(f"limit must be at least 1; got {limit}")
    excluded = set(protected)
    texts = catalogue or {}
    candidates = [
        (feature, float(value))
        for feature, value in contributions.items()
        if feature not in excluded and math.isfinite(value) and value > 0
    ]
    candidates.sort(key=lambda item: (-item[1], item[0]))
    return tuple(
        ReasonCode(rank, feature, value, texts.get(feature) or default_reason_text(feature))
        for rank, (feature, value) in enumerate(candidates[:limit], start=1)
    )


@dataclass(frozen=True)
class LocalExplanation:
    """Explain one applicant: contributions per original feature, base value, output, reasons."""

    row_id: Any
    contributions: dict[str, float]
    base_value: float
    output: float
    output_space: str
    reasons: tuple[ReasonCode, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the explanation as a JSON-serialisable dict."""
        row_id = self.row_id.item() if isinstance(self.row_id, np.generic) else self.row_id
        return {
            "row_id": row_id if isinstance(row_id, int | str) else str(row_id),
            "contributions": dict(self.contributions),
            "base_value": self.base_value,
            "output": self.output,
            "output_space": self.output_space,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }


@dataclass(frozen=True)
class LocalReport:
    """Hold the explanations of some applicants with the explainer fingerprint and checks.

    ``status`` is ``"failed"`` when base value plus contributions do not reproduce the model
    output within the additivity tolerance; the reasons must not be sent to anyone then.
    """

    explanations: tuple[LocalExplanation, ...]
    fingerprint: ExplainerFingerprint
    additivity_error: float
    status: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict."""
        return {
            "status": self.status,
            "message": self.message,
            "additivity_error": self.additivity_error if math.isfinite(self.additivity_error) else None,
            "fingerprint": self.fingerprint.to_dict(),
            "explanations": [e.to_dict() for e in self.explanations],
        }


def explain_local(
    explainer: ModelExplainer,
    rows: pd.DataFrame,
    *,
    protected: Collection[str],
    catalogue: Mapping[str, str] | None = None,
    limit: int = MAX_REASONS,
) -> LocalReport:
    """Explain each of ``rows`` (raw rows, ids from the index) and attach its reason codes.

    ``protected`` is required so that no caller forgets it: pass the dataset's protected
    attributes (an empty set only when the dataset has none).
    """
    if len(rows) == 0:
        raise ExplanationError("there are no rows to explain")
    attributions = explainer.explain(rows)
    space = explainer.fingerprint.output_space
    explanations = []
    for i, row_id in enumerate(rows.index):
        contributions = {f: float(v) for f, v in zip(explainer.features, attributions.values[i], strict=True)}
        explanations.append(
            LocalExplanation(
                row_id=row_id,
                contributions=contributions,
                base_value=attributions.base_value,
                output=float(attributions.output[i]),
                output_space=space,
                reasons=reason_codes(contributions, protected=protected, catalogue=catalogue, limit=limit),
            )
        )
    error = additivity_error(attributions.values, attributions.base_value, attributions.output)
    if error <= ADDITIVITY_TOLERANCE:
        status, message = STATUS_OK, f"additivity error {error:.3g} ({space})"
    else:
        status = STATUS_FAILED
        message = (
            f"additivity check failed: contributions differ from the model output by up to "
            f"{error:.3g} ({space}); do not use these reasons"
        )
    return LocalReport(tuple(explanations), explainer.fingerprint, error, status, message)

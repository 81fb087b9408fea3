"""The request budget of synchronous explanations (local explanations and scoring)."""

from __future__ import annotations

from django.conf import settings

from governance.exceptions import ValidationFailed
from riskmodels.ml.explain import estimate_cost, needs_background
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.models import ModelVersion
from riskmodels.services.explanations.cache import pipeline_load


def request_budget_check(version: ModelVersion, spec: TrainingSpec, n_rows: int) -> None:
    """Refuse a synchronous explanation a model-agnostic explainer could not give within the request budget."""
    if not needs_background(spec.algorithm) or spec.algorithm == "logistic_regression":
        return
    seconds = estimate_cost(pipeline_load(version), n_rows)["seconds"]
    budget = settings.SCORING_REQUEST_BUDGET_SECONDS
    if seconds > budget:
        raise ValidationFailed(
            f"explaining {n_rows} row(s) with {spec.algorithm}'s model-agnostic explainer is estimated at "
            f"{seconds:.1f} s, over the request budget of {budget:g} s (SCORING_REQUEST_BUDGET_SECONDS): send fewer "
            "rows per request, or score them as a batch scoring job", code="over_request_budget",
            details={"estimated_seconds": round(seconds, 3), "budget_seconds": budget})

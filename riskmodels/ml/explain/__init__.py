"""Explain fitted pipelines with SHAP: global reports, chunked for workers, and reason codes.

* :mod:`~riskmodels.ml.explain.explainers` picks the explainer per algorithm (exact TreeSHAP,
  linear, or :mod:`~riskmodels.ml.explain.permutation` over original features) and records its
  fingerprint; :mod:`~riskmodels.ml.explain.base` holds the shared types;
* :mod:`~riskmodels.ml.explain.hgb` hands HistGradientBoosting models with categorical
  features to TreeSHAP correctly, which shap's own loader does not;
* :mod:`~riskmodels.ml.explain.reports` builds global reports from chunks, which
  :mod:`~riskmodels.ml.explain.parquet` serialises;
* :mod:`~riskmodels.ml.explain.reasons` explains single applicants and derives reason codes;
* :mod:`~riskmodels.ml.explain.cost` estimates a report's cost and holds it to a budget.

Everything takes raw rows as stored in the dataset and applies
:func:`~riskmodels.ml.pipelines.prepare_features` itself. Values are per original feature
(``purpose``, not ``cat__purpose_car``), in the explainer's output space: log-odds of default
for gradient boosting and logistic regression, probability of default for the others.
"""

from riskmodels.ml.explain.base import (
    OUTPUT_LOG_ODDS,
    OUTPUT_PROBABILITY,
    Attributions,
    ExplainerFingerprint,
    ExplainOptions,
    ExplanationError,
    ModelExplainer,
    select_background,
    sum_to_features,
)
from riskmodels.ml.explain.cost import MIN_SAMPLE_ROWS, BudgetDecision, check_budget, estimate_cost
from riskmodels.ml.explain.explainers import make_explainer, needs_background
from riskmodels.ml.explain.permutation import permutation_row_seed
from riskmodels.ml.explain.reasons import (
    MAX_REASONS,
    LocalExplanation,
    LocalReport,
    ReasonCode,
    default_reason_text,
    explain_local,
    reason_codes,
)
from riskmodels.ml.explain.reports import (
    ADDITIVITY_TOLERANCE,
    STATUS_FAILED,
    STATUS_OK,
    ChunkResult,
    FeatureImportance,
    GlobalReport,
    MergedReport,
    RowSelection,
    additivity_error,
    chunk_rows_for,
    explain_chunk,
    explain_global,
    merge_chunks_to_parquet,
    plan_chunks,
    select_rows,
)

__all__ = [
    "ADDITIVITY_TOLERANCE",
    "MAX_REASONS",
    "MIN_SAMPLE_ROWS",
    "OUTPUT_LOG_ODDS",
    "OUTPUT_PROBABILITY",
    "STATUS_FAILED",
    "STATUS_OK",
    "Attributions",
    "BudgetDecision",
    "ChunkResult",
    "ExplainOptions",
    "ExplainerFingerprint",
    "ExplanationError",
    "FeatureImportance",
    "GlobalReport",
    "LocalExplanation",
    "LocalReport",
    "MergedReport",
    "ModelExplainer",
    "ReasonCode",
    "RowSelection",
    "additivity_error",
    "check_budget",
    "chunk_rows_for",
    "default_reason_text",
    "estimate_cost",
    "explain_chunk",
    "explain_global",
    "explain_local",
    "make_explainer",
    "merge_chunks_to_parquet",
    "needs_background",
    "permutation_row_seed",
    "plan_chunks",
    "reason_codes",
    "select_background",
    "select_rows",
    "sum_to_features",
]

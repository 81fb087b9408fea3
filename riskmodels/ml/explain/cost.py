"""Estimate what a SHAP report will cost before queueing it, and hold it to a budget.

Costs are counted in *units* from the fitted model, then turned into worker-seconds with
per-explainer rates:

* trees (exact path-dependent TreeSHAP is O(rows x leaves x depth^2) per tree):
  ``rows x sum over trees of (leaves x depth^2)``. Measured time grows more like
  leaves x depth (a path rarely holds ``depth`` distinct features), so seconds are estimated
  from that sum;
* linear: ``rows x encoded columns``;
* permutation: model evaluations, ``rows x permutations x (2 x features + 1) x background``.

The rates were measured with ``bench/shap_library.py`` on the reference machine (2 cores); they are an
order of magnitude, good enough to refuse a job that would run for days, not a promise. They are
rates of shap's own walk over every row; explanation by split-direction patterns and per-leaf path
tables (:mod:`riskmodels.ml.explain.patterns`) costs less, so for trees the estimate is an upper
bound. Cost is linear in rows, so a budget translates directly into the number of rows it affords.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from riskmodels.ml.explain.base import ExplainOptions, ExplanationError
from riskmodels.ml.explain.internals import hgb_trees
from riskmodels.ml.pipelines import feature_names_map

__all__ = [
    "MIN_SAMPLE_ROWS",
    "BudgetDecision",
    "check_budget",
    "estimate_cost",
]

# A global report on fewer rows than this ranks features too noisily to be worth running.
MIN_SAMPLE_ROWS = 200

# Worker-seconds per unit, measured on the reference machine with bench/shap_library.py (the
# figures are in bench/README.md). The permutation explainer's cost per background row is nearly
# all overhead rather than the model's arithmetic, hence a rate per evaluation plus one per weight.
_SECONDS_PER_LEAF_DEPTH = 15e-9
_SECONDS_PER_ROW = 5e-6  # preparing and preprocessing a row, the model's own output, the sums
_SECONDS_PER_LINEAR_UNIT = 2e-8
_SECONDS_PER_EVALUATION = 6e-6
_SECONDS_PER_EVALUATION_WEIGHT = 2e-11  # per multiply-add of the model


def _tree_shape(model: Any) -> dict[str, Any]:
    """Return the trees, leaves and depth of a fitted ensemble, with the per-row cost sums."""
    if isinstance(model, RandomForestClassifier):
        shapes = [(int(e.tree_.n_leaves), max(int(e.tree_.max_depth), 1)) for e in model.estimators_]
    else:
        shapes = [(tree.n_leaves, max(tree.max_depth, 1)) for tree in hgb_trees(model)]
    return {
        "trees": len(shapes),
        "leaves": sum(leaves for leaves, _ in shapes),
        "max_depth": max(depth for _, depth in shapes),
        "leaves_x_depth2": float(sum(leaves * depth**2 for leaves, depth in shapes)),
        "leaves_x_depth": float(sum(leaves * depth for leaves, depth in shapes)),
    }


def _model_weights(model: Any, width: int) -> int:
    """Return the multiply-adds of one evaluation of an MLP or a calibrated linear SVM."""
    if isinstance(model, MLPClassifier):
        return int(sum(c.size for c in model.coefs_))
    if isinstance(model, CalibratedClassifierCV):
        return width * len(model.calibrated_classifiers_)
    return width


def estimate_cost(pipeline: Pipeline, n_rows: int, *, options: ExplainOptions | None = None) -> dict[str, Any]:
    """Return the estimated cost of explaining ``n_rows`` rows with ``pipeline``'s explainer.

    The JSON-serialisable dict holds ``units`` (and ``units_per_row``) with the ``formula``
    used, estimated worker ``seconds`` (and ``seconds_per_row``) and the model sizes that went in. Permutation
    costs use ``options.permutations`` and ``options.background_size``.
    """
    if n_rows < 0:
        raise ExplanationError(f"n_rows must not be negative; got {n_rows}")
    options = options or ExplainOptions()
    model = pipeline[-1]
    width = len(feature_names_map(pipeline))
    n_features = int(pipeline[0].n_features_in_)
    if isinstance(model, RandomForestClassifier | HistGradientBoostingClassifier):
        shape = _tree_shape(model)
        per_row = shape["leaves_x_depth2"]
        seconds_per_row = shape["leaves_x_depth"] * _SECONDS_PER_LEAF_DEPTH + _SECONDS_PER_ROW
        out: dict[str, Any] = {
            "explainer": "shap.TreeExplainer",
            "formula": "rows x sum over trees of (leaves x depth^2)",
            "model": {k: shape[k] for k in ("trees", "leaves", "max_depth")},
        }
    elif isinstance(model, LogisticRegression):
        per_row = float(width)
        seconds_per_row = per_row * _SECONDS_PER_LINEAR_UNIT + _SECONDS_PER_ROW
        out = {
            "explainer": "shap.LinearExplainer",
            "formula": "rows x encoded columns",
            "model": {"encoded_columns": width},
        }
    else:
        weights = _model_weights(model, width)
        per_row = float(options.permutations * (2 * n_features + 1) * options.background_size)
        seconds_per_row = per_row * (_SECONDS_PER_EVALUATION + weights * _SECONDS_PER_EVALUATION_WEIGHT)
        out = {
            "explainer": "shap.PermutationExplainer",
            "formula": "rows x permutations x (2 x features + 1) x background rows (model evaluations)",
            "model": {
                "features": n_features,
                "permutations": options.permutations,
                "background_size": options.background_size,
                "weights": weights,
            },
        }
    return {
        **out,
        "n_rows": int(n_rows),
        "units_per_row": per_row,
        "units": per_row * n_rows,
        "seconds_per_row": seconds_per_row,
        "seconds": seconds_per_row * n_rows,
    }


@dataclass(frozen=True)
class BudgetDecision:
    """Say whether a report fits a budget: ``run`` all rows, ``sample`` ``rows`` of them, or ``refuse``."""

    action: str
    rows: int
    message: str

    @property
    def allowed(self) -> bool:
        """Return whether the report may run (in full or on a sample)."""
        return self.action != "refuse"

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-serialisable dict."""
        return {"action": self.action, "rows": self.rows, "message": self.message}


def check_budget(estimate: dict[str, Any], budget_seconds: float, *, min_rows: int = MIN_SAMPLE_ROWS) -> BudgetDecision:
    """Decide whether an :func:`estimate_cost` result fits ``budget_seconds`` of worker time.

    Within budget: run every row. Otherwise, if the budget affords at least ``min_rows``
    rows, sample that many (the caller draws them with ``select_rows`` and records the sample);
    else refuse, saying what the minimum would cost.
    """
    if not np.isfinite(budget_seconds) or budget_seconds <= 0:
        raise ExplanationError(f"the budget must be a positive number of seconds; got {budget_seconds!r}")
    n_rows = int(estimate["n_rows"])
    per_row = float(estimate["seconds_per_row"])
    if estimate["seconds"] <= budget_seconds:
        return BudgetDecision(
            "run", n_rows, f"explaining {n_rows} rows costs about {estimate['seconds']:.3g} s, within the budget"
        )
    affordable = int(budget_seconds // per_row) if per_row > 0 else n_rows
    floor = min(min_rows, n_rows)
    if affordable >= floor:
        return BudgetDecision(
            "sample",
            affordable,
            f"explaining all {n_rows} rows would cost about {estimate['seconds']:.3g} s, over the "
            f"budget of {budget_seconds:g} s; a random sample of {affordable} rows fits",
        )
    return BudgetDecision(
        "refuse",
        0,
        f"refused: even {floor} rows would cost about {floor * per_row:.3g} s, over the budget of "
        f"{budget_seconds:g} s ({estimate['explainer']}: {estimate['formula']}); "
        "raise the budget or explain a smaller model",
    )

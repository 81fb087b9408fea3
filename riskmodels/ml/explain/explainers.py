"""Choose and run the SHAP explainer that fits each algorithm, per original feature.

=====================  =========================  ======================  ================
algorithm              explainer                  perturbation            output space
=====================  =========================  ======================  ================
random_forest          shap.TreeExplainer         tree_path_dependent     probability
gradient_boosting      shap.TreeExplainer [1]_    tree_path_dependent     log_odds
logistic_regression    shap.LinearExplainer       interventional          log_odds
mlp, linear_svm        shap.PermutationExplainer  interventional          probability
=====================  =========================  ======================  ================

.. [1] through :mod:`riskmodels.ml.explain.hgb`, because shap's own conversion of categorical
   HistGradientBoosting models is wrong.

Tree and linear explainers see the preprocessed matrix the model sees
(``pipeline[:-1].transform(prepare_features(rows, spec))``); their values for one-hot columns
are summed back to the original feature with :func:`feature_names_map`. A random forest's trees
hold class fractions, so its SHAP values are in probability, not log-odds.

The permutation explainer instead plays one player per *original* feature; see
:mod:`riskmodels.ml.explain.permutation` for why.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import shap
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from riskmodels.ml.explain.base import (
    FEW_ROWS,
    OUTPUT_LOG_ODDS,
    OUTPUT_PROBABILITY,
    ExplainerFingerprint,
    ExplainOptions,
    ExplanationError,
    ModelExplainer,
    matrix_sha256,
    preprocessed_matrix,
    select_background,
)
from riskmodels.ml.explain.hgb import HGBTreeShap
from riskmodels.ml.explain.patterns import explain_by_patterns, forest_pattern_trees
from riskmodels.ml.explain.permutation import FeaturePermutationExplainer
from riskmodels.ml.persistence import environment_versions
from riskmodels.ml.pipelines import TrainingSpec, feature_names_map

__all__ = ["make_explainer", "needs_background"]

_TREE = "tree"
_LINEAR = "linear"
_PERMUTATION = "permutation"
_KIND = {
    "random_forest": _TREE,
    "gradient_boosting": _TREE,
    "logistic_regression": _LINEAR,
    "mlp": _PERMUTATION,
    "linear_svm": _PERMUTATION,
}


class _TreeExplainer(ModelExplainer):
    """Exact path-dependent TreeSHAP for random forests and gradient boosting."""

    kind = _TREE

    def __init__(self, pipeline: Pipeline, spec: TrainingSpec, *, seed: int) -> None:
        super().__init__(pipeline, spec)
        model = pipeline[-1]
        self.column_features = tuple(feature_names_map(pipeline))
        adapter = None
        if isinstance(model, HistGradientBoostingClassifier):
            self._hgb: HGBTreeShap | None = HGBTreeShap(model)
            self._shap: shap.TreeExplainer | None = None
            output_space = OUTPUT_LOG_ODDS
            adapter = (
                "riskmodels.ml.explain.hgb (categorical bitsets, internal column order; "
                "each tree explained once per distinct split-direction pattern)"
            )
        elif isinstance(model, RandomForestClassifier):
            self._hgb = None
            self._shap = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
            # Class fractions per leaf: output 1 is the probability of default.
            self._forest = forest_pattern_trees(self._shap, [e.tree_.node_count for e in model.estimators_], output=1)
            output_space = OUTPUT_PROBABILITY
            adapter = "riskmodels.ml.explain.patterns (each tree explained once per distinct split-direction pattern)"
        else:
            raise ExplanationError(f"no tree explainer for {type(model).__name__}")
        # How many groups of trees, each with its own category ids, one explanation takes: more
        # than one only for HGB models whose categorical splits need more ids than one mask holds.
        self.shap_calls = 1 if self._hgb is None else self._hgb.n_shap_calls
        self.fingerprint = ExplainerFingerprint(
            algorithm=spec.algorithm,
            explainer="shap.TreeExplainer",
            feature_perturbation="tree_path_dependent",
            output_space=output_space,
            input_space="preprocessed",
            exact=True,
            background_sha256=None,
            background_size=0,
            seed=seed,
            permutations=None,
            adapter=adapter,
            versions=environment_versions(),
        )

    def explain_columns(
        self, rows: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64]]:
        X = self.matrix(rows)
        model = self.pipeline[-1]
        if self._hgb is not None and len(X) < FEW_ROWS:
            # A scoring request: the internal re-encoding once, the trees on one thread.
            values, output = self._hgb.explain_few(X)
            base = self._hgb.expected_value
        elif self._hgb is not None:
            values = self._hgb.shap_values(X)
            base = self._hgb.expected_value
            # The model's own output, for the additivity check, on the OpenMP threads this
            # process may use (a worker's budget: WORKER_THREADS x concurrency <= cores). HGB
            # opens one parallel region per tree, so oversubscribed threads would wait for each
            # other at every tree; within the budget the threads do help.
            output = np.asarray(model.decision_function(X), dtype=np.float64)
        else:
            assert self._shap is not None
            if len(X) < FEW_ROWS:
                # As for HGB: one shap call over the forest instead of one per tree.
                values = np.asarray(self._shap.shap_values(X, check_additivity=False), dtype=np.float64)[..., 1]
            else:
                total = np.zeros(X.shape[::-1])
                explain_by_patterns(self._forest, X, total)
                values = total.T
            base = float(np.ravel(self._shap.expected_value)[1])
            output = np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)
        return np.ascontiguousarray(values, dtype=np.float64), base, output


class _LinearExplainer(ModelExplainer):
    """Exact interventional SHAP for logistic regression, against a background sample."""

    kind = _LINEAR

    def __init__(
        self, pipeline: Pipeline, spec: TrainingSpec, *, background: pd.DataFrame, seed: int
    ) -> None:
        super().__init__(pipeline, spec)
        model = pipeline[-1]
        if not isinstance(model, LogisticRegression):
            raise ExplanationError(f"no linear explainer for {type(model).__name__}")
        self.column_features = tuple(feature_names_map(pipeline))
        self.background = preprocessed_matrix(pipeline, spec, background)
        # max_samples = all rows: Independent would otherwise quietly resample above 100.
        masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        self._shap = shap.LinearExplainer(model, masker)
        self.fingerprint = ExplainerFingerprint(
            algorithm=spec.algorithm,
            explainer="shap.LinearExplainer",
            feature_perturbation="interventional",
            output_space=OUTPUT_LOG_ODDS,
            input_space="preprocessed",
            exact=True,
            background_sha256=matrix_sha256(self.background),
            background_size=len(self.background),
            seed=seed,
            permutations=None,
            adapter=None,
            versions=environment_versions(),
        )

    def explain_columns(
        self, rows: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64]]:
        X = self.matrix(rows)
        values = np.asarray(self._shap.shap_values(X), dtype=np.float64)
        base = float(np.ravel(self._shap.expected_value)[0])
        output = np.asarray(self.pipeline[-1].decision_function(X), dtype=np.float64)
        return np.ascontiguousarray(values), base, output


def needs_background(algorithm: str) -> bool:
    """Whether ``algorithm``'s explainer uses a background sample (path-dependent TreeSHAP does not)."""
    if algorithm not in _KIND:
        raise ExplanationError(f"no explainer for algorithm {algorithm!r}")
    return _KIND[algorithm] != _TREE


def make_explainer(
    pipeline: Pipeline,
    spec: TrainingSpec,
    *,
    background: pd.DataFrame | None = None,
    options: ExplainOptions | None = None,
) -> ModelExplainer:
    """Return the explainer for ``spec.algorithm`` (see the module docstring for which).

    ``background`` holds raw rows (as stored, e.g. the training rows); it is required by the
    linear and permutation explainers, sampled down to ``options.background_size`` rows with
    ``options.seed``, and ignored by tree explainers. Raises :class:`ExplanationError` for a
    missing background or a model the algorithm's explainer cannot handle exactly.
    """
    options = options or ExplainOptions()
    kind = _KIND.get(spec.algorithm)
    if kind is None:
        raise ExplanationError(f"no explainer for algorithm {spec.algorithm!r}")
    if kind == _TREE:
        try:
            return _TreeExplainer(pipeline, spec, seed=options.seed)
        except ValueError as exc:
            raise ExplanationError(str(exc)) from exc
    if background is None:
        raise ExplanationError(f"{spec.algorithm} explanations need a background sample of rows")
    sample = select_background(background, size=options.background_size, seed=options.seed)
    if kind == _LINEAR:
        return _LinearExplainer(pipeline, spec, background=sample, seed=options.seed)
    return FeaturePermutationExplainer(
        pipeline, spec, background=sample, seed=options.seed, permutations=options.permutations
    )

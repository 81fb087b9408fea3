"""Trees explained once per split-direction pattern give shap's values for a whole ensemble.

The HGB adapter's cases are in test_explain_hgb.py; these are scikit-learn forests, which shap
loads itself and reads in float32 (as scikit-learn's trees compare).
"""

import numpy as np
import pytest
import shap
from sklearn.ensemble import RandomForestClassifier

from riskmodels.ml.explain.patterns import explain_by_patterns, forest_pattern_trees


def forest_values(model: RandomForestClassifier, X: np.ndarray) -> tuple[np.ndarray, int]:
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    trees = forest_pattern_trees(explainer, [e.tree_.node_count for e in model.estimators_], output=1)
    total = np.zeros(X.shape[::-1])
    explain_by_patterns(trees, X, total)  # in float32, as shap reads a forest's input
    data = X.astype(np.float32).astype(np.float64)
    shap_calls = sum(len(tree.patterns(np.ascontiguousarray(data.T))[0]) for tree in trees)
    return total.T, shap_calls


@pytest.mark.parametrize("depth", [3, 6, None], ids=["depth-3", "depth-6", "full-depth"])
def test_forest_values_equal_one_shap_call_over_the_whole_forest(depth):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=8, max_depth=depth, random_state=0).fit(X, y)
    rows = X[:1500].copy()
    # Values a hair above a threshold in float64 that float32 rounds onto it: the direction
    # must be the one shap (and scikit-learn) take after the cast.
    tree = model.estimators_[0].tree_
    for i, node in enumerate(np.flatnonzero(tree.children_left >= 0)[:20]):
        rows[i, tree.feature[node]] = np.nextafter(tree.threshold[node], np.inf)

    values, shap_calls = forest_values(model, rows)

    direct = np.asarray(shap.TreeExplainer(model).shap_values(rows, check_additivity=False))[..., 1]
    assert np.max(np.abs(values - direct)) <= 1e-12
    if depth == 3:
        assert shap_calls <= 8 * 2**7  # at most 128 patterns per tree, whatever the rows
    output = model.predict_proba(rows)[:, 1]
    base = float(np.ravel(shap.TreeExplainer(model).expected_value)[1])
    assert np.max(np.abs(values.sum(axis=1) + base - output)) <= 1e-9

"""Trees explained once per split-direction pattern, or through path tables, give shap's values.

The HGB adapter's cases are in test_explain_hgb.py; these are scikit-learn forests, which shap
loads itself and reads in float32 (as scikit-learn's trees compare).
"""

import itertools
import math

import numpy as np
import pytest
import shap
from sklearn.ensemble import RandomForestClassifier

from riskmodels.ml.explain.patterns import _leaf_table, explain_by_patterns, forest_pattern_trees


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


# --- path tables -----------------------------------------------------------------------------

def brute_force_shapley(zero: np.ndarray, ones: np.ndarray, value: float) -> np.ndarray:
    """Shapley values of S -> value * prod_j (ones_j if j in S else zero_j), by enumerating every S."""
    d = len(zero)

    def game(members: frozenset[int]) -> float:
        return value * float(np.prod([ones[j] if j in members else zero[j] for j in range(d)]))

    out = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for size in range(d):
            weight = math.factorial(size) * math.factorial(d - 1 - size) / math.factorial(d)
            for subset in itertools.combinations(others, size):
                out[i] += weight * (game(frozenset(subset) | {i}) - game(frozenset(subset)))
    return out


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_a_leaf_table_holds_the_shapley_values_of_its_path_game_for_every_pattern(d):
    rng = np.random.default_rng(d)
    zero, value = rng.uniform(0.05, 1.0, size=d), float(rng.normal())

    table = _leaf_table(zero, value)

    assert table.shape == (2**d, d)
    for pattern in range(2**d):
        ones = np.array([(pattern >> j) & 1 for j in range(d)], dtype=float)
        assert np.allclose(table[pattern], brute_force_shapley(zero, ones, value), rtol=0, atol=1e-14)


def test_a_shallow_forest_goes_through_its_path_tables_and_gives_shaps_values():
    # Three features and depth 7: every path repeats features; missing values take the default child.
    rng = np.random.default_rng(9)
    X = rng.normal(size=(6000, 3))
    y = (X[:, 0] * X[:, 1] + X[:, 2] + rng.normal(scale=0.3, size=6000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=6, max_depth=7, random_state=0).fit(X, y)
    rows = X[:3000].copy()
    rows[::37, 1] = np.nan
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    trees = forest_pattern_trees(explainer, [e.tree_.node_count for e in model.estimators_], output=1)

    total = np.zeros(rows.shape[::-1])
    explain_by_patterns(trees, rows, total)

    assert all("paths" in tree.__dict__ and tree.paths is not None for tree in trees)  # built and used
    direct = np.asarray(shap.TreeExplainer(model).shap_values(rows, check_additivity=False))[..., 1]
    assert np.max(np.abs(total.T - direct)) <= 1e-12


def test_a_tree_with_too_many_features_on_a_path_has_no_tables_and_is_explained_by_patterns():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4000, 12))
    y = (X.sum(axis=1) + rng.normal(scale=0.3, size=4000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=2, max_depth=None, random_state=0).fit(X, y)
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    trees = forest_pattern_trees(explainer, [e.tree_.node_count for e in model.estimators_], output=1)

    assert all(tree.paths is None for tree in trees)  # paths of more than 8 distinct features
    total = np.zeros((12, 500))
    explain_by_patterns(trees, X[:500], total)
    direct = np.asarray(shap.TreeExplainer(model).shap_values(X[:500], check_additivity=False))[..., 1]
    assert np.max(np.abs(total.T - direct)) <= 1e-12

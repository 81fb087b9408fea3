"""The HGB adapter explains each tree once per distinct split-direction pattern, or through its
path tables: same values as one shap call over the whole ensemble, whatever the tree size,
missing values, ties at the thresholds, and categories (known, unknown, missing)."""

import numpy as np
import pytest
import shap
from sklearn.ensemble import HistGradientBoostingClassifier

from riskmodels.ml.explain.hgb import HGBTreeShap
from riskmodels.ml.explain.internals import hgb_trees


def numeric_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) + rng.normal(size=n) > 0)
    return X, y.astype(int)


def categorical_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two categorical columns (0 and 2) and a numeric one; rows to explain with missing and unseen categories."""
    rng = np.random.default_rng(seed)
    n = 4000
    X = np.column_stack([rng.integers(0, 12, n).astype(float), rng.normal(size=n), rng.integers(0, 5, n)])
    y = (np.isin(X[:, 0], [1, 4, 7, 9]) ^ (X[:, 1] > 0.3) ^ (X[:, 2] == 2)).astype(int)
    rows = X[:1500].copy()
    rows[::7, 0] = np.nan  # missing category
    rows[1::11, 0] = 40  # a category never seen in training
    rows[2::13, 2] = np.nan
    rows[3::5, 1] = np.nan
    return X, y.astype(int), rows


def ensemble_values(explainer: HGBTreeShap, X: np.ndarray) -> np.ndarray:
    """One shap call per group over all of its trees: what the adapter did before patterns."""
    internal = explainer.internal_matrix(X)
    total = sum(group.explainer.shap_values(explainer.group_matrix(group, internal), check_additivity=False)
                for group in explainer.groups)
    out = np.empty_like(total)
    out[:, explainer._internal_to_input] = total
    return out


def with_threshold_ties(model: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    """Put some split thresholds into the rows, so that ``x <= threshold`` ties are explained too."""
    X = X.copy()
    tree = hgb_trees(model)[0]
    internal = np.flatnonzero(~tree.is_leaf)
    for i, node in enumerate(internal):
        X[i :: len(internal) + 1, tree.feature_idx[node]] = tree.num_threshold[node]
    return X


@pytest.mark.parametrize(("params", "nodes"), [
    ({"max_depth": 3}, (1, 7)),  # patterns numbered through a table
    ({"max_leaf_nodes": 31}, (17, 30)),  # through a sort of their numbers
    ({"max_leaf_nodes": 80, "min_samples_leaf": 5}, (63, 79)),  # every row its own pattern
], ids=["depth-3", "31-leaves", "80-leaves"])
def test_values_equal_one_shap_call_over_the_whole_ensemble(params, nodes):
    X, y = numeric_data(6000, seed=1)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0, **params).fit(X, y)
    explainer = HGBTreeShap(model)
    largest = max(len(tree.columns) for tree in explainer.groups[0].trees)
    assert nodes[0] <= largest <= nodes[1]  # the path this case is meant to take
    rows = with_threshold_ties(model, X[:2000])

    values = explainer.shap_values(rows)

    assert np.max(np.abs(values - ensemble_values(explainer, rows))) <= 1e-12
    # shap's own loader is right for numeric features: the same values from shap alone.
    direct = shap.TreeExplainer(model).shap_values(rows, check_additivity=False)
    assert np.max(np.abs(values - direct)) <= 1e-9
    output = model.decision_function(rows)
    assert np.max(np.abs(values.sum(axis=1) + explainer.expected_value - output)) <= 1e-9


def test_categorical_rows_with_unknown_and_missing_categories_get_the_ensembles_values():
    X, y, rows = categorical_data(4)
    model = HistGradientBoostingClassifier(max_iter=40, max_depth=4, categorical_features=[0, 2],
                                           random_state=0).fit(X, y)
    explainer = HGBTreeShap(model)

    values = explainer.shap_values(rows)

    assert np.max(np.abs(values - ensemble_values(explainer, rows))) <= 1e-12
    output = model.decision_function(rows)
    assert np.max(np.abs(values.sum(axis=1) + explainer.expected_value - output)) <= 1e-9


def test_categorical_trees_through_their_path_tables_get_the_ensembles_values(monkeypatch):
    from riskmodels.ml.explain import patterns

    monkeypatch.setattr(patterns, "_PATTERNS_PER_LEAF_BREAK_EVEN", 0)  # every tree through its tables
    X, y, rows = categorical_data(6)
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, categorical_features=[0, 2],
                                           random_state=0).fit(X, y)
    explainer = HGBTreeShap(model)

    values = explainer.shap_values(rows)

    trees = [tree for group in explainer.groups for tree in group.trees]
    assert all(tree.paths is not None for tree in trees)
    assert sum(tree.categorical.any() for tree in trees) >= 10  # category masks decide the tables' bits
    assert np.max(np.abs(values - ensemble_values(explainer, rows))) <= 1e-12
    output = model.decision_function(rows)
    assert np.max(np.abs(values.sum(axis=1) + explainer.expected_value - output)) <= 1e-9


def test_each_tree_is_explained_once_per_pattern_and_rows_share_their_patterns_values():
    X, y = numeric_data(6000, seed=2)
    model = HistGradientBoostingClassifier(max_iter=10, max_depth=3, random_state=0).fit(X, y)
    tree = HGBTreeShap(model).groups[0].trees[0]
    data = X[:3000]

    representatives, pattern = tree.patterns(np.ascontiguousarray(data.T))

    # A depth-3 tree has 7 internal nodes, so at most 2**7 direction patterns.
    assert len(representatives) <= 2 ** len(tree.columns) and len(representatives) < len(data)
    assert np.array_equal(pattern[representatives], np.arange(len(representatives)))
    each_row = tree.explainer.shap_values(data, check_additivity=False)
    shared = tree.explainer.shap_values(data[representatives], check_additivity=False)[pattern]
    assert np.array_equal(each_row, shared)

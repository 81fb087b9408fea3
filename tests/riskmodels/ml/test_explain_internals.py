"""riskmodels.ml.explain.internals reads scikit-learn's and shap's private tree structures: these
tests fail, saying what to re-check, as soon as a release changes what it reads."""

import numpy as np
import pytest
import shap
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from riskmodels.ml.explain import internals
from tests.pins import pinned

RECHECK = (
    "riskmodels/ml/explain/internals.py reads HistGradientBoosting's _predictors (TreePredictor.nodes, "
    "raw_left_cat_bitsets), _preprocessor, _bin_mapper.make_known_categories_bitsets() and "
    "_baseline_prediction, and shap's TreeExplainer.model arrays and threshold_types. Re-check each "
    "against the new release (and that category routing still follows the bitsets as in hgb.py's "
    "_routes), run tests/riskmodels/ml/test_explain_hgb.py and test_explain.py, then update this test "
    "and internals.CHECKED_VERSIONS."
)


@pytest.fixture(scope="module")
def categorical_model() -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=800), rng.integers(0, 6, 800).astype(float)])
    y = ((X[:, 0] > 0) ^ np.isin(X[:, 1], [1, 4])).astype(int)
    return HistGradientBoostingClassifier(max_iter=5, max_depth=3, categorical_features=[1], random_state=0).fit(X, y)


@pytest.mark.parametrize(("distribution", "installed"), [("scikit-learn", sklearn.__version__),
                                                         ("shap", shap.__version__)])
def test_the_libraries_are_the_releases_the_internals_were_checked_against(distribution, installed):
    assert installed == pinned(distribution), (
        f"{distribution} {installed} is installed but requirements.txt pins {pinned(distribution)}. {RECHECK}"
    )
    assert internals.CHECKED_VERSIONS[distribution] == pinned(distribution), (
        f"requirements.txt pins {distribution} {pinned(distribution)}; the internals were checked against "
        f"{internals.CHECKED_VERSIONS[distribution]}. {RECHECK}"
    )


def test_hgb_trees_keep_the_node_fields_the_adapter_reads(categorical_model):
    predictors = getattr(categorical_model, "_predictors", None)
    assert isinstance(predictors, list) and all(isinstance(i, list) and len(i) == 1 for i in predictors), (
        f"HGB's _predictors is no longer a list of one-tree-per-class lists. {RECHECK}"
    )
    fields = predictors[0][0].nodes.dtype.fields or {}
    kinds = {"is_leaf": "u", "is_categorical": "u", "feature_idx": "i", "bitset_idx": "u",
             "missing_go_to_left": "u", "left": "u", "right": "u", "num_threshold": "f", "value": "f",
             "count": "u"}
    wrong = {name: (fields[name][0].str if name in fields else "missing") for name, kind in kinds.items()
             if name not in fields or fields[name][0].kind != kind}
    assert not wrong, f"TreePredictor.nodes fields changed: {wrong}. {RECHECK}"
    bitsets = predictors[0][0].raw_left_cat_bitsets
    assert bitsets.dtype == np.uint32 and bitsets.shape[1:] == (8,), (
        f"raw_left_cat_bitsets is {bitsets.dtype} {bitsets.shape}, not uint32 rows of 8 words. {RECHECK}"
    )


def test_hgb_trees_as_plain_arrays_reproduce_the_models_raw_predictions(categorical_model):
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 8, 300).astype(float)])  # 6, 7: unseen
    X[::9, 1] = np.nan
    internal = internals.hgb_preprocessor(categorical_model).transform(X)
    known, f_idx_map = internals.hgb_known_categories(categorical_model)
    total = np.full(len(X), internals.hgb_baseline(categorical_model))

    for tree in internals.hgb_trees(categorical_model):
        for r, row in enumerate(internal):
            node = 0
            while not tree.is_leaf[node]:
                x = row[tree.feature_idx[node]]
                if np.isnan(x):
                    left = tree.missing_go_to_left[node]
                elif tree.is_categorical[node]:
                    bit = lambda words, c: bool((words[int(c) // 32] >> np.uint32(int(c) % 32)) & 1)  # noqa: E731
                    if bit(known[f_idx_map[tree.feature_idx[node]]], x):
                        left = bit(tree.left_cat_bitsets[tree.bitset_idx[node]], x)
                    else:
                        left = tree.missing_go_to_left[node]  # unknown categories follow missing values
                else:
                    left = x <= tree.num_threshold[node]
                node = tree.left[node] if left else tree.right[node]
            total[r] += tree.value[node]

    assert np.allclose(total, categorical_model.decision_function(X), atol=1e-12), (
        f"walking the trees as internals.py reads them no longer gives HGB's own output. {RECHECK}"
    )


def test_hgb_puts_the_categorical_columns_first_in_its_internal_matrix(categorical_model):
    preprocessor = internals.hgb_preprocessor(categorical_model)

    assert isinstance(preprocessor, ColumnTransformer), f"HGB's _preprocessor is {type(preprocessor)}. {RECHECK}"
    order = sorted(((preprocessor.output_indices_[name].start, np.flatnonzero(mask).tolist())
                    for name, transformer, mask in preprocessor.transformers_ if transformer != "drop"))
    assert [columns for _, columns in order if columns] == [[1], [0]], (
        f"HGB's internal column layout changed: {order}. {RECHECK}"
    )
    assert [t.n_leaves for t in internals.hgb_trees(categorical_model)] == [
        p.get_n_leaf_nodes() for [p] in categorical_model._predictors
    ]


def test_shap_keeps_its_tree_arrays_and_honours_categorical_node_types():
    # One categorical split: ids whose bit is set in the mask 2.0 (only id 2) go left.
    tree = {
        "children_left": np.array([1, -1, -1]), "children_right": np.array([2, -1, -1]),
        "children_default": np.array([2, -1, -1]), "features": np.array([0, -2, -2]),
        "thresholds": np.array([2.0, 0.0, 0.0]), "values": np.array([[0.0], [1.0], [0.0]]),
        "node_sample_weight": np.array([2.0, 1.0, 1.0]),
    }
    explainer = internals.tree_explainer([tree], [np.array([1, 0, 0], dtype=np.int32)], base_offset=0.0,
                                         tree_output="raw_value", input_dtype=np.float64)

    values = explainer.shap_values(np.array([[1.0], [2.0]]), check_additivity=False)

    # Read as a numeric split, 1.0 <= 2.0 would go left too: then both rows would get +0.5.
    assert values[:, 0].tolist() == [-0.5, 0.5], f"shap no longer reads threshold_types == 1 as a category mask. {RECHECK}"
    assert internals.shap_input_dtype(explainer) == np.float64
    assert internals.shap_tree_output(explainer) == "raw_value"


def test_trees_read_back_from_shaps_loader_are_the_forests_trees():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    model = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")

    loaded = internals.shap_loaded_trees(explainer, [e.tree_.node_count for e in model.estimators_], output=1)

    for (tree, types), estimator in zip(loaded, model.estimators_, strict=True):
        assert np.array_equal(tree["children_left"], estimator.tree_.children_left), f"shap's tree arrays changed. {RECHECK}"
        assert np.array_equal(tree["features"][tree["children_left"] >= 0],
                              estimator.tree_.feature[estimator.tree_.children_left >= 0]), RECHECK
        assert tree["values"].shape == (estimator.tree_.node_count, 1) and not types.any(), RECHECK


def test_hgb_raw_predict_on_the_internal_matrix_is_decision_function_to_the_bit(categorical_model):
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=50), rng.integers(-1, 8, 50).astype(float)])  # -1 and 6, 7: unseen
    X[::7, 0] = np.nan
    X[::5, 1] = np.nan
    internal = internals.hgb_preprocessor(categorical_model).transform(X)
    raw = internals.hgb_raw_predict(categorical_model, np.asarray(internal, dtype=np.float64))
    assert np.array_equal(raw, categorical_model.decision_function(X)), RECHECK


def test_hgb_category_codes_are_what_its_preprocessor_maps_to_positions(categorical_model):
    from riskmodels.ml.explain.hgb import HGBTreeShap

    codes = internals.hgb_category_codes(categorical_model)
    assert [c.tolist() for c in codes] == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]], RECHECK
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=40), rng.integers(-1, 8, 40).astype(float)])
    X[::6, 1] = np.nan
    adapter = HGBTreeShap(categorical_model)
    expected = internals.hgb_preprocessor(categorical_model).transform(X)
    assert np.array_equal(adapter.internal_matrix(X), expected, equal_nan=True), RECHECK
    values, output = adapter.explain_few(X)
    assert np.array_equal(output, categorical_model.decision_function(X))
    assert np.allclose(values, adapter._values(expected), rtol=0, atol=1e-12)

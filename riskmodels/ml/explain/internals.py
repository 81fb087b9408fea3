"""Read the private tree structures of scikit-learn and shap: every such access is in this module.

Exact SHAP values for our HistGradientBoosting models need their trees as fitted (category
bitsets, the internal column order), which scikit-learn keeps only in private attributes, and
shap's exact TreeSHAP takes such trees only through its internal tree format (a dict of node
arrays, with ``threshold_types`` marking categorical nodes). Neither library offers a public way,
and shap's own HGB converter gets categorical models wrong (see :mod:`.hgb`).

So the rest of :mod:`riskmodels.ml.explain` sees plain arrays and calls only these functions.
They hold for the versions in :data:`CHECKED_VERSIONS`, which equal the pins in requirements.txt;
``tests/riskmodels/ml/test_explain_internals.py`` fails, naming what to re-check, when either
library changes what is read here. Every report's additivity check against the model's own
``decision_function`` / ``predict_proba`` is the second line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = [
    "CHECKED_VERSIONS",
    "HGBTree",
    "hgb_baseline",
    "hgb_known_categories",
    "hgb_category_codes",
    "hgb_preprocessor",
    "hgb_raw_predict",
    "hgb_trees",
    "shap_input_dtype",
    "shap_loaded_trees",
    "shap_tree_output",
    "tree_explainer",
]

# The library versions whose internals this module was written against (and re-checked for).
CHECKED_VERSIONS = {"scikit-learn": "1.9.1", "shap": "0.51.0"}


# -- scikit-learn: HistGradientBoosting -------------------------------------------------------


@dataclass(frozen=True)
class HGBTree:
    """One fitted HistGradientBoosting tree as plain arrays, one entry per node.

    ``left_cat_bitsets[bitset_idx[i]]`` holds, as 8 uint32 words, the raw categories (0..255)
    that categorical node ``i`` sends left.
    """

    is_leaf: npt.NDArray[np.bool_]
    is_categorical: npt.NDArray[np.bool_]
    feature_idx: npt.NDArray[np.int64]  # a column of the model's internal matrix
    bitset_idx: npt.NDArray[np.int64]
    missing_go_to_left: npt.NDArray[np.bool_]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    num_threshold: npt.NDArray[np.float64]
    value: npt.NDArray[np.float64]
    count: npt.NDArray[np.float64]
    left_cat_bitsets: npt.NDArray[np.uint32]
    n_leaves: int
    max_depth: int


def _plain_tree(predictor: Any) -> HGBTree:
    nodes = predictor.nodes
    return HGBTree(
        is_leaf=nodes["is_leaf"].astype(bool),
        is_categorical=nodes["is_categorical"].astype(bool),
        feature_idx=nodes["feature_idx"].astype(np.int64),
        bitset_idx=nodes["bitset_idx"].astype(np.int64),
        missing_go_to_left=nodes["missing_go_to_left"].astype(bool),
        left=nodes["left"].astype(np.int64),
        right=nodes["right"].astype(np.int64),
        num_threshold=nodes["num_threshold"].astype(np.float64),
        value=nodes["value"].astype(np.float64),
        count=nodes["count"].astype(np.float64),
        left_cat_bitsets=np.asarray(predictor.raw_left_cat_bitsets, dtype=np.uint32),
        n_leaves=int(predictor.get_n_leaf_nodes()),
        max_depth=int(predictor.get_max_depth()),
    )


def hgb_trees(model: HistGradientBoostingClassifier) -> list[HGBTree]:
    """Return every tree of a fitted model, iteration by iteration (``_predictors``)."""
    return [_plain_tree(predictor) for iteration in model._predictors for predictor in iteration]


def hgb_preprocessor(model: HistGradientBoostingClassifier) -> ColumnTransformer | None:
    """Return the transformer that re-encodes categories (categorical columns first), or None."""
    return model._preprocessor


def hgb_known_categories(
    model: HistGradientBoostingClassifier,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.intp]]:
    """Return the bitsets of categories seen in training and, per internal column, its row in them."""
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    return np.asarray(known, dtype=np.uint32), np.asarray(f_idx_map, dtype=np.intp)


def hgb_category_codes(model: HistGradientBoostingClassifier) -> list[npt.NDArray[np.float64]] | None:
    """Return, per categorical input column (in input order), the sorted values HGB's encoder learned.

    The internal ``_preprocessor`` maps a categorical value to its position among these (NaN for
    a value it never saw, or a missing one). None when the model has no categorical columns or
    learned a missing value as a category (then only the preprocessor itself knows the order).
    """
    preprocessor = model._preprocessor
    if preprocessor is None:
        return None
    encoder = preprocessor.named_transformers_["encoder"]
    codes = [np.asarray(c, dtype=np.float64) for c in encoder.categories_]
    if any(np.isnan(c).any() for c in codes):
        return None
    return codes


def hgb_raw_predict(model: HistGradientBoostingClassifier, internal: npt.NDArray[np.float64]
                    ) -> npt.NDArray[np.float64]:
    """Return the model's raw output (log-odds) for rows of its internal matrix, on one thread.

    The same operations, in the same order, as ``decision_function`` after its preprocessing
    (``_raw_predict``): the baseline, then each iteration's tree added in turn.
    """
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    raw = np.zeros((internal.shape[0], 1), dtype=model._baseline_prediction.dtype, order="F")
    raw += model._baseline_prediction
    for predictors in model._predictors:
        raw[:, 0] += predictors[0].predict(internal, known_cat_bitsets=known, f_idx_map=f_idx_map, n_threads=1)
    return raw[:, 0]


def hgb_baseline(model: HistGradientBoostingClassifier) -> float:
    """Return the log-odds every prediction starts from before the trees add theirs."""
    return float(np.ravel(model._baseline_prediction)[0])


# -- shap: the TreeSHAP tree format -------------------------------------------------------------


def tree_explainer(trees: Sequence[dict[str, Any]], types_per_tree: Sequence[npt.NDArray[np.int32]], *,
                   base_offset: float, tree_output: str, input_dtype: Any) -> shap.TreeExplainer:
    """Return shap's path-dependent TreeSHAP for trees in shap's dict format, node types included.

    ``types_per_tree[t][i] == 1`` marks node ``i`` as categorical: its threshold is then a mask
    of category ids ``1..24`` (bit ``id - 1``) that go left.
    """
    explainer = shap.TreeExplainer(
        {
            "trees": list(trees),
            "base_offset": base_offset,
            "tree_output": tree_output,
            "input_dtype": input_dtype,
            "internal_dtype": np.float64,
        },
        feature_perturbation="tree_path_dependent",
    )
    # shap's dict loader resets threshold_types to numeric; set the categorical nodes back.
    for i, types in enumerate(types_per_tree):
        explainer.model.threshold_types[i, : len(types)] = types
        explainer.model.trees[i].threshold_types = types
    return explainer


def shap_input_dtype(explainer: shap.TreeExplainer) -> Any:
    """Return the type shap casts rows to before comparing them with thresholds."""
    return explainer.model.input_dtype


def shap_tree_output(explainer: shap.TreeExplainer) -> str:
    """Return what shap's trees output (e.g. ``"raw_value"``, ``"log_odds"``, ``"probability"``)."""
    return explainer.model.tree_output


def shap_loaded_trees(explainer: shap.TreeExplainer, node_counts: Sequence[int], *,
                      output: int) -> list[tuple[dict[str, Any], npt.NDArray[np.int32]]]:
    """Return each tree of an explainer built by shap's own loader, in shap's dict format, one output.

    With each tree come its node types; ``node_counts`` are the trees' node counts (shap pads
    its arrays to the largest tree). The arrays are shap's as loaded (for a scikit-learn forest:
    class fractions scaled by 1/trees).
    """
    model = explainer.model
    trees = []
    for t, n in enumerate(node_counts):
        tree = {
            "children_left": model.children_left[t, :n].copy(),
            "children_right": model.children_right[t, :n].copy(),
            "children_default": model.children_default[t, :n].copy(),
            "features": model.features[t, :n].copy(),
            "thresholds": model.thresholds[t, :n].astype(np.float64),
            "values": model.values[t, :n, output : output + 1].astype(np.float64),
            "node_sample_weight": model.node_sample_weight[t, :n].astype(np.float64),
        }
        trees.append((tree, model.threshold_types[t, :n].astype(np.int32)))
    return trees

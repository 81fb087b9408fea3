"""Explain each tree of an ensemble once per distinct split-direction pattern of the rows.

Path-dependent TreeSHAP reads a row only through the direction it takes at each of a tree's
internal nodes (shap's ``tree_shap_recursive`` walks every node, and the row decides only which
child is "hot"). Rows with the same directions at every node of a tree get the same values from
that tree, to the bit. So each tree is explained once per distinct direction pattern among the
rows, by shap, on one representative row each, and the values are given to every row of the
pattern: a tree of depth 3 has at most 128 patterns however many rows there are. The trees'
values are then added up in tree order; shap adds them inside one call, so the sums agree with a
single shap call to rounding (about 1e-14), not to the bit.

The directions are computed here exactly as shap's C++ computes them, on the matrix shap reads
(after its cast to the model's input type): NaN takes the default child; a numeric node sends
``x <= threshold`` left; a categorical node (``threshold_types == 1``) sends the ids whose bit is
set in its mask left. A row given another row's pattern would break additivity against the
model's own output, which every report checks against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shap

__all__ = ["PatternTree", "explain_by_patterns", "forest_pattern_trees", "pattern_tree", "tree_explainer"]

# Trees with at most this many internal nodes number their patterns through a lookup table
# (2**16 entries); deeper ones sort the numbers; beyond 62 nodes every row is its own pattern.
_TABLE_BITS = 16
_CODE_BITS = 62


@dataclass(frozen=True)
class PatternTree:
    """One tree on its own, with what decides a row's direction at each of its internal nodes."""

    explainer: shap.TreeExplainer  # this tree alone (no base offset), one output
    columns: npt.NDArray[np.intp]  # the column each internal node splits on
    thresholds: npt.NDArray[np.float64]  # numeric threshold, or the category mask (categorical)
    categorical: npt.NDArray[np.bool_]
    default_left: npt.NDArray[np.bool_]  # where a missing value goes
    used: npt.NDArray[np.intp]  # the distinct columns it splits on: its only non-zero values
    shifts: npt.NDArray[np.int64]  # i for internal node i

    def patterns(self, columns: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Return (one row of each distinct direction pattern, each row's pattern number).

        ``columns`` is the data transposed (one C-contiguous row per column of the matrix).
        """
        x = columns[self.columns]  # (internal nodes, rows)
        left = x <= self.thresholds[:, None]
        if self.categorical.any():
            # shap: 1 << (int(category) - 1) & int(threshold); ids are 1..24, NaN is missing.
            ids = np.nan_to_num(x[self.categorical], nan=1.0).astype(np.int64)
            masks = self.thresholds[self.categorical].astype(np.int64)[:, None]
            left[self.categorical] = ((masks >> (ids - 1)) & 1).astype(bool)
        missing = np.isnan(x)
        if missing.any():
            left = np.where(missing, self.default_left[:, None], left)
        k, n = left.shape
        if k > _CODE_BITS:
            # Too many nodes to number (a deep tree): its patterns are nearly all distinct anyway
            # (a forest of depth 12 on 5,000 rows: 5,000), so each row stands for itself.
            every = np.arange(n, dtype=np.intp)
            return every, every
        # Each row's directions as one integer: bit i is node i. (Integer arithmetic, not a
        # float product: BLAS would start threads that then spin beside the worker's own.)
        codes = (left.astype(np.int64) << self.shifts[:, None]).sum(axis=0)
        if k > _TABLE_BITS:
            _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
            return first, inverse.reshape(-1)
        seen = np.zeros(1 << k, dtype=bool)
        seen[codes] = True
        distinct = np.flatnonzero(seen)
        number = np.empty(1 << k, dtype=np.intp)
        number[distinct] = np.arange(len(distinct), dtype=np.intp)
        pattern = number[codes]
        representative = np.empty(len(distinct), dtype=np.intp)
        representative[pattern] = np.arange(n, dtype=np.intp)  # any row of a pattern will do
        return representative, pattern


def tree_explainer(trees: Sequence[dict[str, Any]], types_per_tree: Sequence[npt.NDArray[np.int32]], *,
                   base_offset: float, tree_output: str, input_dtype: Any) -> shap.TreeExplainer:
    """Return shap's path-dependent TreeSHAP for trees in shap's dict format, node types included."""
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


def pattern_tree(tree: dict[str, Any], types: npt.NDArray[np.int32], *, tree_output: str,
                 input_dtype: Any) -> PatternTree:
    """Return one tree (shap's dict format) ready to be explained by patterns."""
    internal = np.flatnonzero(tree["children_left"] >= 0)
    columns = tree["features"][internal].astype(np.intp)
    return PatternTree(
        explainer=tree_explainer([tree], [types], base_offset=0.0, tree_output=tree_output, input_dtype=input_dtype),
        columns=columns,
        thresholds=np.asarray(tree["thresholds"][internal], dtype=np.float64),
        categorical=types[internal] == 1,
        default_left=tree["children_default"][internal] == tree["children_left"][internal],
        used=np.unique(columns),
        shifts=np.arange(len(internal), dtype=np.int64),
    )


def forest_pattern_trees(explainer: shap.TreeExplainer, node_counts: Sequence[int], *,
                         output: int) -> tuple[PatternTree, ...]:
    """Return the trees of a shap explainer built by shap's own loader, one output each.

    The trees keep shap's arrays as loaded (for a scikit-learn forest: class fractions scaled
    by 1/trees) and the loader's input type, so each tree reads what the whole explainer reads.
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
        trees.append(pattern_tree(tree, model.threshold_types[t, :n].astype(np.int32),
                                  tree_output=model.tree_output, input_dtype=model.input_dtype))
    return tuple(trees)


def explain_by_patterns(trees: Sequence[PatternTree], data: npt.NDArray[np.float64],
                        total: npt.NDArray[np.float64]) -> None:
    """Add the trees' SHAP values for the rows of ``data`` to ``total`` (one row per column).

    Directions are taken on the matrix shap reads: ``data`` in the trees' input type (float32
    for scikit-learn's forests, which compare float32 values with float64 thresholds).
    """
    if trees:
        data = data.astype(trees[0].explainer.model.input_dtype, copy=False).astype(np.float64, copy=False)
    columns = np.ascontiguousarray(data.T)
    for tree in trees:
        representatives, pattern = tree.patterns(columns)
        values = tree.explainer.shap_values(data[representatives], check_additivity=False)
        for column in tree.used:
            total[column] += values[:, column].take(pattern)

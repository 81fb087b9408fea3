"""Explain each tree of an ensemble once per distinct split-direction pattern of the rows.

Path-dependent TreeSHAP reads a row only through the direction it takes at each of a tree's
internal nodes (shap's ``tree_shap_recursive`` walks every node, and the row decides only which
child is "hot"). Rows with the same directions at every node of a tree get the same values from
that tree, to the bit. So each tree is explained once per distinct direction pattern among the
rows, by shap, on one representative row each, and the values are given to every row of the
pattern: a tree of depth 3 has at most 128 patterns however many rows there are. The trees'
values are then added up in tree order; shap adds them inside one call, so the sums agree with a
single shap call to rounding (about 1e-14), not to the bit.

Where rows seldom share a whole-tree pattern (a forest of depth 6 has nearly as many patterns as
rows) but paths are short, a tree goes through its path tables instead (``PathTables``):
each leaf's values tabulated once for every way a row can agree with its path, so a row costs a
lookup per leaf. Both give shap's values to rounding; ``explain_by_patterns`` picks per tree.

The directions are computed here exactly as shap's C++ computes them, on the matrix shap reads
(after its cast to the model's input type): NaN takes the default child; a numeric node sends
``x <= threshold`` left; a categorical node (``threshold_types == 1``) sends the ids whose bit is
set in its mask left. A row given another row's pattern would break additivity against the
model's own output, which every report checks against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import shap

from riskmodels.ml.explain.internals import shap_input_dtype, shap_loaded_trees, shap_tree_output, tree_explainer

__all__ = ["PathTables", "PatternTree", "explain_by_patterns", "forest_pattern_trees", "pattern_tree"]

# Trees with at most this many internal nodes number their patterns through a lookup table
# (2**16 entries); deeper ones sort the numbers; beyond 62 nodes every row is its own pattern.
_TABLE_BITS = 16
_CODE_BITS = 62
# Path tables (below) for trees whose paths have at most this many distinct features, and at
# most this many table entries (leaves x patterns of a path x its features) per tree.
_PATH_MAX_FEATURES = 8
_PATH_MAX_ENTRIES = 1 << 18
# A tree's rows go through its path tables when they have more than this many patterns per
# leaf, else through shap once per pattern: tables cost about the same whatever the patterns,
# shap once per pattern grows with them (the break-even is measured in bench/README.md).
_PATTERNS_PER_LEAF_BREAK_EVEN = 16


@dataclass(frozen=True)
class PathTables:
    """A tree's SHAP values, leaf by leaf, for every way a row can agree with the leaf's path.

    Path-dependent TreeSHAP is a sum over leaves: a leaf ``l`` of value ``v`` adds the Shapley
    values of the game ``S -> v * prod_j (o_j if j in S else z_j)`` over the distinct features
    ``j`` of its path, where ``z_j`` is the product of the cover fractions along the path at
    ``j``'s nodes and ``o_j`` is 1 if the row goes the path's way at all of them, else 0 (shap's
    ``extend_path`` / ``unwind_path`` compute exactly this, a repeated feature's fractions
    multiplied). Given the ``d`` bits ``o``, the values are fixed, so each leaf's values are
    tabulated once for its ``2**d`` patterns (the precomputation of Fast TreeSHAP v2, Yang
    2021), and a row costs a table lookup per leaf instead of shap's O(leaves x depth^2) walk.
    For a shallow forest, whose rows seldom share a whole-tree pattern, that is much cheaper; the
    values equal shap's to rounding.
    """

    nodes: npt.NDArray[np.intp]  # (leaves, k): the internal nodes on each leaf's path (padded)
    goes_left: npt.NDArray[np.bool_]  # (leaves, k): the path's direction at each
    on_path: npt.NDArray[np.bool_]  # (leaves, k): False for padding
    slots: npt.NDArray[np.uint8]  # (leaves, k): the bit of the node's feature in the leaf's pattern
    full: npt.NDArray[np.uint8]  # (leaves,): every bit of the leaf's pattern set
    pairs: tuple[tuple[int, int, npt.NDArray[np.float64]], ...]  # (column, leaf, value per pattern)

    @classmethod
    def build(cls, tree: dict[str, Any]) -> PathTables | None:
        """Tabulate a tree in shap's dict format (one output); None if it is too deep for tables."""
        left, right = tree["children_left"], tree["children_right"]
        cover, features = tree["node_sample_weight"], tree["features"]
        internal = np.flatnonzero(left >= 0)
        row_of = np.full(len(left), -1, dtype=np.intp)  # a node's row in the direction matrix
        row_of[internal] = np.arange(len(internal))
        paths: list[tuple[int, list[tuple[int, bool]]]] = []
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if left[node] < 0:
                if path:
                    paths.append((node, path))
                continue
            stack.append((int(left[node]), [*path, (node, True)]))
            stack.append((int(right[node]), [*path, (node, False)]))
        if not paths:
            return None
        distinct = [sorted({int(features[n]) for n, _ in path}) for _, path in paths]
        widest = max(len(d) for d in distinct)
        if widest > _PATH_MAX_FEATURES or sum((1 << len(d)) * len(d) for d in distinct) > _PATH_MAX_ENTRIES:
            return None
        k = max(len(path) for _, path in paths)
        shape = (len(paths), k)
        nodes, goes_left = np.zeros(shape, dtype=np.intp), np.ones(shape, dtype=bool)
        on_path, slots = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=np.uint8)
        full = np.zeros(len(paths), dtype=np.uint8)
        pairs: list[tuple[int, int, npt.NDArray[np.float64]]] = []
        for leaf, ((node, path), columns) in enumerate(zip(paths, distinct, strict=True)):
            slot = {c: i for i, c in enumerate(columns)}
            zero = np.ones(len(columns))
            for position, (parent, went_left) in enumerate(path):
                child = left[parent] if went_left else right[parent]
                zero[slot[int(features[parent])]] *= cover[child] / cover[parent] if cover[parent] > 0 else 0.0
                nodes[leaf, position], goes_left[leaf, position] = row_of[parent], went_left
                on_path[leaf, position], slots[leaf, position] = True, slot[int(features[parent])]
            full[leaf] = (1 << len(columns)) - 1
            table = _leaf_table(zero, float(tree["values"][node, 0]))
            pairs.extend((column, leaf, np.ascontiguousarray(table[:, i])) for i, column in enumerate(columns))
        return cls(nodes=nodes, goes_left=goes_left, on_path=on_path, slots=slots, full=full, pairs=tuple(pairs))

    def add(self, left: npt.NDArray[np.bool_], total: npt.NDArray[np.float64]) -> None:
        """Add the tree's values for rows whose directions are ``left`` (internal nodes, rows) to ``total``."""
        # Each row's pattern on each leaf's path: bit j set while it goes the path's way at
        # every node of the path's j-th feature. (leaves, rows), one byte each.
        codes = np.repeat(self.full[:, None], left.shape[1], axis=1)
        for position in range(self.nodes.shape[1]):
            strays = left[self.nodes[:, position]] != self.goes_left[:, position, None]
            strays &= self.on_path[:, position, None]
            codes &= ~(strays.view(np.uint8) << self.slots[:, position, None])
        for column, leaf, values in self.pairs:
            total[column] += values.take(codes[leaf])


def _leaf_table(zero: npt.NDArray[np.float64], value: float) -> npt.NDArray[np.float64]:
    """Return the Shapley values (2**d, d) of ``S -> value * prod_j (o_j if j in S else zero_j)`` for each o.

    Row ``p`` of the result is the pattern whose bit ``j`` is ``o_j``. For feature ``i``:
    ``value * (o_i - z_i) * sum_k k! (d-1-k)! / d! * c_k``, where ``c_k`` is the coefficient of
    ``t**k`` in ``prod_{j != i} (z_j + o_j t)``.
    """
    d = len(zero)
    ones = ((np.arange(1 << d)[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float64)
    weights = np.array([math.factorial(k) * math.factorial(d - 1 - k) / math.factorial(d) for k in range(d)])
    # coefficients[i, p, k]: of t**k in the product over j != i, for pattern p; all i at once.
    coefficients = np.zeros((d, 1 << d, d))
    coefficients[:, :, 0] = 1.0
    for j in range(d):
        raised = np.zeros_like(coefficients)
        raised[:, :, 1:] = coefficients[:, :, :-1]
        updated = zero[j] * coefficients + ones[None, :, j, None] * raised
        updated[j] = coefficients[j]  # feature j's own factor is left out of its product
        coefficients = updated
    return value * (ones - zero[None, :]) * (coefficients * weights).sum(axis=2).T


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
    input_dtype: Any  # the type shap casts rows to before comparing them with thresholds
    source: dict[str, Any] = field(repr=False, compare=False)  # the tree in shap's dict format

    @cached_property
    def paths(self) -> PathTables | None:
        """Return the tree's path tables, built on first use; None if it is too deep for them."""
        return PathTables.build(self.source)

    @cached_property
    def n_leaves(self) -> int:
        """Return the number of leaves."""
        return int((self.source["children_left"] < 0).sum())

    def patterns(self, columns: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Return (one row of each distinct direction pattern, each row's pattern number).

        ``columns`` is the data transposed (one C-contiguous row per column of the matrix).
        """
        return self.group(self.directions(columns))

    def directions(self, columns: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Return whether each row goes left at each internal node: (internal nodes, rows)."""
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
        return left

    def group(self, left: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Return (one row of each distinct direction pattern, each row's pattern number)."""
        k, n = left.shape
        if k > _CODE_BITS:
            # Too many nodes to number (a deep tree): its rows' patterns are nearly all distinct
            # anyway, so each row stands for itself.
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
        input_dtype=input_dtype,
        source=tree,
    )


def forest_pattern_trees(explainer: shap.TreeExplainer, node_counts: Sequence[int], *,
                         output: int) -> tuple[PatternTree, ...]:
    """Return the trees of a shap explainer built by shap's own loader, one output each.

    The trees keep shap's arrays as loaded (for a scikit-learn forest: class fractions scaled
    by 1/trees) and the loader's input type, so each tree reads what the whole explainer reads.
    """
    tree_output, input_dtype = shap_tree_output(explainer), shap_input_dtype(explainer)
    return tuple(pattern_tree(tree, types, tree_output=tree_output, input_dtype=input_dtype)
                 for tree, types in shap_loaded_trees(explainer, node_counts, output=output))


def explain_by_patterns(trees: Sequence[PatternTree], data: npt.NDArray[np.float64],
                        total: npt.NDArray[np.float64]) -> None:
    """Add the trees' SHAP values for the rows of ``data`` to ``total`` (one row per column).

    Directions are taken on the matrix shap reads: ``data`` in the trees' input type (float32
    for scikit-learn's forests, which compare float32 values with float64 thresholds). A tree
    whose rows show more than ``_PATTERNS_PER_LEAF_BREAK_EVEN`` patterns per leaf goes through
    its path tables (if it has them), any other through shap once per pattern.
    """
    if trees:
        data = data.astype(trees[0].input_dtype, copy=False).astype(np.float64, copy=False)
    columns = np.ascontiguousarray(data.T)
    for tree in trees:
        left = tree.directions(columns)
        representatives, pattern = tree.group(left)
        if len(representatives) > _PATTERNS_PER_LEAF_BREAK_EVEN * tree.n_leaves and tree.paths is not None:
            tree.paths.add(left, total)
            continue
        values = tree.explainer.shap_values(data[representatives], check_additivity=False)
        for column in tree.used:
            total[column] += values[:, column].take(pattern)

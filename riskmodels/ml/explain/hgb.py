"""Hand a fitted HistGradientBoostingClassifier to shap's exact TreeSHAP without losing its splits.

shap 0.51's own converter for ``HistGradientBoostingClassifier`` is only right for numeric
features. With ``categorical_features`` (which our pipelines set for every categorical column)
it gets two things wrong, and its values fail additivity by whole log-odds units:

* it reads ``num_threshold`` of categorical nodes and ignores their category bitsets, and
* it uses each node's ``feature_idx`` as a column of the caller's matrix, while HGB's nodes index
  the matrix of its internal ``_preprocessor``, which moves the categorical columns first.

This module rebuilds the trees for shap's C++ TreeSHAP, which does support categorical nodes
(``threshold_types == 1``, a bitmask of category ids ``1..24`` packed into the threshold), and
explains HGB's internal matrix, then puts the columns back in the caller's order. Categories a
tree routes identically at every node are merged into one id; the mask lives in a C ``float``,
so at most :data:`MAX_CATEGORY_GROUPS` ids per feature fit. When a feature needs more, the trees
are explained in groups, which is exact because path-dependent TreeSHAP values of an ensemble are
the sum of the values of its trees.

Each tree is explained once per distinct split-direction pattern of the rows
(:mod:`riskmodels.ml.explain.patterns`): rows that take the same directions share their values,
so shallow trees cost far less than one shap call over the whole ensemble (figures in
bench/README.md).

The fitted trees come from HGB's private attributes, read only through
:mod:`riskmodels.ml.explain.internals` (whose test names what to re-check when scikit-learn
changes); the additivity check against ``decision_function`` in every report is the second guard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shap
from sklearn.ensemble import HistGradientBoostingClassifier

from riskmodels.ml.explain.base import FEW_ROWS
from riskmodels.ml.explain.internals import (
    HGBTree,
    hgb_baseline,
    hgb_known_categories,
    hgb_category_codes,
    hgb_preprocessor,
    hgb_raw_predict,
    hgb_trees,
    tree_explainer,
)
from riskmodels.ml.explain.patterns import PatternTree, explain_by_patterns, pattern_tree

__all__ = ["MAX_CATEGORY_GROUPS", "HGBTreeShap", "UnsupportedTreeError"]

# shap's category_in_threshold() casts the mask to a C float: integers are exact below 2**24,
# so category ids 1..24 (bits 0..23) are the most one mask can hold.
MAX_CATEGORY_GROUPS = 24
# HGB reads raw categories as uint8 (max_bins <= 255), so 256 values cover every category.
_N_CATEGORY_VALUES = 256
_LEFT, _RIGHT = 0, 1


class UnsupportedTreeError(ValueError):
    """Report a tree whose categorical splits cannot be given to shap exactly."""


@dataclass(frozen=True)
class _Group:
    """Trees explained with one category-id table per categorical column (one mask per node)."""

    explainer: shap.TreeExplainer  # all the group's trees: its expected value
    trees: tuple[PatternTree, ...]
    # internal column -> array of 256 floats: the id (1..24) shap sees for each raw category,
    # NaN for categories routed like a missing value at every node of the group.
    category_ids: dict[int, npt.NDArray[np.float64]]


def _unpack(bitset: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """Return the 256 membership flags of a scikit-learn category bitset (8 uint32 words)."""
    words = np.asarray(bitset, dtype=np.uint32)
    return (((words[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(bool)).ravel()


class HGBTreeShap:
    """Compute exact path-dependent TreeSHAP values (log-odds) for a binary HGB classifier."""

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        if getattr(model, "n_trees_per_iteration_", 1) != 1:
            raise UnsupportedTreeError("only binary HistGradientBoostingClassifier models are supported")
        self._model = model
        self._preprocessor = hgb_preprocessor(model)
        self.n_features = int(model.n_features_in_)
        self._internal_to_input = self._column_order()
        hgb = hgb_trees(model)  # one tree per iteration: the model is binary
        self._known, self._f_idx_map = hgb_known_categories(model)
        self._codes = hgb_category_codes(model)
        self.base_offset = hgb_baseline(model)
        self.n_category_groups: dict[int, int] = {}
        tables = [self._tree_tables(tree) for tree in hgb]
        self._groups = [
            self._build_group(hgb, tables, trees, first=i == 0)
            for i, trees in enumerate(self._partition(tables))
        ]
        self.n_shap_calls = len(self._groups)
        self.expected_value = float(sum(float(np.ravel(g.explainer.expected_value)[0]) for g in self._groups))

    # -- layout --------------------------------------------------------------------------------

    def _column_order(self) -> npt.NDArray[np.intp]:
        """Return, for each column of HGB's internal matrix, the input column it comes from."""
        if self._preprocessor is None:
            return np.arange(self.n_features)
        parts = []
        for name, transformer, mask in self._preprocessor.transformers_:
            if transformer == "drop":
                continue
            span = self._preprocessor.output_indices_[name]
            columns = np.flatnonzero(np.asarray(mask))
            if span.stop - span.start != len(columns):  # pragma: no cover - sklearn layout changed
                raise UnsupportedTreeError("unexpected HistGradientBoosting preprocessor layout")
            parts.append((span.start, columns))
        # Output blocks in output order: scikit-learn 1.9 puts the categorical ("encoder") first.
        order = np.concatenate([columns for _, columns in sorted(parts, key=lambda part: part[0])])
        if sorted(order.tolist()) != list(range(self.n_features)):  # pragma: no cover
            raise UnsupportedTreeError("unexpected HistGradientBoosting preprocessor layout")
        return order

    # -- categorical routing -------------------------------------------------------------------

    def _routes(self, tree: HGBTree, node: int) -> npt.NDArray[np.int8]:
        """Return the direction of raw categories 0..255, then of a missing value, at a node.

        Mirrors scikit-learn's prediction from raw data: categories in the node's left bitset go
        left, other known categories go right, unknown ones follow missing values.
        """
        missing = _LEFT if tree.missing_go_to_left[node] else _RIGHT
        left = _unpack(tree.left_cat_bitsets[tree.bitset_idx[node]])
        known = _unpack(self._known[self._f_idx_map[tree.feature_idx[node]]])
        out = np.full(_N_CATEGORY_VALUES + 1, missing, dtype=np.int8)
        out[:-1][known] = _RIGHT
        out[:-1][left] = _LEFT
        return out

    def _tree_tables(self, tree: HGBTree) -> dict[int, npt.NDArray[np.int8]]:
        """Return, per internal column, a (257, nodes) table of routes of this tree's nodes."""
        rows: dict[int, list[npt.NDArray[np.int8]]] = {}
        for node in np.flatnonzero(~tree.is_leaf & tree.is_categorical):
            rows.setdefault(int(tree.feature_idx[node]), []).append(self._routes(tree, int(node)))
        return {column: np.stack(r, axis=1) for column, r in rows.items()}

    @staticmethod
    def _distinct_ids(table: npt.NDArray[np.int8]) -> list[tuple[int, ...]]:
        """Return the distinct routings of non-missing categories, in category order.

        Categories routed exactly like a missing value at every node need no id: they are
        handed to shap as NaN and follow the default child.
        """
        missing = tuple(table[-1].tolist())
        seen: dict[tuple[int, ...], None] = {}
        for row in table[:-1].tolist():
            signature = tuple(row)
            if signature != missing:
                seen.setdefault(signature, None)
        return list(seen)

    def _partition(self, tables: list[dict[int, npt.NDArray[np.int8]]]) -> list[list[int]]:
        """Split the trees into consecutive groups whose categorical columns need <= 24 ids."""
        groups: list[list[int]] = []
        current: list[int] = []
        merged: dict[int, npt.NDArray[np.int8]] = {}
        for t, table in enumerate(tables):
            candidate = dict(merged)
            for column, part in table.items():
                candidate[column] = np.hstack([merged[column], part]) if column in merged else part
            if all(len(self._distinct_ids(x)) <= MAX_CATEGORY_GROUPS for x in candidate.values()):
                current.append(t)
                merged = candidate
                continue
            if not current or any(
                len(self._distinct_ids(x)) > MAX_CATEGORY_GROUPS for x in table.values()
            ):
                raise UnsupportedTreeError(
                    f"tree {t} splits a categorical feature into more than {MAX_CATEGORY_GROUPS} "
                    "groups of categories; exact TreeSHAP cannot represent it"
                )
            groups.append(current)
            current, merged = [t], dict(table)
        groups.append(current)
        return groups

    # -- conversion ----------------------------------------------------------------------------

    def _build_group(
        self,
        hgb: list[HGBTree],
        tables: list[dict[int, npt.NDArray[np.int8]]],
        trees: list[int],
        *,
        first: bool,
    ) -> _Group:
        category_ids: dict[int, npt.NDArray[np.float64]] = {}
        # Per column, the shap mask of each categorical node, in tree then node order.
        masks: dict[int, list[float]] = {}
        columns = sorted({c for t in trees for c in tables[t]})
        for column in columns:
            table = np.hstack([tables[t][column] for t in trees if column in tables[t]])
            ids = {signature: i + 1 for i, signature in enumerate(self._distinct_ids(table))}
            id_of_value = np.full(_N_CATEGORY_VALUES, np.nan)
            for value, row in enumerate(table[:-1].tolist()):
                id_of_value[value] = ids.get(tuple(row), np.nan)
            category_ids[column] = id_of_value
            self.n_category_groups[column] = max(self.n_category_groups.get(column, 0), len(ids))
            masks[column] = [
                float(sum(1 << (i - 1) for signature, i in ids.items() if signature[k] == _LEFT))
                for k in range(table.shape[1])
            ]

        dict_trees = []
        types_per_tree = []
        used = dict.fromkeys(columns, 0)
        for t in trees:
            tree = hgb[t]
            leaf = tree.is_leaf
            left = np.where(leaf, -1, tree.left)
            right = np.where(leaf, -1, tree.right)
            thresholds = tree.num_threshold.copy()
            types = np.zeros(len(leaf), dtype=np.int32)
            for i in np.flatnonzero(~leaf & tree.is_categorical):
                column = int(tree.feature_idx[i])
                thresholds[i] = masks[column][used[column]]
                used[column] += 1
                types[i] = 1
            dict_trees.append(
                {
                    "children_left": left,
                    "children_right": right,
                    "children_default": np.where(tree.missing_go_to_left, left, right),
                    "features": np.where(leaf, -2, tree.feature_idx),
                    "thresholds": thresholds,
                    "values": tree.value.reshape(-1, 1).copy(),
                    "node_sample_weight": tree.count.copy(),
                }
            )
            types_per_tree.append(types)
        # The baseline log-odds belongs to the ensemble once, not to every group. The group's
        # explainer gives the expected value; its trees one by one give the values.
        explainer = tree_explainer(dict_trees, types_per_tree, base_offset=self.base_offset if first else 0.0,
                                   tree_output="log_odds", input_dtype=np.float64)
        singles = tuple(pattern_tree(tree, types, tree_output="log_odds", input_dtype=np.float64)
                        for tree, types in zip(dict_trees, types_per_tree, strict=True))
        return _Group(explainer=explainer, trees=singles, category_ids=category_ids)

    # -- explaining ----------------------------------------------------------------------------

    def internal_matrix(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the matrix HGB's trees read: X after the model's own categorical re-encoding."""
        if self._preprocessor is None:
            return np.ascontiguousarray(X, dtype=np.float64)
        if self._codes is not None and len(X) < FEW_ROWS:
            return self._internal_few(X)
        return np.ascontiguousarray(self._preprocessor.transform(X), dtype=np.float64)

    def _internal_few(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # The preprocessor's ordinal re-encoding as a lookup: a scoring request would otherwise
        # pay a ColumnTransformer call (milliseconds) twice, here and in decision_function.
        assert self._codes is not None
        out = np.empty(X.shape, dtype=np.float64)
        n_categorical = len(self._codes)
        for j, codes in enumerate(self._codes):
            values = X[:, self._internal_to_input[j]]
            position = np.minimum(np.searchsorted(codes, values), len(codes) - 1)
            out[:, j] = np.where(codes[position] == values, position, np.nan)
        out[:, n_categorical:] = X[:, self._internal_to_input[n_categorical:]]
        return out

    def explain_few(self, X: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return (SHAP values, the model's raw output) for a few rows, re-encoding them once."""
        internal = self.internal_matrix(X)
        return self._values(internal), hgb_raw_predict(self._model, internal)

    @staticmethod
    def group_matrix(group: _Group, internal: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the internal matrix as shap reads it for ``group``: categories as the group's ids."""
        data = internal.copy()
        for column, ids in group.category_ids.items():
            values = internal[:, column]
            ok = np.isfinite(values) & (values >= 0) & (values < _N_CATEGORY_VALUES)
            mapped = np.full(len(values), np.nan)
            # int() truncates like scikit-learn's cast of the float to a uint8 category.
            mapped[ok] = ids[values[ok].astype(np.intp)]
            data[:, column] = mapped
        return data

    @property
    def groups(self) -> tuple[_Group, ...]:
        """Return the groups of trees; each group's ``explainer`` holds all its trees at once."""
        return tuple(self._groups)

    def shap_values(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return SHAP values (log-odds) for X, one column per input column of the model."""
        return self._values(self.internal_matrix(X))

    def _values(self, internal: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        total = np.zeros(internal.shape[::-1])  # a row per column
        for group in self._groups:
            if len(internal) < FEW_ROWS:
                # A few rows share no patterns to exploit; one shap call over all the group's
                # trees skips the per-tree calls (the sums agree to rounding, about 1e-14).
                values = group.explainer.shap_values(self.group_matrix(group, internal), check_additivity=False)
                total += np.asarray(values, dtype=np.float64).T
            else:
                explain_by_patterns(group.trees, self.group_matrix(group, internal), total)
        out = np.empty_like(internal)
        out[:, self._internal_to_input] = total.T
        return out

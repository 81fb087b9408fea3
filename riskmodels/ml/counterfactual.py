"""Find the smallest change that would have turned a declined application into an approved one.

An adverse-action notice must tell the applicant what would have changed the decision. A
counterfactual answers that against the same fitted model that declined them: the cheapest
change to at most two *actionable* features (the caller names them; protected and immutable
characteristics are never among them, for the same reason they are never reason codes) that
moves the probability of default (PD) strictly below the cutoff, or a plain statement that no
such change exists within the range of values seen in training.

Candidate values come from the training data (:func:`candidate_grid`), so the notice never
proposes a value no applicant has had. The search (:func:`counterfactual_search`) is exhaustive
over that grid for single changes and over the most promising pairs of features for two changes,
and it is deterministic: the same model, row and grid always give the same answer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskmodels.ml.metrics import json_safe
from riskmodels.ml.pipelines import TrainingSpec

__all__ = [
    "BATCH_ROWS",
    "KIND_CATEGORICAL",
    "KIND_NUMERIC",
    "CandidateSet",
    "Counterfactual",
    "FeatureChange",
    "candidate_grid",
    "counterfactual_search",
]

KIND_NUMERIC = "numeric"
KIND_CATEGORICAL = "categorical"

# Rows handed to predict_pd at once: large enough that a pair search takes a few calls, small
# enough that the copied frame and the model's encoded matrix stay a few megabytes.
BATCH_ROWS = 5000

PredictPd = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class CandidateSet:
    """Hold the values one actionable feature may be changed to, and how a change is priced.

    For a numeric feature ``values`` are distinct training quantiles between ``low`` and
    ``high`` (the observed range) and a change costs ``|new - old| / scale``. For a categorical
    feature ``values`` are the observed categories and every switch costs 1.0.
    """

    feature: str
    kind: str
    values: tuple[Any, ...]
    scale: float = 1.0
    low: float | None = None
    high: float | None = None

    def cost(self, original: Any, proposed: Any) -> float:
        """Return the normalised size of changing ``original`` to ``proposed``.

        A numeric change from a missing value has no size to measure, so it costs 1.0, the
        same as one standard step (one scale unit) or one category switch.
        """
        if self.kind == KIND_CATEGORICAL or _is_missing(original):
            return 1.0
        return abs(float(proposed) - float(original)) / self.scale

    def to_dict(self) -> dict[str, Any]:
        """Return the candidate set as a JSON-serialisable dict."""
        return json_safe({
            "feature": self.feature,
            "kind": self.kind,
            "values": list(self.values),
            "scale": self.scale,
            "low": self.low,
            "high": self.high,
        })


@dataclass(frozen=True)
class FeatureChange:
    """Name one feature of a counterfactual: its value, the value proposed and the cost."""

    feature: str
    original: Any
    proposed: Any
    cost: float

    def to_dict(self) -> dict[str, Any]:
        """Return the change as a JSON-serialisable dict (a missing original is None)."""
        return json_safe({
            "feature": self.feature,
            "original": self.original,
            "proposed": self.proposed,
            "cost": self.cost,
        })


@dataclass(frozen=True)
class Counterfactual:
    """Report the outcome of one counterfactual search, in numbers and in plain words.

    ``changes`` holds one or two changes when ``found``, none otherwise. ``pd_after`` is the PD
    with the changes applied (None when nothing was found). ``searched`` records what was
    tried, so a reviewer can tell "no change exists" from "too little was searched".
    """

    found: bool
    changes: tuple[FeatureChange, ...]
    pd_before: float
    pd_after: float | None
    cutoff: float
    searched: dict[str, Any]
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict."""
        return json_safe({
            "found": self.found,
            "changes": [change.to_dict() for change in self.changes],
            "pd_before": self.pd_before,
            "pd_after": self.pd_after,
            "cutoff": self.cutoff,
            "searched": self.searched,
            "message": self.message,
        })


def candidate_grid(
    train: pd.DataFrame,
    spec: TrainingSpec,
    actionable: Sequence[str],
    *,
    quantiles: int = 20,
) -> dict[str, CandidateSet]:
    """Return, per actionable feature, the values a counterfactual may propose, from training rows.

    ``train`` holds raw rows as stored. A numeric feature's candidates are its quantiles at
    0, 1/quantiles, ..., 1, each taken as an observed value (so integer features stay
    integers), de-duplicated; its scale is the interquartile range, falling back to the
    standard deviation and then to 1.0 when the spread is zero. A categorical feature's
    candidates are its observed categories, sorted by their text. Missing values are never
    candidates. Raises ValueError for features that are not in ``spec.features`` or not in
    ``train``, or for ``quantiles`` below 1.
    """
    if isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 1:
        raise ValueError(f"quantiles must be a positive integer; got {quantiles!r}")
    if isinstance(actionable, str):
        raise ValueError("actionable must be a sequence of feature names, not one string")
    names = list(dict.fromkeys(actionable))
    if not names:
        raise ValueError("at least one actionable feature is required")
    unknown = [name for name in names if name not in spec.features]
    if unknown:
        raise ValueError(f"actionable features not among the model's features: {', '.join(map(str, unknown))}")
    absent = [name for name in names if name not in train.columns]
    if absent:
        raise ValueError(f"actionable features not in the training data: {', '.join(absent)}")
    grid: dict[str, CandidateSet] = {}
    for name in names:
        if name in spec.categorical:
            grid[name] = _categorical_candidates(name, train[name])
        else:
            grid[name] = _numeric_candidates(name, train[name], quantiles)
    return grid


def _numeric_candidates(name: str, column: pd.Series, quantiles: int) -> CandidateSet:
    observed = _as_float(column, name)
    observed = observed[~np.isnan(observed)]
    if observed.size == 0:
        return CandidateSet(name, KIND_NUMERIC, ())
    # method="nearest" returns observed values: a notice proposing 13.5 months is not credible.
    levels = np.unique(np.quantile(observed, np.linspace(0.0, 1.0, quantiles + 1), method="nearest"))
    integral = bool(np.all(np.mod(observed, 1.0) == 0.0))
    values = tuple(int(v) if integral else float(v) for v in levels)
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    std = float(np.std(observed))
    if q3 - q1 > 0:
        scale = float(q3 - q1)
    elif std > 0 and math.isfinite(std):
        scale = std
    else:
        scale = 1.0
    return CandidateSet(name, KIND_NUMERIC, values, scale, float(observed.min()), float(observed.max()))


def _categorical_candidates(name: str, column: pd.Series) -> CandidateSet:
    observed = {_plain_scalar(value) for value in column.dropna().unique()}
    # Sorted by text so the grid, and hence tie-breaking, does not depend on the rows' order.
    return CandidateSet(name, KIND_CATEGORICAL, tuple(sorted(observed, key=str)))


@dataclass(frozen=True)
class _Move:
    """Set one feature to one candidate value, at a known cost."""

    feature: str
    value: Any
    cost: float


@dataclass
class _Best:
    """Track the cheapest crossing seen so far, across blocks, and the best PD per feature."""

    key: tuple[Any, ...] | None = None
    moves: tuple[_Move, ...] = ()
    pd_after: float = math.nan

    def offer(self, moves: tuple[_Move, ...], pd_after: float, order: int) -> None:
        # Smallest total cost, then smallest PD after, then feature names; ``order`` (grid
        # position) only separates two values of one feature that tie on both.
        key = (sum(m.cost for m in moves), pd_after, tuple(m.feature for m in moves), order)
        if self.key is None or key < self.key:
            self.key, self.moves, self.pd_after = key, moves, pd_after


def counterfactual_search(
    predict_pd: PredictPd,
    row: pd.DataFrame,
    *,
    cutoff: float,
    grid: Mapping[str, CandidateSet],
    max_features: int = 2,
    max_pairs: int = 15,
    batch_rows: int = BATCH_ROWS,
) -> Counterfactual:
    """Return the cheapest change to at most ``max_features`` grid features that gets PD below ``cutoff``.

    ``predict_pd`` takes raw rows shaped like ``row`` (one raw applicant, as the model is
    scored) and returns one PD per row. Only the features in ``grid`` are ever changed.

    The search rule:

    1. Score ``row``. If its PD is already below ``cutoff`` the decision was not adverse and
       nothing is searched.
    2. Score every single change: each candidate value of each grid feature, except the value
       the applicant already has. A change crosses when its PD is strictly below ``cutoff``.
       The crossing change with the smallest cost wins; ties go to the smaller PD after, then
       to the feature name. Cost is ``|new - old| / scale`` for a number (1.0 when the current
       value is missing) and 1.0 for a category switch.
    3. Only when no single change crosses and ``max_features`` is 2: rank features by the
       largest PD drop any one of their candidates achieved, rank pairs of features by the sum
       of their two drops (ties by feature names) and score every combination of candidates
       for the best ``max_pairs`` pairs. The crossing pair with the smallest total cost wins,
       with the same tie-breaks.

    Rows are scored in blocks of at most ``batch_rows``, so ``predict_pd`` is called
    ``1 + ceil(singles / batch_rows) + ceil(pair rows / batch_rows)`` times at most and memory
    stays bounded however large the grid. There is no randomness.

    Raises ValueError unless ``cutoff`` is in (0, 1), ``row`` has exactly one row holding every
    grid feature, ``max_features`` is 1 or 2, ``max_pairs`` and ``batch_rows`` are positive, and
    ``predict_pd`` returns one finite PD per row.
    """
    _check_arguments(row, cutoff, grid, max_features, max_pairs, batch_rows)
    cutoff = float(cutoff)
    base = row.reset_index(drop=True)
    calls = [0]

    def score(moves: Sequence[tuple[_Move, ...]]) -> np.ndarray:
        calls[0] += 1
        return _score(predict_pd, base, moves, grid)

    pd_before = float(score([()])[0])
    originals = {name: _plain_scalar(base[name].iloc[0]) for name in grid}
    features = list(grid)
    searched: dict[str, Any] = {
        "actionable": features,
        "candidates": {name: len(grid[name].values) for name in features},
        "max_features": max_features,
        "max_pairs": max_pairs,
        "single_changes": 0,
        "pairs": [],
        "pair_changes": 0,
        "evaluations": 0,
        "predict_calls": 1,
    }
    if pd_before < cutoff:
        message = (f"The estimated probability of default ({_percent(pd_before, cutoff)}) is already below the "
                   f"cutoff ({_percent(cutoff, pd_before)}): the decision was not adverse, so no change is needed.")
        return Counterfactual(False, (), pd_before, None, cutoff, searched, message)

    moves_by_feature = {name: _moves(grid[name], base[name].iloc[0]) for name in features}
    singles = [(move,) for name in features for move in moves_by_feature[name]]
    best = _Best()
    best_drop: dict[str, float] = {}
    for start, block, pds in _blocks(singles, batch_rows, score):
        for offset, (moves, pd_after) in enumerate(zip(block, pds, strict=True)):
            feature = moves[0].feature
            best_drop[feature] = max(best_drop.get(feature, -math.inf), pd_before - pd_after)
            if pd_after < cutoff:
                best.offer(moves, pd_after, start + offset)
    searched["single_changes"] = len(singles)

    if best.key is None and max_features == 2:
        ranked = sorted(best_drop, key=lambda name: (-best_drop[name], name))
        pairs = sorted(itertools.combinations(ranked, 2),
                       key=lambda pair: (-(best_drop[pair[0]] + best_drop[pair[1]]), sorted(pair)))[:max_pairs]
        # Keep each pair in the caller's feature order, so the notice lists changes in that order.
        pairs = [tuple(sorted(pair, key=features.index)) for pair in pairs]
        searched["pairs"] = [list(pair) for pair in pairs]
        combos = (combo for a, b in pairs for combo in itertools.product(moves_by_feature[a], moves_by_feature[b]))
        total = 0
        for start, block, pds in _blocks(combos, batch_rows, score):
            total += len(block)
            for offset, (moves, pd_after) in enumerate(zip(block, pds, strict=True)):
                if pd_after < cutoff:
                    best.offer(moves, pd_after, start + offset)
        searched["pair_changes"] = total

    searched["evaluations"] = searched["single_changes"] + searched["pair_changes"]
    searched["predict_calls"] = calls[0]
    if best.key is None:
        scope = "any one" if max_features == 1 else "at most two"
        message = (f"No change to {scope} of {', '.join(map(str, features))} within the observed range moves the "
                   f"estimated probability of default ({_percent(pd_before, cutoff)}) below the cutoff "
                   f"({_percent(cutoff, pd_before)}).")
        return Counterfactual(False, (), pd_before, None, cutoff, searched, message)

    changes = tuple(FeatureChange(m.feature, originals[m.feature], m.value, m.cost) for m in best.moves)
    return Counterfactual(True, changes, pd_before, best.pd_after, cutoff, searched,
                          _found_message(changes, pd_before, best.pd_after, cutoff))


def _check_arguments(
    row: pd.DataFrame,
    cutoff: float,
    grid: Mapping[str, CandidateSet],
    max_features: int,
    max_pairs: int,
    batch_rows: int,
) -> None:
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float | np.integer | np.floating):
        raise ValueError(f"cutoff must be a number strictly between 0 and 1; got {cutoff!r}")
    if not 0.0 < float(cutoff) < 1.0:  # also refuses NaN
        raise ValueError(f"cutoff must be strictly between 0 and 1; got {cutoff!r}")
    if not isinstance(row, pd.DataFrame) or len(row) != 1:
        got = f"{len(row)} rows" if isinstance(row, pd.DataFrame) else type(row).__name__
        raise ValueError(f"row must be a DataFrame with exactly one row; got {got}")
    if max_features not in (1, 2) or isinstance(max_features, bool):
        raise ValueError(f"max_features must be 1 or 2; got {max_features!r}")
    for name, value in (("max_pairs", max_pairs), ("batch_rows", batch_rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if not grid:
        raise ValueError("the grid is empty: at least one actionable feature is required")
    missing = [name for name in grid if name not in row.columns]
    if missing:
        raise ValueError(f"grid features not in the row: {', '.join(map(str, missing))}")


def _moves(candidates: CandidateSet, current: Any) -> list[_Move]:
    """Return the changes of one feature worth scoring: every candidate but the current value."""
    if candidates.kind == KIND_NUMERIC:
        original = _as_float(pd.Series([current]), candidates.feature)[0]
        missing = bool(np.isnan(original))
        return [_Move(candidates.feature, value, 1.0 if missing else candidates.cost(original, value))
                for value in candidates.values if missing or float(value) != original]
    current = _plain_scalar(current)
    return [_Move(candidates.feature, value, candidates.cost(current, value))
            for value in candidates.values if _is_missing(current) or value != current]


def _blocks(
    items: Iterable[tuple[_Move, ...]],
    size: int,
    score: Callable[[Sequence[tuple[_Move, ...]]], np.ndarray],
) -> Iterator[tuple[int, list[tuple[_Move, ...]], np.ndarray]]:
    """Yield (position of the block's first item, the block, its PDs), ``size`` items at a time."""
    iterator = iter(items)
    start = 0
    while block := list(itertools.islice(iterator, size)):
        yield start, block, score(block)
        start += len(block)


def _score(
    predict_pd: PredictPd,
    base: pd.DataFrame,
    block: Sequence[tuple[_Move, ...]],
    grid: Mapping[str, CandidateSet],
) -> np.ndarray:
    """Return predict_pd of copies of ``base``, one per item, each with the item's moves applied."""
    n = len(block)
    frame = base.iloc[np.zeros(n, dtype=np.intp)].reset_index(drop=True)
    touched: dict[str, list[tuple[int, Any]]] = {}
    for i, moves in enumerate(block):
        for move in moves:
            touched.setdefault(move.feature, []).append((i, move.value))
    for feature, assignments in touched.items():
        current = base[feature].iloc[0]
        if grid[feature].kind == KIND_NUMERIC:
            column: np.ndarray = np.full(n, _as_float(pd.Series([current]), feature)[0], dtype=np.float64)
        else:
            # Object dtype holds the categories exactly as the caller's rows spell them.
            column = np.empty(n, dtype=object)
            column[:] = [current] * n
        for i, value in assignments:
            column[i] = value
        frame[feature] = pd.Series(column, index=frame.index, dtype=column.dtype)
    pds = np.asarray(predict_pd(frame), dtype=np.float64).reshape(-1)
    if pds.shape != (n,):
        raise ValueError(f"predict_pd returned {pds.size} values for {n} rows")
    if not np.all(np.isfinite(pds)):
        raise ValueError("predict_pd returned a value that is not a finite probability")
    return pds


def _found_message(changes: tuple[FeatureChange, ...], pd_before: float, pd_after: float, cutoff: float) -> str:
    parts = []
    for change in changes:
        if _is_missing(change.original):
            parts.append(f"your {change.feature} had been {_text(change.proposed)} (it was not provided)")
        else:
            parts.append(f"your {change.feature} had been {_text(change.proposed)} instead of {_text(change.original)}")
    return (f"If {' and '.join(parts)}, the estimated probability of default would have been "
            f"{_percent(pd_after, cutoff)} instead of {_percent(pd_before, cutoff)}, below the cutoff of "
            f"{_percent(cutoff, pd_after)}.")


def _percent(value: float, other: float) -> str:
    """Format ``value`` as a percentage precise enough that it does not read as equal to ``other``."""
    for digits in (1, 2, 3, 4):
        text = f"{value:.{digits}%}"
        if text != f"{other:.{digits}%}":
            return text
    return text


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _as_float(column: pd.Series, name: str) -> np.ndarray:
    """Convert a raw numeric column the way prepare_features does, naming it if it is not numeric."""
    try:
        return pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        raise ValueError(f"{name!r} is not numeric; declare it categorical in the spec") from None


def _plain_scalar(value: Any) -> Any:
    """Return numpy scalars as Python values and every kind of missing value as None."""
    if _is_missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is a value, not a missing marker
        return False

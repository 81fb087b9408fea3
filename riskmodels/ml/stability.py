"""Population stability: frozen bins from reference data, and PSI/CSI of new data against them.

Bins are fitted once, on a champion's validation rows, and then only counted into:

- the score: deciles of the validation PDs (``fit_numeric(pd, 10)``);
- a numeric feature: quantile bins (deciles by default) of its non-missing values, with the
  missing values as a bin of their own;
- a categorical feature: one bin per category seen, an "other" bin for categories never seen
  (empty at reference), and a bin for missing values.

Numeric bins are right-closed: cut points ``c_1 < ... < c_k`` give ``(-inf, c_1], (c_1, c_2],
..., (c_k, inf)``, the cut points being quantiles that are values of the data (NumPy's
``inverted_cdf``), so no bin is empty at reference. Repeated quantiles collapse, so a feature
with few distinct values gets fewer bins.

PSI (of the score) and CSI (of a feature) are the same formula over the bins' shares:
``sum((a - e) * ln(a / e))`` with ``e`` the reference share and ``a`` the actual share of each
bin. The empty-bin rule: each share, expected and actual, is floored at ``EPSILON`` (1e-4)
before the formula and the shares are not renormalised afterwards, so a bin empty on either
side adds a large but finite term instead of an infinite one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

EPSILON = 1e-4
DECILES = 10
LIGHTS = ("green", "amber", "red")


@dataclass(frozen=True)
class Bins:
    """Frozen bins of one variable and the reference share of each (in ``labels`` order)."""

    kind: str  # "numeric" or "categorical"
    edges: tuple[float, ...] = ()  # numeric: the cut points
    categories: tuple[str, ...] = ()  # categorical: the categories seen at reference
    shares: tuple[float, ...] = ()  # reference share of each bin, in labels() order

    @property
    def size(self) -> int:
        return len(self.edges) + 2 if self.kind == "numeric" else len(self.categories) + 2

    def labels(self) -> list[str]:
        """Name each bin: ``(-inf, 1.5]``, ``(1.5, inf)``, ``missing``; or the categories, ``other``, ``missing``."""
        if self.kind == "categorical":
            return [*self.categories, "other", "missing"]
        bounds = [-math.inf, *self.edges, math.inf]
        return [f"({_num(lo)}, {_num(hi)}{')' if hi == math.inf else ']'}"
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)] + ["missing"]

    def count(self, values: Any) -> np.ndarray:
        """Return how many of ``values`` fall in each bin (an int64 array of ``size``, labels() order)."""
        if self.kind == "numeric":
            numbers = _numbers(values)
            missing = np.isnan(numbers)
            present = np.searchsorted(np.asarray(self.edges, dtype=np.float64), numbers[~missing], side="left")
            counts = np.bincount(present, minlength=len(self.edges) + 1)
            return np.append(counts, missing.sum()).astype(np.int64)
        texts = _category_texts(values)
        index = {c: i for i, c in enumerate(self.categories)}
        other, missing = len(self.categories), len(self.categories) + 1
        positions = np.fromiter((missing if t is None else index.get(t, other) for t in texts), dtype=np.int64,
                                count=len(texts))
        return np.bincount(positions, minlength=self.size).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form: ``kind``, ``edges`` or ``categories``, ``labels`` and ``shares``."""
        key = {"edges": list(self.edges)} if self.kind == "numeric" else {"categories": list(self.categories)}
        return {"kind": self.kind, **key, "labels": self.labels(), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bins:
        return cls(kind=data["kind"], edges=tuple(data.get("edges", ())), categories=tuple(data.get("categories", ())),
                   shares=tuple(data["shares"]))


def _num(x: float) -> str:
    return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:.6g}"


def _numbers(values: Any) -> np.ndarray:
    """Return values as float64 with NaN for a missing (or non-numeric) one."""
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    return pd.to_numeric(pd.Series(array, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _category_texts(values: Any) -> list[str | None]:
    """Return each value as its category text, None for a missing one (None, NaN, pandas NA)."""
    out: list[str | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        else:
            out.append(str(v))
    return out


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = int(counts.sum())
    return tuple(float(c) / total if total else 0.0 for c in counts)


def fit_numeric(values: Any, n_bins: int = DECILES) -> Bins:
    """Fit quantile bins (``n_bins`` of them, fewer where quantiles repeat) to the non-missing values."""
    numbers = _numbers(values)
    present = numbers[~np.isnan(numbers)]
    edges: tuple[float, ...] = ()
    if len(present):
        # Quantiles that are values of the data (no interpolation): every bin holds reference rows.
        cuts = np.quantile(present, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
        # The largest value ends the last bin: a cut at the maximum would leave the bin above it empty.
        edges = tuple(float(c) for c in np.unique(cuts) if c < present.max())
    bins = Bins(kind="numeric", edges=edges)
    return Bins(kind="numeric", edges=edges, shares=_shares(bins.count(numbers)))


def fit_categorical(values: Any) -> Bins:
    """Fit one bin per category seen (sorted), plus "other" (empty at reference) and "missing"."""
    texts = _category_texts(values)
    categories = tuple(sorted({t for t in texts if t is not None}))
    bins = Bins(kind="categorical", categories=categories)
    return Bins(kind="categorical", categories=categories, shares=_shares(bins.count(texts)))


def psi(expected: Iterable[float], actual: Iterable[float]) -> float:
    """Return the population stability index of ``actual`` shares against ``expected`` shares.

    Each share is floored at ``EPSILON`` first (the empty-bin rule), without renormalising.
    """
    e = np.maximum(np.asarray(list(expected), dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(list(actual), dtype=np.float64), EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"expected {e.shape[0]} shares, got {a.shape[0]}")
    return float(np.sum((a - e) * np.log(a / e)))


def light_of(value: float, amber: float, red: float) -> str:
    """Return the traffic light of a value: green below ``amber``, amber from it, red from ``red``."""
    return "red" if value >= red else "amber" if value >= amber else "green"


@dataclass
class StabilityCounter:
    """Accumulate bin counts of one variable chunk by chunk; memory does not grow with the rows."""

    bins: Bins
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.bins.size, dtype=np.int64)

    def add(self, values: Any) -> None:
        self.counts += self.bins.count(values)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def result(self, *, amber: float, red: float) -> dict[str, Any]:
        """Return the index, its light and each bin's expected and actual share (needs at least one value)."""
        if not self.n:
            raise ValueError("no values were counted: a stability index needs at least one")
        actual = _shares(self.counts)
        value = psi(self.bins.shares, actual)
        return {"value": value, "light": light_of(value, amber, red), "thresholds": {"amber": amber, "red": red},
                "n": self.n, "bins": [{"bin": label, "expected": e, "actual": a, "count": int(c)} for label, e, a, c
                                      in zip(self.bins.labels(), self.bins.shares, actual, self.counts, strict=True)]}

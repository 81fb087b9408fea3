"""Fairness of approvals at a cutoff, per group of each protected column.

Approve means ``PD < cutoff`` (the scoring policy declines at ``PD >= cutoff``). For every group
of every protected column :func:`fairness_report` gives the number of rows, the approval rate,
the observed default rate, the mean predicted PD, the AUC of PD against default within the
group, the true approval rate among actual non-defaulters (equal opportunity defined on the
favourable outcome: of the applicants who repaid, the share the model would have approved),
the adverse impact ratio (the group's approval rate over the highest group approval rate) and
the equal-opportunity difference (the group's true approval rate minus that of the most
favoured group, the one with the highest approval rate).

Point estimates come from fairlearn's ``MetricFrame``. Confidence intervals are seeded
percentile bootstraps: rows of the evaluation set are resampled with replacement (groups are
not stratified, so a group's size varies between resamples as it would between samples), and
each resample recomputes every statistic as defined, including which group is most favoured.
The bootstrap counts with ``numpy.bincount`` because building hundreds of MetricFrames would
dominate an evaluation's time; the tests check both against each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, selection_rate, true_positive_rate
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from riskmodels.ml.metrics import json_safe

__all__ = [
    "AGE_BANDS", "FOUR_FIFTHS", "FOUR_FIFTHS_CAVEAT", "MISSING", "SMALL_GROUP_N", "ColumnFairness",
    "FairnessReport", "GroupFairness", "band_ages", "fairness_report", "is_age_column", "protected_groups",
]

# (label, lower bound inclusive, upper bound exclusive); None is open-ended.
AGE_BANDS: tuple[tuple[str, float | None, float | None], ...] = (
    ("<25", None, 25), ("25-34", 25, 35), ("35-44", 35, 45), ("45-54", 45, 55), ("55-64", 55, 65), ("65+", 65, None),
)
MISSING = "missing"
SMALL_GROUP_N = 30
FOUR_FIFTHS = 0.8
# Numeric protected columns with this many distinct values or fewer are codes, grouped by value.
MAX_CODED_VALUES = 10
QUANTILE_BANDS = 4
CI_LEVEL = 0.95
FOUR_FIFTHS_CAVEAT = (
    "The four-fifths rule (an adverse impact ratio below 0.8) is a screening convention, not a legal test: "
    "a flag asks for a closer look at the group's outcomes, it does not establish unlawful discrimination, "
    "and the absence of a flag does not establish its absence."
)
DEFINITIONS = {
    "approve": "PD < cutoff",
    "approval_rate": "share of the group's rows approved",
    "default_rate": "share of the group's rows that defaulted (observed)",
    "mean_pd": "mean predicted PD of the group's rows",
    "auc": "AUC of predicted PD against observed default within the group; null when the group has one class",
    "true_approval_rate": "share of the group's actual non-defaulters approved (equal opportunity on the "
                          "favourable outcome); null when the group has no non-defaulter",
    "adverse_impact_ratio": "group approval rate / highest group approval rate of the column",
    "equal_opportunity_difference": "group true approval rate - true approval rate of the most favoured group "
                                    "(highest approval rate)",
    "intervals": f"{CI_LEVEL:.0%} percentile bootstrap: rows of the evaluation set resampled with replacement, "
                 "every statistic recomputed per resample",
    "age_bands": "numeric columns named like an age: " + ", ".join(label for label, _, _ in AGE_BANDS)
                 + " (25-34 means 25 <= age < 35)",
    "other_numeric": f"numeric columns with more than {MAX_CODED_VALUES} distinct values: {QUANTILE_BANDS} quantile "
                     "bands of the evaluated rows; fewer distinct values: grouped by value",
    "categorical": "grouped by value",
    "missing": f"a missing value is its own group, '{MISSING}'",
    "small_group": f"groups of fewer than {SMALL_GROUP_N} rows are reported with a note, not dropped",
}


@dataclass(frozen=True)
class GroupFairness:
    """One group of one protected column at the cutoff, with bootstrap intervals ``(lower, upper)``."""

    group: str
    n: int
    n_defaults: int
    approval_rate: float
    approval_rate_ci: tuple[float | None, float | None]
    default_rate: float
    default_rate_ci: tuple[float | None, float | None]
    mean_pd: float
    auc: float | None
    auc_ci: tuple[float | None, float | None]
    true_approval_rate: float | None
    adverse_impact_ratio: float | None
    adverse_impact_ratio_ci: tuple[float | None, float | None]
    equal_opportunity_difference: float | None
    equal_opportunity_difference_ci: tuple[float | None, float | None]
    flagged: bool
    flag_note: str | None  # the ratio, the threshold and the four-fifths caveat, when flagged
    notes: tuple[str, ...]  # small group, one class


@dataclass(frozen=True)
class ColumnFairness:
    """Every group of one protected column, the most favoured group and the flagged ones."""

    column: str
    grouping: str
    reference_group: str | None
    groups: tuple[GroupFairness, ...]
    flagged_groups: tuple[str, ...]
    min_adverse_impact_ratio: float | None


@dataclass(frozen=True)
class FairnessReport:
    """Fairness of approvals at ``cutoff`` for each protected column."""

    cutoff: float
    n: int
    n_bootstrap: int
    seed: int
    ci_level: float
    columns: tuple[ColumnFairness, ...]

    @property
    def flagged(self) -> bool:
        return any(c.flagged_groups for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-safe plain data (non-finite numbers become None)."""
        return json_safe({
            "cutoff": self.cutoff, "n": self.n, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
            "ci_level": self.ci_level, "flag_threshold": FOUR_FIFTHS, "flagged": self.flagged,
            "caveat": FOUR_FIFTHS_CAVEAT, "definitions": DEFINITIONS,
            "columns": [asdict(c) for c in self.columns],
        })


def is_age_column(name: str) -> bool:
    """Return whether a column's name has "age" as a whole word (``age``, ``age_in_years``, ``applicant-age``)."""
    return "age" in re.split(r"[^a-z0-9]+", name.lower())


def band_ages(values: pd.Series) -> pd.Series:
    """Return each age's band label (:data:`AGE_BANDS`), or :data:`MISSING`."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    labels = np.full(len(numbers), MISSING, dtype=object)
    for label, lower, upper in AGE_BANDS:
        inside = np.isfinite(numbers)
        if lower is not None:
            inside &= numbers >= lower
        if upper is not None:
            inside &= numbers < upper
        labels[inside] = label
    return pd.Series(labels, index=values.index, name=values.name)


def _quantile_bands(values: pd.Series) -> tuple[pd.Series, list[str]]:
    numbers = pd.to_numeric(values, errors="coerce")
    # Ties can merge quantile edges; qcut drops the duplicates and gives fewer bands.
    bands = pd.qcut(numbers, QUANTILE_BANDS, duplicates="drop")
    order = [f"[{b.left:g}, {b.right:g}]" for b in bands.cat.categories]
    labels = pd.Series([order[c] if c >= 0 else MISSING for c in bands.cat.codes], index=values.index, dtype=object)
    return labels, [*order, MISSING]


def protected_groups(name: str, values: pd.Series) -> tuple[pd.Series, str, list[str]]:
    """Return the group label of every row of a protected column, how the groups were formed, and their order."""
    series = pd.Series(values)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and is_age_column(name):
        return band_ages(series), "age bands", [*(label for label, _, _ in AGE_BANDS), MISSING]
    if numeric and series.nunique(dropna=True) > MAX_CODED_VALUES:
        labels, order = _quantile_bands(series)
        return labels, f"{QUANTILE_BANDS} quantile bands of the evaluated rows", order
    labels = pd.Series([MISSING if pd.isna(v) else str(v) for v in series], index=series.index, dtype=object)
    return labels, "values", [*sorted(set(labels) - {MISSING}), MISSING]


def _mean_pd(y_true: np.ndarray, y_pred: np.ndarray, pd_: np.ndarray) -> float:
    return float(np.mean(pd_))


def _default_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(1 - np.mean(y_true))  # y_true is the favourable outcome (repaid)


def _auc(y_true: np.ndarray, y_pred: np.ndarray, pd_: np.ndarray) -> float:
    defaulted = 1 - np.asarray(y_true)
    if defaulted.min() == defaulted.max():
        return math.nan
    return float(roc_auc_score(defaulted, pd_))


def _true_approval_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if not np.asarray(y_true).any():
        return math.nan
    return float(true_positive_rate(y_true, y_pred, pos_label=1))


def _rank_auc(defaulted: np.ndarray, scores: np.ndarray) -> float:
    """AUC by Mann-Whitney (ties half), for the bootstrap loop; NaN with one class."""
    n_pos = int(defaulted.sum())
    n_neg = len(defaulted) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[defaulted == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rates(codes: np.ndarray, approved: np.ndarray, good: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-group approval rate, default rate, true approval rate, AIR and EO difference (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.bincount(codes, minlength=k).astype(np.float64)
        n_good = np.bincount(codes, weights=good, minlength=k)
        approval = np.bincount(codes, weights=approved, minlength=k) / n
        default = 1 - n_good / n
        tar = np.bincount(codes, weights=approved * good, minlength=k) / n_good
        present = n > 0
        best = np.nanmax(np.where(present, approval, np.nan)) if present.any() else math.nan
        air = approval / best if best > 0 else np.full(k, math.nan)
        reference = int(np.nanargmax(np.where(present, approval, -1.0)))
        eod = tar - tar[reference]
    return {"approval_rate": approval, "default_rate": default, "true_approval_rate": tar,
            "adverse_impact_ratio": air, "equal_opportunity_difference": eod}


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    alpha = (1 - CI_LEVEL) / 2
    lower, upper = np.quantile(finite, [alpha, 1 - alpha])
    return float(lower), float(upper)


def _optional(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _column(name: str, labels: pd.Series, grouping: str, order: list[str], *, good: np.ndarray,
            approved: np.ndarray, scores: np.ndarray, n_bootstrap: int, seed: int) -> ColumnFairness:
    frame = MetricFrame(
        metrics={"n": count, "approval_rate": selection_rate, "default_rate": _default_rate, "mean_pd": _mean_pd,
                 "auc": _auc, "true_approval_rate": _true_approval_rate},
        y_true=good, y_pred=approved, sensitive_features=pd.Series(labels.to_numpy(), name=name),
        sample_params={"mean_pd": {"pd_": scores}, "auc": {"pd_": scores}},
    )
    present = set(labels)
    by_group = frame.by_group.reindex([label for label in order if label in present])
    names = list(by_group.index)
    codes = pd.Categorical(labels.to_numpy(), categories=names).codes.astype(np.int64)
    k = len(names)
    defaulted = 1 - good
    samples: dict[str, list[np.ndarray]] = {key: [] for key in
                                            ("approval_rate", "default_rate", "adverse_impact_ratio",
                                             "equal_opportunity_difference", "auc")}
    # The same seed for every column: each column's intervals come from the same resamples, drawn one at a
    # time so memory stays that of one resample's indices.
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(good), len(good))
        rates = _rates(codes[idx], approved[idx], good[idx], k)
        for key in ("approval_rate", "default_rate", "adverse_impact_ratio", "equal_opportunity_difference"):
            samples[key].append(rates[key])
        group_codes = codes[idx]
        samples["auc"].append(np.array([_rank_auc(defaulted[idx][group_codes == g], scores[idx][group_codes == g])
                                        for g in range(k)]))
    stacked = {key: np.vstack(values) if values else np.empty((0, k)) for key, values in samples.items()}

    approval = by_group["approval_rate"].to_numpy(dtype=np.float64)
    best = float(approval.max())
    reference = names[int(np.argmax(approval))]
    tar = by_group["true_approval_rate"].to_numpy(dtype=np.float64)
    reference_tar = tar[names.index(reference)]
    groups = []
    for g, group in enumerate(names):
        row = by_group.iloc[g]
        air = approval[g] / best if best > 0 else math.nan
        flagged = bool(math.isfinite(air) and air < FOUR_FIFTHS)
        notes = []
        if row["n"] < SMALL_GROUP_N:
            notes.append(f"small_group: {int(row['n'])} rows (< {SMALL_GROUP_N}); rates are unstable")
        if not math.isfinite(row["auc"]):
            notes.append("one class only: no AUC")
        groups.append(GroupFairness(
            group=group, n=int(row["n"]), n_defaults=int(round(row["n"] * row["default_rate"])),
            approval_rate=float(approval[g]), approval_rate_ci=_interval(stacked["approval_rate"][:, g]),
            default_rate=float(row["default_rate"]), default_rate_ci=_interval(stacked["default_rate"][:, g]),
            mean_pd=float(row["mean_pd"]), auc=_optional(row["auc"]), auc_ci=_interval(stacked["auc"][:, g]),
            true_approval_rate=_optional(tar[g]), adverse_impact_ratio=_optional(air),
            adverse_impact_ratio_ci=_interval(stacked["adverse_impact_ratio"][:, g]),
            equal_opportunity_difference=_optional(tar[g] - reference_tar),
            equal_opportunity_difference_ci=_interval(stacked["equal_opportunity_difference"][:, g]),
            flagged=flagged, notes=tuple(notes),
            flag_note=(f"adverse impact ratio {air:.3f} is below {FOUR_FIFTHS}. {FOUR_FIFTHS_CAVEAT}"
                       if flagged else None),
        ))
    airs = [g.adverse_impact_ratio for g in groups if g.adverse_impact_ratio is not None]
    return ColumnFairness(column=name, grouping=grouping, reference_group=reference, groups=tuple(groups),
                          flagged_groups=tuple(g.group for g in groups if g.flagged),
                          min_adverse_impact_ratio=min(airs) if airs else None)


def fairness_report(y_true: ArrayLike, pd_scores: ArrayLike, protected: Mapping[str, pd.Series], *, cutoff: float,
                    n_bootstrap: int = 200, seed: int = 0) -> FairnessReport:
    """Return approval fairness at ``cutoff`` for each protected column (raw values, grouped here).

    ``y_true`` is 1 for a default; ``protected`` maps a column name to its values for the same rows,
    in the same order. Ages are banded, other numeric columns banded by quantile or grouped by code,
    categorical ones grouped by value (see :func:`protected_groups`).
    """
    y = np.asarray(y_true).astype(np.int64)
    scores = np.asarray(pd_scores, dtype=np.float64)
    if y.ndim != 1 or scores.shape != y.shape:
        raise ValueError("y_true and pd_scores must be one-dimensional and equally long; "
                         f"got {y.shape} and {scores.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1 (1 = default)")
    if not 0 < cutoff < 1:
        raise ValueError(f"cutoff must be strictly between 0 and 1; got {cutoff}")
    if len(y) == 0:
        raise ValueError("no rows to test")
    good = (1 - y).astype(np.float64)
    approved = (scores < cutoff).astype(np.float64)
    n_bootstrap = max(n_bootstrap, 0)
    columns = []
    for name, values in protected.items():
        values = pd.Series(values).reset_index(drop=True)
        if len(values) != len(y):
            raise ValueError(f"protected column {name!r} has {len(values)} values for {len(y)} rows")
        labels, grouping, order = protected_groups(name, values)
        columns.append(_column(name, labels, grouping, order, good=good, approved=approved, scores=scores,
                               n_bootstrap=n_bootstrap, seed=seed))
    return FairnessReport(cutoff=float(cutoff), n=len(y), n_bootstrap=n_bootstrap, seed=seed,
                          ci_level=CI_LEVEL, columns=tuple(columns))

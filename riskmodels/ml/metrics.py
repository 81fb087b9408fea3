"""Evaluate probability-of-default predictions the way credit-risk validation expects.

:func:`evaluate` returns a JSON-serialisable dict (non-finite numbers become ``None``) holding
discrimination (AUC, Gini, KS), calibration (Brier, log loss, Hosmer-Lemeshow, a calibration
curve), threshold metrics, a decile table, thinned ROC/PR curves and bootstrap confidence
intervals. Point estimates come from scikit-learn or scipy; the bootstrap loop uses an
equivalent rank-based AUC/KS because calling scikit-learn hundreds of times dominates the cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

__all__ = ["MAX_CURVE_POINTS", "auc_and_ks", "compare", "degradation", "evaluate", "hosmer_lemeshow"]

# Curves are stored with the version record; 200 points draw smoothly and keep rows small.
MAX_CURVE_POINTS = 200
_CI_LEVEL = 0.95
_DEGRADATION_METRICS = ("auc", "gini", "ks", "brier")
_COMPARED_METRICS = (
    "auc", "gini", "ks", "brier", "log_loss", "accuracy", "precision", "recall", "f1",
    "base_rate", "n", "n_positive",
)


def _check_inputs(y_true: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    scores = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or scores.ndim != 1:
        raise ValueError("y_true and p must be one-dimensional")
    if len(y) != len(scores):
        raise ValueError(f"y_true has {len(y)} values but p has {len(scores)}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1 (1 = default)")
    y = y.astype(np.int64)
    if not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1:
        raise ValueError("p must be probabilities in [0, 1] with no missing values")
    n_positive = int(y.sum())
    if n_positive == 0 or n_positive == len(y):
        only = "defaults (1)" if n_positive else "non-defaults (0)"
        raise ValueError(
            f"y_true contains only {only}; AUC, KS and the other discrimination metrics "
            "need both classes"
        )
    return y, scores


def _ks(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Return the KS statistic and the score threshold where it is reached."""
    # With every threshold kept, max |TPR - FPR| is exactly the two-sample KS statistic between
    # the score distributions of defaulters and non-defaulters.
    fpr, tpr, thresholds = roc_curve(y, scores, drop_intermediate=False)
    gap = np.abs(tpr - fpr)
    best = int(np.argmax(gap))
    return float(gap[best]), float(thresholds[best])


def auc_and_ks(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Return AUC (Mann-Whitney, ties counted half) and KS without scikit-learn's overhead.

    Used inside bootstrap loops (here and in ``performance``), where calling
    roc_auc_score/roc_curve hundreds of times dominates the cost; the tests check it against
    those functions. ``y`` must be 0/1 ints holding both classes (callers check once, not per resample).
    """
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    ranks = stats.rankdata(scores)
    auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    # Evaluate the two empirical CDFs only at the last row of each run of tied scores.
    last_of_tie = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    cdf_pos = np.cumsum(sorted_y)[last_of_tie] / n_pos
    cdf_neg = np.cumsum(1 - sorted_y)[last_of_tie] / n_neg
    return float(auc), float(np.max(np.abs(cdf_pos - cdf_neg)))


def _quantile_groups(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Assign each score to a quantile group 0..n_bins-1 (edges as calibration_curve's 'quantile')."""
    edges = np.percentile(scores, np.linspace(0, 100, n_bins + 1))
    # searchsorted's default side puts a score equal to an edge in the lower group, i.e. groups
    # are (lower, upper], so tied scores never straddle two groups.
    return np.searchsorted(edges[1:-1], scores)


def _grouped(y: np.ndarray, scores: np.ndarray, n_bins: int) -> list[dict[str, Any]]:
    """Return per non-empty quantile group: n, defaults, expected defaults and score stats."""
    groups = _quantile_groups(scores, n_bins)
    out = []
    for g in range(n_bins):
        mask = groups == g
        n = int(mask.sum())
        if n == 0:
            continue
        s = scores[mask]
        out.append(
            {
                "n": n,
                "defaults": int(y[mask].sum()),
                "expected_defaults": float(s.sum()),
                "mean_score": float(s.mean()),
                "min_score": float(s.min()),
                "max_score": float(s.max()),
            }
        )
    return out


def _hosmer_lemeshow(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the Hosmer-Lemeshow statistic over the groups, chi-squared with g - 2 df."""
    statistic = 0.0
    for g in groups:
        observed = (g["defaults"], g["n"] - g["defaults"])
        expected = (g["expected_defaults"], g["n"] - g["expected_defaults"])
        for o, e in zip(observed, expected, strict=True):
            if e > 0:
                statistic += (o - e) ** 2 / e
            elif o > 0:
                # Events in a cell where the model gave them zero probability: infinitely bad.
                statistic = math.inf
    df = len(groups) - 2
    p_value = float(stats.chi2.sf(statistic, df)) if df > 0 else None
    return {"statistic": statistic, "df": df, "p_value": p_value, "n_groups": len(groups)}


def hosmer_lemeshow(y_true: ArrayLike, p: ArrayLike, *, n_bins: int = 10) -> dict[str, Any]:
    """Return the Hosmer-Lemeshow test of ``p`` against 0/1 outcomes over ``n_bins`` quantile groups of ``p``.

    The same groups and statistic as :func:`evaluate` (groups are ``(lower, upper]`` quantile
    bins, fewer when ties leave some empty; chi-squared with groups - 2 degrees of freedom).
    """
    y, scores = _check_inputs(y_true, p)
    return json_safe(_hosmer_lemeshow(_grouped(y, scores, n_bins)))


def _decile_table(groups: list[dict[str, Any]], n_positive: int) -> list[dict[str, Any]]:
    """Return the groups riskiest first, with default rates and cumulative default capture."""
    table = []
    captured = 0
    for rank, g in enumerate(reversed(groups), start=1):
        captured += g["defaults"]
        table.append(
            {
                "decile": rank,
                "n": g["n"],
                "defaults": g["defaults"],
                "default_rate": g["defaults"] / g["n"],
                "mean_score": g["mean_score"],
                "min_score": g["min_score"],
                "max_score": g["max_score"],
                "cumulative_default_share": captured / n_positive,
            }
        )
    return table


def _thin_indices(n: int, keep: Sequence[int]) -> np.ndarray:
    """Return at most MAX_CURVE_POINTS sorted indices spread over 0..n-1, always keeping ``keep``."""
    if n <= MAX_CURVE_POINTS:
        return np.arange(n)
    budget = MAX_CURVE_POINTS - len(keep)
    chosen = set(np.linspace(0, n - 1, budget).round().astype(int).tolist()) | set(keep)
    return np.array(sorted(chosen))


def _bootstrap(y: np.ndarray, scores: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any] | None:
    """Return percentile confidence intervals for AUC and KS from resampled rows."""
    if n_bootstrap <= 0:
        return None
    rng = np.random.default_rng(seed)
    aucs, kss = [], []
    n = len(y)
    for _ in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        # A resample with one class has no AUC; skip it and report how many were usable.
        if yb.min() == yb.max():
            continue
        auc, ks = auc_and_ks(yb, scores[idx])
        aucs.append(auc)
        kss.append(ks)
    alpha = (1 - _CI_LEVEL) / 2 * 100

    def interval(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"lower": None, "upper": None}
        lower, upper = np.percentile(values, [alpha, 100 - alpha])
        return {"lower": float(lower), "upper": float(upper)}

    return {
        "method": "percentile",
        "level": _CI_LEVEL,
        "n_bootstrap": n_bootstrap,
        "n_used": len(aucs),
        "seed": seed,
        "auc": interval(aucs),
        "ks": interval(kss),
    }


def evaluate(
    y_true: ArrayLike,
    p: ArrayLike,
    *,
    threshold: float = 0.5,
    n_bins: int = 10,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Return credit-risk evaluation metrics for 0/1 outcomes ``y_true`` and PDs ``p``.

    Rows with ``p >= threshold`` are predicted to default. Hosmer-Lemeshow, the calibration
    curve and the decile table share ``n_bins`` quantile groups of ``p`` (fewer when ties make
    groups empty). Raises ValueError if ``y_true`` holds a single class.
    """
    y, scores = _check_inputs(y_true, p)
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1]; got {threshold}")
    if n_bins < 3:
        raise ValueError(f"n_bins must be at least 3 for Hosmer-Lemeshow; got {n_bins}")
    n = len(y)
    n_positive = int(y.sum())

    auc = float(roc_auc_score(y, scores))
    ks, ks_threshold = _ks(y, scores)

    predicted = (scores >= threshold).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=0
    )
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()

    groups = _grouped(y, scores, n_bins)

    fpr, tpr, roc_thresholds = roc_curve(y, scores)
    ks_point = int(np.argmax(np.abs(tpr - fpr)))
    roc_keep = _thin_indices(len(fpr), [0, ks_point, len(fpr) - 1])
    pr_precision, pr_recall, pr_thresholds = precision_recall_curve(y, scores)
    pr_keep = _thin_indices(len(pr_precision), [0, len(pr_precision) - 1])
    # precision_recall_curve has one threshold fewer than points (the final point has none).
    pr_thresholds = np.append(pr_thresholds, np.nan)

    result = {
        "n": n,
        "n_positive": n_positive,
        "base_rate": n_positive / n,
        "auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks,
        "ks_threshold": ks_threshold,
        "brier": float(brier_score_loss(y, scores)),
        "log_loss": float(log_loss(y, scores, labels=[0, 1])),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "hosmer_lemeshow": _hosmer_lemeshow(groups),
        "deciles": _decile_table(groups, n_positive),
        "curves": {
            "roc": {
                "fpr": fpr[roc_keep].tolist(),
                "tpr": tpr[roc_keep].tolist(),
                "thresholds": roc_thresholds[roc_keep].tolist(),
            },
            "pr": {
                "precision": pr_precision[pr_keep].tolist(),
                "recall": pr_recall[pr_keep].tolist(),
                "thresholds": pr_thresholds[pr_keep].tolist(),
            },
            "calibration": {
                "mean_predicted": [g["mean_score"] for g in groups],
                "fraction_positive": [g["defaults"] / g["n"] for g in groups],
                "n": [g["n"] for g in groups],
            },
        },
        "bootstrap": _bootstrap(y, scores, n_bootstrap, seed),
        "n_bins": n_bins,
    }
    return json_safe(result)


def json_safe(value: Any) -> Any:
    """Return ``value`` with numpy scalars made Python and NaN/inf replaced by None."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _difference(a: Any, b: Any) -> float | None:
    numbers = [v for v in (a, b) if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(b - a) if len(numbers) == 2 else None


def degradation(train_metrics: Mapping[str, Any], test_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Return train and test values of AUC, Gini, KS and Brier with ``test - train`` differences.

    A falling AUC/Gini/KS (negative difference) or a rising Brier score (positive difference)
    on the test set signals overfitting or drift. ``relative`` is the difference divided by the
    training value.
    """
    out: dict[str, Any] = {}
    for name in _DEGRADATION_METRICS:
        train, test = train_metrics.get(name), test_metrics.get(name)
        diff = _difference(train, test)
        relative = diff / train if diff is not None and train else None
        out[name] = {"train": train, "test": test, "difference": diff, "relative": relative}
    return out


def compare(metrics_a: Mapping[str, Any], metrics_b: Mapping[str, Any]) -> dict[str, Any]:
    """Return headline metrics of two evaluations side by side with ``b - a`` deltas.

    Typically ``a`` is the champion and ``b`` the challenger, evaluated on the same data.
    """
    out: dict[str, Any] = {}
    for name in _COMPARED_METRICS:
        a, b = metrics_a.get(name), metrics_b.get(name)
        out[name] = {"a": a, "b": b, "delta": _difference(a, b)}
    hl_a = (metrics_a.get("hosmer_lemeshow") or {}).get("p_value")
    hl_b = (metrics_b.get("hosmer_lemeshow") or {}).get("p_value")
    out["hosmer_lemeshow_p_value"] = {"a": hl_a, "b": hl_b, "delta": _difference(hl_a, hl_b)}
    for bound in ("lower", "upper"):
        ci_a = ((metrics_a.get("bootstrap") or {}).get("auc") or {}).get(bound)
        ci_b = ((metrics_b.get("bootstrap") or {}).get("auc") or {}).get(bound)
        out[f"auc_ci_{bound}"] = {"a": ci_a, "b": ci_b, "delta": _difference(ci_a, ci_b)}
    return out

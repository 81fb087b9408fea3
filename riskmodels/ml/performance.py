"""Performance of a model on observed outcomes, judged against its validation baseline.

:func:`performance` measures a cohort of 0/1 outcomes and the PDs the model gave them: AUC,
KS and Brier with seeded bootstrap 95% percentile intervals, the Hosmer-Lemeshow test over
ten quantile groups of the predicted PD, and the default rate per score band. A cohort too
small or with a single class is not measured: the result says why, with no NaN anywhere.
:func:`judge` compares the measured AUC, KS and Brier with the baseline (the champion's
test-split evaluation) and gives each a traffic light from the drop thresholds in force.

Point estimates come from :mod:`riskmodels.ml.metrics` (the same functions as every
evaluation), so a cohort drawn from the validation data reproduces the baseline exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import brier_score_loss, roc_auc_score

from riskmodels.ml.metrics import auc_and_ks, hosmer_lemeshow, json_safe

__all__ = ["HL_GROUPS", "JUDGED", "MIN_OUTCOMES", "Judgement", "band_table", "judge", "performance"]

# Below this many outcomes (or with fewer defaults or non-defaults than MIN_PER_CLASS) AUC and
# its interval swing so far between samples that a light on them would be noise.
MIN_OUTCOMES = 30
MIN_PER_CLASS = 5
# Hosmer-Lemeshow over deciles of the predicted PD, the customary grouping (and the evaluation's).
HL_GROUPS = 10
_CI_LEVEL = 0.95
# What is judged against the baseline: metric -> (threshold prefix, whether a rise is the bad direction).
JUDGED: dict[str, tuple[str, bool]] = {"auc": ("auc_drop", False), "ks": ("ks_drop", False),
                                       "brier": ("brier_rise", True)}


def _labels(y_true: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    scores = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or scores.ndim != 1 or len(y) != len(scores):
        raise ValueError("outcomes and PDs must be one-dimensional and of equal length")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("outcomes must be 0 or 1 (1 = default)")
    if len(scores) and (not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1):
        raise ValueError("PDs must be probabilities in [0, 1] with no missing values")
    return y.astype(np.int64), scores


def band_table(y_true: ArrayLike, p: ArrayLike, bands: Sequence[str]) -> list[dict[str, Any]]:
    """Return per score band: n, defaults, observed default rate and mean PD.

    Bands are listed in order of the lowest PD seen in each, so a policy whose band names do
    not sort (or that changed within the window) still reads from safest to riskiest.
    """
    y, scores = _labels(y_true, p)
    names = np.asarray(bands, dtype=object)
    if len(names) != len(y):
        raise ValueError("every outcome needs its band")
    rows = []
    for name in set(names.tolist()):
        mask = names == name
        rows.append({"band": name, "n": int(mask.sum()), "defaults": int(y[mask].sum()),
                     "default_rate": float(y[mask].mean()), "mean_pd": float(scores[mask].mean()),
                     "_lowest": float(scores[mask].min())})
    rows.sort(key=lambda row: (row["_lowest"], row["band"]))
    return [{k: v for k, v in row.items() if k != "_lowest"} for row in rows]


def _bootstrap(y: np.ndarray, scores: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Return percentile intervals of AUC, KS and Brier from ``n_bootstrap`` seeded resamples of the rows."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"auc": [], "ks": [], "brier": []}
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), len(y))
        yb, pb = y[idx], scores[idx]
        # A resample with one class has no AUC; it is skipped and the count used is reported.
        if yb.min() == yb.max():
            continue
        auc, ks = auc_and_ks(yb, pb)
        draws["auc"].append(auc)
        draws["ks"].append(ks)
        draws["brier"].append(float(np.mean((pb - yb) ** 2)))
    alpha = (1 - _CI_LEVEL) / 2 * 100
    intervals = {}
    for name, values in draws.items():
        if values:
            lower, upper = np.percentile(values, [alpha, 100 - alpha])
            intervals[name] = {"lower": float(lower), "upper": float(upper)}
        else:
            intervals[name] = {"lower": None, "upper": None}
    return {"method": "percentile", "level": _CI_LEVEL, "n_bootstrap": n_bootstrap, "n_used": len(draws["auc"]),
            "seed": seed, "intervals": intervals}


def performance(y_true: ArrayLike, p: ArrayLike, bands: Sequence[str], *, n_bootstrap: int = 200,
                seed: int = 0) -> dict[str, Any]:
    """Return the performance of PDs ``p`` on outcomes ``y_true`` (1 = default), JSON-safe.

    ``status`` is ``"measured"``, or ``"insufficient"`` with a ``message`` when there are fewer
    than :data:`MIN_OUTCOMES` outcomes or fewer than :data:`MIN_PER_CLASS` of either class.
    """
    y, scores = _labels(y_true, p)
    n, n_defaults = len(y), int(y.sum())
    counts = {"n": n, "n_defaults": n_defaults, "default_rate": n_defaults / n if n else None}
    if n < MIN_OUTCOMES or min(n_defaults, n - n_defaults) < MIN_PER_CLASS:
        return {"status": "insufficient", **counts,
                "message": (f"{n} matured outcomes ({n_defaults} defaults, {n - n_defaults} non-defaults): "
                            f"measuring needs at least {MIN_OUTCOMES} outcomes and {MIN_PER_CLASS} of each class"),
                "bands": band_table(y, scores, bands) if n else []}
    auc, ks = float(roc_auc_score(y, scores)), auc_and_ks(y, scores)[1]
    boot = _bootstrap(y, scores, n_bootstrap, seed)
    metrics = {"auc": auc, "ks": ks, "brier": float(brier_score_loss(y, scores))}
    return json_safe({
        "status": "measured", **counts, "message": None, "mean_pd": float(scores.mean()),
        "metrics": {name: {"value": value, "ci": boot["intervals"][name]} for name, value in metrics.items()},
        "hosmer_lemeshow": hosmer_lemeshow(y, scores, n_bins=HL_GROUPS),
        "bands": band_table(y, scores, bands),
        "bootstrap": {k: v for k, v in boot.items() if k != "intervals"},
    })


@dataclass(frozen=True)
class Judgement:
    """One metric against its baseline: the change in the bad direction, and the light it earns."""

    metric: str
    value: float
    baseline: float
    change: float  # the drop (AUC, KS) or the rise (Brier): positive is worse
    light: str  # green, amber or red
    amber: float
    red: float

    @property
    def threshold(self) -> float:
        """Return the threshold the change reached (amber's or red's), or amber's when green."""
        return self.red if self.light == "red" else self.amber

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "baseline": self.baseline, "change": self.change, "light": self.light,
                "amber": self.amber, "red": self.red}


def judge(measured: Mapping[str, Any], baseline: Mapping[str, Any],
          thresholds: Mapping[str, float]) -> list[Judgement]:
    """Return a light for each of AUC, KS and Brier of ``measured`` against ``baseline``.

    A change at or past ``<prefix>_red`` is red, at or past ``<prefix>_amber`` amber, else green
    (``auc_drop_*``, ``ks_drop_*``, ``brier_rise_*``). A metric the baseline lacks is not judged.
    """
    if measured.get("status") != "measured":
        return []
    out = []
    for metric, (prefix, rise_is_worse) in JUDGED.items():
        value, base = measured["metrics"][metric]["value"], baseline.get(metric)
        if value is None or not isinstance(base, int | float) or isinstance(base, bool):
            continue
        change = value - base if rise_is_worse else base - value
        amber, red = float(thresholds[f"{prefix}_amber"]), float(thresholds[f"{prefix}_red"])
        # Rounded so a drop that is the threshold in decimal (0.50 - 0.45) is not a hair below it in binary.
        reached = round(change, 12)
        light = "red" if reached >= red else "amber" if reached >= amber else "green"
        out.append(Judgement(metric=metric, value=float(value), baseline=float(base), change=float(change),
                             light=light, amber=amber, red=red))
    return out

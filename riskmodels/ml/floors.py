"""Performance floors: which of a model's minimum and maximum metrics an evaluation breaches."""

from __future__ import annotations

from typing import Any

# name -> (metric read from the evaluation, "min" or "max")
FLOORS = {"min_auc": ("auc", "min"), "min_ks": ("ks", "min"), "max_brier": ("brier", "max"),
          "max_calibration_gap": ("calibration_gap", "max")}


def calibration_gap(metrics: dict[str, Any]) -> float | None:
    """Return the largest |mean predicted PD - observed default rate| over the calibration bins."""
    curve = (metrics.get("curves") or {}).get("calibration") or {}
    pairs = list(zip(curve.get("mean_predicted") or [], curve.get("fraction_positive") or [], strict=False))
    if not pairs:
        return None
    return max(abs(float(p) - float(o)) for p, o in pairs)


def floor_breaches(metrics: dict[str, Any], floors: dict[str, float]) -> list[dict[str, Any]]:
    """Return each floor the metrics breach: its name, the limit, the value (None when the metric is missing)."""
    values = {"auc": metrics.get("auc"), "ks": metrics.get("ks"), "brier": metrics.get("brier"),
              "calibration_gap": calibration_gap(metrics)}
    breaches = []
    for name, limit in sorted(floors.items()):
        metric, kind = FLOORS[name]
        value = values[metric]
        if value is None or (value < limit if kind == "min" else value > limit):
            breaches.append({"floor": name, "metric": metric, "limit": limit, "value": value})
    return breaches

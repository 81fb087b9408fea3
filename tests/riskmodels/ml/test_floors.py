"""Performance floors: which limits an evaluation's metrics breach."""

from __future__ import annotations

import pytest

from riskmodels.ml.floors import calibration_gap, floor_breaches

METRICS = {"auc": 0.72, "ks": 0.31, "brier": 0.19,
           "curves": {"calibration": {"mean_predicted": [0.1, 0.3, 0.6], "fraction_positive": [0.12, 0.22, 0.65]}}}


def test_the_calibration_gap_is_the_largest_bin_difference():
    assert calibration_gap(METRICS) == pytest.approx(0.08)
    assert calibration_gap({}) is None


def test_floors_that_hold_are_not_breaches():
    assert floor_breaches(METRICS, {"min_auc": 0.7, "min_ks": 0.3, "max_brier": 0.2, "max_calibration_gap": 0.1}) == []


def test_each_breached_floor_is_named_with_its_limit_and_value():
    breaches = floor_breaches(METRICS, {"min_auc": 0.75, "max_brier": 0.15, "max_calibration_gap": 0.05})
    assert [(b["floor"], b["limit"], b["value"]) for b in breaches] == [
        ("max_brier", 0.15, 0.19), ("max_calibration_gap", 0.05, pytest.approx(0.08)), ("min_auc", 0.75, 0.72)]


def test_a_floor_on_a_missing_metric_is_a_breach():
    assert floor_breaches({"auc": 0.8}, {"min_ks": 0.2}) == [
        {"floor": "min_ks", "metric": "ks", "limit": 0.2, "value": None}]

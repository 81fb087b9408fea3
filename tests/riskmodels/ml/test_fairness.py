"""Fairness of approvals per protected group: hand-computable cases, intervals, banding, edge groups."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, selection_rate

from riskmodels.ml.fairness import (
    FOUR_FIFTHS_CAVEAT,
    MISSING,
    band_ages,
    fairness_report,
    is_age_column,
    protected_groups,
)


def _two_groups() -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Group a: 80 of 100 approved; group b: 40 of 100 approved (AIR 0.5). Defaults chosen so every rate is exact.

    a: 70 approved non-defaulters, 10 approved defaulters, 10 declined non-defaulters, 10 declined defaulters.
    b: 30 approved non-defaulters, 10 approved defaulters, 30 declined non-defaulters, 30 declined defaulters.
    """
    def block(n_app_good: int, n_app_bad: int, n_dec_good: int, n_dec_bad: int) -> tuple[list[int], list[float]]:
        y = [0] * n_app_good + [1] * n_app_bad + [0] * n_dec_good + [1] * n_dec_bad
        pd_ = [0.1] * n_app_good + [0.3] * n_app_bad + [0.6] * n_dec_good + [0.8] * n_dec_bad
        return y, pd_

    ya, pa = block(70, 10, 10, 10)
    yb, pb = block(30, 10, 30, 30)
    groups = pd.Series(["a"] * 100 + ["b"] * 100, name="group")
    return np.array(ya + yb), np.array(pa + pb), groups


def _group(report, column: str, group: str):  # noqa: ANN001,ANN202
    col = next(c for c in report.columns if c.column == column)
    return next(g for g in col.groups if g.group == group)


def test_a_group_approved_half_as_often_has_ratio_one_half_and_is_flagged_with_the_caveat():
    y, p, groups = _two_groups()
    report = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=50, seed=1)
    a, b = _group(report, "group", "a"), _group(report, "group", "b")
    assert (a.n, b.n) == (100, 100)
    assert a.approval_rate == pytest.approx(0.8) and b.approval_rate == pytest.approx(0.4)
    assert a.adverse_impact_ratio == pytest.approx(1.0) and b.adverse_impact_ratio == pytest.approx(0.5)
    assert not a.flagged and b.flagged and report.columns[0].flagged_groups == ("b",)
    assert report.columns[0].reference_group == "a" and report.columns[0].min_adverse_impact_ratio == pytest.approx(0.5)
    assert FOUR_FIFTHS_CAVEAT in b.flag_note and a.flag_note is None
    assert "not a legal test" in FOUR_FIFTHS_CAVEAT
    # Equal opportunity on the favourable outcome: approved among actual non-defaulters, 70/80 vs 30/60.
    assert a.true_approval_rate == pytest.approx(70 / 80) and b.true_approval_rate == pytest.approx(0.5)
    assert a.equal_opportunity_difference == pytest.approx(0.0)
    assert b.equal_opportunity_difference == pytest.approx(0.5 - 70 / 80)
    assert a.default_rate == pytest.approx(0.2) and b.default_rate == pytest.approx(0.4)
    assert (a.n_defaults, b.n_defaults) == (20, 40)
    assert a.mean_pd == pytest.approx((70 * 0.1 + 10 * 0.3 + 10 * 0.6 + 10 * 0.8) / 100)
    # Within a, defaulters' PDs (0.3, 0.8) against non-defaulters' (0.1, 0.6): pairs ranked right 70*10+70*10+10*10 of 20*80.
    assert a.auc == pytest.approx((70 * 20 + 10 * 10) / (20 * 80))


def test_point_estimates_agree_with_a_metric_frame_built_by_hand():
    y, p, groups = _two_groups()
    report = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=0)
    approved = (p < 0.5).astype(int)
    frame = MetricFrame(metrics=selection_rate, y_true=1 - y, y_pred=approved, sensitive_features=groups)
    assert [g.approval_rate for g in report.columns[0].groups] == pytest.approx(list(frame.by_group))
    assert all(g.approval_rate_ci == (None, None) for g in report.columns[0].groups)  # no resamples, no interval


def test_the_bootstrap_counts_give_the_metric_frame_estimates_on_the_original_rows():
    from riskmodels.ml.fairness import _rates

    y, p, groups = _two_groups()
    report = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=0)
    codes = (groups == "b").to_numpy().astype(np.int64)
    rates = _rates(codes, (p < 0.5).astype(float), (1 - y).astype(float), 2)
    for key in ("approval_rate", "default_rate", "true_approval_rate", "adverse_impact_ratio",
                "equal_opportunity_difference"):
        assert list(rates[key]) == pytest.approx([getattr(g, key) for g in report.columns[0].groups])


def test_intervals_contain_the_estimate_and_are_reproducible_with_the_seed():
    y, p, groups = _two_groups()
    first = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=200, seed=7)
    again = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=200, seed=7)
    other = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=200, seed=8)
    assert first == again and first.to_dict() == again.to_dict()
    assert first.to_dict() != other.to_dict()
    b = _group(first, "group", "b")
    for value, (lower, upper) in [(b.approval_rate, b.approval_rate_ci), (b.adverse_impact_ratio, b.adverse_impact_ratio_ci),
                                  (b.default_rate, b.default_rate_ci), (b.auc, b.auc_ci),
                                  (b.equal_opportunity_difference, b.equal_opportunity_difference_ci)]:
        assert lower < value < upper
    # The binomial standard error of 0.4 on 100 rows is about 0.05: the interval is about four of them wide.
    assert 0.1 < b.approval_rate_ci[1] - b.approval_rate_ci[0] < 0.3


def test_the_report_is_json_safe_plain_data():
    y, p, groups = _two_groups()
    data = fairness_report(y, p, {"group": groups}, cutoff=0.5, n_bootstrap=20).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["flagged"] is True and data["columns"][0]["groups"][1]["approval_rate_ci"][0] is not None
    assert data["caveat"] == FOUR_FIFTHS_CAVEAT and data["definitions"]["approve"] == "PD < cutoff"


@pytest.mark.parametrize(("name", "is_age"), [("age", True), ("age_in_years", True), ("Applicant-Age", True),
                                              ("mortgage", False), ("agent", False), ("page_views", False)])
def test_a_column_is_an_age_when_age_is_a_whole_word_of_its_name(name: str, is_age: bool):
    assert is_age_column(name) is is_age


def test_age_bands_include_their_lower_edge_and_exclude_their_upper_one():
    ages = pd.Series([18, 24.9, 25, 34, 35, 44.5, 45, 54, 55, 64.99, 65, 90, None])
    assert list(band_ages(ages)) == ["<25", "<25", "25-34", "25-34", "35-44", "35-44", "45-54", "45-54", "55-64",
                                     "55-64", "65+", "65+", MISSING]


def test_protected_columns_are_grouped_by_kind():
    ages, how, order = protected_groups("age_in_years", pd.Series([30, 70, 22]))
    assert list(ages) == ["25-34", "65+", "<25"] and how == "age bands" and order[0] == "<25"
    income, how, order = protected_groups("income", pd.Series(np.arange(100, dtype=float)))
    assert "quantile" in how and pd.Series(income).nunique() == 4 and order[-1] == MISSING
    lower_edges = [float(label[1:].split(",")[0]) for label in order[:4]]
    assert lower_edges == sorted(lower_edges)
    assert (pd.Series(income).value_counts() == 25).all()
    codes, how, _ = protected_groups("region_code", pd.Series([1, 2, 1, 2]))
    assert list(codes) == ["1", "2", "1", "2"] and how == "values"  # a few numeric codes are values
    sexes, how, _ = protected_groups("sex", pd.Series(["f", None, "m", np.nan]))
    assert list(sexes) == ["f", MISSING, "m", MISSING] and how == "values"


def test_missing_values_are_a_group_of_their_own_and_small_groups_are_kept_with_a_note():
    rng = np.random.default_rng(0)
    n = 220
    y = np.r_[np.tile([0, 1], n // 2)]
    p = rng.uniform(0, 1, n)
    values = pd.Series(["x"] * 200 + [None] * 20)
    report = fairness_report(y, p, {"status": values}, cutoff=0.5, n_bootstrap=10)
    groups = {g.group: g for g in report.columns[0].groups}
    assert set(groups) == {"x", MISSING} and groups[MISSING].n == 20
    assert any(note.startswith("small_group") for note in groups[MISSING].notes)
    assert not any(note.startswith("small_group") for note in groups["x"].notes)


def test_a_group_with_one_class_has_no_auc_but_keeps_its_rates():
    y = np.array([0, 1] * 50 + [0] * 40)
    p = np.r_[np.linspace(0.05, 0.95, 100), np.full(40, 0.2)]
    groups = pd.Series(["mixed"] * 100 + ["all_good"] * 40)
    report = fairness_report(y, p, {"g": groups}, cutoff=0.5, n_bootstrap=30)
    all_good = _group(report, "g", "all_good")
    assert all_good.auc is None and all_good.auc_ci == (None, None) and "one class only: no AUC" in all_good.notes
    assert all_good.approval_rate == 1.0 and all_good.default_rate == 0.0 and all_good.true_approval_rate == 1.0
    assert _group(report, "g", "mixed").auc is not None


def test_a_group_without_non_defaulters_has_no_true_approval_rate():
    y = np.array([0, 1] * 50 + [1] * 10)
    p = np.r_[np.linspace(0.05, 0.95, 100), np.full(10, 0.9)]
    report = fairness_report(y, p, {"g": pd.Series(["a"] * 100 + ["b"] * 10)}, cutoff=0.5, n_bootstrap=10)
    b = _group(report, "g", "b")
    assert b.true_approval_rate is None and b.equal_opportunity_difference is None
    assert b.approval_rate == 0.0 and b.adverse_impact_ratio == 0.0 and b.flagged


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="cutoff"):
        fairness_report([0, 1], [0.1, 0.9], {"g": pd.Series(["a", "b"])}, cutoff=1.0)
    with pytest.raises(ValueError, match="protected column 'g'"):
        fairness_report([0, 1], [0.1, 0.9], {"g": pd.Series(["a"])}, cutoff=0.5)
    with pytest.raises(ValueError, match="only 0 and 1"):
        fairness_report([0, 2], [0.1, 0.9], {"g": pd.Series(["a", "b"])}, cutoff=0.5)

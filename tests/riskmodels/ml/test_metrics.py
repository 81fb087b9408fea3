import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from riskmodels.ml.metrics import MAX_CURVE_POINTS, auc_and_ks, compare, degradation, evaluate


def synthetic(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return outcomes with a 30% default rate and informative, imperfect PDs."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 1.2)))
    return y, p


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, dict]:
    y, p = synthetic()
    return y, p, evaluate(y, p, threshold=0.35, n_bootstrap=100, seed=3)


def test_auc_and_gini_equal_scikit_learn(scored):
    y, p, m = scored

    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["gini"] == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)


def test_ks_equals_scipy_two_sample_statistic(scored):
    y, p, m = scored

    assert m["ks"] == pytest.approx(stats.ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)


def test_ks_equals_scipy_with_heavily_tied_scores():
    y, p = synthetic(500, seed=4)
    p = np.round(p, 1)

    assert evaluate(y, p, n_bootstrap=0)["ks"] == pytest.approx(
        stats.ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12
    )


def test_ks_threshold_separates_the_score_distributions_by_ks(scored):
    y, p, m = scored

    tpr = (p[y == 1] >= m["ks_threshold"]).mean()
    fpr = (p[y == 0] >= m["ks_threshold"]).mean()
    assert abs(tpr - fpr) == pytest.approx(m["ks"])


def test_brier_and_log_loss_equal_scikit_learn(scored):
    y, p, m = scored

    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)


def test_threshold_metrics_equal_scikit_learn(scored):
    y, p, m = scored
    predicted = (p >= 0.35).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="binary")
    tn, fp, fn, tp = confusion_matrix(y, predicted).ravel()

    assert m["threshold"] == 0.35
    assert m["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((precision, recall, f1))
    assert m["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_counts_and_base_rate_are_reported(scored):
    y, _, m = scored

    assert (m["n"], m["n_positive"]) == (len(y), int(y.sum()))
    assert m["base_rate"] == pytest.approx(y.mean())


def test_hosmer_lemeshow_matches_a_hand_computed_example():
    # Ten rows in five groups of two (distinct scores, so quantile groups are exact pairs).
    p = np.array([0.05, 0.10, 0.20, 0.25, 0.40, 0.45, 0.60, 0.65, 0.80, 0.90])
    y = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1])
    groups = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    statistic = 0.0
    for group in groups:
        observed = y[list(group)].sum()
        expected = p[list(group)].sum()
        n = len(group)
        statistic += (observed - expected) ** 2 / expected
        statistic += ((n - observed) - (n - expected)) ** 2 / (n - expected)

    hl = evaluate(y, p, n_bins=5, n_bootstrap=0)["hosmer_lemeshow"]

    assert hl["statistic"] == pytest.approx(statistic)
    assert hl["df"] == 3
    assert hl["p_value"] == pytest.approx(stats.chi2.sf(statistic, 3))
    assert hl["n_groups"] == 5


def test_hosmer_lemeshow_uses_n_bins_minus_two_degrees_of_freedom(scored):
    assert scored[2]["hosmer_lemeshow"]["df"] == 8


def test_hosmer_lemeshow_has_fewer_groups_when_ties_leave_quantile_bins_empty():
    y, p = synthetic(300)
    p = np.where(p > 0.5, 0.7, 0.2)

    hl = evaluate(y, p, n_bootstrap=0)["hosmer_lemeshow"]

    assert hl["n_groups"] == 2
    assert hl["df"] == 0
    assert hl["p_value"] is None


def test_calibration_curve_equals_scikit_learn_quantile_bins(scored):
    y, p, m = scored
    fraction_positive, mean_predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")

    assert m["curves"]["calibration"]["fraction_positive"] == pytest.approx(fraction_positive.tolist())
    assert m["curves"]["calibration"]["mean_predicted"] == pytest.approx(mean_predicted.tolist())


def test_decile_table_runs_from_riskiest_to_safest_and_adds_up(scored):
    y, p, m = scored
    deciles = m["deciles"]

    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["n"] for d in deciles) == len(y)
    assert sum(d["defaults"] for d in deciles) == y.sum()
    assert deciles[0]["min_score"] >= deciles[1]["max_score"]
    assert deciles[0]["max_score"] == pytest.approx(p.max())
    assert deciles[-1]["min_score"] == pytest.approx(p.min())
    assert deciles[-1]["cumulative_default_share"] == pytest.approx(1.0)
    top = p >= deciles[0]["min_score"]
    assert deciles[0]["n"] == top.sum()
    assert deciles[0]["default_rate"] == pytest.approx(y[top].mean())
    assert deciles[0]["mean_score"] == pytest.approx(p[top].mean())


def test_curves_are_thinned_for_storage_but_keep_their_ends():
    y, p = synthetic(5000)

    curves = evaluate(y, p, n_bootstrap=0)["curves"]

    roc, pr = curves["roc"], curves["pr"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"]) <= MAX_CURVE_POINTS
    assert len(pr["precision"]) == len(pr["recall"]) <= MAX_CURVE_POINTS
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert roc["thresholds"][0] is None  # roc_curve's +inf first threshold, stored as null
    assert max(t - f for t, f in zip(roc["tpr"], roc["fpr"], strict=True)) == pytest.approx(
        evaluate(y, p, n_bootstrap=0)["ks"]
    )


def test_bootstrap_intervals_bracket_the_estimate_and_record_the_seed(scored):
    _, _, m = scored
    boot = m["bootstrap"]

    assert (boot["seed"], boot["n_bootstrap"], boot["level"], boot["method"]) == (3, 100, 0.95, "percentile")
    assert boot["auc"]["lower"] < m["auc"] < boot["auc"]["upper"]
    assert boot["ks"]["lower"] < m["ks"] < boot["ks"]["upper"]


def test_bootstrap_is_reproducible_for_a_seed_and_changes_with_it():
    y, p = synthetic(300)

    first = evaluate(y, p, n_bootstrap=50, seed=1)["bootstrap"]

    assert first == evaluate(y, p, n_bootstrap=50, seed=1)["bootstrap"]
    assert first["auc"] != evaluate(y, p, n_bootstrap=50, seed=2)["bootstrap"]["auc"]


def test_bootstrap_can_be_switched_off():
    y, p = synthetic(100)

    assert evaluate(y, p, n_bootstrap=0)["bootstrap"] is None


def test_fast_bootstrap_statistics_equal_scikit_learn_and_scipy_with_ties():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 400)
    p = np.round(rng.random(400), 2)

    auc, ks = auc_and_ks(y, p)

    assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ks == pytest.approx(stats.ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)


def test_evaluation_is_strict_json_without_nan():
    y = np.array([0, 1] * 10)
    p = np.full(20, 0.5)  # a constant score: KS threshold is +inf, HL degenerate

    m = evaluate(y, p, n_bootstrap=10)

    json.dumps(m, allow_nan=False)
    assert m["ks"] == 0.0
    assert m["ks_threshold"] is None


def test_a_single_class_outcome_raises_a_clear_value_error():
    with pytest.raises(ValueError, match="only non-defaults"):
        evaluate(np.zeros(10), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="only defaults"):
        evaluate(np.ones(10), np.linspace(0, 1, 10))


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.1, float("nan")], "no missing values"),
        ([0, 1, 1], [0.1, 0.2], "3 values but p has 2"),
    ],
)
def test_invalid_inputs_raise_value_errors(y, p, match):
    with pytest.raises(ValueError, match=match):
        evaluate(np.array(y), np.array(p))


def test_boolean_outcomes_are_accepted(scored):
    y, p, m = scored

    assert evaluate(y.astype(bool), p, threshold=0.35, n_bootstrap=0)["auc"] == m["auc"]


def test_degradation_reports_test_minus_train_differences():
    y, p = synthetic(600, seed=1)
    train = evaluate(y, p, n_bootstrap=0)
    noisy = np.clip(p + np.random.default_rng(2).normal(0, 0.2, len(p)), 0, 1)
    test = evaluate(y, noisy, n_bootstrap=0)

    result = degradation(train, test)

    assert set(result) == {"auc", "gini", "ks", "brier"}
    for name in result:
        assert result[name]["train"] == train[name]
        assert result[name]["test"] == test[name]
        assert result[name]["difference"] == pytest.approx(test[name] - train[name])
        assert result[name]["relative"] == pytest.approx((test[name] - train[name]) / train[name])
    assert result["auc"]["difference"] < 0
    assert result["brier"]["difference"] > 0


def test_compare_puts_two_evaluations_side_by_side_with_deltas(scored):
    y, p, a = scored
    b = evaluate(y, np.sqrt(p), threshold=0.35, n_bootstrap=100, seed=3)

    result = compare(a, b)

    assert result["auc"] == {"a": a["auc"], "b": b["auc"], "delta": pytest.approx(b["auc"] - a["auc"])}
    assert result["brier"]["delta"] == pytest.approx(b["brier"] - a["brier"])
    assert result["hosmer_lemeshow_p_value"]["a"] == a["hosmer_lemeshow"]["p_value"]
    assert result["auc_ci_lower"]["b"] == b["bootstrap"]["auc"]["lower"]
    json.dumps(result, allow_nan=False)


def test_compare_leaves_the_delta_empty_when_a_value_is_missing(scored):
    _, _, a = scored

    assert compare(a, {**a, "ks": None})["ks"]["delta"] is None
    assert math.isclose(compare(a, a)["gini"]["delta"], 0.0)

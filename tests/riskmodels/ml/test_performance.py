"""Performance on observed outcomes: the pure measurements and the lights against a baseline."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from riskmodels.ml.metrics import evaluate
from riskmodels.ml.performance import MIN_OUTCOMES, band_table, judge, performance

THRESHOLDS = {"auc_drop_amber": 0.03, "auc_drop_red": 0.05, "ks_drop_amber": 0.05, "ks_drop_red": 0.10,
              "brier_rise_amber": 0.02, "brier_rise_red": 0.04}


def cohort(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 6, n)
    y = (rng.random(n) < p).astype(int)
    return y, p, ["low" if x < 0.2 else "mid" if x < 0.4 else "high" for x in p]


def test_hosmer_lemeshow_over_ten_pd_groups_matches_a_hand_computation():
    # Twenty distinct PDs, each twice, in ten quantile groups: every group is two consecutive PDs.
    p = np.linspace(0.05, 0.95, 20)
    y = np.tile([0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1], 2)
    p = np.tile(p, 2)  # forty rows, enough to be measured: each group holds the four rows of two tied pairs
    statistic = 0.0
    order = np.argsort(p, kind="stable")
    for group in np.array_split(order, 10):
        observed, expected, n = y[group].sum(), p[group].sum(), len(group)
        statistic += (observed - expected) ** 2 / expected + ((n - observed) - (n - expected)) ** 2 / (n - expected)

    hl = performance(y, p, ["x"] * len(y), n_bootstrap=0)["hosmer_lemeshow"]

    assert hl["statistic"] == pytest.approx(statistic)
    assert (hl["df"], hl["n_groups"]) == (8, 10)
    assert hl["p_value"] == pytest.approx(stats.chi2.sf(statistic, 8))


def test_auc_ks_and_brier_are_the_evaluations_own():
    y, p, bands = cohort(500)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)

    result = performance(y, p, bands, n_bootstrap=0)
    metrics = {name: m["value"] for name, m in result["metrics"].items()}

    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["ks"] == pytest.approx(np.max(np.abs(tpr - fpr)))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p))
    baseline = evaluate(y, p, n_bootstrap=0)
    assert [metrics[k] for k in ("auc", "ks", "brier")] == pytest.approx([baseline[k] for k in ("auc", "ks", "brier")])
    assert result["hosmer_lemeshow"] == baseline["hosmer_lemeshow"]


def test_seeded_bootstrap_intervals_hold_the_estimate_and_repeat_exactly():
    y, p, bands = cohort(400)

    first = performance(y, p, bands, n_bootstrap=200, seed=3)
    again = performance(y, p, bands, n_bootstrap=200, seed=3)

    assert first == again
    for name in ("auc", "ks", "brier"):
        ci = first["metrics"][name]["ci"]
        assert ci["lower"] < first["metrics"][name]["value"] < ci["upper"]
    assert first["bootstrap"]["n_used"] == 200 and first["bootstrap"]["level"] == 0.95


def test_default_rate_per_band_reads_from_the_safest_band_to_the_riskiest():
    p = np.array([0.6, 0.05, 0.3, 0.1, 0.7, 0.35])
    y = np.array([1, 0, 1, 0, 0, 0])
    bands = ["Z", "B", "A", "B", "Z", "A"]  # names that do not sort by risk

    table = band_table(y, p, bands)

    assert [row["band"] for row in table] == ["B", "A", "Z"]
    assert [(row["n"], row["defaults"]) for row in table] == [(2, 0), (2, 1), (2, 1)]
    assert table[1]["default_rate"] == 0.5 and table[2]["mean_pd"] == pytest.approx(0.65)


@pytest.mark.parametrize(("n", "defaults"), [(MIN_OUTCOMES - 1, 10), (200, 0), (200, 3)])
def test_too_few_outcomes_or_a_lonely_class_are_not_measured_and_say_why(n, defaults):  # noqa: ANN001
    p = np.full(n, 0.2)
    y = np.array([1] * defaults + [0] * (n - defaults))

    result = performance(y, p, ["A"] * n)

    assert result["status"] == "insufficient"
    assert f"{n} matured outcomes ({defaults} defaults" in result["message"]
    assert "metrics" not in result
    json.dumps(result, allow_nan=False)  # no NaN reaches the stored JSON
    assert judge(result, {"auc": 0.8, "ks": 0.4, "brier": 0.15}, THRESHOLDS) == []


def test_an_empty_cohort_is_insufficient_without_dividing_by_zero():
    result = performance(np.array([], dtype=int), np.array([]), [])

    assert (result["status"], result["n"], result["default_rate"], result["bands"]) == ("insufficient", 0, None, [])


def _measured(auc: float, ks: float, brier: float) -> dict:
    return {"status": "measured", "metrics": {"auc": {"value": auc}, "ks": {"value": ks}, "brier": {"value": brier}}}


def test_drops_are_judged_green_below_amber_amber_from_amber_red_from_red():
    baseline = {"auc": 0.80, "ks": 0.50, "brier": 0.150}

    lights = {j.metric: (j.light, round(j.change, 6), j.threshold)
              for j in judge(_measured(0.78, 0.45, 0.20), baseline, THRESHOLDS)}

    assert lights == {"auc": ("green", 0.02, 0.03), "ks": ("amber", 0.05, 0.05), "brier": ("red", 0.05, 0.04)}


def test_a_better_than_baseline_cohort_is_green_and_a_missing_baseline_metric_is_not_judged():
    judged = judge(_measured(0.90, 0.60, 0.10), {"auc": 0.80, "ks": None, "brier": 0.150}, THRESHOLDS)

    assert [(j.metric, j.light) for j in judged] == [("auc", "green"), ("brier", "green")]
    assert judged[0].change == pytest.approx(-0.10)

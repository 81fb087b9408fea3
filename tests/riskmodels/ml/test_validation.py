"""The validator's battery on data with a known answer, and its figures against direct computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score

from riskmodels.ml.validation import (
    FAIL,
    PASS,
    WARN,
    Thresholds,
    calibration,
    explanation_stability,
    leakage,
    overfitting,
    robustness,
    single_feature_auc,
    weak_segments,
    worst_outcome,
)

T = Thresholds()


def _credit(n: int = 4000, seed: int = 0, leak: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"income": rng.normal(size=n), "debt": rng.normal(size=n), "noise": rng.normal(size=n),
                          "region": rng.choice(["north", "south", "east"], size=n)})
    logit = -1.0 + 1.2 * frame["debt"] - 0.8 * frame["income"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    if leak:
        frame["payments_total"] = y + rng.normal(0, 0.05, n)  # observed after the loan: the target, blurred
    return frame, y


def _fit(frame: pd.DataFrame, y: np.ndarray):  # noqa: ANN202
    X = pd.get_dummies(frame, columns=["region"], dtype=float)
    model = HistGradientBoostingClassifier(max_depth=3, max_iter=60, random_state=0).fit(X[:3000], y[:3000])
    return model, X


def _importance(model, X) -> dict[str, float]:  # noqa: ANN001
    from sklearn.inspection import permutation_importance

    result = permutation_importance(model, X[3000:], y_test := model.predict(X[3000:]), n_repeats=3, random_state=0)
    del y_test
    return {name: max(float(v), 0.0) for name, v in zip(X.columns, result.importances_mean, strict=True)}


def test_a_planted_leak_fails_leakage_naming_the_column_and_proposes_a_high_finding():
    frame, y = _credit(leak=True)
    model, X = _fit(frame, y)
    p = model.predict_proba(X[3000:])[:, 1]
    result = leakage(frame.iloc[3000:], y[3000:], roc_auc_score(y[3000:], p), _importance(model, X),
                     model_type="application_pd", thresholds=T)
    assert result.outcome == FAIL and "payments_total" in result.message
    assert result.proposed_finding == {"title": result.proposed_finding["title"], "category": "data", "severity": "high"}
    assert "payments_total" in result.proposed_finding["title"]


def test_the_same_data_without_the_leak_passes_leakage():
    frame, y = _credit(leak=False)
    model, X = _fit(frame, y)
    p = model.predict_proba(X[3000:])[:, 1]
    result = leakage(frame.iloc[3000:], y[3000:], roc_auc_score(y[3000:], p), _importance(model, X),
                     model_type="application_pd", thresholds=T)
    assert result.outcome == PASS and result.proposed_finding is None


def test_single_feature_auc_equals_scikit_learn_on_the_feature_and_on_category_rates():
    frame, y = _credit()
    direct = roc_auc_score(y, frame["debt"])
    assert single_feature_auc(frame["debt"], y) == pytest.approx(max(direct, 1 - direct))
    rates = pd.Series(y).groupby(frame["region"]).mean()
    direct = roc_auc_score(y, frame["region"].map(rates))
    assert single_feature_auc(frame["region"], y) == pytest.approx(max(direct, 1 - direct))


def test_a_model_poor_on_one_segment_is_named_by_the_weak_segment_test():
    rng = np.random.default_rng(3)
    n = 6000
    frame = pd.DataFrame({"x": rng.normal(size=n), "channel": rng.choice(["branch", "online", "broker"], size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * frame["x"]))).astype(int)
    p = 1 / (1 + np.exp(-2 * frame["x"].to_numpy()))
    broker = (frame["channel"] == "broker").to_numpy()
    p[broker] = rng.random(broker.sum())  # the model knows nothing about broker applicants
    result = weak_segments(frame, y, p, thresholds=T)
    assert result.outcome == WARN and "channel = broker" in result.message
    weak = {(w["feature"], w["segment"]) for w in result.figures["weak"]}
    assert ("channel", "broker") in weak and ("channel", "online") not in weak
    row = next(w for w in result.figures["weak"] if w["segment"] == "broker")
    assert row["auc"] == pytest.approx(roc_auc_score(y[broker], p[broker]))


def test_overfitting_reports_the_gaps_between_train_and_test():
    train, test = {"auc": 0.99, "ks": 0.9, "brier": 0.05}, {"auc": 0.75, "ks": 0.4, "brier": 0.18}
    result = overfitting(train, test, thresholds=T)
    assert result.outcome == FAIL and result.figures["auc_gap"] == pytest.approx(0.24)
    assert result.figures["brier_gap"] == pytest.approx(0.13) and result.figures["ks_gap"] == pytest.approx(0.5)
    assert overfitting({"auc": 0.76, "ks": 0.4, "brier": 0.17}, test, thresholds=T).outcome == PASS


def test_robustness_measures_noise_and_one_feature_neutralised_like_a_direct_computation():
    frame, y = _credit()
    frame = frame.drop(columns="region")
    model = HistGradientBoostingClassifier(max_depth=3, max_iter=60, random_state=0).fit(frame, y)

    def predict(f: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(f)[:, 1]

    result = robustness(predict, frame, y, numeric=list(frame.columns), seed=7, thresholds=T)
    neutral = frame.assign(debt=frame["debt"].median())
    assert result.figures["drop_one_auc_drop"]["debt"] == pytest.approx(
        roc_auc_score(y, predict(frame)) - roc_auc_score(y, predict(neutral)))
    assert result.figures["drop_one_auc_drop"]["debt"] > result.figures["drop_one_auc_drop"]["noise"]
    rng = np.random.default_rng(7)
    noisy = frame.copy()
    for name in frame.columns:
        noisy[name] = frame[name] + rng.normal(0.0, 0.05 * frame[name].std(), len(frame))
    assert result.figures["noise"]["mean_abs_pd_shift"] == pytest.approx(np.mean(np.abs(predict(noisy) - predict(frame))))


def test_explanation_stability_is_the_rank_correlation_across_resamples():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(500, 4)) * np.array([3.0, 2.0, 1.0, 0.1])
    result = explanation_stability(values, ["a", "b", "c", "d"], seed=2, n_resamples=20, thresholds=T)
    assert result.outcome == PASS and result.figures["rank_correlation_min"] > 0.9
    noise = rng.normal(size=(40, 6))  # six features of equal importance: rankings are noise
    assert explanation_stability(noise, list("abcdef"), seed=2, n_resamples=20, thresholds=T).outcome in {WARN, FAIL}
    rows = np.random.default_rng(2).integers(0, 500, 500)
    direct = stats.spearmanr(np.abs(values).mean(axis=0), np.abs(values[rows]).mean(axis=0)).statistic
    assert explanation_stability(values, list("abcd"), seed=2, n_resamples=1,
                                 thresholds=T).figures["rank_correlation_min"] == pytest.approx(direct)


def test_calibration_fails_a_model_whose_pds_are_off_and_passes_a_calibrated_one():
    rng = np.random.default_rng(4)
    p = rng.uniform(0.02, 0.6, 5000)
    y = (rng.random(5000) < p).astype(int)
    good = calibration(y, p, thresholds=T)
    assert good.outcome in {PASS, WARN} and good.figures["brier"] == pytest.approx(brier_score_loss(y, p))
    band = good.figures["bands"][0]
    order = np.argsort(p, kind="stable")[:500]
    assert band["binomial_p"] == pytest.approx(stats.binomtest(int(y[order].sum()), 500, p[order].mean()).pvalue)
    assert calibration(y, np.clip(p * 1.8, 0, 0.99), thresholds=T).outcome == FAIL


def test_the_battery_outcome_is_its_worst_test():
    frame, y = _credit()
    ok = weak_segments(frame[["income"]], y, 1 / (1 + np.exp(-frame["debt"].to_numpy())), thresholds=T)
    bad = overfitting({"auc": 0.99, "ks": 0.9, "brier": 0.05}, {"auc": 0.7, "ks": 0.3, "brier": 0.2}, thresholds=T)
    assert worst_outcome([ok]) == PASS and worst_outcome([ok, bad]) == FAIL


def test_a_feature_that_stands_in_for_a_protected_column_is_listed_as_a_proxy():
    from scipy.stats.contingency import association

    from riskmodels.ml.validation import cramers_v, proxies

    rng = np.random.default_rng(5)
    n = 3000
    sex = pd.Series(rng.choice(["f", "m"], size=n))
    features = pd.DataFrame({"title": sex.map({"f": "ms", "m": "mr"}).where(rng.random(n) > 0.05, "dr"),
                             "income": rng.normal(size=n), "region": rng.choice(["n", "s"], size=n)})
    result = proxies(features, pd.DataFrame({"sex": sex}), thresholds=T)
    assert result.outcome == WARN and "title ~ sex" in result.message and "income" not in result.message
    direct = association(pd.crosstab(features["region"], sex).to_numpy(), method="cramer")
    assert cramers_v(features["region"], sex) == pytest.approx(direct)
    assert proxies(features, pd.DataFrame(index=features.index), thresholds=T).outcome == PASS

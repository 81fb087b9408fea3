import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from riskmodels.ml.explain import ExplainOptions, make_explainer, reason_codes
from riskmodels.ml.pipelines import TrainingSpec, known_categories
from riskmodels.ml.scoring import (
    APPROVE,
    DECLINE,
    FLAG_PROTECTED_OUTWEIGHS,
    FLAG_UNSEEN_CATEGORY,
    REFER,
    Band,
    ScoringError,
    ScoringPolicy,
    material_reasons,
    score_rows,
)
from riskmodels.ml.training import train

DRIVERS = ("debt_ratio", "missed_payments")
NOISE = tuple(f"noise_{i}" for i in range(6))


def synthetic(n: int = 4000, seed: int = 0, *, protected_driver: bool = False) -> pd.DataFrame:
    """Two features drive default; six are pure noise (and, optionally, a protected one drives it too)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=n) for name in (*DRIVERS, *NOISE)})
    frame["region"] = rng.choice(["north", "south", "east"], size=n)
    frame["age"] = rng.integers(18, 80, size=n).astype(float)
    log_odds = -1.5 + 1.6 * frame["debt_ratio"] + 1.4 * frame["missed_payments"]
    if protected_driver:
        log_odds = log_odds + 0.12 * (frame["age"] - 50)
    frame["defaulted"] = np.where(rng.random(n) < expit(log_odds), "bad", "good")
    return frame


def fitted(frame: pd.DataFrame, algorithm: str, features: tuple[str, ...]):  # noqa: ANN201
    spec = TrainingSpec(algorithm=algorithm, target="defaulted", positive_class="bad", features=features,
                        categorical=("region",) if "region" in features else (),
                        hyperparameters={"max_iter": 60} if algorithm == "gradient_boosting" else {})
    result = train(frame, spec)
    background = frame.iloc[:200] if algorithm != "gradient_boosting" else None
    return spec, result.pipeline, make_explainer(result.pipeline, spec, background=background,
                                                 options=ExplainOptions(background_size=100))


@pytest.fixture(scope="module")
def boosted():  # noqa: ANN201
    frame = synthetic()
    return frame, *fitted(frame, "gradient_boosting", (*DRIVERS, *NOISE, "region"))


def high_risk(frame: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    return frame.assign(risk=frame["debt_ratio"] + frame["missed_payments"]).nlargest(n, "risk").drop(columns="risk")


def test_a_high_risk_applicant_gets_only_reasons_that_matter_not_noise(boosted):  # noqa: ANN001
    frame, spec, pipeline, explainer = boosted
    rows = high_risk(frame)[list(spec.features)]
    policy = ScoringPolicy(cutoff=0.3)
    scored = score_rows(explainer, rows, policy=policy, protected=())
    assert all(s.decision == DECLINE for s in scored)
    for s in scored:
        features = [r.feature for r in s.reasons]
        assert features and set(features) <= set(DRIVERS), features
        total = sum(v for v in s.contributions.values() if v > 0)
        assert all(r.contribution >= 0.10 * total and r.contribution >= 0.05 for r in s.reasons)
    # What the materiality rule is for: the plain top four list a noise feature for most of them.
    plain = [reason_codes(s.contributions, protected=()) for s in scored]
    assert sum(any(r.feature in NOISE for r in codes) for codes in plain) >= 5


def test_the_pd_is_the_models_own_output_and_contributions_add_up_in_log_odds(boosted):  # noqa: ANN001
    frame, spec, pipeline, explainer = boosted
    rows = frame.iloc[:50][list(spec.features)]
    scored = score_rows(explainer, rows, policy=ScoringPolicy(cutoff=0.5), protected=())
    from riskmodels.ml.pipelines import prepare_features
    expected = pipeline.predict_proba(prepare_features(rows, spec))[:, 1]
    np.testing.assert_allclose([s.pd for s in scored], expected, rtol=0, atol=1e-12)
    for s in scored:
        assert math.isclose(s.base_log_odds + sum(s.contributions.values()), logit(s.pd), abs_tol=1e-9)


@pytest.mark.parametrize("algorithm", ["random_forest", "logistic_regression"])
def test_every_algorithm_states_contributions_in_log_odds_that_add_up_to_the_pd(algorithm):  # noqa: ANN001
    frame = synthetic(n=1500, seed=3)
    spec, pipeline, explainer = fitted(frame, algorithm, (*DRIVERS, *NOISE[:2]))
    rows = frame.iloc[:30][list(spec.features)]
    scored = score_rows(explainer, rows, policy=ScoringPolicy(cutoff=0.5), protected=())
    for s in scored:
        clipped = min(max(s.pd, 1e-9), 1 - 1e-9)
        assert math.isclose(s.base_log_odds + sum(s.contributions.values()), logit(clipped), abs_tol=1e-7)
    # The ranking of features is the explainer's own: rescaling never reorders a row.
    raw = explainer.explain(rows).values
    for s, row in zip(scored, raw, strict=True):
        order = np.argsort(-row, kind="stable")
        assert list(np.argsort(-np.array(list(s.contributions.values())), kind="stable")) == list(order)


def test_a_protected_attribute_that_outweighs_the_reasons_is_flagged_not_listed():
    frame = synthetic(protected_driver=True, seed=5)
    spec, pipeline, explainer = fitted(frame, "logistic_regression", (*DRIVERS, "age"))
    old = frame[(frame["age"] > 75) & (frame["debt_ratio"].between(0.3, 0.8))][list(spec.features)].head(5)
    scored = score_rows(explainer, old, policy=ScoringPolicy(cutoff=0.2), protected={"age"})
    adverse = [s for s in scored if s.decision == DECLINE]
    assert adverse
    for s in adverse:
        assert "age" not in [r.feature for r in s.reasons]
        assert s.contributions["age"] > max(r.contribution for r in s.reasons)
        assert FLAG_PROTECTED_OUTWEIGHS in s.flags and s.flag_details[FLAG_PROTECTED_OUTWEIGHS] == ["age"]


def test_reasons_count_protected_pushes_in_the_total_but_never_list_them():
    policy = ScoringPolicy(cutoff=0.5, materiality_share=0.2, materiality_min_log_odds=0.1)
    reasons, protected = material_reasons({"a": 1.0, "b": 0.5, "age": 2.0, "c": 0.3, "d": -4.0},
                                          protected={"age"}, catalogue={"a": "Too much debt"}, policy=policy)
    # total adverse push 3.8 -> floor 0.76: only a qualifies; age is material but suppressed.
    assert [(r.feature, r.text) for r in reasons] == [("a", "Too much debt")]
    assert math.isclose(reasons[0].share, 1.0 / 3.8)
    assert protected == {"age": 2.0}


def test_an_applicant_whose_pushes_are_all_small_gets_no_reason():
    policy = ScoringPolicy(cutoff=0.5, materiality_min_log_odds=0.05)
    reasons, _ = material_reasons({"a": 0.01, "b": 0.02, "c": -1.0}, protected=(), catalogue=None, policy=policy)
    assert reasons == ()


def test_decisions_follow_the_cutoff_and_the_refer_band_and_bands_cover_the_unit_interval():
    policy = ScoringPolicy(cutoff=0.30, refer_from=0.20,
                           bands=(Band("low", 0.1), Band("mid", 0.3), Band("high", 1.0)))
    assert [policy.decide(p) for p in (0.0, 0.19999, 0.2, 0.29999, 0.3, 1.0)] == [
        APPROVE, APPROVE, REFER, REFER, DECLINE, DECLINE]
    assert [policy.band(p) for p in (0.0, 0.1, 0.29, 0.3, 1.0)] == ["low", "mid", "mid", "high", "high"]
    assert ScoringPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize("given, message", [
    ({"cutoff": 1.5}, "cutoff must be between 0 and 1"),
    ({"cutoff": 0.3, "refer_from": 0.4}, "refer_from (0.4) must be below the cutoff"),
    ({"cutoff": 0.3, "bands": [{"name": "A", "upper": 0.5}, {"name": "B", "upper": 0.4}]}, "ascend"),
    ({"cutoff": 0.3, "bands": [{"name": "A", "upper": 0.5}]}, "the last must be 1.0"),
    ({"cutoff": 0.3, "max_reasons": 5}, "max_reasons must be between 1 and 4"),
    ({"cutoff": 0.3, "colour": "red"}, "unknown scoring policy settings: colour"),
    ({"refer_from": 0.1}, "needs a cutoff"),
    ({"cutoff": True}, "cutoff must be a number"),
])
def test_a_bad_policy_is_refused_naming_the_setting(given, message):  # noqa: ANN001
    with pytest.raises(ScoringError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScoringPolicy.from_dict(given)


def test_an_unseen_category_is_scored_and_flagged(boosted):  # noqa: ANN001
    frame, spec, pipeline, explainer = boosted
    rows = frame.iloc[:2][list(spec.features)].copy()
    rows.loc[rows.index[1], "region"] = "atlantis"
    scored = score_rows(explainer, rows, policy=ScoringPolicy(cutoff=0.5), protected=(),
                        known_categories=known_categories(pipeline))
    assert scored[0].flags == ()
    assert FLAG_UNSEEN_CATEGORY in scored[1].flags and scored[1].flag_details[FLAG_UNSEEN_CATEGORY] == ["region"]
    assert 0 <= scored[1].pd <= 1


def test_known_categories_are_the_encoders_own():
    frame = synthetic(n=600)
    spec, pipeline, _ = fitted(frame, "logistic_regression", (*DRIVERS, "region"))
    assert known_categories(pipeline) == {"region": ["east", "north", "south"]}


def test_the_vectorised_reasons_equal_the_rule_applied_row_by_row(boosted):  # noqa: ANN001
    frame, spec, pipeline, explainer = boosted
    rows = frame.iloc[:400][list(spec.features)]
    policy = ScoringPolicy(cutoff=0.2, refer_from=0.1, materiality_share=0.05, max_reasons=3)
    protected = {"noise_0", "noise_1"}
    scored = score_rows(explainer, rows, policy=policy, protected=protected, catalogue={"debt_ratio": "Debt"})
    assert {s.decision for s in scored} == {APPROVE, REFER, DECLINE}
    for s in scored:
        if s.decision == APPROVE:
            assert s.reasons == () and s.flags == ()
            continue
        reasons, pushes = material_reasons(s.contributions, protected=protected, catalogue={"debt_ratio": "Debt"},
                                           policy=policy)
        assert [(r.rank, r.feature, r.contribution, r.text) for r in s.reasons] == [
            (r.rank, r.feature, r.contribution, r.text) for r in reasons]
        assert [r.share for r in s.reasons] == pytest.approx([r.share for r in reasons], rel=1e-12)
        top = reasons[0].contribution if reasons else 0.0
        assert sorted(f for f, v in pushes.items() if v > top) == s.flag_details.get(FLAG_PROTECTED_OUTWEIGHS, [])


def test_a_model_without_categorical_features_has_no_known_categories_and_scores():
    frame = synthetic(n=600)
    spec, pipeline, explainer = fitted(frame, "gradient_boosting", DRIVERS)
    assert known_categories(pipeline) == {}
    scored = score_rows(explainer, frame.iloc[:3][list(DRIVERS)], policy=ScoringPolicy(cutoff=0.5), protected=(),
                        known_categories=known_categories(pipeline))
    assert len(scored) == 3 and all(s.flags == () for s in scored)

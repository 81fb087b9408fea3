"""Counterfactuals for adverse-action notices: the smallest change that would have approved an applicant.

Most tests score with a known formula, PD = sigmoid(x1 / 20 + x2 / 100 + 3 * z + housing - offset)
where housing adds -0.5 for own, -0.2 for free and +0.5 for rent, so the cheapest change on the
grid can be worked out by hand. The training frame makes x1 take every integer 0..100 (grid
0, 5, ..., 100; IQR 50) and x2 every multiple of 10 in 0..1000 (grid 0, 50, ..., 1000; IQR 500).
z is never actionable: it stands for a protected characteristic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodels.ml.counterfactual import (
    KIND_CATEGORICAL,
    KIND_NUMERIC,
    CandidateSet,
    candidate_grid,
    counterfactual_search,
)
from riskmodels.ml.pipelines import TrainingSpec, infer_categorical, prepare_features
from riskmodels.ml.training import train

GERMAN_CSV = Path(__file__).resolve().parents[3] / "demo" / "german_credit.csv"
PROTECTED = ("personal_status_and_sex", "age_in_years", "foreign_worker")
HOUSING_LOGIT = {"own": -0.5, "free": -0.2, "rent": 0.5}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Formula:
    """Score rows with a known formula and remember every frame it was given."""

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.frames: list[pd.DataFrame] = []

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        self.frames.append(frame.copy())
        x1 = pd.to_numeric(frame["x1"]).fillna(50.0).to_numpy(dtype=float)
        x2 = pd.to_numeric(frame["x2"]).to_numpy(dtype=float)
        z = pd.to_numeric(frame["z"]).to_numpy(dtype=float)
        housing = frame["housing"].map(HOUSING_LOGIT).to_numpy(dtype=float)
        return sigmoid(x1 / 20 + x2 / 100 + 3 * z + housing - self.offset)


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    n = 101
    return pd.DataFrame({
        "x1": np.arange(n),
        "x2": np.arange(0, 10 * n, 10),
        "z": np.arange(n) % 2,
        "housing": np.array(["rent", "own", "free"], dtype=object)[np.arange(n) % 3],
        "target": np.where(np.arange(n) % 4 == 0, "bad", "good"),
    })


@pytest.fixture(scope="module")
def spec() -> TrainingSpec:
    return TrainingSpec(algorithm="logistic_regression", target="target", positive_class="bad",
                        features=("x1", "x2", "z", "housing"), categorical=("housing",))


def applicant(x1: float, x2: float, z: int = 0, housing: str = "own") -> pd.DataFrame:
    return pd.DataFrame({"x1": [x1], "x2": [x2], "z": [z], "housing": [housing]}, index=[42])


# --- the grid -------------------------------------------------------------------------------


def test_the_grid_holds_observed_quantiles_with_the_iqr_as_scale(training, spec):
    grid = candidate_grid(training, spec, ["x1", "x2"])

    assert grid["x1"].values == tuple(range(0, 101, 5))
    assert grid["x1"].scale == 50.0
    assert (grid["x1"].low, grid["x1"].high) == (0.0, 100.0)
    assert grid["x2"].values == tuple(range(0, 1001, 50))
    assert grid["x2"].scale == 500.0
    assert all(type(v) is int for v in grid["x2"].values)


def test_the_grid_lists_observed_categories_at_one_unit_per_switch(training, spec):
    grid = candidate_grid(training, spec, ["housing"])

    assert grid["housing"].kind == KIND_CATEGORICAL
    assert grid["housing"].values == ("free", "own", "rent")
    assert grid["housing"].cost("rent", "own") == 1.0


def test_the_scale_falls_back_to_the_std_then_to_one(spec):
    mostly_one = pd.DataFrame({"x1": [1.0] * 9 + [11.0], "x2": [3.0] * 10})

    grid = candidate_grid(mostly_one, spec, ["x1", "x2"])

    assert grid["x1"].scale == pytest.approx(3.0)  # IQR 0; std of nine 1s and one 11 is 3
    assert grid["x1"].values == (1.0, 11.0)
    assert grid["x2"].scale == 1.0


def test_the_grid_refuses_features_the_model_does_not_have(training, spec):
    with pytest.raises(ValueError, match="income, tenure"):
        candidate_grid(training, spec, ["x1", "income", "tenure"])
    with pytest.raises(ValueError, match="at least one"):
        candidate_grid(training, spec, [])
    with pytest.raises(ValueError, match="quantiles"):
        candidate_grid(training, spec, ["x1"], quantiles=0)


# --- single changes -------------------------------------------------------------------------


def test_it_finds_the_smallest_single_feature_change(training, spec):
    # logit = 4 + 7 - 0.5 - 8.5 = 2. x1 must fall below 40 (35: cost 45/50 = 0.9); x2 below 500
    # (450: cost 250/500 = 0.5). x2 = 500 gives PD exactly 0.5, which is not below the cutoff.
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(Formula(offset=8.5), applicant(80, 700), cutoff=0.5, grid=grid)

    assert result.found
    assert [c.to_dict() for c in result.changes] == [
        {"feature": "x2", "original": 700, "proposed": 450, "cost": pytest.approx(0.5)}]
    assert result.pd_before == pytest.approx(sigmoid(2.0))
    assert result.pd_after == pytest.approx(sigmoid(-0.5))
    assert result.message.startswith("If your x2 had been 450 instead of 700, the estimated probability")
    assert "below the cutoff of 50.0%" in result.message
    assert result.searched["single_changes"] == 40
    assert result.searched["pairs"] == []


def test_a_proposed_value_exactly_at_the_cutoff_does_not_count(training, spec):
    # Only x2 is actionable; 500 gives logit 0 (PD 0.5), so the answer is the next step down.
    grid = candidate_grid(training, spec, ["x2"])

    result = counterfactual_search(Formula(offset=8.5), applicant(80, 700), cutoff=0.5, grid=grid)

    assert [(c.feature, c.proposed) for c in result.changes] == [("x2", 450)]
    assert result.pd_after < 0.5


def test_a_category_switch_prefers_the_lower_pd_when_costs_tie(training, spec):
    # logit = 0 + 4.5 + 0.5 - 4.7 = 0.3. From rent both own (-1.0) and free (-0.7) cross at cost
    # 1.0 each, so own wins on PD; x1 is at its minimum already and can only raise the PD.
    grid = candidate_grid(training, spec, ["x1", "housing"])

    result = counterfactual_search(Formula(offset=4.7), applicant(0, 450, housing="rent"), cutoff=0.5, grid=grid)

    assert [(c.feature, c.original, c.proposed, c.cost) for c in result.changes] == [("housing", "rent", "own", 1.0)]
    assert result.pd_after == pytest.approx(sigmoid(4.5 - 0.5 - 4.7))
    assert result.message.startswith("If your housing had been own instead of rent,")


def test_a_cheaper_numeric_change_beats_a_category_switch(training, spec):
    # logit = 2.75 + 2.8 + 0.5 - 5.9 = 0.15; x1 55 -> 50 takes it to -0.1 at a cost of 5 / 50 = 0.1.
    grid = candidate_grid(training, spec, ["x1", "housing"])

    result = counterfactual_search(Formula(offset=5.9), applicant(55, 280, housing="rent"), cutoff=0.5, grid=grid)

    assert [(c.feature, c.proposed) for c in result.changes] == [("x1", 50)]
    assert result.changes[0].cost == pytest.approx(0.1)


def test_a_missing_numeric_value_costs_one_per_change(training, spec):
    # The formula scores a missing x1 as 50: logit 2.5 + 7 - 0.5 - 9 = 0, PD 0.5, declined. Every
    # x1 below 50 crosses at cost 1.0, and the tie goes to the smallest PD, x1 = 0.
    grid = candidate_grid(training, spec, ["x1"])

    result = counterfactual_search(Formula(offset=9), applicant(math.nan, 700), cutoff=0.5, grid=grid)

    change = result.changes[0]
    assert (change.feature, change.original, change.proposed, change.cost) == ("x1", None, 0, 1.0)
    assert "(it was not provided)" in result.message
    assert json.loads(json.dumps(result.to_dict()))["changes"][0]["original"] is None


# --- pairs ----------------------------------------------------------------------------------


def test_only_a_pair_crosses_when_no_single_change_can(training, spec):
    # logit = 5 + 10 - 0.5 - 4.5 = 10. Alone, x1 -> 0 leaves 5 and x2 -> 0 leaves exactly 0 (PD 0.5).
    # Together 5a + b > 1000 (a, b the reductions) at cost (10a + b) / 500: b = 1000, a = 5 is
    # the cheapest, cost 2.1.
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.5, grid=grid)

    assert result.found
    assert [(c.feature, c.original, c.proposed) for c in result.changes] == [("x1", 100, 95), ("x2", 1000, 0)]
    assert sum(c.cost for c in result.changes) == pytest.approx(2.1)
    assert result.pd_after == pytest.approx(sigmoid(-0.25))
    assert result.message.startswith("If your x1 had been 95 instead of 100 and your x2 had been 0 instead of 1000,")
    assert result.searched["pairs"] == [["x1", "x2"]]
    assert result.searched["pair_changes"] == 20 * 20


def test_one_change_only_when_max_features_is_one(training, spec):
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.5, grid=grid, max_features=1)

    assert not result.found
    assert result.searched["pair_changes"] == 0
    assert result.message.startswith("No change to any one of x1, x2 within the observed range")


def test_only_the_most_promising_pairs_are_tried(training, spec):
    # x2's best drop is the largest, then x1's, then housing's (own -> free raises PD): the best
    # pair by summed drops is (x1, x2).
    grid = candidate_grid(training, spec, ["housing", "x1", "x2"])

    result = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.5, grid=grid, max_pairs=1)

    assert result.searched["pairs"] == [["x1", "x2"]]
    assert {c.feature for c in result.changes} == {"x1", "x2"}


def test_it_says_so_when_no_change_within_the_observed_range_is_enough(training, spec):
    # The lowest reachable logit is 0 + 0 - 0.5 - 4.5 (PD 0.0067), above a cutoff of 0.001.
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.001, grid=grid)

    assert not result.found
    assert result.changes == ()
    assert result.pd_after is None
    assert result.message.startswith("No change to at most two of x1, x2 within the observed range moves")
    assert result.searched["evaluations"] == 40 + 400


def test_the_applicant_already_below_the_cutoff_was_not_declined(training, spec):
    predict = Formula(offset=4.5)
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(predict, applicant(0, 0), cutoff=0.5, grid=grid)

    assert not result.found
    assert "not adverse" in result.message
    assert len(predict.frames) == 1
    assert result.to_dict()["pd_after"] is None


# --- what is changed and how often the model is called --------------------------------------


def test_non_actionable_features_are_never_changed(training, spec):
    # Setting z (a protected stand-in) from 1 to 0 would lower the logit by 3: never proposed.
    predict = Formula(offset=8)
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(predict, applicant(100, 1000, z=1), cutoff=0.5, grid=grid)

    assert {c.feature for c in result.changes} <= {"x1", "x2"}
    for frame in predict.frames:
        assert frame["z"].tolist() == [1] * len(frame)
        assert frame["housing"].tolist() == ["own"] * len(frame)


def test_the_model_is_called_in_bounded_batches(training, spec):
    predict = Formula(offset=4.5)
    grid = candidate_grid(training, spec, ["x1", "x2"])

    counterfactual_search(predict, applicant(100, 1000), cutoff=0.001, grid=grid, batch_rows=7)

    # One call for the applicant, ceil(40 / 7) for the single changes, ceil(400 / 7) for the pair.
    assert len(predict.frames) == 1 + 6 + 58
    assert max(len(frame) for frame in predict.frames) == 7


def test_the_default_batch_scores_all_single_changes_in_one_call(training, spec):
    predict = Formula(offset=4.5)
    grid = candidate_grid(training, spec, ["x1", "x2"])

    result = counterfactual_search(predict, applicant(100, 1000), cutoff=0.001, grid=grid)

    assert [len(frame) for frame in predict.frames] == [1, 40, 400]
    assert result.searched["predict_calls"] == 3


def test_the_search_is_deterministic(training, spec):
    grid = candidate_grid(training, spec, ["x1", "x2", "housing"])

    first = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.5, grid=grid)
    second = counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=0.5, grid=grid)

    assert first == second


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [0, 1, 1.5, -0.1, math.nan, True, "0.5"])
def test_a_cutoff_outside_zero_and_one_is_refused(training, spec, cutoff):
    grid = candidate_grid(training, spec, ["x1"])
    with pytest.raises(ValueError, match="cutoff"):
        counterfactual_search(Formula(offset=4.5), applicant(100, 1000), cutoff=cutoff, grid=grid)


def test_anything_but_one_row_is_refused(training, spec):
    grid = candidate_grid(training, spec, ["x1"])
    two = pd.concat([applicant(1, 2), applicant(3, 4)])
    for rows in (two, applicant(1, 2).iloc[:0]):
        with pytest.raises(ValueError, match="exactly one row"):
            counterfactual_search(Formula(offset=4.5), rows, cutoff=0.5, grid=grid)


@pytest.mark.parametrize("max_features", [0, 3, True])
def test_max_features_must_be_one_or_two(training, spec, max_features):
    grid = candidate_grid(training, spec, ["x1"])
    with pytest.raises(ValueError, match="max_features must be 1 or 2"):
        counterfactual_search(Formula(offset=4.5), applicant(1, 2), cutoff=0.5, grid=grid, max_features=max_features)


def test_a_grid_feature_missing_from_the_row_is_refused():
    grid = {"income": CandidateSet("income", KIND_NUMERIC, (1.0, 2.0))}
    with pytest.raises(ValueError, match="income"):
        counterfactual_search(Formula(offset=4.5), applicant(1, 2), cutoff=0.5, grid=grid)


def test_a_model_that_returns_the_wrong_number_of_pds_is_refused(training, spec):
    grid = candidate_grid(training, spec, ["x1"])
    with pytest.raises(ValueError, match="returned 2 values for 1 rows"):
        counterfactual_search(lambda frame: np.array([0.9, 0.9]), applicant(100, 1000), cutoff=0.5, grid=grid)


# --- a real model ---------------------------------------------------------------------------


def test_a_declined_german_credit_applicant_gets_a_change_the_fitted_model_confirms():
    german = pd.read_csv(GERMAN_CSV)
    features = tuple(c for c in german.columns if c not in ("creditability", *PROTECTED))
    spec = TrainingSpec(algorithm="logistic_regression", target="creditability", positive_class="bad",
                        features=features, categorical=infer_categorical({c: german[c].dtype for c in features}))
    fitted = train(german, spec, predict=False).pipeline
    bad = list(fitted.classes_).index(1)

    def predict_pd(frame: pd.DataFrame) -> np.ndarray:
        return fitted.predict_proba(prepare_features(frame, spec))[:, bad]

    pds = predict_pd(german)
    # The declined applicant closest to the cutoff: a small change should be enough.
    position = int(np.argmin(np.where(pds >= 0.5, pds, np.inf)))
    row = german.iloc[[position]]
    actionable = ["duration_in_month", "credit_amount", "savings_account_and_bonds"]
    grid = candidate_grid(german, spec, actionable)

    result = counterfactual_search(predict_pd, row, cutoff=0.5, grid=grid)

    assert result.found
    assert {c.feature for c in result.changes} <= set(actionable)
    changed = row.copy()
    for change in result.changes:
        changed[change.feature] = [change.proposed]
    assert predict_pd(changed)[0] == pytest.approx(result.pd_after)
    assert result.pd_after < 0.5 <= result.pd_before
    json.dumps(result.to_dict())

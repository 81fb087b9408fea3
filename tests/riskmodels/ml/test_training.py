from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from riskmodels.ml.pipelines import (
    ALGORITHMS,
    SearchSpec,
    SpecError,
    TrainingSpec,
    infer_categorical,
    prepare_features,
)
from riskmodels.ml.training import _stratified_split, binary_target, split, train

GERMAN_CSV = Path(__file__).resolve().parents[3] / "demo" / "german_credit.csv"
TARGET = "creditability"
PROTECTED = ("personal_status_and_sex", "age_in_years", "foreign_worker")
FAST = {
    "random_forest": {"n_estimators": 20},
    "gradient_boosting": {"max_iter": 30},
    "mlp": {"hidden_layer_sizes": [16], "max_iter": 50},
}


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    frame = pd.read_csv(GERMAN_CSV)
    # A synthetic application date, one day per row, for out-of-time splits.
    frame["applied_on"] = pd.date_range("2023-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    return frame


def german_spec(german: pd.DataFrame, algorithm: str = "logistic_regression", **kwargs) -> TrainingSpec:
    features = tuple(c for c in german.columns if c not in (TARGET, "applied_on", *PROTECTED))
    kwargs.setdefault("features", features)
    if "categorical" not in kwargs:
        kwargs["categorical"] = infer_categorical({c: german[c].dtype for c in kwargs["features"]})
    kwargs.setdefault("hyperparameters", FAST.get(algorithm, {}))
    return TrainingSpec(algorithm=algorithm, target=TARGET, positive_class="bad", **kwargs)


# --- split ----------------------------------------------------------------------------------


def test_stratified_split_keeps_the_default_rate_on_both_sides(german):
    spec = german_spec(german, test_size=0.2)
    y = binary_target(german, spec)

    train_idx, test_idx = split(german, spec)

    assert len(test_idx) == 200
    assert y[train_idx].mean() == pytest.approx(0.3)
    assert y[test_idx].mean() == pytest.approx(0.3)


def test_split_partitions_the_rows_into_sorted_positions(german):
    train_idx, test_idx = split(german, german_spec(german))

    assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(len(german)))
    assert np.all(np.diff(train_idx) > 0) and np.all(np.diff(test_idx) > 0)


def test_the_seed_decides_the_stratified_split(german):
    first = split(german, german_spec(german, seed=1))[1]

    assert np.array_equal(first, split(german, german_spec(german, seed=1))[1])
    assert not np.array_equal(first, split(german, german_spec(german, seed=2))[1])


@pytest.mark.parametrize("n", [10, 37, 1000, 5003, 100_000])
@pytest.mark.parametrize("rate", [0.02, 0.3, 0.5])
def test_the_stratified_split_is_scikit_learns_train_test_split(n, rate):
    # Registered versions were split by train_test_split: retraining one must keep its rows on each side.
    for test_size, seed in [(0.25, 0), (0.1, 1), (0.33, 42), (0.5, 2**31)]:
        y = (np.random.default_rng(n + seed % 97).random(n) < rate).astype(np.int64)
        if np.bincount(y, minlength=2).min() < 2:
            continue
        try:
            expected = train_test_split(np.arange(n), test_size=test_size, stratify=y, random_state=seed)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc)[:40]):
                _stratified_split(y, test_size, seed)
            continue

        train_idx, test_idx = _stratified_split(y, test_size, seed)

        assert np.array_equal(np.sort(train_idx), np.sort(expected[0]))
        assert np.array_equal(np.sort(test_idx), np.sort(expected[1]))


def test_where_scikit_learn_refuses_a_stratified_split_its_error_is_raised():
    y = np.array([0] * 9 + [1])  # a class of one row
    with pytest.raises(ValueError, match="too few"):
        _stratified_split(y, 0.25, 0)
    with pytest.raises(ValueError, match="should be greater or equal to the number of classes"):
        _stratified_split(np.array([0, 1] * 5), 0.1, 0)  # one test row for two classes


def test_out_of_time_split_puts_rows_on_or_after_the_cutoff_in_the_test_set(german):
    spec = german_spec(german, split="out_of_time", date_column="applied_on", cutoff="2025-01-01")

    train_idx, test_idx = split(german, spec)

    dates = pd.to_datetime(german["applied_on"])
    assert (dates.iloc[test_idx] >= "2025-01-01").all()
    assert (dates.iloc[train_idx] < "2025-01-01").all()
    assert german["applied_on"].iloc[test_idx].min() == "2025-01-01"


def test_out_of_time_split_accepts_a_datetime_column_and_an_aware_cutoff(german):
    frame = german.assign(applied_on=pd.to_datetime(german["applied_on"]))
    spec = german_spec(frame, split="out_of_time", date_column="applied_on", cutoff="2025-01-01T00:00:00+00:00")

    assert len(split(frame, spec)[1]) == (frame["applied_on"] >= "2025-01-01").sum()


def test_out_of_time_split_with_an_empty_test_set_is_refused(german):
    spec = german_spec(german, split="out_of_time", date_column="applied_on", cutoff="2030-01-01")

    with pytest.raises(SpecError, match="the test set has 0 rows") as info:
        split(german, spec)
    assert info.value.field == "cutoff"


def test_out_of_time_split_with_a_single_class_side_is_refused(german):
    frame = german.copy()
    late = frame["applied_on"] >= "2025-06-01"
    frame.loc[late, TARGET] = "good"
    spec = german_spec(frame, split="out_of_time", date_column="applied_on", cutoff="2025-06-01")

    with pytest.raises(SpecError, match="the test set has .* rows and a single class"):
        split(frame, spec)


def test_out_of_time_split_refuses_unparseable_dates(german):
    frame = german.copy()
    frame.loc[3, "applied_on"] = "yesterday"
    spec = german_spec(frame, split="out_of_time", date_column="applied_on", cutoff="2025-01-01")

    with pytest.raises(SpecError, match="1 rows have a missing or unparseable date") as info:
        split(frame, spec)
    assert info.value.field == "date_column"


def test_a_target_with_missing_values_is_refused(german):
    frame = german.copy()
    frame.loc[[1, 2], TARGET] = None

    with pytest.raises(SpecError, match="has 2 missing values"):
        train(frame, german_spec(frame))


def test_a_target_with_too_few_defaults_is_refused(german):
    frame = pd.concat([german[german[TARGET] == "good"], german[german[TARGET] == "bad"].head(5)])

    with pytest.raises(SpecError, match="too few rows per class"):
        train(frame, german_spec(frame))


# --- train ----------------------------------------------------------------------------------


def test_training_returns_labels_and_probabilities_of_default_for_both_sides(german):
    result = train(german, german_spec(german))

    assert len(result.p_train) == len(result.train_index) == len(result.y_train) == 750
    assert len(result.p_test) == len(result.test_index) == len(result.y_test) == 250
    expected = (german[TARGET].to_numpy() == "bad").astype(int)
    assert np.array_equal(result.y_test, expected[result.test_index])
    assert ((result.p_test >= 0) & (result.p_test <= 1)).all()
    # Probabilities are of default: defaulters score higher on average.
    assert result.p_test[result.y_test == 1].mean() > result.p_test[result.y_test == 0].mean()
    assert np.allclose(
        result.pipeline.predict_proba(prepare_features(german, german_spec(german)).iloc[result.test_index])[:, 1],
        result.p_test,
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_training_twice_gives_bitwise_identical_predictions(german, algorithm):
    spec = german_spec(german, algorithm, seed=7)

    first, second = train(german, spec), train(german, spec)

    assert np.array_equal(first.test_index, second.test_index)
    assert np.array_equal(first.p_train, second.p_train)
    assert np.array_equal(first.p_test, second.p_test)


def test_progress_is_reported_in_order_up_to_done(german):
    calls = []
    spec = german_spec(german, search=SearchSpec(method="grid", param_grid={"C": [0.1, 1.0]}, cv=2))

    train(german, spec, progress=lambda stage, percent: calls.append((stage, percent)))

    assert calls == [("split", 5), ("search", 35), ("search", 60), ("fit", 70), ("predict", 90), ("done", 100)]


def test_without_predictions_no_predict_stage_is_reported(german):
    calls = []

    result = train(german, german_spec(german), progress=lambda stage, percent: calls.append((stage, percent)),
                   predict=False)

    assert calls == [("split", 5), ("fit", 70), ("done", 100)]
    assert len(result.p_test) == 0


def test_timings_are_recorded_for_every_stage(german):
    timings = train(german, german_spec(german)).timings

    assert set(timings) == {"split", "search", "fit", "predict", "total"}
    assert all(t >= 0 for t in timings.values())


def test_grid_search_records_every_candidate_and_fits_the_best(german):
    grid = {"C": [0.001, 0.1, 1.0], "class_weight": [None, "balanced"]}
    spec = german_spec(german, search=SearchSpec(method="grid", param_grid=grid, cv=3))

    result = train(german, spec)

    assert result.search_results is not None and len(result.search_results) == 6
    assert sorted(r["rank"] for r in result.search_results) == [1, 2, 3, 4, 5, 6]
    best = min(result.search_results, key=lambda r: r["rank"])
    assert best["mean_test_score"] == max(r["mean_test_score"] for r in result.search_results)
    assert result.hyperparameters == best["params"]
    assert result.pipeline.named_steps["model"].C == best["params"]["C"]
    for r in result.search_results:
        assert set(r) == {"params", "mean_test_score", "std_test_score", "split_test_scores", "rank"}
        assert len(r["split_test_scores"]) == 3
        assert r["mean_test_score"] == pytest.approx(np.mean(r["split_test_scores"]))


def test_search_keeps_non_searched_hyperparameters_from_the_spec(german):
    spec = german_spec(
        german,
        "gradient_boosting",
        hyperparameters={"max_iter": 20, "max_depth": 2},
        search=SearchSpec(method="grid", param_grid={"learning_rate": [0.05, 0.2]}, cv=2),
    )

    result = train(german, spec)

    assert all(r["params"]["max_depth"] == 2 and r["params"]["max_iter"] == 20 for r in result.search_results)
    assert result.pipeline.named_steps["model"].max_depth == 2


def test_random_search_samples_n_iter_candidates_reproducibly(german):
    search = SearchSpec(
        method="random",
        param_distributions={
            "C": {"distribution": "loguniform", "low": 0.001, "high": 10.0},
            "max_iter": {"distribution": "randint", "low": 200, "high": 400},
            "class_weight": [None, "balanced"],
        },
        n_iter=4,
        cv=2,
    )
    spec = german_spec(german, search=search)

    first, second = train(german, spec), train(german, spec)

    assert len(first.search_results) == 4
    assert first.search_results == second.search_results
    for r in first.search_results:
        assert 0.001 <= r["params"]["C"] <= 10.0 and type(r["params"]["C"]) is float
        assert 200 <= r["params"]["max_iter"] <= 400 and type(r["params"]["max_iter"]) is int


def test_search_uses_only_the_training_rows(german):
    # Overwriting a feature on the test rows must not move the cross-validation scores.
    spec = german_spec(german, search=SearchSpec(method="grid", param_grid={"C": [0.1]}, cv=2))
    _, test_idx = split(german, spec)
    scrambled = german.copy()
    scrambled.iloc[test_idx, scrambled.columns.get_loc("credit_amount")] = 1

    assert train(german, spec).search_results == train(scrambled, spec).search_results


def test_convergence_warnings_are_recorded_on_the_result(german):
    spec = german_spec(german, "mlp", hyperparameters={"hidden_layer_sizes": [4], "max_iter": 3})

    result = train(german, spec)

    assert any(w.startswith("ConvergenceWarning") for w in result.warnings)


"""Tests for riskmodels.ml.profiling: statistics, duplicates, leakage and the positive-class rule."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from riskmodels.ml.profiling import LEAKAGE_AUC, class_key, positive_class, profile_parquet


def save(tmp_path: Path, table: pa.Table | pd.DataFrame) -> Path:
    path = tmp_path / "data.parquet"
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path, row_group_size=700)  # several row groups, as ingest writes them
    return path


def credit_like(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    """Return a seeded synthetic loan book with one honest and two leaky columns."""
    rng = np.random.default_rng(seed)
    default = rng.random(n) < 0.2
    return pd.DataFrame(
        {
            "loan_id": [f"L{i:06d}" for i in range(n)],
            "income": rng.lognormal(10, 0.5, n) * np.where(default, 0.9, 1.0),
            "days_in_collections": np.where(default, rng.integers(30, 400, n), 0) + rng.integers(0, 3, n),
            "recovery_status": np.where(default ^ (rng.random(n) < 0.005), "written off", "current"),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "default": default.astype(int),
        }
    )


# --------------------------------------------------------------------------
# positive_class


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({0: 700, 1: 300}, 1),
        ({1: 900, 0: 100}, 1),
        ({False: 10, True: 90}, True),
        ({0.0: 5, 1.0: 5}, 1.0),
        ({"good": 700, "bad": 300}, "bad"),
        ({"Good": 100, "BAD": 900}, "BAD"),
        ({"paid": 80, "Defaulted": 20}, "Defaulted"),
        ({"N": 95, "Y": 5}, "Y"),
        ({"no": 3, "yes": 97}, "yes"),
        ({"0": 60, "1": 40}, "1"),
        ({"A": 950, "B": 50}, "B"),
        ({"B": 50, "A": 50}, "B"),
    ],
)
def test_positive_class_follows_the_documented_rule(counts, expected):
    assert positive_class(counts) == expected
    assert type(positive_class(counts)) is type(expected)


def test_the_positive_class_is_found_among_the_classes_by_class_key(tmp_path):
    frame = pd.DataFrame({"x": range(6), "flag": [True, False, False, True, False, False]})

    target = profile_parquet(save(tmp_path, frame), roles={"flag": "target"})["target"]

    assert target["classes"] == {"false": 4, "true": 2}
    assert target["classes"][class_key(target["positive_class"])] == 2


def test_positive_class_needs_exactly_two_values():
    with pytest.raises(ValueError, match="exactly 2"):
        positive_class({"a": 1, "b": 2, "c": 3})


# --------------------------------------------------------------------------
# Leakage


def test_it_flags_columns_that_predict_the_target_almost_perfectly(tmp_path):
    path = save(tmp_path, credit_like())

    profile = profile_parquet(path, roles={"default": "target", "loan_id": "identifier"})

    flagged = {item["column"]: item for item in profile["leakage"]}
    assert set(flagged) == {"days_in_collections", "recovery_status"}
    assert all(item["score"] >= LEAKAGE_AUC for item in flagged.values())
    assert "days_in_collections" in flagged["days_in_collections"]["message"]
    assert any("recovery_status" in w for w in profile["warnings"])
    assert profile["columns"]["income"]["univariate_auc"] < 0.8


def test_identifier_and_excluded_columns_are_not_checked_for_leakage(tmp_path):
    path = save(tmp_path, credit_like())

    profile = profile_parquet(
        path, roles={"default": "target", "loan_id": "identifier", "days_in_collections": "excluded"}
    )

    assert [item["column"] for item in profile["leakage"]] == ["recovery_status"]
    assert "univariate_auc" not in profile["columns"]["loan_id"]


def test_a_unique_text_column_is_not_mistaken_for_leakage(tmp_path):
    path = save(tmp_path, credit_like())

    profile = profile_parquet(path, roles={"default": "target"})  # loan_id left as a feature

    assert "loan_id" not in [item["column"] for item in profile["leakage"]]
    assert any("'loan_id' has a different value in every row" in w for w in profile["warnings"])


def test_the_univariate_auc_equals_scikit_learn_with_missing_values_ranked_lowest(tmp_path):
    rng = np.random.default_rng(5)
    n = 2000
    y = rng.random(n) < 0.3
    score = np.round(rng.normal(size=n) + y, 1)  # rounding makes ties
    score[rng.random(n) < 0.1] = np.nan
    path = save(tmp_path, pd.DataFrame({"score": score, "target": y}))

    profile = profile_parquet(path, roles={"target": "target"})

    expected = roc_auc_score(y, np.nan_to_num(score, nan=np.nanmin(score) - 1))
    assert profile["columns"]["score"]["univariate_auc"] == pytest.approx(max(expected, 1 - expected), abs=1e-4)


def test_a_category_is_scored_by_its_target_rate(tmp_path):
    rng = np.random.default_rng(8)
    grade = rng.choice(list("ABCDE"), 5000)
    y = rng.random(5000) < pd.Series(grade).map({"A": 0.05, "B": 0.1, "C": 0.2, "D": 0.35, "E": 0.5}).to_numpy()
    path = save(tmp_path, pd.DataFrame({"grade": grade, "target": y}))

    profile = profile_parquet(path, roles={"target": "target"})

    rate = pd.Series(y).groupby(grade).mean()
    expected = roc_auc_score(y, pd.Series(grade).map(rate))
    assert profile["columns"]["grade"]["univariate_auc"] == pytest.approx(expected, abs=1e-4)
    assert profile["leakage"] == []


# --------------------------------------------------------------------------
# Statistics


def test_numeric_statistics_and_outliers_match_a_numpy_reference(tmp_path):
    rng = np.random.default_rng(21)
    values = np.concatenate([rng.normal(50, 5, 980), [500, -300, 1e4, 90, 10, 75]])
    with_gaps = values.copy()
    with_gaps[::97] = np.nan
    path = save(tmp_path, pd.DataFrame({"x": with_gaps, "n": np.arange(with_gaps.size)}))

    column = profile_parquet(path)["columns"]["x"]

    present = with_gaps[~np.isnan(with_gaps)]
    q1, median, q3 = np.percentile(present, [25, 50, 75])
    spread = q3 - q1
    outliers = np.count_nonzero((present < q1 - 1.5 * spread) | (present > q3 + 1.5 * spread))
    assert column["missing"] == np.isnan(with_gaps).sum()
    assert column["missing_fraction"] == pytest.approx(np.isnan(with_gaps).mean())
    assert [column["q1"], column["median"], column["q3"]] == pytest.approx([q1, median, q3])
    assert column["outliers_iqr"] == outliers > 0
    assert column["mean"] == pytest.approx(present.mean())
    assert column["std"] == pytest.approx(present.std(ddof=1))
    assert (column["min"], column["max"]) == (present.min(), present.max())


def test_duplicate_rows_are_counted_as_pandas_counts_them(tmp_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 3, 400),
            "b": rng.choice(["x", "y", None], 400),
            "c": rng.choice([0.5, -0.0, 0.0, np.nan], 400),
            "d": rng.choice([True, False], 400),
        }
    )

    profile = profile_parquet(save(tmp_path, frame))

    assert profile["duplicate_rows"] == frame.duplicated().sum() > 0
    assert any("duplicate an earlier row" in w for w in profile["warnings"])


def test_rows_that_differ_only_by_which_column_holds_a_value_are_not_duplicates(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 1, 2], "b": [2, 1, 2, 1]})

    assert profile_parquet(save(tmp_path, frame))["duplicate_rows"] == 2


def test_it_warns_about_missing_constant_columns_and_class_imbalance(tmp_path):
    n = 1000
    frame = pd.DataFrame(
        {
            "sparse": np.where(np.arange(n) % 4 == 0, np.arange(n) / 7, np.nan),
            "country": ["DE"] * n,
            "empty": pd.Series([None] * n, dtype="float64"),
            "target": (np.arange(n) % 50 == 0).astype(int),
        }
    )

    profile = profile_parquet(save(tmp_path, frame), roles={"target": "target"})

    assert profile["constant_columns"] == ["country", "empty"]
    assert profile["target"]["positive_class"] == 1
    assert profile["target"]["positive_rate"] == pytest.approx(0.02)
    text = " ".join(profile["warnings"])
    assert "'sparse' is 75% missing" in text
    assert "'country' is constant" in text
    assert "'empty' is entirely missing" in text
    assert "only 2.0% of rows" in text


def test_dates_booleans_and_text_are_profiled_as_json(tmp_path):
    table = pa.table(
        {
            "opened": pa.array([date(2020, 1, 1), date(2021, 6, 30), None, date(2019, 3, 3)]),
            "secured": pa.array([True, False, True, None]),
            "note": pa.array(["a", "b", "a", "a"]),
            "flag": pa.array([0, 1, 0, 1]),
        }
    )

    profile = profile_parquet(save(tmp_path, table), roles={"flag": "target"})

    opened = profile["columns"]["opened"]
    assert (opened["min"], opened["max"], opened["missing"], opened["distinct"]) == ("2019-03-03", "2021-06-30", 1, 3)
    assert profile["columns"]["secured"]["top"] == [{"value": True, "count": 2}, {"value": False, "count": 1}]
    assert profile["columns"]["note"]["top"] == [{"value": "a", "count": 3}, {"value": "b", "count": 1}]
    assert profile["target"]["classes"] == {"0": 2, "1": 2}
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


def test_a_non_binary_target_is_described_but_not_used_for_leakage(tmp_path):
    frame = pd.DataFrame({"x": range(9), "grade": list("ABCABCABC")})

    profile = profile_parquet(save(tmp_path, frame), roles={"grade": "target"})

    assert profile["target"]["classes"] == {"A": 3, "B": 3, "C": 3}
    assert profile["target"]["positive_class"] is None
    assert "not binary" in profile["warnings"][0]

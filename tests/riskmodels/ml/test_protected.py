"""Protected characteristics caught at the door, by column name or values."""

from __future__ import annotations

from riskmodels.ml.protected import Characteristic, protected_suspects, words


def _column(role: str = "feature", *values: str) -> dict:
    return {"role": role, "top": [{"value": v, "count": 1} for v in values]}


def test_names_are_matched_by_whole_words_not_substrings():
    columns = {"age_in_years": _column(), "mortgage_amount": _column(), "average_balance": _column(),
               "dateOfBirth": _column(), "Gender": _column(), "foreign_worker": _column(), "Religion": _column()}
    found = {s["column"]: s["characteristic"] for s in protected_suspects(columns)}
    assert found == {"age_in_years": "age", "dateOfBirth": "age", "Gender": "sex and gender",
                     "foreign_worker": "national origin and citizenship", "Religion": "religion"}
    assert words("personal_status_and_sex") == ["personal", "status", "and", "sex"]


def test_values_reveal_a_column_whose_name_does_not():
    columns = {"status_code": _column("feature", "male : single", "female : divorced", "male : married"),
               "purpose": _column("feature", "car (new)", "single family home")}
    assert protected_suspects(columns) == [
        {"column": "status_code", "characteristic": "sex and gender", "matched_by": "values"}]


def test_columns_with_a_role_are_not_suspects_and_the_catalogue_is_data():
    columns = {"age": _column("protected"), "tenure": _column()}
    assert protected_suspects(columns) == []
    custom = [Characteristic("tenure as a proxy", ("tenure",))]
    assert protected_suspects(columns, custom) == [
        {"column": "tenure", "characteristic": "tenure as a proxy", "matched_by": "name"}]

"""The monitoring and fairness charts: valid PNGs of the expected size, byte-for-byte repeatable, and a
clear refusal when there is nothing to draw."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from riskmodels.ml.fairness import fairness_report
from riskmodels.ml.monitoring_plots import (
    Cohort,
    NoData,
    approval_by_group,
    auc_by_cohort,
    csi_heatmap,
    psi_over_time,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POINTS = [("2026-11-01", 0.04), ("2026-11-02", 0.12), ("2026-11-03", 0.31)]
FEATURES = ["credit_amount", "age", "duration_in_month"]
RUNS = ["2026-11-01", "2026-11-02", "2026-11-03"]
VALUES = [[0.02, 0.15, 0.40], [0.01, None, 0.03], [0.05, 0.09, 0.11]]
COHORTS = [Cohort("2026-01-01 \u2013 2026-03-31", 0.76, 0.72, 0.80), Cohort("2026-04-01 \u2013 2026-06-30", 0.70, 0.64, 0.75),
           Cohort("dataset 7", 0.68)]


@pytest.fixture(scope="module")
def fairness_column() -> dict:
    rng = np.random.default_rng(3)
    n = 600
    age = pd.Series(rng.integers(19, 75, n))
    pd_scores = np.clip(rng.beta(2, 6, n) + np.where(age < 26, 0.25, 0.0), 0, 1)
    y = (rng.random(n) < pd_scores).astype(int)
    report = fairness_report(y, pd_scores, {"age": age}, cutoff=0.3, n_bootstrap=50, seed=0).to_dict()
    return report["columns"][0]


def _size(image: bytes) -> tuple[int, int]:
    assert image.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(image)) as opened:
        opened.verify()
    return Image.open(io.BytesIO(image)).size


def test_score_psi_over_time_is_a_png_of_fixed_size():
    assert _size(psi_over_time(POINTS, 0.10, 0.25)) == (600, 400)


def test_the_csi_heat_map_is_a_png_that_grows_with_the_features():
    small = _size(csi_heatmap(FEATURES, RUNS, VALUES, 0.10, 0.25))
    many = [f"feature_{i}" for i in range(20)]
    tall = _size(csi_heatmap(many, RUNS, [[0.01 * i] * 3 for i in range(20)], 0.10, 0.25))
    assert small[0] == tall[0] and tall[1] > small[1]


def test_a_heat_map_whose_values_do_not_match_its_axes_is_refused():
    with pytest.raises(ValueError, match="3 features × 3 runs"):
        csi_heatmap(FEATURES, RUNS, VALUES[:2], 0.10, 0.25)


def test_auc_by_cohort_draws_with_and_without_a_baseline():
    assert _size(auc_by_cohort(COHORTS, 0.78, 0.03, 0.05)) == (600, 400)
    assert _size(auc_by_cohort(COHORTS[:1], None, 0.03, 0.05)) == (600, 400)


def test_approval_by_group_draws_one_row_per_group_of_a_real_fairness_report(fairness_column):
    width, height = _size(approval_by_group(fairness_column))
    rows = sum(g["approval_rate"] is not None for g in fairness_column["groups"])
    assert width == 600 and height == round(100 * min(12.0, 1.8 + 0.4 * rows))


def test_each_chart_is_byte_for_byte_repeatable_and_depends_on_its_input(fairness_column):
    draws = [
        (lambda: psi_over_time(POINTS, 0.10, 0.25), lambda: psi_over_time(POINTS[:2], 0.10, 0.25)),
        (lambda: csi_heatmap(FEATURES, RUNS, VALUES, 0.10, 0.25),
         lambda: csi_heatmap(FEATURES, RUNS, VALUES, 0.20, 0.25)),
        (lambda: auc_by_cohort(COHORTS, 0.78, 0.03, 0.05), lambda: auc_by_cohort(COHORTS, 0.75, 0.03, 0.05)),
        (lambda: approval_by_group(fairness_column),
         lambda: approval_by_group({**fairness_column, "groups": fairness_column["groups"][:2]})),
    ]
    for draw, other in draws:
        assert draw() == draw()
        assert draw() != other()


def test_the_png_carries_no_software_tag_or_timestamp():
    image = psi_over_time(POINTS, 0.10, 0.25)
    assert b"Software" not in image and b"tIME" not in image


@pytest.mark.parametrize(("draw", "message"), [
    (lambda: psi_over_time([], 0.10, 0.25), "no stability run with a score PSI"),
    (lambda: psi_over_time([("2026-11-01", None)], 0.10, 0.25), "no stability run with a score PSI"),
    (lambda: csi_heatmap([], [], [], 0.10, 0.25), "no stability run with feature CSI"),
    (lambda: auc_by_cohort([], 0.78, 0.03, 0.05), "no performance run with a measured AUC"),
    (lambda: approval_by_group({"column": "age", "groups": [{"group": "18-25", "approval_rate": None}]}),
     "no group of 'age' has an approval rate"),
])
def test_a_chart_with_nothing_to_draw_raises_no_data(draw, message):  # noqa: ANN001
    with pytest.raises(NoData, match=message):
        draw()
    assert issubclass(NoData, ValueError)

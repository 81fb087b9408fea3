import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from riskmodels.ml.explain import ExplainOptions, ExplanationError, explain_global, explain_local, make_explainer
from riskmodels.ml.explain_plots import (
    render_bar,
    render_beeswarm,
    render_dependence,
    render_report_plots,
    render_waterfall,
)
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.ml.training import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def applicants(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    debt_ratio = rng.uniform(0, 1, n)
    missed = rng.poisson(1.0, n).astype(float)
    missed[rng.random(n) < 0.05] = np.nan
    region = rng.choice(["north", "south", "east"], n)
    logit = -2.5 + 3 * debt_ratio + 0.8 * np.nan_to_num(missed) + 0.5 * (region == "east")
    return pd.DataFrame({
        "debt_ratio": debt_ratio,
        "missed_payments": missed,
        "region": region,
        "status": np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "default", "paid"),
    })


def report_for(seed: int):
    frame = applicants(seed)
    spec = TrainingSpec(algorithm="gradient_boosting", target="status", positive_class="default",
                        features=("debt_ratio", "missed_payments", "region"), categorical=("region",),
                        hyperparameters={"max_iter": 20}, seed=seed)
    result = train(frame, spec)
    report = explain_global(result.pipeline, spec, frame, options=ExplainOptions(max_rows=300, seed=seed))
    rows = frame.iloc[report.selection.positions_between(0, report.selection.n_selected)]
    local = explain_local(make_explainer(result.pipeline, spec), rows.iloc[:1], protected=())
    return report, rows, local.explanations[0]


@pytest.fixture(scope="module")
def report_a():
    return report_for(0)


@pytest.fixture(scope="module")
def report_b():
    return report_for(1)


def render_all(report, rows, explanation) -> dict[str, bytes]:
    images = render_report_plots(report, rows, top_k=2)
    images["waterfall"] = render_waterfall(explanation)
    return images


def test_report_plots_are_beeswarm_bar_and_top_dependence_plots(report_a):
    report, rows, _ = report_a

    images = render_report_plots(report, rows, top_k=2)

    top = [entry.feature for entry in report.importance()[:2]]
    assert list(images) == ["beeswarm", "bar", *(f"dependence:{f}" for f in top)]
    assert all(image.startswith(PNG_SIGNATURE) for image in images.values())


def test_rendering_is_byte_for_byte_deterministic(report_a, report_b):
    first = render_all(*report_a)
    other = render_all(*report_b)
    again = render_all(*report_a)

    assert first == again
    assert all(first[name] != other[name] for name in ("beeswarm", "bar", "waterfall"))


def test_rendering_leaves_no_figure_open(report_a):
    before = plt.get_fignums()

    render_all(*report_a)

    assert plt.get_fignums() == before


def test_the_png_does_not_name_the_software(report_a):
    report, _, _ = report_a

    assert b"matplotlib" not in render_bar(report)


def test_beeswarm_and_dependence_handle_categorical_and_missing_values(report_a):
    report, rows, _ = report_a

    assert render_beeswarm(report).startswith(PNG_SIGNATURE)  # without feature values: grey
    assert render_dependence(report, rows, "region").startswith(PNG_SIGNATURE)
    assert render_dependence(report, rows, "missed_payments").startswith(PNG_SIGNATURE)


def test_a_failed_report_is_not_plotted(report_a):
    report, rows, _ = report_a
    failed = dataclasses.replace(report, status="failed", message="additivity check failed: ...")

    with pytest.raises(ExplanationError, match="not plotting a failed report"):
        render_report_plots(failed, rows)


def test_feature_values_must_match_the_report_rows(report_a):
    report, rows, _ = report_a

    with pytest.raises(ExplanationError, match="feature values have 10 rows"):
        render_dependence(report, rows.iloc[:10], "region")
    with pytest.raises(ExplanationError, match="not a feature"):
        render_dependence(report, rows, "income")


def test_waterfall_groups_the_smallest_contributions(report_a):
    _, _, explanation = report_a
    many = dataclasses.replace(explanation, contributions={f"f{i}": 0.01 * (i - 6) for i in range(14)})

    assert render_waterfall(many, max_features=5).startswith(PNG_SIGNATURE)
    with pytest.raises(ExplanationError):
        render_waterfall(many, max_features=1)


def test_plots_of_a_thinned_sample_keep_the_whole_report_s_ranking_and_row_count(report_a):
    import io

    from riskmodels.ml.explain import GlobalReport
    from riskmodels.ml.explain_plots import render_bar, thinned_rows

    report, rows, _ = report_a
    keep = thinned_rows(len(report.values), 50)
    sample = GlobalReport.from_parquet(io.BytesIO(report.to_parquet_bytes()), rows=keep.astype(np.int64))

    assert len(sample.values) == 50 and np.array_equal(sample.values, report.values[keep])
    assert np.array_equal(sample.row_ids, report.row_ids[keep]) and sample.ok
    # The bar plot of the sample, given the whole ranking and row count, is the whole report's.
    assert render_bar(sample, ranking=report.importance(), total_rows=len(report.values)) == render_bar(report)
    images = render_report_plots(sample, rows.iloc[keep], ranking=report.importance(),
                                 total_rows=len(report.values), top_k=2)
    top = [entry.feature for entry in report.importance()[:2]]
    assert list(images) == ["beeswarm", "bar", *(f"dependence:{f}" for f in top)]
    with pytest.raises(ExplanationError, match="outside"):
        GlobalReport.from_parquet(report.to_parquet_bytes(), rows=np.array([0, len(report.values)]))

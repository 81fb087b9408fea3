"""Render SHAP report plots as PNG bytes: beeswarm, bar, dependence and waterfall.

Drawn with matplotlib directly rather than with shap's plotting functions, which work through
pyplot's global figure registry and draw random jitter. Each figure is a
:class:`matplotlib.figure.Figure` on an Agg canvas, released after saving, and the output is
byte-for-byte deterministic for the same report: beeswarm points are spread by a fixed rule,
large reports are thinned by evenly spaced rows, and the PNG "Software" tag (which names the
matplotlib version) is dropped.

A report that failed its additivity check is refused: a plot would present it as an explanation.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure

from riskmodels.ml.explain import ExplanationError, FeatureImportance, GlobalReport, LocalExplanation

__all__ = [
    "render_bar",
    "render_beeswarm",
    "render_dependence",
    "render_report_plots",
    "render_waterfall",
    "thinned_rows",
]

_DPI = 100
_INCREASE = "#c0392b"  # pushes toward default
_DECREASE = "#1f4e79"
_NEUTRAL = "#999999"
_BAR = "#5b8db8"
_CMAP = "coolwarm"
_MAX_LABEL = 28
_SPACE_LABEL = {"log_odds": "log-odds of default", "probability": "probability of default"}


def _png(draw: Callable[[Figure], None], size: tuple[float, float]) -> bytes:
    figure = Figure(figsize=size, dpi=_DPI, layout="tight")
    FigureCanvasAgg(figure)
    try:
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
        return buffer.getvalue()
    finally:
        # Not registered with pyplot, so clearing is enough to release the artists.
        figure.clear()


def _label(text: Any) -> str:
    text = str(text)
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "\u2026"


def _checked(report: GlobalReport) -> GlobalReport:
    if not report.ok:
        raise ExplanationError(f"not plotting a failed report: {report.message}")
    if len(report.values) == 0:
        raise ExplanationError("the report has no rows to plot")
    return report


def _ranking(report: GlobalReport, ranking: Sequence[FeatureImportance] | None) -> list[FeatureImportance]:
    return report.importance() if ranking is None else list(ranking)


def _top_features(report: GlobalReport, limit: int, ranking: Sequence[FeatureImportance] | None = None) -> list[str]:
    return [entry.feature for entry in _ranking(report, ranking)[:limit]]


def thinned_rows(n: int, limit: int) -> npt.NDArray[np.intp]:
    """Return at most ``limit`` evenly spaced row indices: deterministic, unlike a random sample."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.intp))


def _swarm(values: npt.NDArray[np.float64], width: float, bins: int = 80) -> npt.NDArray[np.float64]:
    """Return offsets that stack points of similar value side by side, alternating up and down."""
    offsets = np.zeros(len(values))
    if len(values) == 0:
        return offsets
    span = float(values.max() - values.min())
    quantised = np.zeros(len(values)) if span == 0 else np.round(bins * (values - values.min()) / span)
    order = np.lexsort((values, quantised))
    layer, last = 0, None
    for index in order:
        if quantised[index] != last:
            layer, last = 0, quantised[index]
        offsets[index] = math.ceil(layer / 2) * (1 if layer % 2 else -1)
        layer += 1
    peak = float(np.abs(offsets).max())
    return offsets * (width / peak) if peak else offsets


def _aligned(report: GlobalReport, feature_values: pd.DataFrame) -> pd.DataFrame:
    if len(feature_values) != len(report.values):
        raise ExplanationError(
            f"feature values have {len(feature_values)} rows but the report explains {len(report.values)}"
        )
    missing = [f for f in report.features if f not in feature_values.columns]
    if missing:
        raise ExplanationError(f"feature values lack columns: {', '.join(missing)}")
    return feature_values.reset_index(drop=True)


def _numeric(column: pd.Series) -> npt.NDArray[np.float64] | None:
    """Return the column as floats when it is numeric (not boolean), else None."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return None
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _value_colours(column: pd.Series | None, rows: npt.NDArray[np.intp]) -> Any:
    """Colour numeric values by their rank (5th to 95th percentile); others grey."""
    numbers = None if column is None else _numeric(column)
    if numbers is None:
        return [_NEUTRAL] * len(rows)
    picked = numbers[rows]
    finite = picked[np.isfinite(picked)]
    if len(finite) == 0:
        return [_NEUTRAL] * len(rows)
    low, high = np.percentile(finite, [5, 95])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    norm = Normalize(vmin=low, vmax=high if high > low else low + 1, clip=True)
    cmap = colormaps[_CMAP]
    # One vectorised colormap call: matplotlib's scalar path, point by point, is slow.
    mapped = cmap(np.asarray(norm(np.where(np.isfinite(picked), picked, low)), dtype=np.float64))
    neutral = np.asarray(to_rgba(_NEUTRAL))
    return np.where(np.isfinite(picked)[:, None], mapped, neutral)


def render_bar(report: GlobalReport, *, max_features: int = 15, ranking: Sequence[FeatureImportance] | None = None,
               total_rows: int | None = None) -> bytes:
    """Render the mean |SHAP| of the most important features as horizontal bars.

    ``ranking`` and ``total_rows`` are the whole report's, when ``report`` holds some of its
    rows (see :func:`render_report_plots`).
    """
    _checked(report)
    top = _ranking(report, ranking)[:max_features]
    n_rows = len(report.values) if total_rows is None else total_rows

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        names = [_label(e.feature) for e in reversed(top)]
        values = [e.mean_abs for e in reversed(top)]
        ax.barh(range(len(values)), values, color=_BAR)
        ax.set_yticks(range(len(values)), names, fontsize=8)
        for y, value in enumerate(values):
            ax.annotate(f"{value:.3g}", (value, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
        ax.set_xlabel(f"mean |SHAP value| ({_SPACE_LABEL.get(report.fingerprint.output_space, '')})")
        ax.set_title(f"Feature importance, {n_rows} rows")
        ax.margins(x=0.15)

    return _png(draw, (6.5, 0.3 * len(top) + 1.5))


def render_beeswarm(
    report: GlobalReport,
    feature_values: pd.DataFrame | None = None,
    *,
    max_features: int = 15,
    max_points: int = 2_000,
    ranking: Sequence[FeatureImportance] | None = None,
    total_rows: int | None = None,
) -> bytes:
    """Render one row of points per feature: each point a row's SHAP value, coloured by value.

    ``feature_values`` holds the explained rows' raw features in report order; without it (or
    for categorical features) points are grey.
    """
    _checked(report)
    features = _top_features(report, max_features, ranking)
    n_rows = len(report.values) if total_rows is None else total_rows
    values_frame = None if feature_values is None else _aligned(report, feature_values)
    rows = thinned_rows(len(report.values), max_points)
    index = {f: j for j, f in enumerate(report.features)}

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        for position, feature in enumerate(reversed(features)):
            shap_values = report.values[rows, index[feature]]
            column = None if values_frame is None else values_frame[feature]
            ax.scatter(
                shap_values,
                position + _swarm(shap_values, 0.38),
                c=_value_colours(column, rows),
                s=8,
                linewidths=0,
            )
        ax.axvline(0, color=_NEUTRAL, linewidth=0.8)
        ax.set_yticks(range(len(features)), [_label(f) for f in reversed(features)], fontsize=8)
        ax.set_ylim(-0.6, len(features) - 0.4)
        ax.set_xlabel(f"SHAP value ({_SPACE_LABEL.get(report.fingerprint.output_space, '')})")
        shown = f"{len(rows)} of {n_rows}" if len(rows) < n_rows else f"{len(rows)}"
        ax.set_title(f"SHAP values per row ({shown} rows)")
        if values_frame is not None:
            mappable = ScalarMappable(norm=Normalize(0, 1), cmap=colormaps[_CMAP])
            bar = figure.colorbar(mappable, ax=ax, ticks=[0, 1], aspect=40)
            bar.ax.set_yticklabels(["low", "high"], fontsize=7)
            bar.set_label("feature value", fontsize=8)

    return _png(draw, (7.0, 0.35 * len(features) + 1.6))


def render_dependence(report: GlobalReport, feature_values: pd.DataFrame, feature: str, *,
                      total_rows: int | None = None) -> bytes:
    """Render one feature's SHAP value against its value (a strip per category if categorical).

    ``total_rows`` is the whole report's row count when ``report`` holds some of its rows.
    """
    _checked(report)
    if feature not in report.features:
        raise ExplanationError(f"{feature!r} is not a feature of the report")
    frame = _aligned(report, feature_values)
    shap_values = report.values[:, report.features.index(feature)]
    column = frame[feature]
    numbers = _numeric(column)

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        ax.axhline(0, color=_NEUTRAL, linewidth=0.8)
        if numbers is not None:
            present = np.isfinite(numbers)
            ax.scatter(numbers[present], shap_values[present], s=8, color=_BAR, linewidths=0)
            ax.set_xlabel(_label(feature) + ("" if present.all() else f" ({(~present).sum()} missing not shown)"))
        else:
            labels = column.astype(object).where(column.notna(), "(missing)").map(str)
            categories = sorted(labels.unique())
            for x, category in enumerate(categories):
                mask = (labels == category).to_numpy()
                ys = shap_values[mask]
                ax.scatter(x + _swarm(ys, 0.3), ys, s=8, color=_BAR, linewidths=0)
            ax.set_xticks(range(len(categories)), [_label(c) for c in categories], rotation=40,
                          ha="right", fontsize=7)
            ax.set_xlabel(_label(feature))
        ax.set_ylabel(f"SHAP value ({_SPACE_LABEL.get(report.fingerprint.output_space, '')})")
        shown = len(report.values)
        sampled = "" if total_rows is None or total_rows <= shown else f" ({shown} of {total_rows} rows)"
        ax.set_title(f"Dependence: {_label(feature)}{sampled}")

    return _png(draw, (6.0, 4.0))


def render_waterfall(explanation: LocalExplanation, *, max_features: int = 10) -> bytes:
    """Render how one applicant's output builds up from the base value, feature by feature.

    The ``max_features - 1`` largest contributions are shown; the rest are summed on one bar.
    """
    if max_features < 2:
        raise ExplanationError("a waterfall needs max_features of at least 2")
    items = sorted(explanation.contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    shown = items if len(items) <= max_features else items[: max_features - 1]
    rest = items[len(shown):]
    steps: list[tuple[str, float]] = [(_label(name), value) for name, value in shown]
    if rest:
        steps.append((f"{len(rest)} other features", float(sum(v for _, v in rest))))

    def draw(figure: Figure) -> None:
        ax = figure.add_subplot()
        # Bottom bar first: the smallest step starts from the base value.
        ordered = list(reversed(steps))
        level = explanation.base_value
        for y, (_, value) in enumerate(ordered):
            ax.barh(y, value, left=level, color=_INCREASE if value > 0 else _DECREASE, height=0.6)
            ax.annotate(f"{value:+.3g}", (level + value if value > 0 else level, y), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)
            level += value
        ax.axvline(explanation.base_value, color=_NEUTRAL, linewidth=0.8, linestyle="--")
        ax.axvline(explanation.output, color="#333333", linewidth=0.8)
        ax.set_yticks(range(len(ordered)), [name for name, _ in ordered], fontsize=8)
        ax.set_xlabel(
            f"{_SPACE_LABEL.get(explanation.output_space, explanation.output_space)}: "
            f"base {explanation.base_value:.3f} \u2192 output {explanation.output:.3f}"
        )
        ax.set_title(f"Row {_label(explanation.row_id)}")
        ax.margins(x=0.15)

    return _png(draw, (6.5, 0.35 * len(steps) + 1.6))


def render_report_plots(
    report: GlobalReport,
    feature_values: pd.DataFrame | None = None,
    *,
    top_k: int = 3,
    dependence_features: Sequence[str] | None = None,
    ranking: Sequence[FeatureImportance] | None = None,
    total_rows: int | None = None,
) -> dict[str, bytes]:
    """Render a report's beeswarm, bar and dependence plots (top ``top_k`` features).

    Keys: ``beeswarm``, ``bar`` and ``dependence:<feature>``; dependence plots need
    ``feature_values`` (the explained rows, in report order). ``report`` may hold an evenly
    spaced part of a large report's rows (:func:`thinned_rows`), with the whole report's
    ``ranking`` and ``total_rows``: the bar plot is then the whole report's, and the other
    plots say how many rows they show.
    """
    _checked(report)
    images = {
        "beeswarm": render_beeswarm(report, feature_values, ranking=ranking, total_rows=total_rows),
        "bar": render_bar(report, ranking=ranking, total_rows=total_rows),
    }
    if feature_values is not None:
        for feature in dependence_features or _top_features(report, top_k, ranking):
            images[f"dependence:{feature}"] = render_dependence(report, feature_values, feature, total_rows=total_rows)
    return images

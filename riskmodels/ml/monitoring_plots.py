"""Render monitoring and fairness charts as PNG bytes: score PSI over time, a CSI heat map, AUC by
cohort and approval rate by group.

Like :mod:`riskmodels.ml.plots`, figures are :class:`matplotlib.figure.Figure` objects on an Agg
canvas (no pyplot registry), and the output is byte-for-byte deterministic for the same input: fixed
sizes and dpi, no timestamp, and the PNG "Software" tag (which names the matplotlib version) dropped.

A chart with nothing to show raises :class:`NoData` (a ``ValueError``) rather than drawing an empty
frame: the caller says what is missing, where an empty picture would look like a healthy model.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from riskmodels.ml.fairness import FOUR_FIFTHS

__all__ = ["Cohort", "NoData", "approval_by_group", "auc_by_cohort", "csi_heatmap", "psi_over_time"]

_DPI = 100
_LINE = "#1f4e79"
_GREEN = "#d5ecd4"
_AMBER = "#f6d58e"
_RED = "#f1a9a0"
_RED_LINE = "#c0392b"
_MISSING = "#eeeeee"
_REFERENCE = "#777777"
_MAX_LABEL = 28
# Past this many cells the numbers no longer fit; the colours still say which light each cell has.
_ANNOTATE_CELLS = 160


class NoData(ValueError):
    """The chart has nothing to show (no runs, no measured cohort, no group with a rate)."""


@dataclass(frozen=True)
class Cohort:
    """One measured cohort: its label, AUC and the bootstrap interval (bounds None when not computed)."""

    label: str
    auc: float
    lower: float | None = None
    upper: float | None = None


def _png(draw: Callable[[Axes], None], size: tuple[float, float]) -> bytes:
    figure = Figure(figsize=size, dpi=_DPI, layout="tight")
    FigureCanvasAgg(figure)
    try:
        draw(figure.add_subplot())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
        return buffer.getvalue()
    finally:
        # Not registered with pyplot, so clearing is enough to release the artists.
        figure.clear()


def _label(text: Any) -> str:
    text = str(text)
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "\u2026"


def _width(n: int) -> float:
    return min(14.0, max(6.0, 0.45 * n + 2.0))


def _x_labels(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([_label(x) for x in labels], rotation=45 if len(labels) > 4 else 0,
                       ha="right" if len(labels) > 4 else "center", fontsize=8)


def psi_over_time(points: Sequence[tuple[str, float]], amber: float, red: float) -> bytes:
    """Return a line of the score's PSI per run (``(label, value)``, oldest first) over the light bands.

    Green below ``amber``, amber from it, red from ``red``: the same rule as the runs' lights.
    """
    points = [(label, float(value)) for label, value in points if value is not None]
    if not points:
        raise NoData("no stability run with a score PSI yet")
    labels, values = [p[0] for p in points], [p[1] for p in points]
    top = max(red * 1.5, max(values) * 1.15)

    def draw(ax: Axes) -> None:
        ax.axhspan(0, amber, color=_GREEN, zorder=0, label=f"green (< {amber:g})")
        ax.axhspan(amber, red, color=_AMBER, zorder=0, label=f"amber (\u2265 {amber:g})")
        ax.axhspan(red, top, color=_RED, zorder=0, label=f"red (\u2265 {red:g})")
        ax.plot(range(len(values)), values, marker="o", color=_LINE, linewidth=2, label="PSI of the score")
        _x_labels(ax, labels)
        ax.set(xlim=(-0.5, len(values) - 0.5), ylim=(0, top), xlabel="Run", ylabel="PSI")
        ax.set_title("Score stability (PSI) per run")
        ax.legend(loc="upper left", fontsize=8)

    return _png(draw, (_width(len(values)), 4.0))


def csi_heatmap(features: Sequence[str], runs: Sequence[str], values: Sequence[Sequence[float | None]],
                amber: float, red: float) -> bytes:
    """Return a feature × run heat map of CSI coloured by light; ``values[i][j]`` is feature i in run j.

    A cell without a value (the feature was not measured in that run) is grey. Values are written in
    the cells when the grid is small enough to read them.
    """
    if not features or not runs:
        raise NoData("no stability run with feature CSI yet")
    grid = np.array([[math.nan if v is None else float(v) for v in row] for row in values], dtype=float)
    if grid.shape != (len(features), len(runs)):
        raise ValueError(f"values must be {len(features)} features × {len(runs)} runs, not {grid.shape}")
    top = max(red * 2, float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0) + 1e-9
    cmap = ListedColormap([_GREEN, _AMBER, _RED]).with_extremes(bad=_MISSING)
    norm = BoundaryNorm([0, amber, red, top], cmap.N)
    annotate = grid.size <= _ANNOTATE_CELLS

    def draw(ax: Axes) -> None:
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        ax.set_yticks(range(len(features)))
        ax.set_yticklabels([_label(f) for f in features], fontsize=8)
        _x_labels(ax, runs)
        if annotate:
            for (i, j), value in np.ndenumerate(grid):
                if math.isfinite(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        colorbar = ax.figure.colorbar(image, ax=ax, ticks=[amber / 2, (amber + red) / 2, (red + top) / 2])
        colorbar.ax.set_yticklabels([f"green < {amber:g}", f"amber \u2265 {amber:g}", f"red \u2265 {red:g}"],
                                    fontsize=8)
        ax.set_xlabel("Run")
        ax.set_title("Feature stability (CSI) per run")

    return _png(draw, (_width(len(runs)) + 1.5, min(16.0, 2.0 + 0.3 * len(features))))


def auc_by_cohort(cohorts: Sequence[Cohort], baseline: float | None, drop_amber: float, drop_red: float) -> bytes:
    """Return each cohort's AUC with its interval, the validation baseline and the light bands below it.

    A drop from the baseline of ``drop_amber`` or more is amber, of ``drop_red`` or more red; without a
    baseline only the points are drawn.
    """
    if not cohorts:
        raise NoData("no performance run with a measured AUC yet")
    x = np.arange(len(cohorts))
    aucs = np.array([c.auc for c in cohorts], dtype=float)
    lower = np.array([c.auc if c.lower is None else c.lower for c in cohorts], dtype=float)
    upper = np.array([c.auc if c.upper is None else c.upper for c in cohorts], dtype=float)
    bottom = min(0.5, float(lower.min()) - 0.02, (baseline - drop_red - 0.05) if baseline is not None else 1.0)

    def draw(ax: Axes) -> None:
        if baseline is not None:
            ax.axhspan(baseline - drop_amber, 1.0, color=_GREEN, zorder=0, label="green")
            ax.axhspan(baseline - drop_red, baseline - drop_amber, color=_AMBER, zorder=0,
                       label=f"amber (drop \u2265 {drop_amber:g})")
            ax.axhspan(bottom, baseline - drop_red, color=_RED, zorder=0, label=f"red (drop \u2265 {drop_red:g})")
            ax.axhline(baseline, color=_REFERENCE, linestyle="--", linewidth=1.5,
                       label=f"validation baseline {baseline:.3f}")
        ax.errorbar(x, aucs, yerr=[aucs - lower, upper - aucs], fmt="o", color=_LINE, ecolor=_LINE,
                    capsize=4, linewidth=1.5, label="AUC with bootstrap interval")
        _x_labels(ax, [c.label for c in cohorts])
        ax.set(xlim=(-0.5, len(cohorts) - 0.5), ylim=(bottom, 1.0), xlabel="Cohort", ylabel="AUC")
        ax.set_title("AUC by outcome cohort")
        ax.legend(loc="lower left", fontsize=8)

    return _png(draw, (_width(len(cohorts)), 4.0))


def approval_by_group(report_column: Mapping[str, Any]) -> bytes:
    """Return the approval rate of each group of one protected column with its interval, and the
    four-fifths line (0.8 × the most favoured group's rate) below which a group is flagged.

    ``report_column`` is one entry of ``FairnessReport.to_dict()["columns"]``.
    """
    groups = [g for g in report_column.get("groups", []) if g.get("approval_rate") is not None]
    if not groups:
        raise NoData(f"no group of {report_column.get('column')!r} has an approval rate")
    rates = np.array([g["approval_rate"] for g in groups], dtype=float)
    cis = [g.get("approval_rate_ci") or (None, None) for g in groups]
    lower = np.array([r if lo is None else lo for r, (lo, _) in zip(rates, cis, strict=True)], dtype=float)
    upper = np.array([r if hi is None else hi for r, (_, hi) in zip(rates, cis, strict=True)], dtype=float)
    line = FOUR_FIFTHS * float(rates.max())
    colours = [_RED_LINE if g.get("flagged") else _LINE for g in groups]
    y = np.arange(len(groups))

    def draw(ax: Axes) -> None:
        ax.barh(y, rates, color=[_RED if g.get("flagged") else "#9dc3e6" for g in groups], zorder=1)
        for i in range(len(groups)):
            ax.errorbar(rates[i], y[i], xerr=[[rates[i] - lower[i]], [upper[i] - rates[i]]], fmt="none",
                        ecolor=colours[i], capsize=4, linewidth=1.5, zorder=2)
        ax.axvline(line, color=_RED_LINE, linestyle="--", linewidth=1.5,
                   label=f"{FOUR_FIFTHS:g} \u00d7 most favoured = {line:.3f}")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{_label(g['group'])} (n={g.get('n', '?')})" for g in groups], fontsize=8)
        ax.invert_yaxis()  # the report's group order, top to bottom
        ax.set(xlim=(0, 1), xlabel="Approval rate")
        ax.set_title(f"Approval rate by {_label(report_column.get('column', 'group'))}")
        ax.legend(loc="lower right", fontsize=8)

    return _png(draw, (6.0, min(12.0, 1.8 + 0.4 * len(groups))))

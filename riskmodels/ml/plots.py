"""Render the evaluation plots stored with a model version as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas rather than through
pyplot, so no global figure registry or backend switch is involved and nothing leaks between
jobs. Output is byte-for-byte deterministic for the same metrics: the PNG "Software" tag (which
names the matplotlib version) is dropped and no timestamp is written.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["PLOT_NAMES", "render_evaluation_plots"]

PLOT_NAMES = ("roc", "pr", "calibration", "deciles")

_FIGSIZE = (5.0, 4.0)
_DPI = 100
_LINE = "#1f4e79"
_REFERENCE = "#999999"
_BAR = "#9dc3e6"


def _png(draw: Callable[[Axes], None]) -> bytes:
    figure = Figure(figsize=_FIGSIZE, dpi=_DPI, layout="tight")
    FigureCanvasAgg(figure)
    try:
        draw(figure.add_subplot())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
        return buffer.getvalue()
    finally:
        # Not registered with pyplot, so clearing is enough to release the artists.
        figure.clear()


def _numbers(values: Any) -> list[float]:
    # Stored curves use None where a value was not finite (e.g. the first ROC threshold).
    return [float("nan") if v is None else float(v) for v in values]


def _format(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _draw_roc(metrics: Mapping[str, Any]) -> Callable[[Axes], None]:
    roc = metrics["curves"]["roc"]

    def draw(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color=_REFERENCE, linewidth=1, label="Random")
        ax.plot(
            _numbers(roc["fpr"]),
            _numbers(roc["tpr"]),
            color=_LINE,
            linewidth=2,
            label=f"AUC {_format(metrics.get('auc'))}, KS {_format(metrics.get('ks'))}",
        )
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
        ax.set_title("ROC curve")
        ax.legend(loc="lower right")

    return draw


def _draw_pr(metrics: Mapping[str, Any]) -> Callable[[Axes], None]:
    pr = metrics["curves"]["pr"]

    def draw(ax: Axes) -> None:
        base_rate = metrics.get("base_rate")
        if base_rate is not None:
            ax.axhline(
                base_rate, linestyle="--", color=_REFERENCE, linewidth=1, label=f"Base rate {base_rate:.3f}"
            )
        ax.step(
            _numbers(pr["recall"]),
            _numbers(pr["precision"]),
            where="post",
            color=_LINE,
            linewidth=2,
            label="Model",
        )
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="Recall", ylabel="Precision")
        ax.set_title("Precision-recall curve")
        ax.legend(loc="upper right")

    return draw


def _draw_calibration(metrics: Mapping[str, Any]) -> Callable[[Axes], None]:
    calibration = metrics["curves"]["calibration"]

    def draw(ax: Axes) -> None:
        predicted = _numbers(calibration["mean_predicted"])
        observed = _numbers(calibration["fraction_positive"])
        upper = max([1e-9, *predicted, *observed])
        limit = min(1.0, upper * 1.1)
        ax.plot(
            [0, limit], [0, limit], linestyle="--", color=_REFERENCE, linewidth=1, label="Perfect calibration"
        )
        hl = metrics.get("hosmer_lemeshow") or {}
        ax.plot(
            predicted,
            observed,
            marker="o",
            color=_LINE,
            linewidth=2,
            label=f"Model (HL p = {_format(hl.get('p_value'))})",
        )
        ax.set(xlim=(0, limit), ylim=(0, limit), xlabel="Mean predicted PD", ylabel="Observed default rate")
        ax.set_title("Calibration")
        ax.legend(loc="upper left")

    return draw


def _draw_deciles(metrics: Mapping[str, Any]) -> Callable[[Axes], None]:
    deciles = metrics["deciles"]

    def draw(ax: Axes) -> None:
        positions = [row["decile"] for row in deciles]
        ax.bar(positions, [row["default_rate"] for row in deciles], color=_BAR, label="Observed default rate")
        ax.plot(
            positions,
            [row["mean_score"] for row in deciles],
            marker="o",
            color=_LINE,
            linewidth=2,
            label="Mean predicted PD",
        )
        ax.set_xticks(positions)
        ax.set(xlabel="Score decile (1 = riskiest)", ylabel="Default rate", ylim=(0, 1))
        ax.set_title("Default rate by decile")
        ax.legend(loc="upper right")

    return draw


def render_evaluation_plots(metrics: Mapping[str, Any]) -> dict[str, bytes]:
    """Return PNG images ``roc``, ``pr``, ``calibration`` and ``deciles`` for an evaluation.

    ``metrics`` is the dict returned by :func:`riskmodels.ml.metrics.evaluate` (or the same
    dict after a JSON round trip).
    """
    drawers = {
        "roc": _draw_roc,
        "pr": _draw_pr,
        "calibration": _draw_calibration,
        "deciles": _draw_deciles,
    }
    return {name: _png(drawers[name](metrics)) for name in PLOT_NAMES}

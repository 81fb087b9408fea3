"""Draw a model's monitoring charts and an evaluation's fairness charts on request, from the stored runs.

Nothing is stored or cached: a chart is a few dozen runs read and one figure drawn, and drawing from
the rows as they are means a chart never disagrees with the runs listed next to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.ml.monitoring_plots import (
    Cohort,
    NoData,
    approval_by_group,
    auc_by_cohort,
    csi_heatmap,
    psi_over_time,
)
from riskmodels.models import Evaluation, ModelVersion, MonitoringRun, RegisteredModel
from riskmodels.selectors import model_version_get_for_user, registered_model_champion
from riskmodels.selectors.monitoring import monitoring_run_list_for_user
from riskmodels.services.reviews import monitoring_thresholds_of

__all__ = ["MONITORING_PLOTS", "RUNS_SHOWN", "fairness_plot_render", "monitoring_plot_render",
           "monitoring_plots_available"]

RUNS_SHOWN = 30  # the newest runs drawn: a month of the daily stability beat
SCORE_METRIC = "psi:score"
CSI_PREFIX = "csi:"


def _label(run: MonitoringRun) -> str:
    if run.window_start is None or run.window_end is None:
        return f"dataset {run.dataset_version_id}"
    # The window's end is exclusive: a daily run over [d, d+1) is labelled d.
    last = (run.window_end - dt.timedelta(microseconds=1)).date()
    first = run.window_start.date()
    return first.isoformat() if first >= last else f"{first.isoformat()} \u2013 {last.isoformat()}"


def _runs(*, user: Any, version: ModelVersion, kind: str) -> list[MonitoringRun]:
    """Return the newest :data:`RUNS_SHOWN` runs of ``kind`` of ``version``, oldest first (left to right)."""
    newest = monitoring_run_list_for_user(user=user).filter(model_version=version, kind=kind)[:RUNS_SHOWN]
    return list(reversed(newest))


def _thresholds(model: RegisteredModel, runs: list[MonitoringRun]) -> dict[str, float]:
    # The newest run's thresholds are what its lights were judged against; the model's fill any gap.
    return {**monitoring_thresholds_of(model), **(runs[-1].thresholds if runs else {})}


def _psi_over_time(user: Any, model: RegisteredModel, version: ModelVersion) -> bytes:
    runs = _runs(user=user, version=version, kind=MonitoringRun.Kind.STABILITY)
    points = [(_label(r), r.results["metrics"][SCORE_METRIC]["value"]) for r in runs
              if SCORE_METRIC in r.results.get("metrics", {})]
    thresholds = _thresholds(model, runs)
    return psi_over_time(points, thresholds["psi_amber"], thresholds["psi_red"])


def _csi_heatmap(user: Any, model: RegisteredModel, version: ModelVersion) -> bytes:
    runs = [r for r in _runs(user=user, version=version, kind=MonitoringRun.Kind.STABILITY)
            if any(name.startswith(CSI_PREFIX) for name in r.results.get("metrics", {}))]
    values: dict[str, list[float | None]] = {}
    for j, run in enumerate(runs):
        for name, metric in run.results["metrics"].items():
            if name.startswith(CSI_PREFIX):
                values.setdefault(name[len(CSI_PREFIX):], [None] * len(runs))[j] = metric.get("value")
    # The worst features on top, so a tall map is read from its most shifted rows down.
    features = sorted(values, key=lambda f: (-max((v for v in values[f] if v is not None), default=0.0), f))
    thresholds = _thresholds(model, runs)
    return csi_heatmap(features, [_label(r) for r in runs], [values[f] for f in features],
                       thresholds["csi_amber"], thresholds["csi_red"])


def _auc_by_cohort(user: Any, model: RegisteredModel, version: ModelVersion) -> bytes:
    runs = [r for r in _runs(user=user, version=version, kind=MonitoringRun.Kind.PERFORMANCE)
            if r.results.get("status") == "measured"]
    cohorts = []
    for run in runs:
        auc = run.results["metrics"]["auc"]
        ci = auc.get("ci") or {}
        cohorts.append(Cohort(label=_label(run), auc=auc["value"], lower=ci.get("lower"), upper=ci.get("upper")))
    baseline = runs[-1].results.get("baseline", {}).get("auc") if runs else None
    thresholds = _thresholds(model, runs)
    return auc_by_cohort(cohorts, baseline, thresholds["auc_drop_amber"], thresholds["auc_drop_red"])


_DRAWERS: dict[str, Callable[[Any, RegisteredModel, ModelVersion], bytes]] = {
    "psi-over-time": _psi_over_time,
    "csi-heatmap": _csi_heatmap,
    "auc-by-cohort": _auc_by_cohort,
}
MONITORING_PLOTS = tuple(_DRAWERS)


def _version(*, user: Any, model: RegisteredModel, version_id: int | None) -> ModelVersion:
    if version_id is not None:
        version = model_version_get_for_user(user=user, id=version_id)
        if version.registered_model_id != model.pk:
            raise NotFound(f"model version {version_id} is not a version of model {model.name!r}")
        return version
    champion = registered_model_champion(registered_model=model)
    if champion is None:
        raise NotFound(f"model {model.name!r} has no champion; name a version to chart its runs")
    return champion


def monitoring_plot_render(*, user: Any, model: RegisteredModel, plot: str, version_id: int | None = None) -> bytes:
    """Return a monitoring chart of the champion (or of version ``version_id``) of ``model`` as PNG bytes.

    Raises NotFound for an unknown plot (naming those that exist), a model without a champion, or a
    version without the runs the chart needs; PermissionDenied for a user who may not read the domain.
    """
    require(user, Capability.DOMAIN_READ)
    if plot not in _DRAWERS:
        raise NotFound(f"no monitoring plot {plot!r}; the plots are: {', '.join(MONITORING_PLOTS)}")
    version = _version(user=user, model=model, version_id=version_id)
    try:
        return _DRAWERS[plot](user, model, version)
    except NoData as exc:
        raise NotFound(f"{plot} of model {model.name!r} version {version.version}: {exc}") from None


def monitoring_plots_available(*, user: Any, model: RegisteredModel) -> list[str]:
    """Return the monitoring plots the champion of ``model`` has runs for (none without a champion)."""
    require(user, Capability.DOMAIN_READ)  # also when there is no champion, so nothing is said to an outsider
    champion = registered_model_champion(registered_model=model)
    if champion is None:
        return []
    stability = _runs(user=user, version=champion, kind=MonitoringRun.Kind.STABILITY)
    metrics = {name for run in stability for name in run.results.get("metrics", {})}
    available = {
        "psi-over-time": SCORE_METRIC in metrics,
        "csi-heatmap": any(name.startswith(CSI_PREFIX) for name in metrics),
        "auc-by-cohort": any(run.results.get("status") == "measured"
                             for run in _runs(user=user, version=champion, kind=MonitoringRun.Kind.PERFORMANCE)),
    }
    return [name for name in MONITORING_PLOTS if available[name]]


def fairness_plot_render(*, evaluation: Evaluation, column: str) -> bytes:
    """Return the approval rate by group of one protected column of an evaluation's fairness test as PNG bytes.

    ``evaluation`` comes from ``evaluation_get_for_user``, which has checked the reader. Raises
    NotFound for a column the test did not cover, naming those it did.
    """
    columns = {c["column"]: c for c in (evaluation.fairness or {}).get("columns", [])}
    if column not in columns:
        covered = ", ".join(sorted(columns)) or "none (no protected column in its data, or no fairness test)"
        raise NotFound(f"evaluation {evaluation.pk} has no fairness result for {column!r}; its columns: {covered}")
    try:
        return approval_by_group(columns[column])
    except NoData as exc:
        raise NotFound(f"evaluation {evaluation.pk}: {exc}") from None

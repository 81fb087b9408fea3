"""Alerts: a monitoring result past its threshold becomes a record and an audit event, in the run's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.models import Alert, MonitoringRun

LIGHTS = (MonitoringRun.Light.GREEN, MonitoringRun.Light.AMBER, MonitoringRun.Light.RED)


@dataclass(frozen=True)
class Breach:
    """One metric of a run past its threshold: what to raise."""

    metric: str  # e.g. "psi:score", "csi:credit_amount", "auc", "fairness:age_in_years"
    value: float
    threshold: float
    light: str  # amber or red
    message: str


def worst_light(lights: list[str]) -> str:
    """Return the worst of some traffic lights (green for none)."""
    return max(lights, key=LIGHTS.index, default=MonitoringRun.Light.GREEN)


def alerts_raise(*, run: MonitoringRun, breaches: list[Breach]) -> list[Alert]:
    """Record one alert and one audit event per breach of ``run``; call inside the run's transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("alerts are raised inside the transaction that records their run")
    window = ({"dataset_version": run.dataset_version_id} if run.dataset_version_id else
              {"start": run.window_start.isoformat(), "end": run.window_end.isoformat()})
    version = run.model_version
    alerts = []
    for breach in breaches:
        if breach.light not in (MonitoringRun.Light.AMBER, MonitoringRun.Light.RED):
            raise ValidationFailed(f"only amber and red results raise alerts; got {breach.light!r}")
        alert = Alert.objects.create(registered_model_id=version.registered_model_id, model_version=version, run=run,
                                     metric=breach.metric, value=breach.value, threshold=breach.threshold,
                                     light=breach.light, window=window, message=breach.message)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="alert.raised", target=alert,
                     after={"metric": breach.metric, "value": breach.value, "threshold": breach.threshold,
                            "light": breach.light, "run": run.pk, "model_version": version.pk, "window": window})
        alerts.append(alert)
    return alerts


def alert_summary(alert: Alert) -> dict[str, Any]:
    """Return what a notification says about an alert (JSON-serialisable)."""
    return {"id": alert.pk, "model": alert.registered_model.name, "model_version": alert.model_version_id,
            "metric": alert.metric, "value": alert.value, "threshold": alert.threshold, "light": alert.light,
            "window": alert.window, "message": alert.message, "created_at": alert.created_at.isoformat()}

"""Performance runs: the champion measured on matured outcomes (or a labelled dataset) against its validation baseline.

A run is a ``performance`` job. Its source is either a cohort of the ledger (the champion's
decisive decisions made in ``[decided_since, decided_until)``, at least ``maturity_days`` old,
that have an observed outcome) or a labelled dataset version scored with the champion. The
work computes AUC, KS, Brier (with bootstrap intervals), Hosmer-Lemeshow and the default rate
per score band (riskmodels.ml.performance), judges them against the champion's test-split
evaluation with the model's monitoring thresholds, and records the MonitoringRun, its alerts
and an audit event in the job's finishing transaction.

Fairness is recomputed on the same rows (riskmodels.ml.fairness): a dataset version's protected
columns, or for a cohort the protected attributes posted with its outcomes (the ledger holds
only features). A protected column whose lowest adverse impact ratio is below the model's
``fairness_air_amber`` (``fairness_air_red``) is an amber (red) ``fairness:<column>`` alert.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.fairness import FOUR_FIFTHS_CAVEAT, fairness_report
from riskmodels.ml.performance import JUDGED, judge, performance
from riskmodels.ml.scoring import ScoringPolicy
from riskmodels.models import CreditDecision, DatasetVersion, Evaluation, Job, JobKind, MonitoringRun, RegisteredModel
from riskmodels.services.alerts import Breach, alerts_raise, worst_light
from riskmodels.services.evaluation import N_BOOTSTRAP, labelled_dataset_check, labelled_rows
from riskmodels.services.reviews import monitoring_thresholds_of
from riskmodels.services.scoring import champion_or_refuse, scoring_policy_of

NO_BASELINE = "no_baseline"
# The cutoff fairness is measured at when the model has no scoring policy (as an evaluation's default threshold).
DEFAULT_FAIRNESS_CUTOFF = 0.5
FAIRNESS_THRESHOLDS = ("fairness_air_amber", "fairness_air_red")
_BASELINE_KEYS = ("auc", "ks", "brier", "base_rate", "n")


def _moment(value: Any, field: str) -> dt.datetime:
    """Return an ISO date or date-time as an aware UTC datetime (a bare date is its midnight), or refuse."""
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(f"{field} must be an ISO date or date-time, e.g. 2025-01-01; got {value!r}",
                               code="invalid_date", details={"field": field}) from None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)


def _baseline_of(champion: Any) -> Evaluation:
    baseline = Evaluation.objects.filter(model_version=champion, scope="test_split").order_by("-created_at").first()
    if baseline is None:
        raise Conflict(f"version {champion.pk} has no test-split evaluation to compare with; evaluate it first",
                       code=NO_BASELINE)
    return baseline


def _cohort_params(decided_since: Any, decided_until: Any, maturity_days: Any, now: dt.datetime) -> dict[str, Any]:
    if decided_since in (None, "") or decided_until in (None, ""):
        raise ValidationFailed("a cohort needs both decided_since and decided_until", code="invalid",
                               details={"field": "decided_since" if decided_since in (None, "") else "decided_until"})
    since, until = _moment(decided_since, "decided_since"), _moment(decided_until, "decided_until")
    if since >= until:
        raise ValidationFailed(f"decided_since ({since.isoformat()}) must be before decided_until "
                               f"({until.isoformat()})", code="invalid", details={"field": "decided_until"})
    if maturity_days is None:
        maturity_days = settings.OUTCOME_MATURITY_DAYS
    if isinstance(maturity_days, bool) or not isinstance(maturity_days, int) or maturity_days < 0:
        raise ValidationFailed(f"maturity_days must be a whole number of days, 0 or more; got {maturity_days!r}",
                               code="invalid", details={"field": "maturity_days"})
    # The maturity cut-off is fixed when the run is requested, so a retried job measures the same cohort.
    return {"source": "cohort", "decided_since": since.isoformat(), "decided_until": until.isoformat(),
            "maturity_days": maturity_days, "matured_before": (now - dt.timedelta(days=maturity_days)).isoformat()}


def performance_run_create(*, actor: Any, model: RegisteredModel, decided_since: Any = None, decided_until: Any = None,
                           maturity_days: Any = None, dataset_version: DatasetVersion | None = None,
                           now: dt.datetime | None = None) -> Job:
    """Queue a performance run of the model's champion on a matured cohort of the ledger or a labelled dataset (202).

    Give either a cohort (``decided_since`` and ``decided_until``, optionally ``maturity_days``,
    default ``OUTCOME_MATURITY_DAYS``) or ``dataset_version``. Developers and validators
    (``model.evaluate``). Refused with 409 without a champion (``not_approved``) or without its
    test-split evaluation (``no_baseline``).
    """
    require(actor, Capability.MONITORING_RUN)
    cohort_given = any(v not in (None, "") for v in (decided_since, decided_until, maturity_days))
    if cohort_given == (dataset_version is not None):
        raise ValidationFailed("give either a cohort (decided_since, decided_until) or a dataset_version, not both",
                               code="invalid", details={"field": "dataset_version"})
    champion = champion_or_refuse(model)
    baseline = _baseline_of(champion)
    if dataset_version is not None:
        labelled_dataset_check(model_version=champion, dataset_version=dataset_version)
        # Bands of a dataset's rows come from the policy in force now, as if they were scored today.
        params: dict[str, Any] = {"source": "dataset", "policy": scoring_policy_of(model).to_dict()}
        job_data = dataset_version
    else:
        params = _cohort_params(decided_since, decided_until, maturity_days, now or timezone.now())
        # A job names a dataset version; a cohort run's is the data its baseline was measured on.
        job_data = baseline.dataset_version
    # The cutoff is fixed with the request, like the maturity, so a retried job tests the same approvals.
    params.update({"baseline_evaluation": baseline.pk, "thresholds": _judged_thresholds(model),
                   "fairness_cutoff": _fairness_cutoff(model)})
    with transaction.atomic():
        job = Job.objects.create(kind=JobKind.PERFORMANCE, registered_model=model, model_version=champion,
                                 dataset_version=job_data, params=params, requested_by=actor,
                                 requested_by_username=actor.username)
        audit_record(actor=actor, action="performance_run.requested", target=job,
                     after={"model_version": champion.pk, "dataset_version": job_data.pk, **params})
        job_dispatch(job=job)
    return job


def _judged_thresholds(model: RegisteredModel) -> dict[str, float]:
    thresholds = monitoring_thresholds_of(model)
    return {**{f"{prefix}_{level}": thresholds[f"{prefix}_{level}"]
               for prefix, _ in JUDGED.values() for level in ("amber", "red")},
            **{name: thresholds[name] for name in FAIRNESS_THRESHOLDS}}


def _fairness_cutoff(model: RegisteredModel) -> dict[str, Any]:
    """Return the cutoff approvals are tested at and where it comes from, as evaluation_fairness chooses it."""
    cutoff = (model.scoring_policy or {}).get("cutoff")
    if cutoff is None:
        return {"cutoff": DEFAULT_FAIRNESS_CUTOFF, "source": "default"}
    return {"cutoff": float(cutoff), "source": "scoring_policy"}


def _cohort(job: Job) -> tuple[np.ndarray, np.ndarray, list[str], list[dict[str, Any]], dict[str, Any]]:
    params = job.params
    window = CreditDecision.objects.filter(model_version=job.model_version, decisive=True,
                                           created_at__gte=params["decided_since"],
                                           created_at__lt=params["decided_until"])
    matured = window.filter(created_at__lte=params["matured_before"], outcome_record__isnull=False)
    rows = list(matured.order_by("pk").values_list("pd", "band", "outcome_record__defaulted",
                                                   "outcome_record__protected"))
    described = {key: params[key] for key in ("decided_since", "decided_until", "maturity_days", "matured_before")}
    described |= {"decisions_in_window": window.count(), "matured_with_outcome": len(rows)}
    y = np.fromiter((row[2] for row in rows), dtype=np.int64, count=len(rows))
    p = np.fromiter((row[0] for row in rows), dtype=np.float64, count=len(rows))
    return y, p, [row[1] for row in rows], [row[3] for row in rows], described


def _cohort_protected(protected: list[dict[str, Any]]) -> dict[str, pd.Series]:
    """Return each protected column given for at least one outcome, None where an outcome did not give it."""
    columns = sorted({column for values in protected for column in values})
    return {column: pd.Series([values.get(column) for values in protected], name=column) for column in columns}


def _fairness(y: np.ndarray, p: np.ndarray, protected: dict[str, pd.Series], *, status: str, absent: str,
              cutoff: dict[str, Any], seed: int) -> dict[str, Any]:
    """Return the fairness report of the run's rows, or why none was computed."""
    if status != "measured":
        return {"computed": False, "columns": [],
                "note": "too few matured outcomes to measure performance; fairness was not computed either"}
    if not protected:
        return {"computed": False, "columns": [], "note": absent}
    report = fairness_report(y, p, protected, cutoff=cutoff["cutoff"], n_bootstrap=N_BOOTSTRAP, seed=seed)
    return {"computed": True, **report.to_dict(), "cutoff_source": cutoff["source"]}


def _fairness_breaches(fairness: dict[str, Any], thresholds: dict[str, float]) -> list[Breach]:
    """Return one breach per protected column whose lowest adverse impact ratio is below the amber threshold."""
    amber, red = thresholds["fairness_air_amber"], thresholds["fairness_air_red"]
    breaches = []
    for column in fairness["columns"]:
        lowest = column["min_adverse_impact_ratio"]
        if lowest is None or lowest >= amber:
            continue
        light, threshold = ((MonitoringRun.Light.RED, red) if lowest < red else (MonitoringRun.Light.AMBER, amber))
        low = [f"{g['group']} ({g['adverse_impact_ratio']:.3f}, {g['n']} rows)" for g in column["groups"]
               if g["adverse_impact_ratio"] is not None and g["adverse_impact_ratio"] < amber]
        breaches.append(Breach(
            metric=f"fairness:{column['column']}", value=lowest, threshold=threshold, light=light,
            message=(f"Adverse impact ratio of {column['column']} fell to {lowest:.3f} at cutoff "
                     f"{fairness['cutoff']:.3f} on {fairness['n']} rows ({light} below {threshold:.3f}); "
                     f"approval rate relative to group {column['reference_group']}: {', '.join(low)}. "
                     f"{FOUR_FIFTHS_CAVEAT}")))
    return breaches


def _alert_message(judgement: Any, n: int) -> str:
    verb = "rose" if JUDGED[judgement.metric][1] else "fell"
    return (f"{judgement.metric.upper()} {verb} by {judgement.change:.3f} to {judgement.value:.3f} on {n} observed "
            f"outcomes (validation baseline {judgement.baseline:.3f}; {judgement.light} at {judgement.threshold:.3f})")


def performance_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Measure the champion on the job's source and record the run, its alerts and its audit event."""
    version = job.model_version
    params = job.params
    baseline = Evaluation.objects.get(pk=params["baseline_evaluation"])
    # Jobs queued before fairness was monitored carry neither its thresholds nor its cutoff.
    thresholds = {**{name: settings.MONITORING_THRESHOLDS[name] for name in FAIRNESS_THRESHOLDS},
                  **params["thresholds"]}
    cutoff = params.get("fairness_cutoff") or _fairness_cutoff(version.registered_model)
    progress("collecting outcomes", 10)
    if params["source"] == "cohort":
        y, p, bands, posted, source = _cohort(job)
        protected = _cohort_protected(posted)
        absent = "no outcome of the cohort carries protected attributes; no fairness test was run"
    else:
        frame, y, p = labelled_rows(version=version, dataset_version=job.dataset_version)
        policy = ScoringPolicy.from_dict(params["policy"])
        bands = [policy.band(float(x)) for x in p]
        source = {"dataset_version": job.dataset_version_id}
        columns = [c["name"] for c in job.dataset_version.schema if c.get("role") == "protected"]
        protected = {name: frame[name].reset_index(drop=True) for name in columns}
        absent = f"dataset version {job.dataset_version_id} marks no column protected; no fairness test was run"
    progress("measuring", 40)
    seed = int(version.spec.get("seed", 0))
    measured = performance(y, p, bands, n_bootstrap=N_BOOTSTRAP, seed=seed)
    judgements = judge(measured, baseline.metrics, thresholds)
    for j in judgements:
        measured["metrics"][j.metric].update(j.to_dict())
    progress("testing fairness", 70)
    fairness = _fairness(y, p, protected, status=measured["status"], absent=absent, cutoff=cutoff, seed=seed)
    fairness_breaches = _fairness_breaches(fairness, thresholds)
    results = {**measured, "source": source, "fairness": fairness,
               "baseline": {"evaluation": baseline.pk, **{k: baseline.metrics.get(k) for k in _BASELINE_KEYS},
                            "hosmer_lemeshow": baseline.metrics.get("hosmer_lemeshow")}}
    breaches = [Breach(metric=j.metric, value=j.change, threshold=j.threshold, light=j.light,
                       message=_alert_message(j, len(y))) for j in judgements if j.light != MonitoringRun.Light.GREEN]
    breaches += fairness_breaches
    light = worst_light([j.light for j in judgements] + [b.light for b in fairness_breaches])

    def write(finished: Job) -> None:
        window = ({"window_start": dt.datetime.fromisoformat(params["decided_since"]),
                   "window_end": dt.datetime.fromisoformat(params["decided_until"])}
                  if params["source"] == "cohort" else {"dataset_version": finished.dataset_version})
        run = MonitoringRun.objects.create(model_version=version, kind=MonitoringRun.Kind.PERFORMANCE, n_rows=len(y),
                                           results=results, light=light, thresholds=thresholds,
                                           job=finished, **window)
        alerts = alerts_raise(run=run, breaches=breaches)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="monitoring_run.finished", target=run,
                     after={"kind": run.kind, "model_version": version.pk, "light": light, "n_rows": len(y),
                            "status": measured["status"], "source": source, "alerts": [a.pk for a in alerts],
                            "fairness_flagged": [b.metric for b in fairness_breaches],
                            **{name: m.get("value") for name, m in measured.get("metrics", {}).items()}})

    return Finished({"status": measured["status"], "light": light, "n": len(y), "message": measured["message"],
                     "alerts": len(breaches)}, write)

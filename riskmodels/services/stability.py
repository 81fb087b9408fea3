"""Stability runs of champions: the PSI of the score and the CSI of every feature against the frozen reference.

A ``stability`` job counts a window of the decision ledger (decisive entries of the champion),
or every row of a dataset version, into the bins frozen at promotion
(riskmodels/services/monitoring_reference.py) a chunk at a time, so memory does not grow with
the rows. It records a MonitoringRun with each metric's value, traffic light and bins, an alert
per amber or red metric and an audit event, in one transaction. Celery beat queues one run a
day per champion with a reference; anyone holding ``monitoring.run`` may request one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.jobs import Finished, Progress, job_dispatch
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.ml.pipelines import TrainingSpec, prepare_features
from riskmodels.ml.stability import Bins, StabilityCounter
from riskmodels.models import (
    CreditDecision,
    DatasetVersion,
    Job,
    JobKind,
    ModelVersion,
    MonitoringReference,
    MonitoringRun,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.selectors import registered_model_champion
from riskmodels.services.alerts import Breach, alerts_raise, worst_light
from riskmodels.services.explanations.cache import pipeline_load
from riskmodels.services.monitoring_reference import LIVE, rows_in_chunks
from riskmodels.services.reviews import monitoring_thresholds_of
from riskmodels.storage import dataset_rows

SCHEDULER_LABEL = "system:scheduler"
SCORE_METRIC = "psi:score"


# --- Stability runs ----------------------------------------------------------------------------------

def _champion_with_reference(model: RegisteredModel) -> ModelVersion:
    champion = registered_model_champion(registered_model=model)
    if champion is None:
        raise Conflict(f"model {model.name!r} has no champion: stability is monitored on a champion",
                       code="no_champion")
    if not MonitoringReference.objects.filter(model_version=champion).exists():
        raise Conflict(f"the champion of {model.name!r} (version {champion.pk}) has no monitoring reference yet: "
                       "it is computed by a job queued at promotion", code="no_monitoring_reference",
                       details={"model_version": champion.pk})
    return champion


def _stability_job(*, champion: ModelVersion, params: dict[str, Any], dataset_version_id: int, actor: Any,
                   actor_label: str) -> Job:
    job = Job.objects.create(kind=JobKind.STABILITY, registered_model_id=champion.registered_model_id,
                             model_version=champion, dataset_version_id=dataset_version_id, params=params,
                             requested_by=actor, requested_by_username=actor.username if actor else actor_label)
    audit_record(actor=actor, actor_label=actor_label, action="stability_run.requested", target=job,
                 after={"model_version": champion.pk, **params})
    job_dispatch(job=job)
    return job


def stability_run_request(*, actor: Any, model: RegisteredModel, dataset_version: DatasetVersion | None = None,
                          since: dt.datetime | None = None, until: dt.datetime | None = None) -> Job:
    """Queue a stability run of the model's champion over a dataset version or a window of the ledger (202)."""
    require(actor, Capability.MONITORING_RUN)
    if (dataset_version is not None) == (since is not None or until is not None):
        raise ValidationFailed("give either dataset_version or a ledger window (since and until), not both or neither",
                               code="invalid", details={"fields": ["dataset_version", "since", "until"]})
    champion = _champion_with_reference(model)
    if dataset_version is not None:
        columns = {c["name"] for c in dataset_version.schema}
        missing = [f for f in TrainingSpec.from_dict(champion.spec).features if f not in columns]
        if missing:
            raise ValidationFailed(f"dataset version {dataset_version.pk} lacks features the champion needs: "
                                   f"{', '.join(missing)}", code="incompatible_dataset", details={"missing": missing})
        params: dict[str, Any] = {"source": "dataset", "dataset_version": dataset_version.pk}
        source_id = dataset_version.pk
    else:
        if since is None or until is None:
            raise ValidationFailed("a ledger window needs both since and until", code="invalid",
                                   details={"fields": ["since", "until"]})
        if until <= since:
            raise ValidationFailed(f"until ({until.isoformat()}) must be after since ({since.isoformat()})",
                                   code="invalid_window", details={"fields": ["since", "until"]})
        params = {"source": "ledger", "window_start": since.isoformat(), "window_end": until.isoformat()}
        # Every job names a dataset version; a ledger run names the one its reference was drawn from.
        source_id = champion.dataset_version_id
    with transaction.atomic():
        return _stability_job(champion=champion, params=params, dataset_version_id=source_id, actor=actor,
                              actor_label="")


def stability_runs_schedule(*, now: dt.datetime | None = None) -> list[int]:
    """Queue a run over the last ``MONITORING_WINDOW_DAYS`` of the ledger for every champion with a reference.

    Return the jobs' ids. A champion whose scheduled run is still queued or running is skipped,
    so a second delivery of the beat task adds nothing.
    """
    now = now or timezone.now()
    since = now - dt.timedelta(days=settings.MONITORING_WINDOW_DAYS)
    champions = ModelVersion.objects.filter(status=VersionStatus.CHAMPION, monitoring_reference__isnull=False)
    queued = []
    for champion in champions.order_by("pk"):
        with transaction.atomic():
            if Job.objects.filter(kind=JobKind.STABILITY, model_version=champion, status__in=LIVE,
                                  params__scheduled=True).exists():
                continue
            job = _stability_job(champion=champion, dataset_version_id=champion.dataset_version_id, actor=None,
                                 actor_label=SCHEDULER_LABEL,
                                 params={"source": "ledger", "window_start": since.isoformat(),
                                         "window_end": now.isoformat(), "scheduled": True})
            queued.append(job.pk)
    return queued


class _Counters:
    """The score's and each feature's bin counters of one run."""

    def __init__(self, reference: MonitoringReference) -> None:
        self.score = StabilityCounter(Bins.from_dict(reference.score_bins))
        self.features = {f: StabilityCounter(Bins.from_dict(b)) for f, b in reference.feature_bins.items()}


def _count_ledger(job: Job, counters: _Counters, progress: Progress) -> tuple[int, int]:
    """Count the window's decisive ledger entries of the version; return (entries, entries with features)."""
    start = dt.datetime.fromisoformat(job.params["window_start"])
    end = dt.datetime.fromisoformat(job.params["window_end"])
    entries = CreditDecision.objects.filter(model_version=job.model_version, decisive=True, created_at__gte=start,
                                            created_at__lt=end)
    total = entries.count()
    chunk = settings.MONITORING_CHUNK_ROWS
    seen = with_features = 0
    pds: list[float] = []
    records: list[dict[str, Any]] = []

    def flush() -> None:
        counters.score.add(np.asarray(pds, dtype=np.float64))
        for feature, counter in counters.features.items():
            counter.add([r.get(feature) for r in records])
        pds.clear()
        records.clear()
        progress("counting", 5 + 85 * seen // max(1, total))

    # Server-side cursor where the database has one: a window of millions of entries is never held.
    for pd_value, features in entries.order_by("id").values_list("pd", "features").iterator(chunk_size=chunk):
        seen += 1
        pds.append(pd_value)
        if features is not None:
            with_features += 1
            records.append(features)
        if len(pds) >= chunk:
            flush()
    if pds:
        flush()
    return seen, with_features


def _count_dataset(job: Job, counters: _Counters, progress: Progress) -> int:
    """Score and count every row of the job's dataset version, a chunk at a time; return the rows."""
    version = job.model_version
    spec = TrainingSpec.from_dict(version.spec)
    pipeline = pipeline_load(version)
    n = job.dataset_version.n_rows
    for chunk in rows_in_chunks(np.arange(n, dtype=np.int64)):
        frame = dataset_rows(job.dataset_version, chunk, list(spec.features))
        counters.score.add(pipeline.predict_proba(prepare_features(frame, spec))[:, 1])
        for feature, counter in counters.features.items():
            counter.add(frame[feature].to_numpy())
        progress("counting", 5 + 85 * int(chunk[-1] + 1) // max(1, n))
    return n


def _metrics(counters: _Counters, thresholds: dict[str, float], *, features: bool) -> dict[str, Any]:
    metrics = {}
    if counters.score.n:
        metrics[SCORE_METRIC] = counters.score.result(amber=thresholds["psi_amber"], red=thresholds["psi_red"])
    if features:
        for feature, counter in counters.features.items():
            metrics[f"csi:{feature}"] = counter.result(amber=thresholds["csi_amber"], red=thresholds["csi_red"])
    return metrics


def _breaches(metrics: dict[str, Any], where: str) -> list[Breach]:
    out = []
    for name, metric in metrics.items():
        if metric["light"] == "green":
            continue
        threshold = metric["thresholds"][metric["light"]]
        out.append(Breach(metric=name, value=metric["value"], threshold=threshold, light=metric["light"],
                          message=f"{name} is {metric['value']:.4f} over {where}, at or above its "
                                  f"{metric['light']} threshold {threshold}"))
    return out


def stability_work(job: Job, progress: Progress, stored: list[str]) -> Finished:
    """Count the run's rows into the reference bins, and record the run, its lights and alerts."""
    version = job.model_version
    reference = MonitoringReference.objects.get(model_version=version)
    thresholds = monitoring_thresholds_of(version.registered_model)
    counters = _Counters(reference)
    notes: list[str] = []
    progress("counting", 5)
    if job.params["source"] == "dataset":
        n_rows = with_features = _count_dataset(job, counters, progress)
        where = f"dataset version {job.dataset_version_id}"
    else:
        n_rows, with_features = _count_ledger(job, counters, progress)
        where = f"the ledger from {job.params['window_start']} to {job.params['window_end']}"
        if n_rows == 0:
            notes.append("no decisive decisions of this version in the window: nothing to compare, the run is green")
        elif with_features == 0:
            notes.append(f"all {n_rows} decisions kept only the SHA-256 of their inputs: the score's PSI is computed, "
                         "no feature's CSI can be")
        elif with_features < n_rows:
            notes.append(f"{n_rows - with_features} of {n_rows} decisions kept only the SHA-256 of their inputs: they "
                         f"count in the score's PSI only; each feature's CSI is over the {with_features} decisions "
                         "whose inputs were kept")
    progress("judging", 92)
    metrics = _metrics(counters, thresholds, features=with_features > 0)
    light = worst_light([m["light"] for m in metrics.values()])
    results = {"metrics": metrics, "n_rows_with_features": with_features, "notes": notes,
               "reference": reference.pk}
    breaches = _breaches(metrics, where)
    summary = {"n_rows": n_rows, "light": light, "alerts": [b.metric for b in breaches]}

    def write(finished: Job) -> None:
        window = ({"dataset_version": finished.dataset_version} if job.params["source"] == "dataset" else
                  {"window_start": dt.datetime.fromisoformat(job.params["window_start"]),
                   "window_end": dt.datetime.fromisoformat(job.params["window_end"])})
        run = MonitoringRun.objects.create(model_version=version, kind=MonitoringRun.Kind.STABILITY, n_rows=n_rows,
                                           results=results, light=light, thresholds=thresholds, job=finished, **window)
        alerts = alerts_raise(run=run, breaches=breaches)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="monitoring_run.finished", target=run,
                     after={**summary, "kind": run.kind, "model_version": version.pk, "alerts": [a.pk for a in alerts],
                            **{k: v for k, v in job.params.items() if k != "source"}})

    return Finished(summary, write)

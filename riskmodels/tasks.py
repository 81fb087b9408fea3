"""Celery tasks of the ML domain: thin wrappers that take ids and make one call each.

Their names come from riskmodels/jobs/dispatch.py, which sends them; nothing imports this
module but Celery's autodiscovery.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from governance.audit import correlation_id
from riskmodels.jobs import dispatch, jobs_reap
from riskmodels.exceptions import NotificationDeferred
from riskmodels.jobs.kinds import chunk_execute, job_execute
from riskmodels.jobs.worker_lost import JobRequest
from riskmodels.services.alerts import alert_notify
from riskmodels.services.explanations import explanation_plots_render
from riskmodels.services.retention import retention_purge
from riskmodels.services.reviews import reviews_flag_overdue
from riskmodels.services.stability import stability_runs_schedule

LIMITS = {"time_limit": settings.CELERY_TASK_TIME_LIMIT, "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT}


# acks_late is safe for the job and chunk tasks: the claim inside makes a second delivery a no-op.
# JobRequest releases the job of a pool process that died, so its redelivery claims it at once.
@shared_task(name=dispatch.RUN_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             Request=JobRequest, **LIMITS)
def run_job(*, job_id: int) -> None:
    """Run one job row of any kind."""
    with correlation_id(f"job-{job_id}"):
        job_execute(job_id=job_id)


@shared_task(name=dispatch.RUN_JOB_CHUNK, acks_late=True, reject_on_worker_lost=True, ignore_result=True, **LIMITS)
def run_job_chunk(*, chunk_id: int) -> None:
    """Run one chunk of a fanned-out job; the last one merges."""
    with correlation_id(f"chunk-{chunk_id}"):
        chunk_execute(chunk_id=chunk_id)


@shared_task(name=dispatch.RENDER_EXPLANATION_PLOTS, acks_late=True, ignore_result=True, **LIMITS)
def render_explanation_plots(*, report_id: int) -> None:
    """Render a SHAP report's plots after the report is stored."""
    with correlation_id(f"report-{report_id}"):
        explanation_plots_render(report_id=report_id)


@shared_task(name=dispatch.REAP_JOBS, ignore_result=True)
def reap_jobs() -> dict[str, list[int]]:
    """Retry or fail running jobs whose worker stopped renewing the lease."""
    with correlation_id("reaper"):
        return jobs_reap()


@shared_task(name=dispatch.FLAG_OVERDUE_REVIEWS, ignore_result=True)
def flag_overdue_reviews() -> list[int]:
    """Audit each model whose champion's periodic review has fallen overdue (once per due date)."""
    with correlation_id("review-scheduler"):
        return reviews_flag_overdue()


# acks_late is safe: alert_notify claims each attempt and skips settled channels, so a redelivery resends nothing.
@shared_task(name=dispatch.NOTIFY_ALERT, bind=True, acks_late=True, ignore_result=True,
             max_retries=settings.ALERT_NOTIFY_MAX_RETRIES, **LIMITS)
def notify_alert(self, *, alert_id: int) -> None:  # noqa: ANN001
    """Send one alert to the webhook and the e-mail recipients; retry transient failures with exponential backoff."""
    with correlation_id(f"alert-{alert_id}"):
        try:
            alert_notify(alert_id=alert_id, final_attempt=self.request.retries >= self.max_retries)
        except NotificationDeferred as exc:
            raise self.retry(exc=exc, countdown=settings.ALERT_NOTIFY_BACKOFF_SECONDS * 2 ** self.request.retries)


@shared_task(name=dispatch.SCHEDULE_STABILITY_RUNS, ignore_result=True)
def schedule_stability_runs() -> list[int]:
    """Queue a stability run over the last window of the ledger for every champion with a reference."""
    with correlation_id("stability-scheduler"):
        return stability_runs_schedule()


# A second delivery is harmless: what the first purged is gone, so the second finds nothing more to purge.
@shared_task(name=dispatch.PURGE_EXPIRED, ignore_result=True, **LIMITS)
def purge_expired() -> None:
    """Purge every record type's expired, unheld records (as ``manage.py purge_expired``)."""
    with correlation_id("retention-purge"):
        retention_purge()

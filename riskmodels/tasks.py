"""Celery tasks of the ML domain: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from governance.audit import correlation_id
from riskmodels.models import Job, JobKind


@shared_task(name="riskmodels.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             time_limit=settings.CELERY_TASK_TIME_LIMIT, soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT)
def run_job(*, job_id: int) -> None:
    """Run one job row; the claim inside makes a second delivery a no-op, so acks_late is safe."""
    from riskmodels.services.evaluation import evaluation_job_run
    from riskmodels.services.explanations import explanation_job_run
    from riskmodels.services.reproduce import reproduction_job_run
    from riskmodels.services.training import training_job_run

    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    runners = {JobKind.TRAIN: training_job_run, JobKind.EVALUATE: evaluation_job_run,
               JobKind.REPRODUCE: reproduction_job_run, JobKind.EXPLAIN: explanation_job_run}
    if kind is None:
        return
    with correlation_id(f"job-{job_id}"):
        runners[JobKind(kind)](job_id=job_id)


@shared_task(name="riskmodels.run_explanation_chunk", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             time_limit=settings.CELERY_TASK_TIME_LIMIT, soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT)
def run_explanation_chunk(*, chunk_id: int) -> None:
    """Explain one chunk of a SHAP report; the claim inside makes a second delivery a no-op."""
    from riskmodels.services.explanations import explanation_chunk_run

    with correlation_id(f"chunk-{chunk_id}"):
        explanation_chunk_run(chunk_id=chunk_id)


@shared_task(name="riskmodels.render_explanation_plots", acks_late=True, ignore_result=True,
             time_limit=settings.CELERY_TASK_TIME_LIMIT, soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT)
def render_explanation_plots(*, report_id: int) -> None:
    """Render a SHAP report's plots after the report is stored."""
    from riskmodels.services.explanations import explanation_plots_render

    with correlation_id(f"report-{report_id}"):
        explanation_plots_render(report_id=report_id)


@shared_task(name="riskmodels.reap_jobs", ignore_result=True)
def reap_jobs() -> dict[str, list[int]]:
    """Retry or fail running jobs whose worker stopped renewing the lease."""
    from riskmodels.services.jobs import jobs_reap

    with correlation_id("reaper"):
        return jobs_reap()

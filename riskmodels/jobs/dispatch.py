"""Send work to the Celery workers, by task name, once the surrounding transaction commits.

Tasks are addressed by name (Celery's ``send_task``): the task modules call the runner and
the services, and nothing below them imports a task, so there is no import cycle between
services and tasks. The names are defined here once and used by ``riskmodels/tasks.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

RUN_JOB = "riskmodels.run_job"
RUN_JOB_CHUNK = "riskmodels.run_job_chunk"
RENDER_EXPLANATION_PLOTS = "riskmodels.render_explanation_plots"
REAP_JOBS = "riskmodels.reap_jobs"
FLAG_OVERDUE_REVIEWS = "riskmodels.flag_overdue_reviews"  # sent by celery beat
NOTIFY_ALERT = "riskmodels.notify_alert"
SCHEDULE_STABILITY_RUNS = "riskmodels.schedule_stability_runs"  # sent by celery beat
PURGE_EXPIRED = "riskmodels.purge_expired"  # sent by celery beat
TASK_NAMES = (RUN_JOB, RUN_JOB_CHUNK, RENDER_EXPLANATION_PLOTS, REAP_JOBS, FLAG_OVERDUE_REVIEWS, NOTIFY_ALERT,
              SCHEDULE_STABILITY_RUNS, PURGE_EXPIRED)
# Tasks whose lost message the reaper makes good (jobs_reap): a queued job is sent again, and a
# fanned-out job whose chunk never ran stops renewing its lease and is retried.
RECOVERED_BY_REAPER = (RUN_JOB, RUN_JOB_CHUNK)


def send_on_commit(task_name: str, **kwargs: Any) -> None:
    """Send ``task_name`` with keyword arguments (ids, never model instances) after the transaction commits.

    Outside a transaction it is sent at once. A task sent before commit could run before its
    rows are visible to the worker, or for rows that were rolled back.
    """
    if task_name not in TASK_NAMES:
        raise ValueError(f"unknown task {task_name!r}; the tasks are {', '.join(TASK_NAMES)}")
    transaction.on_commit(lambda: _send(task_name, kwargs))


def _send(task_name: str, kwargs: dict[str, Any]) -> None:
    """Send a task; if the broker is unreachable and the reaper recovers this task, log instead of raising.

    The transaction has committed by now: raising would answer a request with an error for a
    job that exists and will run once the broker is back.
    """
    try:
        current_app.send_task(task_name, kwargs=kwargs)
    except OperationalError:
        if task_name not in RECOVERED_BY_REAPER:
            raise
        logger.exception("the broker did not take %s %s; the reaper will send it again", task_name, kwargs)

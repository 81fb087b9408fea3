"""Celery's request for the job task: a pool process that dies ends its job's attempt at once.

With ``acks_late`` and ``reject_on_worker_lost``, Celery puts the message of a task whose pool
process died (killed, out of memory, a crash in native code) back on the queue as soon as the
worker's main process notices. The job row would still say "running", so the redelivery would
find nothing to claim and the job would wait for its lease to run out and the reaper. This
request class, the hook Celery documents for reacting to a lost worker in the main process
(``Task.Request``), first releases the row held by that process (``job_attempt_lost``), so the
redelivered message claims it straight away. The lease and the reaper remain for a lost host.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.worker.request import Request
from django.db import connection

from riskmodels.jobs.state import job_attempt_lost

logger = logging.getLogger(__name__)


class JobRequest(Request):
    """A ``run_job`` request: on a lost pool process, release its job before the message is requeued."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = getattr(exc_info.exception, "exc", exc_info.exception)  # billiard wraps it with its traceback
        job_id = (self.kwargs or {}).get("job_id")
        if isinstance(exc, WorkerLostError) and job_id is not None and self.worker_pid:
            try:
                outcome = job_attempt_lost(
                    job_id=job_id, worker_pid=self.worker_pid, reason=f"the worker process died: {exc}",
                    redelivered=bool(self.task.acks_late and self.task.reject_on_worker_lost))
                logger.warning("job %s: worker process %s was lost (%s); the job was %s", job_id, self.worker_pid,
                               exc, outcome or "not held by it")
            except Exception:  # noqa: BLE001 - the lease and the reaper still recover the job; the requeue must go on
                logger.exception("job %s: could not release it after its worker process was lost", job_id)
            finally:
                # The main process forks the replacement pool process: it must not inherit a connection.
                connection.close()
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

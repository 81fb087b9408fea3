"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

logger = logging.getLogger("governance.worker")

app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(**_: object) -> None:
    """Create the filesystem broker's folders, which kombu expects to exist (producer and worker)."""
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = app.conf.broker_transport_options.get(key)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)


@worker_process_init.connect
def _budget_threads(**_: object) -> None:
    """Cap BLAS/OpenMP threads in each pool process at the budget computed in settings."""
    from django.conf import settings
    from threadpoolctl import threadpool_limits

    global _thread_limits
    _thread_limits = threadpool_limits(limits=settings.WORKER_THREADS)
    _use_the_system_allocator_for_arrow()


def _use_the_system_allocator_for_arrow() -> None:
    """Allocate Arrow buffers with the system allocator in worker processes.

    A task reads a row group, frees it and reads the next. Arrow's default pool (mimalloc or
    jemalloc) keeps freed pages for reuse, so a worker's resident set follows the largest
    burst of recent reads; glibc's malloc hands large blocks back when they are freed
    (bench/shap_memory.py measures it). No task here allocates small Arrow buffers in bulk,
    where the pools are faster.
    """
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


_thread_limits: object = None  # kept referenced for the life of the pool process

_STATUS = Path("/proc/self/status")
_task_start_rss_kb: dict[str, int] = {}


def _status_kb(field: str) -> int | None:
    try:
        status = _STATUS.read_text()
    except OSError:  # not Linux: no memory figures
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


@task_prerun.connect
def _reset_peak_memory(task_id: str = "", **_: object) -> None:
    """Start measuring this task's peak resident set (Linux: reset VmHWM to the current VmRSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed: no memory figures
        return
    rss = _status_kb("VmRSS")
    if rss is not None:
        _task_start_rss_kb[task_id] = rss


@task_postrun.connect
def _log_peak_memory(task_id: str = "", task: object = None, **_: object) -> None:
    """Log each task's peak resident set and its growth over the task's start (to size workers by)."""
    start = _task_start_rss_kb.pop(task_id, None)
    peak = _status_kb("VmHWM")
    if start is not None and peak is not None:
        logger.info("task %s[%s] peak resident set %.0f MB, %+.0f MB over its start",
                    getattr(task, "name", "?"), task_id, peak / 1024, (peak - start) / 1024)

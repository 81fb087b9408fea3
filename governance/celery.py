"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

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
    jemalloc) keeps freed pages for reuse, so a worker's resident set followed the largest
    burst of recent reads (the plots task of a million-row report held 80 MB where it needs
    32 MB); glibc's malloc hands large blocks back when they are freed. Measured in
    bench/shap_memory.py; no task here allocates small Arrow buffers in bulk, where the
    pools are faster.
    """
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())

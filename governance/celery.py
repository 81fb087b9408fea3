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


_thread_limits: object = None  # kept referenced for the life of the pool process

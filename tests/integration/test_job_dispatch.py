"""A job's task is sent once its transaction commits: never for a rolled-back job, exactly once for a committed one.

Counted twice on the configured broker (no worker running): by Celery's ``after_task_publish``
signal in this process and by the messages waiting in the queue.
"""

from __future__ import annotations

import pytest
from celery.signals import after_task_publish
from django.db import transaction
from kombu.exceptions import ChannelError

from governance.celery import app
from riskmodels.jobs.dispatch import RUN_JOB
from riskmodels.models import Job
from riskmodels.services.training import training_job_create
from tests.conftest import register_demo_dataset, register_model

pytestmark = pytest.mark.integration


class RolledBack(Exception):
    """Raised to roll the test's transaction back."""


def _waiting() -> int:
    with app.connection_for_write() as connection:
        try:
            return connection.default_channel.queue_declare(queue=app.conf.task_default_queue,
                                                            passive=True).message_count
        except ChannelError:  # Redis knows no empty queue
            return 0


def test_a_rolled_back_job_sends_no_task_and_a_committed_one_sends_exactly_one(developer, transactional_db):  # noqa: ANN001
    dataset, model = register_demo_dataset(developer), register_model(developer)
    app.control.purge()
    sent: list[tuple[str, dict]] = []

    def count(sender: str = "", headers: dict | None = None, body: tuple = (), **_: object) -> None:
        sent.append((sender, body[1]))

    after_task_publish.connect(count, weak=False)
    try:
        with pytest.raises(RolledBack), transaction.atomic():
            training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                                request={"algorithm": "logistic_regression"})
            raise RolledBack()
        assert Job.objects.count() == 0
        assert sent == [] and _waiting() == 0

        with transaction.atomic():
            job = training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                                      request={"algorithm": "logistic_regression"})
            assert sent == []  # not before the commit: a worker could not see the row yet
        assert sent == [(RUN_JOB, {"job_id": job.pk})]
        assert _waiting() == 1
    finally:
        after_task_publish.disconnect(count)
        app.control.purge()

"""Locking a registered model (to number a version, schedule a review) against writers that merely reference it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from governance.audit import audit_record, audit_verify
from riskmodels.models import Job, JobKind
from riskmodels.services.registry import registered_model_lock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row and advisory locks: PostgreSQL only "
                    "(SQLite's IMMEDIATE transactions serialise all writers)")
def test_a_model_locked_for_a_new_version_never_deadlocks_with_a_job_that_audits_then_references_it(
        developer, german_credit_version, retail_model):  # noqa: ANN001
    # The interleaving the load run hit: an evaluation's finishing transaction holds the audit
    # chain and then queues a job for the model (a KEY SHARE lock on its row), while a
    # training's transaction locked that row to number its version and waits for the chain.
    chain_held, locking = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def evaluation() -> None:
        try:
            with transaction.atomic():
                audit_record(actor=None, actor_label="system:worker", action="evaluation.created", target=retail_model)
                chain_held.set()
                locking.wait(10)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_sleep(0.5)")  # let the training take whatever it can
                Job.objects.create(kind=JobKind.VALIDATE, registered_model=retail_model,
                                   dataset_version=german_credit_version, requested_by_username="system", params={})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def training() -> None:
        try:
            chain_held.wait(10)
            locking.set()
            with transaction.atomic():
                model = registered_model_lock(id=retail_model.pk)
                audit_record(actor=None, actor_label="system:worker", action="model_version.created", target=model)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluation), threading.Thread(target=training)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors  # without the chain-first order: "deadlock detected" in one of them
    assert Job.objects.filter(kind=JobKind.VALIDATE).count() == 1
    assert audit_verify().ok

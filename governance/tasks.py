"""Celery tasks of the compliance domain: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from governance.audit import audit_checkpoint, correlation_id


@shared_task(name="governance.audit_checkpoint", acks_late=True, ignore_result=True)
def audit_checkpoint_task(*, request_id: str = "") -> int:
    """Verify the audit chain in the worker and append a checkpoint event; return its sequence number."""
    with correlation_id(request_id or f"task-{audit_checkpoint_task.request.id}"):
        return audit_checkpoint().seq

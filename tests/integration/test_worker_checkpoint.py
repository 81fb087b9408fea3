"""A real worker process runs audit checkpoints requested through the API."""

from __future__ import annotations

import pytest

from governance.audit import audit_verify
from governance.models import AuditEvent
from tests.conftest import client_for
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def test_a_checkpoint_requested_through_the_api_is_written_by_the_worker(celery_worker_process, validator):  # noqa: ANN001
    client = client_for(validator)
    before = AuditEvent.objects.count()
    response = client.post("/api/v1/audit-events/checkpoints/", HTTP_X_REQUEST_ID="cp-1")
    assert response.status_code == 202
    event = wait_for(lambda: AuditEvent.objects.filter(action="audit.checkpoint").first(),
                     worker=celery_worker_process)
    assert event.after["ok"] is True
    assert event.after["verified_events"] == before
    assert event.request_id == "cp-1"
    assert event.actor_username == "system:worker"
    assert audit_verify().ok

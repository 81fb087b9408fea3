"""Read operations of the compliance domain."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.models import AuditEvent
from governance.policy import Capability, require


def audit_event_list_for_user(*, user: Any) -> QuerySet[AuditEvent]:
    """Return the audit trail, for validators, compliance officers and auditors."""
    require(user, Capability.AUDIT_READ)
    return AuditEvent.objects.order_by("seq")

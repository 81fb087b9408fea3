"""Read operations of the compliance domain."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.exceptions import PermissionDenied
from governance.models import AuditEvent
from governance.roles import CAN_READ_AUDIT_LOG, user_has_any_role


def audit_event_list_for_user(*, user: Any) -> QuerySet[AuditEvent]:
    """Return the audit trail, for validators, compliance officers and auditors."""
    if not user_has_any_role(user, CAN_READ_AUDIT_LOG):
        raise PermissionDenied("only validators, compliance officers and auditors can read the audit log")
    return AuditEvent.objects.order_by("seq")

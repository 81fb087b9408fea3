"""DRF permission classes that ask the policy (governance/policy.py): one class per capability."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from governance.policy import Capability, refusal


def capability_permission(capability: Capability) -> type[BasePermission]:
    """Return a DRF permission class admitting the users the policy allows ``capability``.

    A refused user gets the policy's reason as the 403 message. Anonymous requests still get
    401, because DRF reports a missing authentication before a refused permission.
    """

    class CapabilityPermission(BasePermission):
        required = capability

        def has_permission(self, request: Any, view: Any) -> bool:
            reason = refusal(request.user, self.required)
            if reason is not None:
                self.message = reason
            return reason is None

    return CapabilityPermission


# Every endpoint admits only users with a role; what each operation needs beyond that,
# its service or selector checks (so the admin and management commands get the same answer).
CanReadDomain = capability_permission(Capability.DOMAIN_READ)
CanReadAuditLog = capability_permission(Capability.AUDIT_READ)
CanCheckpointAuditLog = capability_permission(Capability.AUDIT_CHECKPOINT)

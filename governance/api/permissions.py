"""DRF permission classes that ask the policy (governance/policy.py): one class per capability."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from governance.policy import Capability, refusal


def capability_permission(*capabilities: Capability, writes_only: bool = False) -> type[BasePermission]:
    """Return a DRF permission class admitting the users the policy allows any of ``capabilities``.

    A refused user gets the policy's reason (the first capability's) as the 403 message. Anonymous
    requests still get 401, because DRF reports a missing authentication before a refused
    permission. ``writes_only`` lets reads (GET, HEAD, OPTIONS) through, for a view that both lists
    and creates. Checked before the view looks anything up, so a role that may not act at all is
    refused (403) before it could learn whether the object exists; object rules stay with the service.
    """

    class CapabilityPermission(BasePermission):
        required = capabilities[0]
        alternatives = capabilities

        def has_permission(self, request: Any, view: Any) -> bool:
            if writes_only and request.method in SAFE_METHODS:
                return True
            reasons = [refusal(request.user, capability) for capability in self.alternatives]
            if all(reasons):
                self.message = reasons[0]
                return False
            return True

    return CapabilityPermission


# Every endpoint admits only users with a role; what each operation needs beyond that,
# its service or selector checks (so the admin and management commands get the same answer).
CanReadDomain = capability_permission(Capability.DOMAIN_READ)
CanReadAuditLog = capability_permission(Capability.AUDIT_READ)
CanCheckpointAuditLog = capability_permission(Capability.AUDIT_CHECKPOINT)

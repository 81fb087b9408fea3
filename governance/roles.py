"""The five roles of the service, and which of them a user holds.

Roles are Django groups, so the admin's permission system and the API agree. What each
role may do is in ``governance/policy.py``. A user with no role (an "outsider") can
authenticate but is refused everywhere.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    DEVELOPER = "developer", "Model developer"
    VALIDATOR = "validator", "Model validator"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    AUDITOR = "auditor", "Auditor"
    UNDERWRITER = "underwriter", "Underwriter"


def user_roles(user: Any) -> frozenset[Role]:
    """Return the roles a user holds (empty for anonymous or role-less users)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_governance_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        user._governance_roles = cached
    return cached

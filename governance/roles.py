"""The four roles of the service and what each may do.

Roles are Django groups, so the admin's permission system and the API agree. A user
with no role (an "outsider") can authenticate but is refused everywhere.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    DEVELOPER = "developer", "Model developer"
    VALIDATOR = "validator", "Model validator"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    AUDITOR = "auditor", "Auditor"


# Django model permissions each role's group carries (app_label.codename), for the admin.
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.DEVELOPER: (
        "riskmodels.view_dataset",
        "riskmodels.view_datasetversion",
        "riskmodels.view_registeredmodel",
        "riskmodels.view_modelversion",
        "riskmodels.view_evaluation",
        "riskmodels.view_job",
        "riskmodels.view_explanationreport",
        "riskmodels.add_datasetversion",
    ),
    Role.VALIDATOR: (
        "riskmodels.view_dataset",
        "riskmodels.view_datasetversion",
        "riskmodels.view_registeredmodel",
        "riskmodels.view_modelversion",
        "riskmodels.view_evaluation",
        "riskmodels.view_job",
        "riskmodels.view_explanationreport",
        "governance.view_auditevent",
    ),
    Role.COMPLIANCE_OFFICER: (
        "riskmodels.view_reasontext",
        "riskmodels.add_reasontext",
        "riskmodels.change_reasontext",
        "riskmodels.delete_reasontext",
        "riskmodels.view_dataset",
        "riskmodels.view_datasetversion",
        "riskmodels.view_registeredmodel",
        "riskmodels.view_modelversion",
        "riskmodels.view_evaluation",
        "riskmodels.view_job",
        "riskmodels.view_explanationreport",
        "governance.view_auditevent",
    ),
    Role.AUDITOR: (
        "riskmodels.view_dataset",
        "riskmodels.view_datasetversion",
        "riskmodels.view_registeredmodel",
        "riskmodels.view_modelversion",
        "riskmodels.view_evaluation",
        "riskmodels.view_job",
        "riskmodels.view_explanationreport",
        "governance.view_auditevent",
    ),
}

# What the API allows each role to do, by capability.
CAN_UPLOAD_DATASETS = frozenset({Role.DEVELOPER})
CAN_READ_AUDIT_LOG = frozenset({Role.VALIDATOR, Role.COMPLIANCE_OFFICER, Role.AUDITOR})
ALL_ROLES = frozenset(Role)


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


def user_has_any_role(user: Any, roles: frozenset[Role]) -> bool:
    """Return whether the user holds at least one of ``roles``."""
    return bool(user_roles(user) & roles)

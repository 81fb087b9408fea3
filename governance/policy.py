"""Who may do what: every capability of every role, and the rules that depend on the object.

This is the one place that answers "may this user do this (to that)?". Services call
``require`` before they change anything; API views, admin pages and exports call ``allowed``
or ``require`` through the services and selectors, never a role test of their own
(``tests/test_architecture.py`` keeps role tests out of every other module).

A capability is granted to roles (``GRANTS``, data). Some capabilities also carry object
rules (``OBJECT_RULES``): each is a named check on the object acted on, such as separation
of duties, that refuses with its own reason even when the role allows the capability. This
module imports nothing of the domain apps: object rules read plain attributes of the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from governance.exceptions import PermissionDenied
from governance.roles import Role, user_roles


class Capability(StrEnum):
    """Everything a user can be allowed to do, named ``<object>.<verb>``."""

    DOMAIN_READ = "domain.read"  # datasets, models, versions, jobs, evaluations, SHAP reports
    DATASET_UPLOAD = "dataset.upload"
    MODEL_REGISTER = "model.register"
    MODEL_TRAIN = "model.train"
    MODEL_EVALUATE = "model.evaluate"
    MODEL_REPRODUCE = "model.reproduce"
    MODEL_EXPLAIN = "model.explain"
    JOB_CANCEL = "job.cancel"  # one's own jobs (object rule below)
    JOB_CANCEL_ANY = "job.cancel_any"
    REASON_TEXT_EDIT = "reason_text.edit"
    AUDIT_READ = "audit.read"  # read and verify the chain, request a checkpoint


D, V, C, A = Role.DEVELOPER, Role.VALIDATOR, Role.COMPLIANCE_OFFICER, Role.AUDITOR

GRANTS: dict[Capability, frozenset[Role]] = {
    Capability.DOMAIN_READ: frozenset({D, V, C, A}),
    Capability.DATASET_UPLOAD: frozenset({D}),
    Capability.MODEL_REGISTER: frozenset({D}),
    Capability.MODEL_TRAIN: frozenset({D}),
    Capability.MODEL_EVALUATE: frozenset({D, V}),
    Capability.MODEL_REPRODUCE: frozenset({D, V, C}),
    Capability.MODEL_EXPLAIN: frozenset({D, V, C}),
    Capability.JOB_CANCEL: frozenset({D, V, C}),
    Capability.JOB_CANCEL_ANY: frozenset({C}),
    Capability.REASON_TEXT_EDIT: frozenset({C}),
    Capability.AUDIT_READ: frozenset({V, C, A}),
}

# What a refusal says, by capability: it names who may, so the user knows whom to ask.
REFUSALS: dict[Capability, str] = {
    Capability.DOMAIN_READ: "your account has no role in this service; ask an administrator for one",
    Capability.DATASET_UPLOAD: "only model developers can register datasets",
    Capability.MODEL_REGISTER: "only model developers can register models",
    Capability.MODEL_TRAIN: "only model developers can train models",
    Capability.MODEL_EVALUATE: "only developers and validators can request evaluations",
    Capability.MODEL_REPRODUCE: "only developers, validators and compliance officers can run reproduction checks",
    Capability.MODEL_EXPLAIN: "only developers, validators and compliance officers can request explanations",
    Capability.JOB_CANCEL: "only the person who requested a job (or a compliance officer) can cancel it",
    Capability.JOB_CANCEL_ANY: "only compliance officers can cancel other people's jobs",
    Capability.REASON_TEXT_EDIT: "only compliance officers edit reason texts",
    Capability.AUDIT_READ: "only validators, compliance officers and auditors can read the audit log",
}


@dataclass(frozen=True)
class ObjectRule:
    """A check on the object acted on: ``refuses(user, obj)`` returns a reason, or None to allow."""

    name: str
    refuses: Callable[[Any, Any], str | None]


def _own_job_unless_cancel_any(user: Any, job: Any) -> str | None:
    # Someone else's job needs the wider capability, so the refusal names who holds that one.
    if job.requested_by_id == user.pk:
        return None
    return refusal(user, Capability.JOB_CANCEL_ANY)


OBJECT_RULES: dict[Capability, tuple[ObjectRule, ...]] = {
    Capability.JOB_CANCEL: (ObjectRule("own_job_or_cancel_any", _own_job_unless_cancel_any),),
}

# The Django model permissions (app_label.codename) that each capability needs in the admin;
# a role's group carries the union over its capabilities (governance.accounts.role_groups_sync).
ADMIN_PERMISSIONS: dict[Capability, tuple[str, ...]] = {
    Capability.DOMAIN_READ: tuple(f"riskmodels.view_{model}" for model in (
        "dataset", "datasetversion", "registeredmodel", "modelversion", "evaluation", "job", "explanationreport")),
    Capability.DATASET_UPLOAD: ("riskmodels.add_datasetversion",),
    Capability.REASON_TEXT_EDIT: tuple(f"riskmodels.{verb}_reasontext" for verb in ("view", "add", "change", "delete")),
    Capability.AUDIT_READ: ("governance.view_auditevent",),
}


def capabilities_of(role: Role) -> frozenset[Capability]:
    """Return the capabilities a role grants."""
    return frozenset(cap for cap, roles in GRANTS.items() if role in roles)


def admin_permissions_of(role: Role) -> tuple[str, ...]:
    """Return the admin model permissions of a role's group, in a stable order."""
    wanted = {perm for cap in capabilities_of(role) for perm in ADMIN_PERMISSIONS.get(cap, ())}
    return tuple(sorted(wanted))


@dataclass(frozen=True)
class Access:
    """What a user holds: their roles and every capability those roles grant."""

    roles: frozenset[Role]
    capabilities: frozenset[Capability]


def access_of(user: Any) -> Access:
    """Return the roles and capabilities of ``user`` (both empty for outsiders and anonymous users)."""
    roles = user_roles(user)
    return Access(roles=roles, capabilities=frozenset(cap for cap, granted in GRANTS.items() if roles & granted))


def refusal(user: Any, capability: Capability, obj: Any = None) -> str | None:
    """Return why ``user`` may not use ``capability`` (on ``obj``), or None when they may."""
    if not user_roles(user) & GRANTS[capability]:
        return REFUSALS[capability]
    if obj is not None:
        for rule in OBJECT_RULES.get(capability, ()):
            reason = rule.refuses(user, obj)
            if reason is not None:
                return reason
    return None


def allowed(user: Any, capability: Capability, obj: Any = None) -> bool:
    """Return whether ``user`` may use ``capability`` (on ``obj``)."""
    return refusal(user, capability, obj) is None


def require(user: Any, capability: Capability, obj: Any = None) -> None:
    """Raise PermissionDenied (403, with the reason) unless ``user`` may use ``capability`` (on ``obj``)."""
    reason = refusal(user, capability, obj)
    if reason is not None:
        raise PermissionDenied(reason)

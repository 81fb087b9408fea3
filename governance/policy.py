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
    PROTECTED_CATALOGUE_EDIT = "protected_catalogue.edit"  # the characteristics uploads are checked against
    AUDIT_READ = "audit.read"  # read and verify the chain, request a checkpoint
    MODEL_INVENTORY_EDIT = "model.inventory_edit"  # risk tier, owner, review cadence, performance floors
    VERSION_SUBMIT = "version.submit"
    VERSION_VALIDATE = "version.validate"  # take, conclude, return, reject; raise and close findings; reviews
    VERSION_APPROVE = "version.approve"  # approve, or reject at approval
    VERSION_PROMOTE = "version.promote"
    VERSION_RETIRE = "version.retire"
    FINDING_REMEDIATE = "finding.remediate"
    MODEL_SCORE = "model.score"  # score applicants with a model's champion, one by one or a dataset in batch
    DECISION_READ = "decision.read"  # the decision ledger, notices, override rates
    DECISION_OVERRIDE = "decision.override"
    OUTCOME_RECORD = "outcome.record"  # post what became of decided applicants (defaulted or not, when)
    ALERT_ACKNOWLEDGE = "alert.acknowledge"  # a monitoring alert: seen, and what is being done about it
    MONITORING_RUN = "monitoring.run"  # request a stability or performance run of a champion
    LEGAL_HOLD_MANAGE = "legal_hold.manage"  # place and lift legal holds, which suspend the retention purge
    DOCPACK_GENERATE = "docpack.generate"  # generate a version's documentation pack (reading one is domain.read)


D, V, C, A, U = Role.DEVELOPER, Role.VALIDATOR, Role.COMPLIANCE_OFFICER, Role.AUDITOR, Role.UNDERWRITER

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
    Capability.PROTECTED_CATALOGUE_EDIT: frozenset({C}),
    Capability.AUDIT_READ: frozenset({V, C, A}),
    Capability.MODEL_INVENTORY_EDIT: frozenset({C}),
    Capability.VERSION_SUBMIT: frozenset({D}),
    Capability.VERSION_VALIDATE: frozenset({V}),
    Capability.VERSION_APPROVE: frozenset({C}),
    Capability.VERSION_PROMOTE: frozenset({C}),
    Capability.VERSION_RETIRE: frozenset({C}),
    Capability.FINDING_REMEDIATE: frozenset({D}),
    Capability.MODEL_SCORE: frozenset({D, U}),
    Capability.DECISION_READ: frozenset({D, U, V, C, A}),
    Capability.DECISION_OVERRIDE: frozenset({U}),
    Capability.OUTCOME_RECORD: frozenset({D}),
    # Validators too: ongoing monitoring is part of independent validation (SR 11-7), and a drift
    # alert is often theirs to judge. Never developers: acknowledging an alert on one's own model is self-review.
    Capability.ALERT_ACKNOWLEDGE: frozenset({V, C}),
    Capability.MONITORING_RUN: frozenset({D, V, C}),
    Capability.LEGAL_HOLD_MANAGE: frozenset({C}),
    # Not auditors: generating a pack is a recorded change (a job, files, an audit event), and auditors stay read-only.
    Capability.DOCPACK_GENERATE: frozenset({D, V, C}),
}

# What a refusal says, by capability: it names who may, so the user knows whom to ask.
REFUSALS: dict[Capability, str] = {
    Capability.DOMAIN_READ: "only developers, validators, compliance officers and auditors read datasets, models and "
                            "jobs; an account with no role must ask an administrator for one",
    Capability.DATASET_UPLOAD: "only model developers can register datasets",
    Capability.MODEL_REGISTER: "only model developers can register models",
    Capability.MODEL_TRAIN: "only model developers can train models",
    Capability.MODEL_EVALUATE: "only developers and validators can request evaluations",
    Capability.MODEL_REPRODUCE: "only developers, validators and compliance officers can run reproduction checks",
    Capability.MODEL_EXPLAIN: "only developers, validators and compliance officers can request explanations",
    Capability.JOB_CANCEL: "only the person who requested a job (or a compliance officer) can cancel it",
    Capability.JOB_CANCEL_ANY: "only compliance officers can cancel other people's jobs",
    Capability.REASON_TEXT_EDIT: "only compliance officers edit reason texts",
    Capability.PROTECTED_CATALOGUE_EDIT: "only compliance officers edit the catalogue of protected characteristics",
    Capability.AUDIT_READ: "only validators, compliance officers and auditors can read the audit log",
    Capability.MODEL_INVENTORY_EDIT: "only compliance officers set a model's risk tier, owner, review cadence and floors",
    Capability.VERSION_SUBMIT: "only model developers submit versions for validation",
    Capability.VERSION_VALIDATE: "only validators validate versions and raise or close findings",
    Capability.VERSION_APPROVE: "only compliance officers approve versions",
    Capability.VERSION_PROMOTE: "only compliance officers promote a version to champion",
    Capability.VERSION_RETIRE: "only compliance officers retire versions",
    Capability.FINDING_REMEDIATE: "only model developers answer findings with a remediation",
    Capability.MODEL_SCORE: "only underwriters and model developers score applicants",
    Capability.DECISION_READ: "your account has no role that may read the decision ledger",
    Capability.DECISION_OVERRIDE: "only underwriters override decisions",
    Capability.OUTCOME_RECORD: "only model developers record the observed outcomes of decisions",
    Capability.ALERT_ACKNOWLEDGE: "only compliance officers and validators acknowledge monitoring alerts",
    Capability.MONITORING_RUN: "only developers, validators and compliance officers request monitoring runs",
    Capability.LEGAL_HOLD_MANAGE: "only compliance officers place and lift legal holds",
    Capability.DOCPACK_GENERATE: "only developers, validators and compliance officers generate documentation packs; "
                                 "auditors download them",
}
SEPARATION_OF_DUTIES = "separation_of_duties"


@dataclass(frozen=True)
class ObjectRule:
    """A check on the object acted on: ``refuses(user, obj)`` returns a reason, or None to allow."""

    name: str
    refuses: Callable[[Any, Any], str | None]
    code: str = "permission_denied"


def _own_job_unless_cancel_any(user: Any, job: Any) -> str | None:
    # Someone else's job needs the wider capability, so the refusal names who holds that one.
    if job.requested_by_id == user.pk:
        return None
    return refusal(user, Capability.JOB_CANCEL_ANY)


# Separation of duties. The object is a version's recorded actors (user ids from its decision
# records and training job: ``built_by``, ``submitted_by``, ``validated_by``, ``approved_by``
# in the current approval round), so a later change of role never clears anyone's earlier work.
def _not_builder(verb: str) -> Callable[[Any, Any], str | None]:
    def rule(user: Any, actors: Any) -> str | None:
        if user.pk in actors.built_by:
            return f"separation of duties: whoever trained a version cannot {verb} it"
        if user.pk in actors.submitted_by:
            return f"separation of duties: whoever submitted a version cannot {verb} it"
        return None
    return rule


def _not_its_validator(user: Any, actors: Any) -> str | None:
    if user.pk in actors.validated_by:
        return "separation of duties: the validator of a version cannot approve it"
    return None


def _a_distinct_approver(user: Any, actors: Any) -> str | None:
    if user.pk in actors.approved_by:
        return "separation of duties: a high-tier model needs two distinct approvers; you have approved it already"
    return None


def _the_versions_developer_or_owner(user: Any, subject: Any) -> str | None:
    if user.pk in subject.developers or user.pk == subject.owner_id:
        return None
    return "a finding is answered by the developers of its version (who trained or submitted it) or its owner"


SOD = SEPARATION_OF_DUTIES
OBJECT_RULES: dict[Capability, tuple[ObjectRule, ...]] = {
    Capability.JOB_CANCEL: (ObjectRule("own_job_or_cancel_any", _own_job_unless_cancel_any),),
    Capability.VERSION_VALIDATE: (ObjectRule("validator_did_not_build_or_submit", _not_builder("validate"), SOD),),
    Capability.VERSION_APPROVE: (ObjectRule("approver_did_not_build_or_submit", _not_builder("approve"), SOD),
                                 ObjectRule("approver_did_not_validate", _not_its_validator, SOD),
                                 ObjectRule("approvers_are_distinct", _a_distinct_approver, SOD)),
    Capability.FINDING_REMEDIATE: (ObjectRule("remediator_is_the_versions_developer_or_owner",
                                              _the_versions_developer_or_owner),),
}

# The Django model permissions (app_label.codename) that each capability needs in the admin;
# a role's group carries the union over its capabilities (governance.accounts.role_groups_sync).
ADMIN_PERMISSIONS: dict[Capability, tuple[str, ...]] = {
    Capability.DOMAIN_READ: tuple(f"riskmodels.view_{model}" for model in (
        "dataset", "datasetversion", "registeredmodel", "modelversion", "evaluation", "job", "explanationreport",
        "decision", "finding", "periodicreview", "alert")),
    Capability.DATASET_UPLOAD: ("riskmodels.add_datasetversion",),
    Capability.REASON_TEXT_EDIT: tuple(f"riskmodels.{verb}_reasontext" for verb in ("view", "add", "change", "delete")),
    Capability.AUDIT_READ: ("governance.view_auditevent",),
    Capability.PROTECTED_CATALOGUE_EDIT: tuple(f"riskmodels.{verb}_protectedcharacteristic"
                                               for verb in ("view", "add", "change", "delete")),
    Capability.DECISION_READ: ("riskmodels.view_creditdecision", "riskmodels.view_decisionoverride"),
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


def _refused(user: Any, capability: Capability, obj: Any) -> tuple[str, str] | None:
    """Return (reason, error code) of the first rule that refuses, or None."""
    if not user_roles(user) & GRANTS[capability]:
        return REFUSALS[capability], "permission_denied"
    if obj is not None:
        for rule in OBJECT_RULES.get(capability, ()):
            reason = rule.refuses(user, obj)
            if reason is not None:
                return reason, rule.code
    return None


def refusal(user: Any, capability: Capability, obj: Any = None) -> str | None:
    """Return why ``user`` may not use ``capability`` (on ``obj``), or None when they may."""
    refused = _refused(user, capability, obj)
    return refused[0] if refused else None


def allowed(user: Any, capability: Capability, obj: Any = None) -> bool:
    """Return whether ``user`` may use ``capability`` (on ``obj``)."""
    return refusal(user, capability, obj) is None


def require(user: Any, capability: Capability, obj: Any = None) -> None:
    """Raise PermissionDenied (403, with the reason and the rule's code) unless ``user`` may use ``capability``."""
    refused = _refused(user, capability, obj)
    if refused is not None:
        raise PermissionDenied(refused[0], code=refused[1])

"""The findings register: a validator raises, the developer remediates, a validator closes with evidence."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import Finding, ModelVersion, VersionStatus
from riskmodels.services.lifecycle import version_actors

# Findings are raised while a version is being validated, or on a champion at its periodic review.
RAISABLE = (VersionStatus.SUBMITTED, VersionStatus.IN_VALIDATION, VersionStatus.VALIDATED, VersionStatus.APPROVED,
            VersionStatus.CHAMPION)


def _text(value: Any, field: str, limit: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{field} is required", code="invalid", details={"field": field})
    if limit is not None and len(value.strip()) > limit:
        raise ValidationFailed(f"{field} is at most {limit} characters", code="invalid", details={"field": field})
    return value.strip()


def _choice(value: Any, choices: type, field: str) -> str:
    if value not in choices.values:
        raise ValidationFailed(f"{field} must be one of {', '.join(choices.values)}; got {value!r}",
                               code=f"invalid_{field}", details={"field": field})
    return value


def _snapshot(finding: Finding) -> dict[str, Any]:
    return {"model_version": finding.model_version_id, "title": finding.title, "category": finding.category,
            "severity": finding.severity, "status": finding.status, "due_date": finding.due_date,
            "owner": finding.owner.username if finding.owner_id else None}


def finding_raise(*, actor: Any, version: ModelVersion, title: str, description: str, category: str, severity: str,
                  due_date: dt.date, owner: Any = None) -> Finding:
    """Raise a finding on a version (a validator independent of it); audited."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=version))
    title, description = _text(title, "title", 200), _text(description, "description")
    category = _choice(category, Finding.Category, "category")
    severity = _choice(severity, Finding.Severity, "severity")
    if not isinstance(due_date, dt.date):
        raise ValidationFailed("due_date must be a date (YYYY-MM-DD)", code="invalid", details={"field": "due_date"})
    with transaction.atomic():
        current = ModelVersion.objects.values_list("status", flat=True).get(pk=version.pk)
        if current not in RAISABLE:
            raise Conflict(f"findings are raised on versions in validation or in use; {version} is {current}",
                           code=f"version_{current}", details={"state": current})
        finding = Finding.objects.create(model_version=version, title=title, description=description,
                                         category=category, severity=severity, due_date=due_date, owner=owner,
                                         raised_by=actor, raised_by_username=actor.username)
        audit_record(actor=actor, action="finding.raised", target=finding, after=_snapshot(finding))
    return finding


def _advance(*, actor: Any, finding: Finding, allowed: tuple[str, ...], to: str, action: str,
             **fields: Any) -> Finding:
    """Move a finding from one of ``allowed`` to ``to`` by a conditional UPDATE, with its audit event."""
    with transaction.atomic():
        current = Finding.objects.get(pk=finding.pk)
        if current.status not in allowed:
            raise Conflict(f"finding #{finding.pk} is {current.status}; it cannot be {action} now",
                           code=f"finding_{current.status}", details={"state": current.status})
        if not Finding.objects.filter(pk=finding.pk, status=current.status, revision=current.revision).update(
                status=to, revision=F("revision") + 1, **fields):
            raise Conflict(f"finding #{finding.pk} was changed by someone else at the same time",
                           code="concurrent_change")
        updated = Finding.objects.get(pk=finding.pk)
        audit_record(actor=actor, action=f"finding.{action}", target=updated, before={"status": current.status},
                     after={**_snapshot(updated), **{k: v for k, v in fields.items() if isinstance(v, str)}})
    return updated


@dataclass(frozen=True)
class RemediationSubject:
    """Who may answer a finding: the version's developers (who trained or submitted it) and the finding's owner."""

    developers: frozenset[int]
    owner_id: int | None


def finding_accept(*, actor: Any, finding: Finding, severity: str | None = None, title: str | None = None,
                   due_date: dt.date | None = None, owner: Any = None) -> Finding:
    """Accept a finding the validation battery proposed (a validator independent of the version), edited or not."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=finding.model_version))
    edits: dict[str, Any] = {"raised_by": actor, "raised_by_username": actor.username}
    if severity is not None:
        edits["severity"] = _choice(severity, Finding.Severity, "severity")
    if title is not None:
        edits["title"] = _text(title, "title", 200)
    if due_date is not None:
        if not isinstance(due_date, dt.date):
            raise ValidationFailed("due_date must be a date (YYYY-MM-DD)", code="invalid", details={"field": "due_date"})
        edits["due_date"] = due_date
    if owner is not None:
        edits["owner"] = owner
    return _advance(actor=actor, finding=finding, allowed=(Finding.Status.PROPOSED,), to=Finding.Status.OPEN,
                    action="accepted", **edits)


def finding_dismiss(*, actor: Any, finding: Finding, reason: str) -> Finding:
    """Dismiss a finding the battery proposed, with the reason (recorded): the validator judged it not an issue."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=finding.model_version))
    return _advance(actor=actor, finding=finding, allowed=(Finding.Status.PROPOSED,), to=Finding.Status.DISMISSED,
                    action="dismissed", dismissal_reason=_text(reason, "reason"))


def finding_remediate(*, actor: Any, finding: Finding, remediation: str) -> Finding:
    """Answer an open finding with a remediation (a developer); only a validator can then close it."""
    actors = version_actors(version=finding.model_version)
    require(actor, Capability.FINDING_REMEDIATE, RemediationSubject(actors.built_by | actors.submitted_by,
                                                                     finding.owner_id))
    return _advance(actor=actor, finding=finding, allowed=(Finding.Status.OPEN,), to=Finding.Status.REMEDIATED,
                    action="remediated", remediation=_text(remediation, "remediation"),
                    remediated_by_username=actor.username)


def finding_close(*, actor: Any, finding: Finding, evidence: str) -> Finding:
    """Close a finding with the evidence that it is resolved (a validator independent of the version)."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=finding.model_version))
    return _advance(actor=actor, finding=finding, allowed=(Finding.Status.OPEN, Finding.Status.REMEDIATED),
                    to=Finding.Status.CLOSED, action="closed", closing_evidence=_text(evidence, "evidence"),
                    closed_by_username=actor.username, closed_at=timezone.now())

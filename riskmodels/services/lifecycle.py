"""The version lifecycle: one state machine, separation of duties, and a decision record for every move.

    trained ─submit→ submitted ─take→ in_validation ─validate→ validated ─approve→ approved ─promote→ champion
       ▲                                   │ return → returned ─submit→ submitted        │ reject → rejected
       └── (retrain: a new version) ───────┴ reject → rejected                           └ retire → retired

Each move is a conditional UPDATE on the version's status and status revision, so of two
concurrent moves exactly one wins; the decision record and the audit event are written in
the same transaction. Who may move a version is the policy's answer
(governance/policy.py), given the version's recorded actors.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, access_of, require
from riskmodels.ml.floors import floor_breaches
from riskmodels.models import (
    Decision,
    Evaluation,
    ExplanationReport,
    Finding,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    VersionStatus,
)
from riskmodels.services.monitoring_reference import monitoring_reference_queue
from riskmodels.services.registry import registered_model_lock

S = VersionStatus
A = Decision.Action
CONCLUSIONS = ("fit_for_purpose", "fit_with_conditions")


@dataclass(frozen=True)
class VersionActors:
    """Who did what to a version, from its records (user ids): what separation of duties is checked against."""

    built_by: frozenset[int]
    submitted_by: frozenset[int]
    validated_by: frozenset[int]
    approved_by: frozenset[int]  # approvals in the current round (since the version was last validated)


def version_actors(*, version: ModelVersion) -> VersionActors:
    """Return a version's recorded actors: its trainer and the actors of its decisions."""
    decisions = list(version.decisions.order_by("created_at", "id").values_list("action", "actor_id"))
    built = {version.created_by_id, version.training_job.requested_by_id} - {None}
    round_start = max((i for i, (action, _) in enumerate(decisions) if action == A.VALIDATE), default=-1)

    def by(*actions: str, since: int = -1) -> frozenset[int]:
        return frozenset(a for i, (act, a) in enumerate(decisions) if act in actions and a is not None and i > since)

    return VersionActors(built_by=frozenset(built), submitted_by=by(A.SUBMIT),
                         validated_by=by(A.TAKE, A.VALIDATE, A.RETURN), approved_by=by(A.APPROVE, since=round_start))


def _rationale(rationale: Any) -> str:
    if not isinstance(rationale, str) or not rationale.strip():
        raise ValidationFailed("a rationale is required for every lifecycle decision", code="rationale_required",
                               details={"field": "rationale"})
    return rationale.strip()


def _wrong_state(version: ModelVersion, action: str, allowed: tuple[str, ...]) -> Conflict:
    return Conflict(f"cannot {action} {version}: it is {version.status}; {action} needs "
                    f"{' or '.join(allowed)}", code=f"version_{version.status}",
                    details={"state": version.status, "allowed_from": list(allowed)})


def _move(*, actor: Any, version: ModelVersion, action: str, allowed: tuple[str, ...], to: str, rationale: str,
          evidence: dict[str, Any] | None = None, **record: Any) -> Decision:
    """Move ``version`` to ``to`` if it is in one of ``allowed`` and nobody moved it meanwhile; record and audit it.

    Must run inside the caller's transaction. ``to`` equal to the current status records a
    decision that does not move (the first of two approvals of a high-tier model).
    """
    current = ModelVersion.objects.get(pk=version.pk)
    if current.status not in allowed:
        raise _wrong_state(current, action, allowed)
    moved = ModelVersion.objects.filter(pk=version.pk, status=current.status,
                                        status_revision=current.status_revision).update(
        status=to, status_revision=F("status_revision") + 1, status_changed_at=timezone.now())
    if not moved:
        raise Conflict(f"{version} was changed by someone else at the same time; reload it and decide again",
                       code="concurrent_transition")
    decision = Decision.objects.create(
        model_version=version, action=action, from_status=current.status, to_status=to, actor=actor,
        actor_username=actor.username, actor_roles=sorted(r.value for r in access_of(actor).roles),
        rationale=rationale, evidence=evidence or {}, **record)
    audit_record(actor=actor, action=f"model_version.{action}", target=version,
                 before={"status": current.status},
                 after={"status": to, "decision": decision.pk, "rationale": rationale, "evidence": evidence or {},
                        # The model and the version's number let the log alone say whose champion it was
                        # (riskmodels/selectors/audit_history.py reconstructs the inventory from it).
                        "registered_model_id": current.registered_model_id, "version": current.version,
                        **{k: v for k, v in record.items() if v}})
    version.status = to
    return decision


def _latest_test_evaluation(version: ModelVersion) -> Evaluation | None:
    return version.evaluations.filter(scope=Evaluation.Scope.TEST_SPLIT).order_by("-created_at").first()


def version_submit(*, actor: Any, version: ModelVersion, rationale: str, justification: str = "") -> Decision:
    """Submit a trained (or returned) version for validation, with its evidence; floor breaches are recorded.

    The latest validation battery's outcome goes with it; a failed battery needs the developer's
    written justification, recorded on the decision.
    """
    require(actor, Capability.VERSION_SUBMIT)
    rationale = _rationale(rationale)
    battery = version.validation_runs.order_by("-created_at").first()
    justification = (justification or "").strip()
    if battery is not None and battery.outcome == "fail" and not justification:
        failed = [r["name"] for r in battery.results if r["outcome"] == "fail"]
        raise Conflict(f"{version}'s validation battery failed ({', '.join(failed)}); submitting it needs your "
                       "written justification", code="battery_failed", details={"failed": failed})
    evaluation = _latest_test_evaluation(version)
    report = (version.explanations.filter(status=ExplanationReport.Status.OK, scope="test_split")
              .order_by("-created_at").first())
    missing = [name for name, found in (("a finished test-split evaluation", evaluation),
                                        ("a finished SHAP report", report)) if found is None]
    if missing:
        raise Conflict(f"{version} cannot be submitted yet: it needs {' and '.join(missing)}",
                       code="evidence_missing", details={"missing": missing})
    floors = RegisteredModel.objects.get(pk=version.registered_model_id).floors  # as set now, not as cached
    evidence = {"evaluations": [evaluation.pk], "reports": [report.pk],
                "floor_breaches": floor_breaches(evaluation.metrics, floors),
                "validation_run": battery.pk if battery else None, "battery_outcome": battery.outcome if battery else None}
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.SUBMIT, allowed=(S.TRAINED, S.RETURNED), to=S.SUBMITTED,
                     rationale=rationale, evidence=evidence,
                     policy_exception=justification if battery is not None and battery.outcome == "fail" else "")


def version_take(*, actor: Any, version: ModelVersion, rationale: str) -> Decision:
    """Take a submitted version for validation (a validator who neither trained nor submitted it)."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=version))
    rationale = _rationale(rationale)
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.TAKE, allowed=(S.SUBMITTED,), to=S.IN_VALIDATION,
                     rationale=rationale)


def _open_findings(version: ModelVersion) -> list[Finding]:
    """Return the findings a validator raised or accepted that are not closed (not the battery's drafts)."""
    return list(version.findings.filter(status__in=(Finding.Status.OPEN, Finding.Status.REMEDIATED)).order_by("id"))


def version_validate(*, actor: Any, version: ModelVersion, rationale: str, conclusion: str,
                     conditions: str = "") -> Decision:
    """Conclude a validation: fit for purpose, optionally with conditions."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=version))
    rationale = _rationale(rationale)
    if conclusion not in CONCLUSIONS:
        raise ValidationFailed(f"conclusion must be one of {', '.join(CONCLUSIONS)}; got {conclusion!r}",
                               code="invalid_conclusion", details={"field": "conclusion"})
    if conclusion == "fit_with_conditions" and not (conditions or "").strip():
        raise ValidationFailed("a conclusion with conditions must state them", code="conditions_required",
                               details={"field": "conditions"})
    evidence = {"findings": [f.pk for f in version.findings.order_by("id")]}
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.VALIDATE, allowed=(S.IN_VALIDATION,), to=S.VALIDATED,
                     rationale=rationale, evidence=evidence, conclusion=conclusion,
                     conditions=(conditions or "").strip())


def version_return(*, actor: Any, version: ModelVersion, rationale: str) -> Decision:
    """Send a version in validation back to its developer, with its open findings."""
    require(actor, Capability.VERSION_VALIDATE, version_actors(version=version))
    rationale = _rationale(rationale)
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.RETURN, allowed=(S.IN_VALIDATION,), to=S.RETURNED,
                     rationale=rationale, evidence={"findings": [f.pk for f in _open_findings(version)]})


def version_reject(*, actor: Any, version: ModelVersion, rationale: str) -> Decision:
    """Reject a version for good: a validator during validation, or a compliance officer at approval."""
    actors = version_actors(version=version)
    # Each role rejects from its own states, and the move re-checks them: a version that became
    # validated meanwhile is no longer a validator's to reject.
    if ModelVersion.objects.get(pk=version.pk).status == S.VALIDATED:
        require(actor, Capability.VERSION_APPROVE, actors)
        allowed: tuple[str, ...] = (S.VALIDATED,)
    else:
        require(actor, Capability.VERSION_VALIDATE, actors)
        allowed = (S.SUBMITTED, S.IN_VALIDATION)
    rationale = _rationale(rationale)
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.REJECT, allowed=allowed, to=S.REJECTED,
                     rationale=rationale)


def version_approve(*, actor: Any, version: ModelVersion, rationale: str, policy_exception: str = "") -> Decision:
    """Approve a validated version (a compliance officer who neither built, submitted nor validated it).

    Refused while a high-severity finding is open; open medium ones become conditions. A
    metric below the model's floors needs an explicit policy exception, recorded as such. A
    high-tier model needs two distinct approvers: the first approval is recorded and the
    version stays validated until the second.
    """
    require(actor, Capability.VERSION_APPROVE, version_actors(version=version))
    rationale = _rationale(rationale)
    model = RegisteredModel.objects.get(pk=version.registered_model_id)  # its tier and floors as set now
    open_findings = _open_findings(version)
    high = [f.pk for f in open_findings if f.severity == Finding.Severity.HIGH]
    if high:
        raise Conflict(f"{version} has open high-severity findings ({', '.join(map(str, high))}); close them first",
                       code="open_high_findings", details={"findings": high})
    evaluation = _latest_test_evaluation(version)
    breaches = floor_breaches(evaluation.metrics, model.floors) if evaluation else []
    policy_exception = (policy_exception or "").strip()
    if breaches and not policy_exception:
        names = ", ".join(f"{b['metric']} {b['value']} vs {b['floor']} {b['limit']}" for b in breaches)
        raise Conflict(f"{version} is below the model's performance floors ({names}); approving it needs a "
                       "policy exception with its rationale", code="below_performance_floor",
                       details={"breaches": breaches})
    conditions = "\n".join(f"Finding #{f.pk} ({f.severity}): {f.title}" for f in open_findings)
    evidence = {"evaluations": [evaluation.pk] if evaluation else [], "floor_breaches": breaches,
                "open_findings": [f.pk for f in open_findings]}
    with transaction.atomic():
        earlier = version_actors(version=version).approved_by
        needed = 2 if model.risk_tier == RiskTier.HIGH else 1
        to = S.APPROVED if len(earlier) + 1 >= needed else S.VALIDATED
        return _move(actor=actor, version=version, action=A.APPROVE, allowed=(S.VALIDATED,), to=to,
                     rationale=rationale, evidence={**evidence, "approvals": len(earlier) + 1, "needed": needed},
                     conditions=conditions, policy_exception=policy_exception if breaches else "")


def add_months(day: dt.date, months: int) -> dt.date:
    """Return ``day`` plus ``months`` calendar months (the last day of the month where it has fewer days)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def review_cadence_months(model: RegisteredModel) -> int:
    """Return the months between periodic reviews of a model: its own, else its tier's default."""
    return model.review_cadence_months or settings.REVIEW_CADENCE_MONTHS[model.risk_tier]


def version_promote(*, actor: Any, version: ModelVersion, rationale: str) -> Decision:
    """Make an approved version its model's champion; the previous champion goes back to approved (recorded).

    The next periodic review falls due one cadence from today. A version promoted for the first
    time gets a job that freezes its monitoring reference, queued in the same transaction.
    """
    require(actor, Capability.VERSION_PROMOTE)
    rationale = _rationale(rationale)
    try:
        with transaction.atomic():
            previous = (ModelVersion.objects.filter(registered_model_id=version.registered_model_id, status=S.CHAMPION)
                        .exclude(pk=version.pk).first())
            if previous is not None:
                _move(actor=actor, version=previous, action=A.REPLACE, allowed=(S.CHAMPION,), to=S.APPROVED,
                      rationale=f"replaced as champion by {version}: {rationale}", evidence={"champion": version.pk})
            decision = _move(actor=actor, version=version, action=A.PROMOTE, allowed=(S.APPROVED,), to=S.CHAMPION,
                             rationale=rationale, evidence={"replaced": previous.pk if previous else None})
            model = registered_model_lock(id=version.registered_model_id)
            due = add_months(timezone.localdate(), review_cadence_months(model))
            RegisteredModel.objects.filter(pk=model.pk).update(next_review_date=due, overdue_flagged_for=None)
            audit_record(actor=actor, action="registered_model.review_scheduled", target=model,
                         before={"next_review_date": model.next_review_date}, after={"next_review_date": due})
            monitoring_reference_queue(actor=actor, version=version)
            return decision
    except IntegrityError:
        raise Conflict(f"{version.registered_model} got another champion at the same time; reload and decide again",
                       code="concurrent_transition") from None


def version_retire(*, actor: Any, version: ModelVersion, rationale: str) -> Decision:
    """Retire a version for good, with the reason (a champion stops being one: the model then has none)."""
    require(actor, Capability.VERSION_RETIRE)
    rationale = _rationale(rationale)
    with transaction.atomic():
        return _move(actor=actor, version=version, action=A.RETIRE,
                     allowed=(S.TRAINED, S.RETURNED, S.VALIDATED, S.APPROVED, S.CHAMPION), to=S.RETIRED,
                     rationale=rationale)


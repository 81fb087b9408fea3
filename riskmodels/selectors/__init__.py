"""Read operations of the ML domain, with the object-level permission checks every interface uses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypedDict

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from governance.exceptions import NotFound
from governance.policy import Capability, allowed, require
from riskmodels.models import Dataset, DatasetVersion


def dataset_list_for_user(*, user: Any) -> QuerySet[Dataset]:
    """Return the datasets the user may see (every dataset, for any role)."""
    require(user, Capability.DOMAIN_READ)
    return Dataset.objects.all()


def dataset_version_list_for_user(*, user: Any) -> QuerySet[DatasetVersion]:
    """Return the dataset versions the user may see."""
    require(user, Capability.DOMAIN_READ)
    return DatasetVersion.objects.select_related("dataset", "created_by")


def dataset_version_get_for_user(*, user: Any, id: int) -> DatasetVersion:
    """Return one dataset version, or raise NotFound / PermissionDenied."""
    require(user, Capability.DOMAIN_READ)
    try:
        return DatasetVersion.objects.select_related("dataset", "created_by").get(pk=id)
    except (DatasetVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"dataset version {id} does not exist") from None


def registered_model_list_for_user(*, user: Any) -> QuerySet:
    """Return the model inventory (every model, for any role), each with ``champion_version_id``."""
    from riskmodels.models import ModelVersion, RegisteredModel, VersionStatus

    require(user, Capability.DOMAIN_READ)
    champion = ModelVersion.objects.filter(registered_model=OuterRef("pk"), status=VersionStatus.CHAMPION)
    return RegisteredModel.objects.select_related("owner").annotate(
        champion_version_id=Subquery(champion.values("pk")[:1]))


def registered_model_get_for_user(*, user: Any, name: str):  # noqa: ANN201
    """Return one registered model by name, or raise NotFound / PermissionDenied."""
    from riskmodels.models import RegisteredModel

    try:
        return registered_model_list_for_user(user=user).get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"model {name!r} does not exist") from None


def model_version_list_for_user(*, user: Any) -> QuerySet:
    """Return the model versions the user may see."""
    from riskmodels.models import ModelVersion

    require(user, Capability.DOMAIN_READ)
    return ModelVersion.objects.select_related("registered_model", "dataset_version__dataset").prefetch_related(
        "evaluations", "explanations")


def model_version_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one model version, or raise NotFound / PermissionDenied."""
    try:
        return model_version_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"model version {id} does not exist") from None


def job_list_for_user(*, user: Any) -> QuerySet:
    """Return the jobs the user may see."""
    from riskmodels.models import Job

    require(user, Capability.DOMAIN_READ)
    return Job.objects.select_related("registered_model", "model_version", "dataset_version")


def job_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one job, or raise NotFound / PermissionDenied."""
    try:
        return job_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"job {id} does not exist") from None


def evaluation_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one evaluation, or raise NotFound / PermissionDenied."""
    from riskmodels.models import Evaluation

    require(user, Capability.DOMAIN_READ)
    try:
        return Evaluation.objects.select_related("model_version__registered_model").get(pk=id)
    except (Evaluation.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"evaluation {id} does not exist") from None


def explanation_report_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one SHAP report, or raise NotFound / PermissionDenied."""
    from riskmodels.models import ExplanationReport

    require(user, Capability.DOMAIN_READ)
    try:
        return ExplanationReport.objects.select_related("model_version__registered_model").get(pk=id)
    except (ExplanationReport.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"explanation report {id} does not exist") from None


def registered_model_champion(*, registered_model: Any):  # noqa: ANN201
    """Return the one version of ``registered_model`` that may score now (its champion), or None.

    Not scoped to a user: this is the gate the scoring service asks, after its own permission check.
    """
    from riskmodels.models import ModelVersion, VersionStatus

    return ModelVersion.objects.filter(registered_model=registered_model, status=VersionStatus.CHAMPION).first()


def decision_list_for_user(*, user: Any, model_version_id: int | None = None) -> QuerySet:
    """Return the lifecycle decisions the user may see, oldest first (of one version, if given)."""
    from riskmodels.models import Decision

    require(user, Capability.DOMAIN_READ)
    decisions = Decision.objects.select_related("model_version__registered_model").order_by("created_at", "id")
    return decisions if model_version_id is None else decisions.filter(model_version_id=model_version_id)


def finding_list_for_user(*, user: Any) -> QuerySet:
    """Return the findings the user may see (every finding, for any role)."""
    from riskmodels.models import Finding

    require(user, Capability.DOMAIN_READ)
    return Finding.objects.select_related("model_version__registered_model", "owner")


def finding_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one finding, or raise NotFound / PermissionDenied."""
    try:
        return finding_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"finding {id} does not exist") from None


def alert_list_for_user(*, user: Any) -> QuerySet:
    """Return the monitoring alerts the user may see (every alert, for any role that reads the domain), newest first."""
    from riskmodels.models import Alert

    require(user, Capability.DOMAIN_READ)
    return Alert.objects.select_related("registered_model", "model_version", "run").order_by("-created_at", "-id")


def alert_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one alert, or raise NotFound / PermissionDenied."""
    try:
        return alert_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"alert {id} does not exist") from None


def alert_get_for_acknowledgement(*, user: Any, id: int):  # noqa: ANN201
    """Return an alert the user may acknowledge, or raise NotFound / PermissionDenied (before any form is shown)."""
    alert = alert_get_for_user(user=user, id=id)
    require(user, Capability.ALERT_ACKNOWLEDGE)
    return alert


class ReviewDue(TypedDict):
    registered_model: str
    risk_tier: str
    owner: str | None
    champion: int
    next_review_date: dt.date
    days_overdue: int  # negative: days left before it falls due
    overdue: bool


def reviews_due_list_for_user(*, user: Any, within_days: int, today: dt.date | None = None) -> list[ReviewDue]:
    """Return the models whose champion's periodic review is overdue or due within ``within_days``, most late first."""
    from riskmodels.models import ModelVersion, RegisteredModel, VersionStatus

    require(user, Capability.DOMAIN_READ)
    today = today or timezone.localdate()
    champions = ModelVersion.objects.filter(registered_model=OuterRef("pk"), status=VersionStatus.CHAMPION)
    models = (RegisteredModel.objects.select_related("owner")
              .filter(next_review_date__lte=today + dt.timedelta(days=within_days))
              .annotate(champion_version_id=Subquery(champions.values("pk")[:1]))
              .filter(champion_version_id__isnull=False).order_by("next_review_date", "name"))
    return [ReviewDue(registered_model=m.name, risk_tier=m.risk_tier, owner=m.owner.username if m.owner_id else None,
                      champion=m.champion_version_id, next_review_date=m.next_review_date,
                      days_overdue=(today - m.next_review_date).days, overdue=m.next_review_date < today)
            for m in models]


def validation_run_list_for_user(*, user: Any) -> QuerySet:
    """Return the validation battery runs the user may see (every run, for any role), newest first."""
    from riskmodels.models import ValidationRun

    require(user, Capability.DOMAIN_READ)
    return ValidationRun.objects.select_related("model_version__registered_model").order_by("-created_at")


def validation_run_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one validation battery run, or raise NotFound / PermissionDenied."""
    try:
        return validation_run_list_for_user(user=user).get(pk=id)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise NotFound(f"validation run {id} does not exist") from None

# The compliance workspace (riskmodels/admin_workspace.py): what a person who decides needs
# on one screen. Which buttons a user sees is the policy's answer, given the version's state.

WORKSPACE_REVIEW_HORIZON_DAYS = 30


@dataclass(frozen=True)
class WorkspaceAction:
    """A lifecycle decision as the workspace offers it: the capability it needs and the states it starts from."""

    name: str
    label: str
    capability: Capability
    from_states: tuple[str, ...]
    on_actors: bool  # whether the policy's separation-of-duties rules apply (the version's actors are passed)


def _workspace_actions() -> tuple[WorkspaceAction, ...]:
    from riskmodels.models import VersionStatus as S

    # Mirrors the state machine in riskmodels/services/lifecycle.py; the service stays the
    # judge (a forced POST is refused there), this only decides which buttons to draw.
    return (
        WorkspaceAction("submit", "Submit for validation", Capability.VERSION_SUBMIT, (S.TRAINED, S.RETURNED), False),
        WorkspaceAction("take", "Take for validation", Capability.VERSION_VALIDATE, (S.SUBMITTED,), True),
        WorkspaceAction("validate", "Conclude: validated", Capability.VERSION_VALIDATE, (S.IN_VALIDATION,), True),
        WorkspaceAction("return", "Return to the developer", Capability.VERSION_VALIDATE, (S.IN_VALIDATION,), True),
        WorkspaceAction("reject", "Reject", Capability.VERSION_VALIDATE, (S.SUBMITTED, S.IN_VALIDATION), True),
        WorkspaceAction("reject", "Reject", Capability.VERSION_APPROVE, (S.VALIDATED,), True),
        WorkspaceAction("approve", "Approve", Capability.VERSION_APPROVE, (S.VALIDATED,), True),
        WorkspaceAction("promote", "Promote to champion", Capability.VERSION_PROMOTE, (S.APPROVED,), False),
        WorkspaceAction("retire", "Retire", Capability.VERSION_RETIRE,
                        (S.TRAINED, S.RETURNED, S.VALIDATED, S.APPROVED, S.CHAMPION), False),
    )


def workspace_version_actions(*, user: Any, version: Any, actors: Any = None) -> list[WorkspaceAction]:
    """Return the decisions ``user`` may take on ``version`` now (by the policy and the version's state)."""
    from riskmodels.services.lifecycle import version_actors

    actors = actors if actors is not None else version_actors(version=version)
    offered: dict[str, WorkspaceAction] = {}
    for action in _workspace_actions():
        if version.status in action.from_states and action.name not in offered and allowed(
                user, action.capability, actors if action.on_actors else None):
            offered[action.name] = action
    return list(offered.values())


@dataclass(frozen=True)
class WorkspaceFindingRow:
    finding: Any
    overdue: bool
    may_remediate: bool
    may_close: bool
    may_triage: bool = False  # accept or dismiss a finding the validation battery proposed


def _may_remediate(user: Any, finding: Any, actors: Any) -> bool:
    from riskmodels.models import Finding
    from riskmodels.services.findings import RemediationSubject

    subject = RemediationSubject(actors.built_by | actors.submitted_by, finding.owner_id)
    return finding.status == Finding.Status.OPEN and allowed(user, Capability.FINDING_REMEDIATE, subject)


@dataclass(frozen=True)
class WorkspaceReviewRow:
    model: Any
    champion: Any
    overdue: bool


@dataclass(frozen=True)
class WorkspaceQueues:
    """What waits for a user: versions to validate, to approve, to promote; findings; reviews falling due."""

    awaiting_validation: list[Any]
    awaiting_approval: list[Any]
    awaiting_promotion: list[Any]
    findings_by_severity: list[tuple[str, list[WorkspaceFindingRow]]]
    reviews_due: list[WorkspaceReviewRow]
    today: dt.date
    alerts: list[Any]  # open alerts, then the most recently acknowledged ones
    may_acknowledge_alerts: bool


def workspace_queues_for_user(*, user: Any) -> WorkspaceQueues:
    """Return the user's start page: what awaits their decision, open findings and reviews falling due."""
    from django.utils import timezone

    from riskmodels.models import Decision, Finding, ModelVersion, RegisteredModel, VersionStatus as S
    from riskmodels.services.lifecycle import version_actors

    require(user, Capability.DOMAIN_READ)
    today = timezone.localdate()
    versions = ModelVersion.objects.select_related("registered_model", "training_job").order_by(
        "registered_model__name", "version")

    def allowed_on(capability: Capability, version: Any) -> bool:
        return allowed(user, capability, version_actors(version=version))

    # In validation: the validator who took it is the one it waits for (the latest take decides).
    taken_by = {version_id: actor_id for version_id, actor_id in Decision.objects.filter(
        action=Decision.Action.TAKE).order_by("created_at", "id").values_list("model_version_id", "actor_id")}
    awaiting_validation = [
        v for v in versions.filter(status__in=(S.SUBMITTED, S.IN_VALIDATION))
        if (v.status == S.SUBMITTED or taken_by.get(v.pk) == user.pk) and allowed_on(Capability.VERSION_VALIDATE, v)]
    awaiting_approval = [v for v in versions.filter(status=S.VALIDATED) if allowed_on(Capability.VERSION_APPROVE, v)]
    awaiting_promotion = [v for v in versions.filter(status=S.APPROVED) if allowed(user, Capability.VERSION_PROMOTE)]

    open_findings = Finding.objects.filter(status__in=(Finding.Status.OPEN, Finding.Status.REMEDIATED)).select_related(
        "model_version__registered_model", "model_version__training_job").order_by("due_date", "id")
    actors_cache: dict[int, Any] = {}
    by_severity: dict[str, list[WorkspaceFindingRow]] = {s: [] for s in Finding.Severity.values}
    for finding in open_findings:
        version = finding.model_version
        if version.pk not in actors_cache:
            actors_cache[version.pk] = version_actors(version=version)
        by_severity[finding.severity].append(WorkspaceFindingRow(
            finding=finding, overdue=finding.due_date < today,
            may_remediate=_may_remediate(user, finding, actors_cache[version.pk]),
            may_close=allowed(user, Capability.VERSION_VALIDATE, actors_cache[version.pk])))

    horizon = today + dt.timedelta(days=WORKSPACE_REVIEW_HORIZON_DAYS)
    reviews = []
    for model in RegisteredModel.objects.filter(next_review_date__lte=horizon,
                                                versions__status=S.CHAMPION).distinct().order_by("next_review_date"):
        reviews.append(WorkspaceReviewRow(model=model, champion=registered_model_champion(registered_model=model),
                                          overdue=model.next_review_date < today))
    return WorkspaceQueues(
        awaiting_validation=awaiting_validation, awaiting_approval=awaiting_approval,
        awaiting_promotion=awaiting_promotion,
        findings_by_severity=[(Finding.Severity(s).label, rows) for s, rows in by_severity.items()],
        reviews_due=reviews, today=today, alerts=_workspace_alerts(),
        may_acknowledge_alerts=allowed(user, Capability.ALERT_ACKNOWLEDGE))


WORKSPACE_ACKNOWLEDGED_ALERTS = 10  # acknowledged alerts shown below the open ones, newest first


def _workspace_alerts() -> list[Any]:
    from riskmodels.models import Alert

    alerts = Alert.objects.select_related("registered_model", "model_version")
    return [*alerts.filter(status=Alert.Status.OPEN).order_by("-created_at", "-id"),
            *alerts.filter(status=Alert.Status.ACKNOWLEDGED).order_by("-acknowledged_at", "-id")[
                :WORKSPACE_ACKNOWLEDGED_ALERTS]]


@dataclass(frozen=True)
class WorkspaceEvaluation:
    evaluation: Any
    rows: list[tuple[str, Any, Any, Any]]  # (metric, value, CI lower, CI upper)
    plots: list[str]  # plot names, served by the evaluation admin's plot view


@dataclass(frozen=True)
class WorkspaceDossier:
    """Everything needed to decide on one version, and the decisions the user may take."""

    version: Any
    evaluations: list[WorkspaceEvaluation]
    report: Any  # the latest passing SHAP report, or None
    report_plots: list[Any]
    dataset_profile: list[dict[str, Any]]
    quality_warnings: list[str]
    findings: list[WorkspaceFindingRow]
    battery: Any  # the latest validation battery run, or None
    decisions: list[Any]
    audit_events: list[Any] | None  # None: the user may not read the audit log
    actions: list[WorkspaceAction]
    may_raise_finding: bool
    documentation_packs: list[Any]  # newest first
    may_generate_pack: bool


WORKSPACE_METRICS = ("auc", "gini", "ks", "brier", "log_loss", "accuracy", "precision", "recall", "f1")


def workspace_version_dossier_for_user(*, user: Any, id: int) -> WorkspaceDossier:
    """Return one version's dossier for the workspace page, or raise NotFound / PermissionDenied."""
    from django.db.models import Q
    from django.utils import timezone

    from governance.models import AuditEvent
    from riskmodels.models import ExplanationReport, Finding
    from riskmodels.services.findings import RAISABLE
    from riskmodels.services.lifecycle import version_actors

    version = model_version_get_for_user(user=user, id=id)
    actors = version_actors(version=version)
    today = timezone.localdate()

    evaluations = []
    for evaluation in sorted(version.evaluations.all(), key=lambda e: (e.scope != "test_split", -e.pk)):
        bootstrap = evaluation.metrics.get("bootstrap") or {}
        rows = [(name, evaluation.metrics.get(name), (bootstrap.get(name) or {}).get("lower"),
                 (bootstrap.get(name) or {}).get("upper")) for name in WORKSPACE_METRICS if name in evaluation.metrics]
        evaluations.append(WorkspaceEvaluation(evaluation=evaluation, rows=rows, plots=sorted(evaluation.plots)))

    report = next((r for r in version.explanations.all() if r.status == ExplanationReport.Status.OK), None)
    profile = version.dataset_version.profile or {}
    columns = [{"name": name, **stats} for name, stats in (profile.get("columns") or {}).items()]

    may_validate = allowed(user, Capability.VERSION_VALIDATE, actors)
    live = (Finding.Status.OPEN, Finding.Status.REMEDIATED)
    findings = [WorkspaceFindingRow(finding=f, overdue=f.status in live and f.due_date < today,
                                    may_remediate=_may_remediate(user, f, actors),
                                    may_close=may_validate and f.status in live,
                                    may_triage=may_validate and f.status == Finding.Status.PROPOSED)
                for f in version.findings.order_by("id")]

    audit_events = None
    if allowed(user, Capability.AUDIT_READ):
        # The version's own events and those of its findings: the trail of every decision about it.
        audit_events = list(AuditEvent.objects.filter(
            Q(target_type="riskmodels.modelversion", target_id=str(version.pk))
            | Q(target_type="riskmodels.finding", target_id__in=[str(row.finding.pk) for row in findings])
        ).order_by("seq"))

    return WorkspaceDossier(
        version=version, evaluations=evaluations, report=report,
        report_plots=list(report.plot_files.all()) if report else [], dataset_profile=columns,
        quality_warnings=list(profile.get("warnings") or []), findings=findings,
        battery=version.validation_runs.order_by("-created_at").first(),
        decisions=list(version.decisions.order_by("created_at", "id")), audit_events=audit_events,
        actions=workspace_version_actions(user=user, version=version, actors=actors),
        may_raise_finding=may_validate and version.status in RAISABLE,
        documentation_packs=list(version.documentation_packs.order_by("-created_at", "-id")),
        may_generate_pack=allowed(user, Capability.DOCPACK_GENERATE))


def workspace_finding_get_for_user(*, user: Any, id: int):  # noqa: ANN201
    """Return one finding (with its version), or raise NotFound / PermissionDenied."""
    from riskmodels.models import Finding

    require(user, Capability.DOMAIN_READ)
    try:
        return Finding.objects.select_related("model_version__registered_model").get(pk=id)
    except (Finding.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"finding {id} does not exist") from None

"""The demo's model lifecycle: one champion that went through every step, and a challenger awaiting validation.

Every step goes through the same service a user's request would call, as that user, so the
decision records and the audit chain show the demo like real work. The jobs run here, in
this process, as a worker would run them: ``make run`` sets the demo up before its worker
starts. Their task messages are still sent; the worker's later deliveries find the jobs
finished and do nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone

from governance.exceptions import Conflict
from riskmodels.jobs.kinds import chunk_execute, job_execute
from riskmodels.models import (
    DatasetVersion,
    Decision,
    ExplanationReport,
    Finding,
    Job,
    JobChunk,
    JobKind,
    JobStatus,
    ModelType,
    ModelVersion,
    Outcome,
    OverrideReason,
    RegisteredModel,
    RiskTier,
    VersionStatus,
)
from riskmodels.services.docpack import documentation_pack_request
from riskmodels.services.explanations import explanation_job_create, explanation_plots_render
from riskmodels.services.findings import finding_close, finding_dismiss, finding_raise, finding_remediate
from riskmodels.services.lifecycle import (
    version_approve,
    version_promote,
    version_submit,
    version_take,
    version_validate,
)
from riskmodels.services.overrides import decision_override
from riskmodels.services.registry import registered_model_create
from riskmodels.services.reviews import registered_model_inventory_update
from riskmodels.services.scoring import applications_score
from riskmodels.services.stability import stability_run_request
from riskmodels.services.training import training_job_create
from riskmodels.storage import dataset_rows

DEMO_MODEL = "retail-pd"


@dataclass(frozen=True)
class DemoLifecycle:
    """What the demo holds: the model, its champion (closed findings, approvers), the versions awaiting validation."""

    model: RegisteredModel
    champion: ModelVersion | None
    closed_findings: int
    approvers: tuple[str, ...]
    awaiting: tuple[ModelVersion, ...]
    created: bool

    @property
    def summary(self) -> str:
        """Return one line that says what the demo contains."""
        parts = [f"{self.model.name} ({self.model.risk_tier} tier)"]
        if self.champion is not None:
            parts.append(f"v{self.champion.version} champion ({self.champion.algorithm}; {self.closed_findings} "
                         f"finding(s) closed; approved by {' and '.join(self.approvers)})")
        parts += [f"v{v.version} submitted, awaiting validation ({v.algorithm})" for v in self.awaiting]
        return f"Demo lifecycle {'created' if self.created else 'already set up'}: " + ", ".join(parts)


def _demo_state(model: RegisteredModel, *, created: bool) -> DemoLifecycle:
    versions = model.versions.order_by("version")
    champion = versions.filter(status=VersionStatus.CHAMPION).first()
    closed = champion.findings.filter(status=Finding.Status.CLOSED).count() if champion else 0
    approvers = (champion.decisions.filter(action=Decision.Action.APPROVE).order_by("created_at", "id")
                 .values_list("actor_username", flat=True)) if champion else []
    return DemoLifecycle(model=model, champion=champion, closed_findings=closed, approvers=tuple(approvers),
                         awaiting=tuple(versions.filter(status=VersionStatus.SUBMITTED)), created=created)


# Only recorded when the battery failed: German Credit's 1,000 rows make some tests noisy.
BATTERY_JUSTIFICATION = ("The battery's results were reviewed: on 1,000 applicants its segment and stability "
                         "figures are noisy; the validator decides on each proposed finding.")


def _run(job: Job) -> Job:
    """Run a job and its chunks here, as the worker would; fail loudly if it did not succeed."""
    job_execute(job_id=job.pk)
    for chunk_id in JobChunk.objects.filter(job=job).order_by("index").values_list("pk", flat=True):
        chunk_execute(chunk_id=chunk_id)
    job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"demo {job.kind} job {job.pk} ended {job.status}: {job.error}", code=f"job_{job.status}",
                       details={"job": job.pk})
    return job


def _version_with_evidence(*, developer: Any, model: RegisteredModel, dataset_version: DatasetVersion,
                           request: dict[str, Any]) -> ModelVersion:
    """Train a version, evaluate it on its test split and explain it: the evidence a submission needs."""
    training = _run(training_job_create(actor=developer, registered_model=model, dataset_version=dataset_version,
                                        request=request))
    version = ModelVersion.objects.get(training_job=training)
    for kind in (JobKind.EVALUATE, JobKind.VALIDATE):  # the test-split evaluation, then its validation battery
        for job in Job.objects.filter(kind=kind, model_version=version, status=JobStatus.QUEUED):
            _run(job)
    explanation = _run(explanation_job_create(actor=developer, model_version=version))
    for report in ExplanationReport.objects.filter(job=explanation):
        explanation_plots_render(report_id=report.pk)
    return version


def _demo_decisions(underwriter: Any, model: RegisteredModel, dataset_version: DatasetVersion,
                    champion: ModelVersion) -> None:
    """Score the first 25 applications of the demo data as the underwriter, and override one decline."""
    features = list(champion.spec["features"])
    rows = dataset_rows(dataset_version, np.arange(25, dtype=np.int64), features)
    applications = [{"reference": f"DEMO-{i + 1:04d}",
                     "features": {f: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
                                  for f, v in row.items()}} for i, (_, row) in enumerate(rows.iterrows())]
    scored = applications_score(actor=underwriter, model=model, applications=applications)
    declined = next((d for d in scored.decisions if d.outcome == Outcome.DECLINE), None)
    if declined is not None:
        decision_override(actor=underwriter, decision=declined, outcome=Outcome.REFER, reason=OverrideReason.COLLATERAL,
                          text="Applicant offered a guarantor; referred for a manual credit review.")


def demo_lifecycle_create(*, developer: Any, validator: Any, approvers: Sequence[Any],
                          dataset_version: DatasetVersion, underwriter: Any = None) -> DemoLifecycle:
    """Build the demo model's lifecycle through the services, as these users; skip it if the model exists.

    ``retail-pd`` is a high-tier application PD model, so its champion needs two distinct
    approvers. Not atomic: the jobs commit as they go, as in a worker.
    """
    existing = RegisteredModel.objects.filter(name=DEMO_MODEL).first()
    if existing is not None:
        return _demo_state(existing, created=False)
    officer = approvers[0]
    model = registered_model_create(actor=developer, name=DEMO_MODEL, owner_team="retail credit risk",
                                    purpose="Probability of default for retail instalment loan applications")
    model = registered_model_inventory_update(actor=officer, model=model, changes={
        "risk_tier": RiskTier.HIGH, "model_type": ModelType.APPLICATION_PD,
        "business_use": "Accept/decline and pricing of retail instalment loan applications up to EUR 20,000.",
        "limitations": "Trained on 1,000 historical German applications (1973-1975); not for business lending or "
                       "for applicants outside the training population; protected attributes are excluded.",
        "owner": officer, "min_auc": 0.65, "max_brier": 0.25,
        "scoring_policy": {"cutoff": 0.5, "refer_from": 0.35},
    })

    champion = _version_with_evidence(developer=developer, model=model, dataset_version=dataset_version,
                                      request={"algorithm": "gradient_boosting", "hyperparameters": {"max_depth": 3}})
    version_submit(actor=developer, version=champion,
                   rationale="Gradient boosting on German Credit; test-split evaluation and SHAP report attached.",
                   justification=BATTERY_JUSTIFICATION)
    version_take(actor=validator, version=champion, rationale="Independent validation of the first retail PD model.")
    for draft in Finding.objects.filter(model_version=champion, status=Finding.Status.PROPOSED):
        finding_dismiss(actor=validator, finding=draft, reason="Reviewed: expected for a 1,000-row portfolio; "
                        "covered by the calibration finding and the model's stated limitations.")
    finding = finding_raise(
        actor=validator, version=champion, title="Calibration in the top score band not evidenced",
        description="The evaluation shows discrimination, but the calibration of the highest-risk decile is not "
                    "discussed in the submission.",
        category=Finding.Category.PERFORMANCE, severity=Finding.Severity.MEDIUM,
        due_date=timezone.localdate() + dt.timedelta(days=30), owner=developer)
    finding_remediate(actor=developer, finding=finding,
                      remediation="Calibration by decile added from the test-split evaluation's calibration plot.")
    finding_close(actor=validator, finding=finding,
                  evidence="Calibration gap per decile reviewed on the test-split evaluation; within tolerance.")
    version_validate(actor=validator, version=champion, conclusion="fit_for_purpose",
                     rationale="Discrimination above the floor, explanations plausible, finding closed.")
    for officer in approvers:
        version_approve(actor=officer, version=champion,
                        rationale="Validated independently; performance floors met; no open findings.")
    version_promote(actor=approvers[0], version=champion, rationale="First champion of retail-pd.")
    # The champion's monitoring reference, frozen by the job its promotion queued: stability runs need it.
    for job in Job.objects.filter(kind=JobKind.MONITORING_REFERENCE, model_version=champion, status=JobStatus.QUEUED):
        _run(job)
    if underwriter is not None:
        _demo_decisions(underwriter, model, dataset_version, champion)
    # One stability run, over the development data itself, so the monitoring charts have a first point.
    _run(stability_run_request(actor=validator, model=model, dataset_version=dataset_version))
    # The champion's documentation pack, so a newcomer can download it from the workspace or the API.
    _run(documentation_pack_request(actor=approvers[0], model_version=champion))

    challenger = _version_with_evidence(developer=developer, model=model, dataset_version=dataset_version,
                                        request={"algorithm": "logistic_regression"})
    version_submit(actor=developer, version=challenger,
                   rationale="Logistic regression challenger: simpler and fully interpretable.",
                   justification=BATTERY_JUSTIFICATION)
    return _demo_state(model, created=True)


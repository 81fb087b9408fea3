"""The governance records of a model version: lifecycle decisions, findings and periodic reviews."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from riskmodels.models.base import ImmutableModel


class Decision(ImmutableModel):
    """Record one lifecycle decision on a version: who (and in which roles), when, from, to, why, on what evidence.

    Written in the same transaction as the status change and its audit event. Separation of
    duties is checked against these records (who built, submitted, validated, approved),
    never against anyone's current role.
    """

    class Action(models.TextChoices):
        SUBMIT = "submit", "Submit for validation"
        TAKE = "take", "Take for validation"
        VALIDATE = "validate", "Conclude: validated"
        RETURN = "return", "Return to the developer"
        REJECT = "reject", "Reject"
        APPROVE = "approve", "Approve"
        PROMOTE = "promote", "Promote to champion"
        REPLACE = "replace", "Replaced as champion"
        RETIRE = "retire", "Retire"

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT, related_name="decisions")
    action = models.CharField(max_length=20, choices=Action.choices)
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_username = models.CharField(max_length=150)
    actor_roles = models.JSONField(default=list)
    rationale = models.TextField()
    # {"evaluations": [ids], "reports": [ids], "findings": [ids], "floors": {...}}
    evidence = models.JSONField(default=dict)
    conclusion = models.CharField(max_length=30, blank=True)  # validate: fit_for_purpose / fit_with_conditions
    conditions = models.TextField(blank=True)
    policy_exception = models.TextField(blank=True)  # approve: why a breached floor is accepted
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_version", "created_at", "id"]
        constraints = [models.CheckConstraint(condition=~models.Q(rationale=""), name="decision_has_rationale")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.model_version} by {self.actor_username}"


class Finding(models.Model):
    """Track one issue a validator found in a version, to closure: open → remediated → closed.

    The developer answers with a remediation; only a validator closes it, with evidence. An
    open high-severity finding blocks approval; medium ones become conditions of it.
    """

    class Category(models.TextChoices):
        DATA = "data", "Data"
        CONCEPTUAL = "conceptual_soundness", "Conceptual soundness"
        PERFORMANCE = "performance", "Performance"
        EXPLAINABILITY = "explainability", "Explainability"
        FAIRNESS = "fairness", "Fairness"
        IMPLEMENTATION = "implementation", "Implementation"
        DOCUMENTATION = "documentation", "Documentation"

    class Severity(models.TextChoices):
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed by the validation battery"
        OPEN = "open", "Open"
        REMEDIATED = "remediated", "Remediation proposed"
        CLOSED = "closed", "Closed"
        DISMISSED = "dismissed", "Dismissed"

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT, related_name="findings")
    title = models.CharField(max_length=200)
    description = models.TextField()
    category = models.CharField(max_length=30, choices=Category.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    due_date = models.DateField()
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    raised_by_username = models.CharField(max_length=150)
    # A draft from the validation battery (its run and test), until a validator accepts or dismisses it.
    validation_run = models.ForeignKey("riskmodels.ValidationRun", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="proposed_findings")
    test_name = models.CharField(max_length=40, blank=True)
    dismissal_reason = models.TextField(blank=True)
    remediation = models.TextField(blank=True)
    remediated_by_username = models.CharField(max_length=150, blank=True)
    closing_evidence = models.TextField(blank=True)
    closed_by_username = models.CharField(max_length=150, blank=True)
    revision = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "due_date", "id"]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} finding #{self.pk} on {self.model_version}: {self.title}"


class ValidationRun(ImmutableModel):
    """Record one run of the validation battery on a version: each test's outcome and figures, and the worst."""

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT,
                                      related_name="validation_runs")
    evaluation = models.ForeignKey("riskmodels.Evaluation", on_delete=models.PROTECT, related_name="+")
    job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_validation_run")
    outcome = models.CharField(max_length=10)  # pass / warn / fail: the worst test's
    results = models.JSONField()  # [{"name", "outcome", "message", "figures", "category", "proposed_finding"}]
    thresholds = models.JSONField()
    n_rows = models.PositiveIntegerField()
    seconds = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"validation battery of {self.model_version}: {self.outcome}"


class PeriodicReview(ImmutableModel):
    """Record a periodic review of a champion: a validation on a newer dataset version that moves the next review."""

    class Conclusion(models.TextChoices):
        FIT_FOR_PURPOSE = "fit_for_purpose", "Still fit for purpose"
        FIT_WITH_CONDITIONS = "fit_with_conditions", "Fit for purpose with conditions"
        NOT_FIT = "not_fit", "No longer fit for purpose"

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT, related_name="reviews")
    evaluation = models.ForeignKey("riskmodels.Evaluation", on_delete=models.PROTECT, related_name="+")
    conclusion = models.CharField(max_length=30, choices=Conclusion.choices)
    rationale = models.TextField()
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reviewer_username = models.CharField(max_length=150)
    due_date = models.DateField(null=True, blank=True)
    next_review_date = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"review of {self.model_version} on {self.created_at:%Y-%m-%d}"

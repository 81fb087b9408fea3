"""SHAP explanation reports, their plots, and reason-code catalogues."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from riskmodels.models.base import ImmutableModel


class ExplanationReport(ImmutableModel):
    """Record a global SHAP report: which explainer, which rows, the ranked importances and checks.

    Per-row values live in a Parquet file (``values_path``) in the default storage. A report
    whose additivity check failed is kept with ``status = failed`` for diagnosis and is
    never presented as an explanation.
    """

    class Status(models.TextChoices):
        OK = "ok"
        FAILED = "failed"

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT, related_name="explanations")
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices)
    message = models.TextField(blank=True)
    fingerprint = models.JSONField()
    selection = models.JSONField()
    importance = models.JSONField()
    additivity_error = models.FloatField(null=True)
    base_value = models.FloatField()
    n_rows = models.PositiveIntegerField()
    values_path = models.CharField(max_length=300)
    values_sha256 = models.CharField(max_length=64)
    job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_report")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"SHAP report #{self.pk} of {self.model_version} ({self.status})"


class ExplanationPlot(models.Model):
    """Hold one PNG plot of a report (beeswarm, bar, dependence:<feature>), rendered after it.

    Plots are derived views of the stored values, so they are rendered by a task of their
    own once the report is saved, off the report's critical path.
    """

    report = models.ForeignKey(ExplanationReport, on_delete=models.CASCADE, related_name="plot_files")
    name = models.CharField(max_length=220)
    path = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["report", "name"]
        constraints = [models.UniqueConstraint(fields=["report", "name"], name="explanation_plot_unique")]

    def __str__(self) -> str:
        return f"{self.name} of report #{self.report_id}"

    @property
    def slug(self) -> str:
        """Return the name as used in URLs (``dependence-purpose``)."""
        return self.name.replace(":", "-")


class ReasonText(models.Model):
    """Give the reason text shown to an applicant when ``feature`` pushed them toward default.

    One catalogue per registered model, edited by compliance staff in the admin; a feature
    with no entry gets the library's default text.
    """

    registered_model = models.ForeignKey("riskmodels.RegisteredModel", on_delete=models.CASCADE,
                                         related_name="reason_texts")
    feature = models.CharField(max_length=200)
    text = models.CharField(max_length=300)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["registered_model", "feature"]
        constraints = [models.UniqueConstraint(fields=["registered_model", "feature"], name="reason_text_unique")]

    def __str__(self) -> str:
        return f"{self.registered_model.name}: {self.feature}"

"""Monitoring: the frozen reference of a champion, stability and performance runs, outcomes, and alerts."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from riskmodels.models.base import ImmutableModel


class MonitoringReference(ImmutableModel):
    """What a champion is compared against, frozen when it is promoted and never recomputed.

    ``score_bins``: the PD bin edges (deciles of its validation scores) and the reference share
    of each bin. ``feature_bins``: per feature, ``{"kind": "numeric", "edges": [...],
    "shares": [...], "missing_share": x}`` (quantile bins; missing values a bin of their own) or
    ``{"kind": "categorical", "categories": [...], "shares": [...], "other_share": x}`` (an
    "other" bin for categories never seen). ``baseline``: the validation metrics performance is
    compared with (AUC, KS, Brier, default rate per band).
    """

    model_version = models.OneToOneField("riskmodels.ModelVersion", on_delete=models.PROTECT,
                                         related_name="monitoring_reference")
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    n_rows = models.PositiveIntegerField()
    score_bins = models.JSONField()
    feature_bins = models.JSONField()
    baseline = models.JSONField(default=dict)
    job = models.OneToOneField("riskmodels.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"monitoring reference of version {self.model_version_id}"


class MonitoringRun(ImmutableModel):
    """One stability or performance run of a champion over a window of the ledger or a dataset version."""

    class Kind(models.TextChoices):
        STABILITY = "stability", "Stability (PSI of the score, CSI of each feature)"
        PERFORMANCE = "performance", "Performance on matured outcomes"

    class Light(models.TextChoices):
        GREEN = "green"
        AMBER = "amber"
        RED = "red"

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT,
                                      related_name="monitoring_runs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # The window: ledger decisions in [window_start, window_end), or a whole dataset version.
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="+")
    n_rows = models.PositiveIntegerField()
    results = models.JSONField()  # per metric: value, light, thresholds (and confidence intervals)
    light = models.CharField(max_length=10, choices=Light.choices)  # the worst light of the run
    thresholds = models.JSONField()  # what the lights were judged against
    job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_monitoring_run")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(
            condition=models.Q(dataset_version__isnull=False) | (models.Q(window_start__isnull=False)
                                                                  & models.Q(window_end__isnull=False)),
            name="monitoring_run_has_a_window_or_a_dataset")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} of version {self.model_version_id} ({self.light})"


class ObservedOutcome(ImmutableModel):
    """What became of one decided applicant: defaulted or not, observed on a date (one per decision)."""

    decision = models.OneToOneField("riskmodels.CreditDecision", on_delete=models.PROTECT, related_name="outcome_record")
    defaulted = models.BooleanField()
    observed_on = models.DateField()
    # The applicant's protected attributes ({column: value}), for fairness monitoring only: they are
    # never features, so this is the only place a cohort of the ledger gets them. Never used to score.
    protected = models.JSONField(default=dict, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    recorded_by_username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"outcome of decision {self.decision_id}: {'default' if self.defaulted else 'performing'}"


class Alert(models.Model):
    """A monitoring result past its threshold: raised by a run, acknowledged by compliance staff."""

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"

    registered_model = models.ForeignKey("riskmodels.RegisteredModel", on_delete=models.PROTECT, related_name="alerts")
    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT, related_name="alerts")
    run = models.ForeignKey(MonitoringRun, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    metric = models.CharField(max_length=200)  # e.g. "psi:score", "csi:credit_amount", "auc", "fairness:age"
    value = models.FloatField()
    threshold = models.FloatField()
    light = models.CharField(max_length=10, choices=MonitoringRun.Light.choices)
    window = models.JSONField(default=dict)  # {"start": ..., "end": ...} or {"dataset_version": id}
    message = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_by_username = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    # {"attempt": n, "webhook": {"state", "status" or "error", "at"}, "email": {"state", "recipients" or "error", "at"}}
    notified = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"alert {self.pk}: {self.metric} {self.light} on {self.registered_model_id}"

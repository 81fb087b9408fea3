"""The decision ledger: every scored application, which approved version decided it and why, and overrides."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from riskmodels.models.base import ImmutableModel


class Outcome(models.TextChoices):
    APPROVE = "approve", "Approve"
    REFER = "refer", "Refer"
    DECLINE = "decline", "Decline"


class ExplainerRecord(ImmutableModel):
    """One explainer configuration, stored once and named by the SHA-256 of its canonical JSON.

    Every ledger entry names the fingerprint of the explainer that gave its reasons; a million
    rows of a batch share one row here instead of each carrying the whole record.
    """

    sha256 = models.CharField(max_length=64, primary_key=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.data.get('explainer', '?')} {self.sha256[:12]}"


class CreditDecision(ImmutableModel):
    """One scored application: inputs (or their hash), PD, decision, reasons, policy, version, caller.

    Append-only, in the database too (``governance/append_only.py``): no UPDATE, no TRUNCATE, and a
    DELETE only of a row older than the legal floor whose model is not under a legal hold (the
    retention purge). ``decisive`` is False for a challenger scored in shadow mode beside the champion.
    """

    class Source(models.TextChoices):
        API = "api", "API request"
        BATCH = "batch", "Batch scoring job"

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reference = models.CharField(max_length=200, db_index=True)
    # No single-column indexes on the foreign keys: the composite indexes below (and the unique
    # (job, row) one) serve their lookups, and every index is paid on each of a batch's million inserts.
    registered_model = models.ForeignKey("riskmodels.RegisteredModel", on_delete=models.PROTECT,
                                         related_name="credit_decisions", db_index=False)
    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT,
                                      related_name="credit_decisions", db_index=False)
    decisive = models.BooleanField(default=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    features = models.JSONField(null=True, blank=True)  # None when the model keeps only the hash
    features_sha256 = models.CharField(max_length=64)
    pd = models.FloatField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    band = models.CharField(max_length=20)
    reasons = models.JSONField(default=list)
    contributions = models.JSONField(default=dict)  # log-odds of default, per feature
    base_log_odds = models.FloatField()
    flags = models.JSONField(default=list)
    flag_details = models.JSONField(default=dict)
    policy = models.JSONField()  # the scoring policy in force: cutoff, refer band, bands, materiality
    fingerprint = models.ForeignKey(ExplainerRecord, on_delete=models.PROTECT, related_name="+", db_index=False)
    request_id = models.CharField(max_length=100, blank=True)
    job = models.ForeignKey("riskmodels.Job", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                            db_index=False)
    row = models.BigIntegerField(null=True, blank=True)  # the dataset row a batch job scored
    # No database constraint and DO_NOTHING, as on the audit log: deleting a user must not UPDATE a row
    # of the append-only ledger (its trigger would refuse); actor_username keeps who it was.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+",
                              db_index=False, db_constraint=False)
    actor_username = models.CharField(max_length=150)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["registered_model", "created_at"]),
                   models.Index(fields=["model_version", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(pd__gte=0) & models.Q(pd__lte=1), name="decision_pd_in_unit"),
            models.CheckConstraint(condition=models.Q(outcome__in=Outcome.values), name="decision_outcome_known"),
            # A batch chunk that runs twice (a redelivered task) records each row once.
            models.UniqueConstraint(fields=["job", "row"], condition=models.Q(job__isnull=False),
                                    name="decision_one_per_batch_row"),
        ]

    def __str__(self) -> str:
        return f"decision {self.pk} ({self.reference}: {self.outcome})"


class OverrideReason(models.TextChoices):
    VERIFIED_INCOME = "verified_income", "Income or assets verified beyond the application"
    COLLATERAL = "collateral", "Collateral or guarantee offered"
    RELATIONSHIP = "relationship", "Existing relationship and repayment history"
    DATA_ERROR = "data_error", "The application data was wrong"
    POLICY_RULE = "policy_rule", "A credit policy rule outside the model"
    FRAUD_SUSPECTED = "fraud_suspected", "Fraud suspected"
    OTHER = "other", "Other (explained in the text)"


class DecisionOverride(ImmutableModel):
    """An underwriter's override of one decisive ledger entry: the new outcome and why."""

    decision = models.OneToOneField(CreditDecision, on_delete=models.PROTECT, related_name="override")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=30, choices=OverrideReason.choices)
    text = models.TextField()
    # As on the ledger: a user's deletion leaves the override untouched (its trigger refuses UPDATE).
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+",
                              db_constraint=False)
    actor_username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(outcome__in=Outcome.values), name="override_outcome_known"),
            models.CheckConstraint(condition=models.Q(reason__in=OverrideReason.values),
                                   name="override_reason_known"),
        ]

    def __str__(self) -> str:
        return f"override of decision {self.decision_id} to {self.outcome}"

"""Registered models, their immutable versions, and evaluations of those versions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from riskmodels.models.base import ImmutableModel

MODEL_NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,99}$",
    "Model names are 1-100 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class RiskTier(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class ModelType(models.TextChoices):
    APPLICATION_PD = "application_pd", "Application PD"
    BEHAVIOURAL_PD = "behavioural_pd", "Behavioural PD"
    LGD = "lgd", "LGD"
    OTHER = "other", "Other"


class LedgerInputs(models.TextChoices):
    FULL = "full", "The input features"
    HASH = "hash", "Only the SHA-256 of the input features"


class RegisteredModel(models.Model):
    """Name a model in the inventory (e.g. ``retail-pd``): owner, purpose, risk tier, review schedule and floors.

    The performance floors are checked at submission and approval; the review cadence comes
    from the tier unless set (settings.REVIEW_CADENCE_MONTHS) and moves ``next_review_date``.
    """

    name = models.CharField(max_length=100, unique=True, validators=[MODEL_NAME_VALIDATOR])
    # Who may see it and everything made from it (governance.policy.team_ids_visible_to);
    # ``owner_team`` is the inventory's free-text name of the accountable business unit.
    team = models.ForeignKey("governance.Team", on_delete=models.PROTECT, related_name="+")
    owner_team = models.CharField(max_length=100)
    purpose = models.TextField()
    description = models.TextField(blank=True)
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    model_type = models.CharField(max_length=20, choices=ModelType.choices, default=ModelType.OTHER)
    business_use = models.TextField(blank=True, help_text="The business use and the decisions the model drives.")
    limitations = models.TextField(blank=True, help_text="Known limitations of the model.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="The accountable owner.")
    review_cadence_months = models.PositiveSmallIntegerField(null=True, blank=True,
                                                             help_text="Empty: the tier's default.")
    next_review_date = models.DateField(null=True, blank=True)
    overdue_flagged_for = models.DateField(null=True, blank=True)  # the due date already audited as overdue
    min_auc = models.FloatField(null=True, blank=True)
    min_ks = models.FloatField(null=True, blank=True)
    max_brier = models.FloatField(null=True, blank=True)
    max_calibration_gap = models.FloatField(null=True, blank=True)
    # Overrides of the validation battery's thresholds for this model (riskmodels.ml.validation.Thresholds
    # field -> number), on top of its tier's defaults (settings.BATTERY_THRESHOLDS_BY_TIER).
    battery_thresholds = models.JSONField(default=dict, blank=True)
    # How a PD becomes a decision (riskmodels.ml.scoring.ScoringPolicy: cutoff, refer band, bands,
    # materiality); empty until a compliance officer sets the cutoff, and nothing scores before.
    scoring_policy = models.JSONField(default=dict, blank=True)
    ledger_inputs = models.CharField(max_length=10, choices=LedgerInputs.choices, default=LedgerInputs.FULL)
    # Features an applicant could change, offered in counterfactuals; empty means every feature that is
    # neither protected nor in settings.COUNTERFACTUAL_IMMUTABLE_FEATURES.
    actionable_features = models.JSONField(default=list, blank=True)
    # Overrides of settings.MONITORING_THRESHOLDS for this model (psi_amber, psi_red, csi_amber,
    # csi_red, auc_drop_amber, auc_drop_red, ...); checked in riskmodels.services.reviews.
    monitoring_thresholds = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(review_cadence_months__isnull=True)
                                   | models.Q(review_cadence_months__gte=1), name="review_cadence_positive"),
        ]

    @property
    def floors(self) -> dict[str, float]:
        """Return the performance floors that are set, by name."""
        names = ("min_auc", "min_ks", "max_brier", "max_calibration_gap")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    TRAINED = "trained", "Trained"
    SUBMITTED = "submitted", "Submitted for validation"
    IN_VALIDATION = "in_validation", "In validation"
    VALIDATED = "validated", "Validated"
    RETURNED = "returned", "Returned to the developer"
    REJECTED = "rejected", "Rejected"
    APPROVED = "approved", "Approved"
    CHAMPION = "champion", "Champion"
    RETIRED = "retired", "Retired"


class ModelVersion(ImmutableModel):
    """Record one trained model: what reproduces it (data, spec, seed, library versions) and its artifact.

    Created only by a successful training job, in the same transaction that finishes the job.
    The record never changes; only its lifecycle ``status`` moves, by a conditional UPDATE in
    riskmodels/services/lifecycle.py (``status_revision`` makes concurrent moves exclusive).
    At most one version of a model is the champion: the database refuses a second.
    """

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    dataset_sha256 = models.CharField(max_length=64)
    # TrainingSpec.to_dict(): algorithm, target, positive class, features, categorical,
    # hyperparameters (defaults filled), seed, split, search.
    spec = models.JSONField()
    algorithm = models.CharField(max_length=40, db_index=True)
    # Protected or excluded columns used as features by explicit request, or [].
    allowed_exceptions = models.JSONField(default=list)
    preprocessing = models.JSONField()
    environment = models.JSONField()
    artifact_path = models.CharField(max_length=300)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.BigIntegerField()
    search_results = models.JSONField(null=True, blank=True)
    split_summary = models.JSONField()
    timings = models.JSONField()
    training_job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_version")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_username = models.CharField(max_length=150)
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.TRAINED,
                              db_index=True)
    status_revision = models.PositiveIntegerField(default=0)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["registered_model__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "version"], name="model_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="model_version_positive"),
            models.UniqueConstraint(fields=["registered_model"], condition=models.Q(status="champion"),
                                    name="one_champion_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model.name} v{self.version}"


class Evaluation(ImmutableModel):
    """Record the credit-risk metrics of a model version on one dataset (its test split or another version)."""

    class Scope(models.TextChoices):
        TEST_SPLIT = "test_split", "Test split of the training data"
        DATASET = "dataset", "A whole dataset version"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="evaluations")
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=20, choices=Scope.choices)
    threshold = models.FloatField()
    metrics = models.JSONField()
    train_metrics = models.JSONField(null=True, blank=True)
    degradation = models.JSONField(null=True, blank=True)
    # {"roc": "models/.../roc.png", ...} paths in the default storage.
    plots = models.JSONField(default=dict)
    # riskmodels.ml.fairness's report per protected column, or {"columns": [], "note": ...} when the data marks
    # none protected; {} on evaluations recorded before the test existed.
    fairness = models.JSONField(default=dict, blank=True)
    job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_evaluation")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(threshold__gt=0) & models.Q(threshold__lt=1),
                                   name="evaluation_threshold_in_unit_interval"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} on {self.dataset_version} ({self.scope})"

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


class RegisteredModel(models.Model):
    """Name a model in the inventory (e.g. ``retail-pd``), owned by a team, for a stated purpose."""

    name = models.CharField(max_length=100, unique=True, validators=[MODEL_NAME_VALIDATOR])
    owner_team = models.CharField(max_length=100)
    purpose = models.TextField()
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(ImmutableModel):
    """Record one trained model: what reproduces it (data, spec, seed, library versions) and its artifact.

    Created only by a successful training job, in the same transaction that finishes the job.
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

    class Meta:
        ordering = ["registered_model__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "version"], name="model_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="model_version_positive"),
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

"""Datasets and their immutable, content-hashed versions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from riskmodels.models.base import ImmutableModel

DATASET_NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,99}$",
    "Dataset names are 1-100 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class ColumnRole(models.TextChoices):
    FEATURE = "feature"
    TARGET = "target"
    PROTECTED = "protected"
    IDENTIFIER = "identifier"
    EXCLUDED = "excluded"


class Dataset(models.Model):
    """Name a family of dataset versions (e.g. ``german-credit``)."""

    name = models.CharField(max_length=100, unique=True, validators=[DATASET_NAME_VALIDATOR])
    # Who may see it and everything made from it (governance.policy.team_ids_visible_to).
    team = models.ForeignKey("governance.Team", on_delete=models.PROTECT, related_name="+")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(ImmutableModel):
    """Record one immutable snapshot of a dataset, stored as Parquet and identified by its SHA-256."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    storage_path = models.CharField(max_length=300)
    size_bytes = models.BigIntegerField()
    n_rows = models.BigIntegerField()
    n_columns = models.PositiveIntegerField()
    # [{"name": ..., "dtype": ..., "role": ...}, ...] in file order.
    schema = models.JSONField()
    profile = models.JSONField()
    target = models.CharField(max_length=200, blank=True)
    source_filename = models.CharField(max_length=255, blank=True)
    source_format = models.CharField(max_length=10)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["dataset__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="dataset_version_positive"),
            models.CheckConstraint(condition=models.Q(n_rows__gte=1), name="dataset_version_has_rows"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.version}"

    @property
    def columns_by_role(self) -> dict[str, list[str]]:
        """Return column names grouped by role."""
        grouped: dict[str, list[str]] = {}
        for column in self.schema:
            grouped.setdefault(column["role"], []).append(column["name"])
        return grouped


class ProtectedCharacteristic(models.Model):
    """One entry of the catalogue of protected characteristics that uploads are checked against.

    Compliance officers edit it; ``name_words`` and ``value_words`` are comma-separated words
    (a trailing ``*`` matches a word's start). See riskmodels/ml/protected.py.
    """

    name = models.CharField(max_length=100, unique=True)
    name_words = models.CharField(max_length=500, help_text="Words of a column name, comma-separated; 'relig*' "
                                                            "matches words starting with 'relig'.")
    value_words = models.CharField(max_length=500, blank=True,
                                   help_text="Words of a column's values, comma-separated (two values must match).")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

"""Long-running work as rows with a state machine, claimed by workers with a conditional UPDATE."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class JobKind(models.TextChoices):
    TRAIN = "train", "Train a model version"
    EVALUATE = "evaluate", "Evaluate a model version"
    REPRODUCE = "reproduce", "Re-train and compare predictions"
    EXPLAIN = "explain", "Explain a model version (SHAP)"
    VALIDATE = "validate", "Run the validation battery"
    BATCH_SCORE = "batch_score", "Score a dataset version with the champion"
    PERFORMANCE = "performance", "Measure the champion on observed outcomes"
    MONITORING_REFERENCE = "monitoring_reference", "Freeze a new champion's monitoring reference"
    STABILITY = "stability", "Stability run (PSI of the score, CSI of each feature)"
    DOCUMENTATION_PACK = "documentation_pack", "Generate a documentation pack (HTML, PDF, JSON)"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """Track one unit of worker work: who asked, what it needs, how far it got, how it ended.

    Transitions: queued → running → succeeded | failed | cancelled; queued → cancelled;
    running → queued only when a job is retried because its worker died (the reaper) or its
    pool process did (``job_attempt_lost``). Terminal states are final. ``heartbeat_at`` is
    the lease a running worker renews; ``worker`` names the process (host:pid:thread).
    """

    kind = models.CharField(max_length=20, choices=JobKind.choices, db_index=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    params = models.JSONField()
    registered_model = models.ForeignKey("riskmodels.RegisteredModel", null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="jobs")
    model_version = models.ForeignKey("riskmodels.ModelVersion", null=True, blank=True,
                                      on_delete=models.PROTECT, related_name="jobs")
    dataset_version = models.ForeignKey("riskmodels.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    progress_stage = models.CharField(max_length=40, default="queued")
    progress_percent = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=2)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_username = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress_percent__lte=100), name="job_progress_at_most_100"),
            models.CheckConstraint(condition=models.Q(attempts__lte=models.F("max_attempts")),
                                   name="job_attempts_within_cap"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="job_lease_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job #{self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobChunk(models.Model):
    """Track one slice of a job's rows, claimed by one worker task.

    A job whose work is cut into chunks (a SHAP report today) runs them as parallel tasks
    with bounded memory each; the task that finishes the last chunk merges them
    (riskmodels/jobs/runner.py).
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"

    job = models.ForeignKey("riskmodels.Job", on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start = models.PositiveIntegerField()
    stop = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    path = models.CharField(max_length=300, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="job_chunk_unique"),
            models.CheckConstraint(condition=models.Q(stop__gt=models.F("start")), name="job_chunk_nonempty"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of job {self.job_id} ({self.status})"

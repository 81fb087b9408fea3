"""Compliance-domain tables: the append-only, hash-chained audit log; teams and who belongs to them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    """Record one state-changing action; rows are only ever appended, never changed.

    ``hash`` is the SHA-256 of the canonical bytes of this row's fields including
    ``prev_hash``, so editing, deleting, inserting or reordering any row breaks the chain
    from that row on (see ``governance.audit.audit_verify``).
    """

    seq = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    # No database constraint and DO_NOTHING: deleting a user must not rewrite a hashed
    # row; the copied username keeps the record readable after the user is gone.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True, db_index=True)
    target_id = models.CharField(max_length=100, blank=True, db_index=True)
    target_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seq_positive")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.target_type}:{self.target_id} by {self.actor_username}"

    def save(self, *args: object, **kwargs: object) -> None:
        # The append-only rule is an invariant of the table, not a workflow: refuse updates.
        if self.pk is not None:
            raise ValueError("audit events are append-only and cannot be modified")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("audit events are append-only and cannot be deleted")


class AuditHead(models.Model):
    """Hold the chain's latest sequence number and hash (a single row, id 1).

    Updated in the same transaction as every append; lets verification notice a
    deleted tail, which the chain alone cannot show.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_head_singleton")]

    def __str__(self) -> str:
        return f"audit head #{self.seq}"


class Team(models.Model):
    """Name a group of people who own datasets and models; the boundary of what a member sees.

    Every dataset and registered model belongs to one team; everything made from them (versions,
    jobs, evaluations, reports, decisions, findings, alerts, runs) inherits it through its foreign
    keys. Who sees which team is ``governance.policy.team_ids_visible_to``.
    """

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserProfile(models.Model):
    """Hold what governance records about a user beyond Django's auth tables.

    ``sees_all_teams`` gives a validator, compliance officer or auditor every team, present and
    future (second-line and third-line oversight); the policy ignores it for other roles.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="governance_profile")
    sees_all_teams = models.BooleanField(default=False, help_text="Validators, compliance officers and auditors "
                                                                  "only: see every team's data, not just their own.")

    def __str__(self) -> str:
        return f"profile of {self.user}"

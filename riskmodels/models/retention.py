"""Legal holds: while a model is held, none of its records may be purged, whatever their age."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class LegalHold(models.Model):
    """Suspend the retention purge of one model's records (its ledger, outcomes, batch outputs).

    Placed and lifted only through ``riskmodels.services.legal_holds`` (compliance officers,
    audited, with a reason). A lifted hold stays as the record of when the model was held and why.
    The decision ledger's delete trigger reads this table too, so the database itself refuses
    to delete a held model's decisions.
    """

    registered_model = models.ForeignKey("riskmodels.RegisteredModel", on_delete=models.PROTECT,
                                         related_name="legal_holds")
    reason = models.TextField()
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    placed_by_username = models.CharField(max_length=150)
    placed_at = models.DateTimeField(default=timezone.now)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    lifted_by_username = models.CharField(max_length=150, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            # Two concurrent placements: one wins, the other gets an IntegrityError (409 already_held).
            models.UniqueConstraint(fields=["registered_model"], condition=models.Q(lifted_at__isnull=True),
                                    name="legal_hold_one_open_per_model"),
            models.CheckConstraint(condition=models.Q(lifted_at__isnull=True) | ~models.Q(lift_reason=""),
                                   name="legal_hold_lifted_with_a_reason"),
        ]

    def __str__(self) -> str:
        state = "open" if self.lifted_at is None else "lifted"
        return f"legal hold {self.pk} on {self.registered_model_id} ({state})"

    @property
    def is_open(self) -> bool:
        return self.lifted_at is None

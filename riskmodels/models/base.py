"""Shared model bases of the ML domain."""

from __future__ import annotations

from django.db import models


class ImmutableModel(models.Model):
    """A record that is evidence: created once, never rewritten through the ORM."""

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        # _state.adding, not pk: a record keyed by its content hash has its key before the first save.
        if not self._state.adding:
            raise ValueError(f"{self._meta.verbose_name_plural} are immutable")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

"""Legal holds: a compliance officer suspends the retention purge of a model's records, and lifts it; audited."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import LegalHold, RegisteredModel

REASON_MAX_CHARS = 2000


def _reason(value: Any, field: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > REASON_MAX_CHARS:
        raise ValidationFailed(f"{field} must say why, in at most {REASON_MAX_CHARS} characters",
                               code="reason_required", details={"field": field})
    return text


def legal_hold_place(*, user: Any, model: RegisteredModel, reason: str) -> LegalHold:
    """Place a legal hold on ``model``: from now on none of its records is purged; 409 if one is open."""
    require(user, Capability.LEGAL_HOLD_MANAGE)
    reason = _reason(reason, "reason")
    try:
        with transaction.atomic():
            # The partial unique index, not a prior check, decides between two concurrent placements.
            hold = LegalHold.objects.create(registered_model=model, reason=reason, placed_by=user,
                                            placed_by_username=user.username)
            audit_record(actor=user, action="legal_hold.placed", target=model,
                         after={"legal_hold": hold.pk, "reason": reason, "placed_at": hold.placed_at})
    except IntegrityError:
        raise Conflict(f"model {model.name!r} is already under an open legal hold", code="already_held") from None
    return hold


def legal_hold_lift(*, user: Any, hold: LegalHold, reason: str) -> LegalHold:
    """Lift an open legal hold with a reason; the purge applies to the model's records again. 409 if lifted."""
    require(user, Capability.LEGAL_HOLD_MANAGE)
    reason = _reason(reason, "reason")
    now = timezone.now()
    with transaction.atomic():
        # A conditional UPDATE: of two concurrent lifts exactly one records its reason.
        lifted = LegalHold.objects.filter(pk=hold.pk, lifted_at__isnull=True).update(
            lifted_at=now, lifted_by=user, lifted_by_username=user.username, lift_reason=reason)
        if not lifted:
            raise Conflict(f"legal hold {hold.pk} is not open: it was lifted already", code="not_held")
        hold = LegalHold.objects.select_related("registered_model").get(pk=hold.pk)
        audit_record(actor=user, action="legal_hold.lifted", target=hold.registered_model,
                     before={"legal_hold": hold.pk, "reason": hold.reason, "placed_at": hold.placed_at,
                             "placed_by": hold.placed_by_username},
                     after={"legal_hold": hold.pk, "lift_reason": reason, "lifted_at": now})
    return hold

"""Underwriters' overrides of ledger decisions: a new outcome, a reason from the list, and free text; audited."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import CreditDecision, DecisionOverride, Outcome, OverrideReason


def decision_override(*, actor: Any, decision: CreditDecision, outcome: str, reason: str,
                      text: str) -> DecisionOverride:
    """Record an override of a decisive ledger entry (one per decision; the ledger row itself never changes)."""
    require(actor, Capability.DECISION_OVERRIDE)
    if outcome not in Outcome.values:
        raise ValidationFailed(f"outcome must be one of {', '.join(Outcome.values)}", code="invalid_outcome",
                               details={"field": "outcome"})
    if reason not in OverrideReason.values:
        raise ValidationFailed(f"reason must be one of {', '.join(OverrideReason.values)}", code="invalid_reason",
                               details={"field": "reason"})
    text = text.strip() if isinstance(text, str) else ""
    if not text or len(text) > 2000:
        raise ValidationFailed("text must say why, in at most 2000 characters", code="text_required",
                               details={"field": "text"})
    if not decision.decisive:
        raise Conflict("a shadow decision decided nothing and cannot be overridden", code="not_decisive")
    if outcome == decision.outcome:
        raise ValidationFailed(f"the decision already is {outcome}: an override changes the outcome",
                               code="same_outcome", details={"field": "outcome"})
    try:
        with transaction.atomic():
            override = DecisionOverride.objects.create(decision=decision, outcome=outcome, reason=reason, text=text,
                                                       actor=actor, actor_username=actor.username)
            audit_record(actor=actor, action="decision.overridden", target=decision, after={
                "override": override.pk, "from": decision.outcome, "to": outcome, "reason": reason, "text": text,
                "reference": decision.reference, "model_version": decision.model_version_id})
    except IntegrityError:
        raise Conflict(f"decision {decision.pk} is already overridden", code="already_overridden") from None
    return override

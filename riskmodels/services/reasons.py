"""The per-model catalogue of reason texts that compliance staff maintain; every edit is audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from governance.policy import Capability, require
from riskmodels.models import ReasonText, RegisteredModel


def reason_text_set(*, actor: Any, registered_model: RegisteredModel, feature: str, text: str) -> ReasonText:
    """Create or change the reason text for ``feature`` of ``registered_model`` (compliance officers)."""
    require(actor, Capability.REASON_TEXT_EDIT)
    feature, text = (feature or "").strip(), (text or "").strip()
    if not feature or not text:
        raise ValidationFailed("feature and text are both required", code="invalid")
    if len(text) > 300:
        raise ValidationFailed("a reason text is at most 300 characters", code="invalid", details={"field": "text"})
    with transaction.atomic():
        current = ReasonText.objects.select_for_update().filter(registered_model=registered_model,
                                                                feature=feature).first()
        before = {"feature": feature, "text": current.text} if current else None
        if current is None:
            current = ReasonText.objects.create(registered_model=registered_model, feature=feature, text=text,
                                                updated_by=actor)
        elif current.text != text:
            current.text, current.updated_by = text, actor
            current.save(update_fields=["text", "updated_by", "updated_at"])
        else:
            return current
        audit_record(actor=actor, action="reason_text.set", target=current, before=before,
                     after={"registered_model": registered_model.name, "feature": feature, "text": text})
    return current


def reason_text_delete(*, actor: Any, reason: ReasonText) -> None:
    """Remove a reason text (the feature falls back to the default text); audited."""
    require(actor, Capability.REASON_TEXT_EDIT)
    with transaction.atomic():
        audit_record(actor=actor, action="reason_text.deleted", target=reason,
                     before={"registered_model": reason.registered_model.name, "feature": reason.feature,
                             "text": reason.text})
        reason.delete()

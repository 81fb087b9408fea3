"""Reads of legal holds: whoever may see a model (through its selector, so its scoping applies) sees its holds."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.models import LegalHold
from riskmodels.selectors import registered_model_get_for_user


def legal_hold_list_for_user(*, user: Any, name: str) -> QuerySet[LegalHold]:
    """Return the legal holds of the model named ``name``, open and lifted, newest first."""
    model = registered_model_get_for_user(user=user, name=name)
    return LegalHold.objects.filter(registered_model=model).select_related("registered_model")


def legal_hold_get_for_user(*, user: Any, id: Any) -> LegalHold:
    """Return one legal hold, or raise NotFound / PermissionDenied (as for its model)."""
    require(user, Capability.DOMAIN_READ)  # before the lookup: an outsider learns nothing of which ids exist
    try:
        hold = LegalHold.objects.select_related("registered_model").get(pk=id)
    except (LegalHold.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"legal hold {id} does not exist") from None
    registered_model_get_for_user(user=user, name=hold.registered_model.name)
    return hold

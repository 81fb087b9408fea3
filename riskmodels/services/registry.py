"""Registered models: create them (audited)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from governance.audit import audit_chain_lock, audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require, team_for_new_object
from riskmodels.models import RegisteredModel
from riskmodels.models.registry import MODEL_NAME_VALIDATOR


def registered_model_create(*, actor: Any, name: str, owner_team: str, purpose: str,
                            description: str = "", team: str | None = None) -> RegisteredModel:
    """Add a model to the inventory of ``team`` (a slug; default: the actor's only team); only developers do."""
    require(actor, Capability.MODEL_REGISTER)
    owning_team = team_for_new_object(actor, team)
    if not MODEL_NAME_VALIDATOR.regex.match(name or ""):
        raise ValidationFailed(str(MODEL_NAME_VALIDATOR.message), code="invalid_name", details={"field": "name"})
    if not owner_team.strip() or not purpose.strip():
        raise ValidationFailed("owner_team and purpose are required: the inventory must say who owns a model and why",
                               code="invalid")
    try:
        with transaction.atomic():
            model = RegisteredModel.objects.create(name=name, team=owning_team, owner_team=owner_team.strip(),
                                                   purpose=purpose.strip(), description=description, created_by=actor)
            audit_record(actor=actor, action="registered_model.created", target=model,
                         after={"name": name, "team": owning_team.slug, "owner_team": model.owner_team,
                                "purpose": model.purpose})
    except IntegrityError:
        raise Conflict(f"a model named {name!r} already exists", code="duplicate_name") from None
    return model


def registered_model_lock(*, id: int) -> RegisteredModel:
    """Lock a registered model's row for this transaction (e.g. to number its next version); return it.

    The audit chain's lock comes first (audit_chain_lock says why), and the row lock is FOR NO
    KEY UPDATE: it serialises the writers that lock the model, but not the inserts of rows
    that merely reference it (jobs, versions), whose foreign key takes a KEY SHARE lock.
    """
    audit_chain_lock()
    return RegisteredModel.objects.select_for_update(no_key=True).get(pk=id)

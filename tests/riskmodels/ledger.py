"""Ledger rows with a chosen decision time, for the append-only and retention tests.

``CreditDecision.created_at`` is ``auto_now_add`` and the ledger refuses UPDATE, so an old row is
created old: the clock Django's ``pre_save`` reads is set back while the rows are inserted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.test import override_settings

from governance.accounts import user_upsert
from governance.roles import Role
from riskmodels.models import CreditDecision, ExplainerRecord, ModelVersion, RegisteredModel
from tests.conftest import media_settings, module_media, register_demo_dataset, register_model, train_version

NOW = dt.datetime.now(dt.UTC)
YOUNG = NOW - dt.timedelta(days=30)
OLD = NOW - dt.timedelta(days=800)  # past the 25-month floor (about 761 days)


@dataclass(frozen=True)
class LedgerWorld:
    model: RegisteredModel
    version: ModelVersion
    other_model: RegisteredModel
    other_version: ModelVersion


def ledger_world(prefix: str):  # noqa: ANN201
    """Return (shared_media, _isolated_media, world) fixtures: two models with a trained version each,
    committed once for the module and flushed at its end (assign all three in the module)."""
    shared_media, _isolated_media = module_media(prefix)

    @pytest.fixture(scope="module")
    def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN202
        with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
            owner, _ = user_upsert(username="owen-owner", role=Role.DEVELOPER)
            dataset_version = register_demo_dataset(owner)
            model, other = register_model(owner, "retail-pd"), register_model(owner, "cards-pd")
            yield LedgerWorld(model=model, version=train_version(owner, model, dataset_version),
                              other_model=other, other_version=train_version(owner, other, dataset_version))
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)

    return shared_media, _isolated_media, world


def ledger_entries(version: ModelVersion, n: int, *, decided_at: dt.datetime, **fields: Any) -> list[CreditDecision]:
    """Insert ``n`` ledger rows of ``version`` decided at ``decided_at`` (through the ORM; no scoring)."""
    fingerprint, _ = ExplainerRecord.objects.get_or_create(sha256="f" * 64, defaults={"data": {"explainer": "test"}})
    rows = [CreditDecision(reference=f"APP-{decided_at:%Y%m%d}-{i}", registered_model_id=version.registered_model_id,
                           model_version=version, features_sha256="0" * 64, pd=0.2, outcome="approve", band="B",
                           base_log_odds=-1.0, policy={"cutoff": 0.3}, fingerprint=fingerprint,
                           actor_username="uma-underwriter", **fields) for i in range(n)]
    with mock.patch("django.utils.timezone.now", return_value=decided_at):
        return CreditDecision.objects.bulk_create(rows)

"""The retention purge: expired records go (and say so in the audit chain), young and held ones stay,
a dry run changes nothing, the audit log is never a record type, and the legal floor holds everywhere."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import DatabaseError

from governance.audit import audit_verify
from governance.models import AuditEvent, AuditHead
from riskmodels.models import (
    CreditDecision,
    DecisionOverride,
    DocumentationPack,
    Job,
    JobKind,
    JobStatus,
    LegalHold,
    ObservedOutcome,
)
from riskmodels.services.retention import (
    RecordType,
    months_before,
    retention_purge,
    retention_register,
)
from tests.conftest import client_for
from tests.riskmodels.ledger import NOW, OLD, YOUNG, ledger_entries, ledger_world

pytestmark = pytest.mark.django_db

shared_media, _isolated_media, world = ledger_world("retention-media")
ROOT = Path(__file__).resolve().parents[2]


def _purge_events() -> dict[str, dict]:
    return {e.target_id: e.after for e in AuditEvent.objects.filter(action="retention.purged")}


def _expected_hash(ids: list[int]) -> str:
    # The documented encoding, recomputed here: ascending decimal ids, one per line.
    return hashlib.sha256("\n".join(str(i) for i in sorted(ids)).encode()).hexdigest()


def _outcome(decision: CreditDecision, recorded_at: dt.datetime) -> ObservedOutcome:
    with mock.patch("django.utils.timezone.now", return_value=recorded_at):
        return ObservedOutcome.objects.create(decision=decision, defaulted=False, observed_on=recorded_at.date(),
                                              recorded_by_username="dana-developer")


def test_the_purge_deletes_expired_unheld_decisions_keeps_young_and_held_ones_and_audits_each_type(world):  # noqa: ANN001
    expired = ledger_entries(world.version, 3, decided_at=OLD)
    young = ledger_entries(world.version, 2, decided_at=YOUNG)
    held = ledger_entries(world.other_version, 2, decided_at=OLD)
    LegalHold.objects.create(registered_model=world.other_model, reason="litigation", placed_by_username="carl")
    override = DecisionOverride.objects.create(decision=expired[0], outcome="decline", reason="other", text="t",
                                               actor_username="uma")
    outcome = _outcome(expired[1], YOUNG)  # recorded recently: it goes with its decision all the same

    report = {p.record_type: p for p in retention_purge(now=NOW)}

    assert not CreditDecision.objects.filter(pk__in=[d.pk for d in expired]).exists()
    assert CreditDecision.objects.filter(pk__in=[d.pk for d in young + held]).count() == 4
    assert not DecisionOverride.objects.filter(pk=override.pk).exists()
    assert not ObservedOutcome.objects.filter(pk=outcome.pk).exists()
    event = _purge_events()["decision_ledger"]
    expected_ids = [d.pk for d in expired]
    assert event["deleted"] == {
        "decision_ledger": {"count": 3, "ids_sha256": _expected_hash(expected_ids)},
        "decision_overrides": {"count": 1, "ids_sha256": _expected_hash([override.pk])},
        "observed_outcomes": {"count": 1, "ids_sha256": _expected_hash([outcome.pk])}}
    assert event["retention_months"] == 25 and event["setting"] == "RETENTION_DECISION_LEDGER_MONTHS"
    assert event["cutoff"] == months_before(NOW, 25).isoformat()
    assert report["decision_ledger"].deleted == event["deleted"]
    # One event per record type, each in its type's transaction, and the chain stays whole.
    assert set(_purge_events()) == {"decision_ledger", "observed_outcomes", "batch_scoring_outputs", "documentation_packs"}
    assert audit_verify().ok


def test_a_dry_run_reports_the_same_counts_and_hashes_and_changes_nothing(world):  # noqa: ANN001
    expired = ledger_entries(world.version, 2, decided_at=OLD)
    head = AuditHead.objects.get().seq
    dry = {p.record_type: p.deleted for p in retention_purge(dry_run=True, now=NOW)}
    assert CreditDecision.objects.filter(pk__in=[d.pk for d in expired]).count() == 2
    assert AuditHead.objects.get().seq == head and not _purge_events()
    real = {p.record_type: p.deleted for p in retention_purge(now=NOW)}
    assert dry == real and real["decision_ledger"]["decision_ledger"]["count"] == 2


def test_the_command_prints_what_it_purged_and_a_dry_run_says_nothing_was_written(world, capsys):  # noqa: ANN001
    ledger_entries(world.version, 2, decided_at=OLD)
    call_command("purge_expired", "--dry-run")
    out = capsys.readouterr().out
    assert "decision_ledger: would purge decision_ledger 2" in out and "nothing was written" in out
    assert CreditDecision.objects.count() == 2
    call_command("purge_expired")
    assert "decision_ledger: purged decision_ledger 2" in capsys.readouterr().out
    assert CreditDecision.objects.count() == 0


def test_a_longer_configured_retention_keeps_rows_past_the_floor(world, settings):  # noqa: ANN001
    settings.RETENTION_MONTHS = {**settings.RETENTION_MONTHS, "decision_ledger": 36}
    rows = ledger_entries(world.version, 1, decided_at=OLD)  # about 26 months old
    retention_purge(now=NOW)
    assert CreditDecision.objects.filter(pk=rows[0].pk).exists()
    assert _purge_events()["decision_ledger"]["retention_months"] == 36


def test_the_database_refuses_a_purge_below_the_floor_even_if_the_settings_were_bypassed(world, settings):  # noqa: ANN001
    # The startup check refuses such a setting; were it bypassed, the trigger still refuses, and the
    # type's transaction rolls back whole: nothing deleted, no event.
    settings.RETENTION_MONTHS = {**settings.RETENTION_MONTHS, "decision_ledger": 1}
    rows = ledger_entries(world.version, 1, decided_at=YOUNG - dt.timedelta(days=10))
    with pytest.raises(DatabaseError, match="25-month legal retention floor"):
        retention_purge(now=NOW)
    assert CreditDecision.objects.filter(pk=rows[0].pk).exists()
    assert "decision_ledger" not in _purge_events()


def test_expired_batch_outputs_lose_their_file_not_their_job_and_the_download_says_why(world, developer):  # noqa: ANN001
    path = default_storage.save("batch/old/decisions.parquet", ContentFile(b"parquet bytes"))
    job = Job.objects.create(kind=JobKind.BATCH_SCORE, status=JobStatus.SUCCEEDED, params={},
                             registered_model=world.model, model_version=world.version,
                             dataset_version=world.version.dataset_version, finished_at=OLD,
                             result={"output_path": path, "output_sha256": "x", "n_rows": 1},
                             requested_by_username="dana")
    retention_purge(now=NOW)
    assert not default_storage.exists(path)
    job.refresh_from_db()
    assert "output_path" not in job.result and job.result["n_rows"] == 1 and job.result["output_purged_at"]
    assert _purge_events()["batch_scoring_outputs"]["deleted"]["batch_scoring_outputs"]["count"] == 1
    response = client_for(developer).get(f"/api/v1/batch-scoring/{job.pk}/decisions.parquet")
    assert response.status_code == 404 and "purged" in response.json()["error"]["message"]


def test_a_held_models_batch_output_is_kept(world):  # noqa: ANN001
    path = default_storage.save("batch/held/decisions.parquet", ContentFile(b"parquet bytes"))
    Job.objects.create(kind=JobKind.BATCH_SCORE, status=JobStatus.SUCCEEDED, params={}, registered_model=world.model,
                       dataset_version=world.version.dataset_version, finished_at=OLD,
                       result={"output_path": path}, requested_by_username="dana")
    LegalHold.objects.create(registered_model=world.model, reason="litigation", placed_by_username="carl")
    retention_purge(now=NOW)
    assert default_storage.exists(path)


def _pack(version, created_at: dt.datetime, tag: str) -> tuple[DocumentationPack, list[str]]:  # noqa: ANN001
    paths = [default_storage.save(f"docpacks/{tag}/pack.{ext}", ContentFile(b"pack bytes")) for ext in ("json", "html", "pdf")]
    job = Job.objects.create(kind=JobKind.DOCUMENTATION_PACK, status=JobStatus.SUCCEEDED, params={},
                             registered_model=version.registered_model, model_version=version, finished_at=created_at,
                             dataset_version=version.dataset_version,
                             requested_by_username="vera")
    files = {ext: (path, "0" * 64, 10) for ext, path in zip(("json", "html", "pdf"), paths, strict=True)}
    with mock.patch("django.utils.timezone.now", return_value=created_at):
        pack = DocumentationPack.objects.create(
            model_version=version, job=job, schema="riskgov.docpack/1", pdf_pages=1, created_by_username="vera",
            **{f"{ext}_{field}": value for ext, (path, sha, size) in files.items()
               for field, value in (("path", path), ("sha256", sha), ("size", size))})
    return pack, paths


def test_documentation_packs_are_kept_ten_years_then_purged_with_their_files_unless_held(world):  # noqa: ANN001
    eleven_years_ago = NOW - dt.timedelta(days=11 * 366)
    expired, expired_files = _pack(world.version, eleven_years_ago, "expired")
    young, young_files = _pack(world.version, NOW - dt.timedelta(days=9 * 366), "young")
    held, held_files = _pack(world.other_version, eleven_years_ago, "held")
    LegalHold.objects.create(registered_model=world.other_model, reason="examination", placed_by_username="carl")

    retention_purge(now=NOW)

    assert set(DocumentationPack.objects.values_list("pk", flat=True)) == {young.pk, held.pk}
    assert not any(default_storage.exists(p) for p in expired_files)
    assert all(default_storage.exists(p) for p in young_files + held_files)
    event = _purge_events()["documentation_packs"]
    assert event["retention_months"] == 120 and event["files_removed"] == 3
    assert event["deleted"] == {"documentation_packs": {"count": 1, "ids_sha256": _expected_hash([expired.pk])}}
    assert audit_verify().ok


def test_the_registry_refuses_the_audit_log():
    for model in (AuditEvent, AuditHead):
        with pytest.raises(ValueError, match="never purged"):
            retention_register(RecordType(name="audit", model=model, setting="decision_ledger", env="X",
                                          expired=lambda cutoff: AuditEvent.objects.none(),
                                          delete=lambda ids: {}))


def test_months_before_clamps_to_the_end_of_the_month_as_postgresql_does():
    assert months_before(dt.datetime(2024, 3, 31, 12, tzinfo=dt.UTC), 25) == dt.datetime(2022, 2, 28, 12, tzinfo=dt.UTC)
    assert months_before(dt.datetime(2026, 12, 5, tzinfo=dt.UTC), 25) == dt.datetime(2024, 11, 5, tzinfo=dt.UTC)


def test_a_ledger_retention_below_the_legal_floor_refuses_to_start(tmp_path):  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**env, "VAR_DIR": str(tmp_path), "RETENTION_DECISION_LEDGER_MONTHS": "24"})
    assert result.returncode != 0
    assert "RETENTION_DECISION_LEDGER_MONTHS=24 is below the legal floor of 25 months" in result.stderr


def test_observed_outcomes_may_have_a_shorter_retention_than_their_decisions(world, settings):  # noqa: ANN001
    settings.RETENTION_MONTHS = {**settings.RETENTION_MONTHS, "observed_outcomes": 12}
    decision = ledger_entries(world.version, 1, decided_at=NOW - dt.timedelta(days=600))[0]
    outcome = _outcome(decision, NOW - dt.timedelta(days=400))
    retention_purge(now=NOW)
    assert not ObservedOutcome.objects.filter(pk=outcome.pk).exists()
    assert CreditDecision.objects.filter(pk=decision.pk).exists()
    assert _purge_events()["observed_outcomes"]["deleted"]["observed_outcomes"] == {
        "count": 1, "ids_sha256": _expected_hash([outcome.pk])}


def test_the_daily_beat_task_purges_and_a_second_delivery_purges_nothing_more(world):  # noqa: ANN001
    from django.conf import settings

    from governance.celery import app
    from riskmodels.jobs.dispatch import PURGE_EXPIRED

    assert settings.CELERY_BEAT_SCHEDULE["purge-expired"] == {"task": PURGE_EXPIRED, "schedule": 86400.0}
    app.loader.import_default_modules()  # the tasks, as a worker registers them (nothing imports them)
    ledger_entries(world.version, 2, decided_at=OLD)
    app.tasks[PURGE_EXPIRED]()
    app.tasks[PURGE_EXPIRED]()
    counts = [e.after["deleted"]["decision_ledger"]["count"]
              for e in AuditEvent.objects.filter(action="retention.purged", target_id="decision_ledger")]
    assert counts == [2, 0] and not CreditDecision.objects.exists()

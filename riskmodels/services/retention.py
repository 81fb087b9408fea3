"""The retention purge: a registry of record types, each deleting its expired rows unless their model is held.

Each record type is a small ``RecordType``: which rows have expired at a cutoff (never those of a
model under an open legal hold), how to delete them, and which files go with them. ``retention_purge``
walks the registry; each type is purged in its own transaction with one ``retention.purged`` audit
event (count, SHA-256 of the sorted purged ids, cutoff, the setting used) in that same transaction,
and its files are removed after the commit.

Registered here: the decision ledger (with its overrides and observed outcomes, which cannot outlive
the decision they belong to), observed outcomes on their own (personal data, possibly shorter),
batch-scoring output files (a copy of ledger rows) and documentation packs (their files and
records; the audit log keeps each pack's hashes). Deliberately not: dataset versions (they
are the evidence a model version was trained and validated on, kept as long as the model's
record), model versions, evaluations and reports, and the audit log, which is never purged
(``retention_register`` refuses it); audit exports are files named only by their audit event,
kept with the log.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from governance.audit import audit_record
from governance.models import AuditEvent, AuditHead
from riskmodels.models import (
    CreditDecision,
    DecisionOverride,
    DocumentationPack,
    Job,
    JobKind,
    LegalHold,
    ObservedOutcome,
)
from riskmodels.storage import delete_quietly

RETENTION_LABEL = "system:retention"
# Rows deleted per statement: keeps each IN (...) list within every database's parameter limit.
_BATCH = 2000


@dataclass(frozen=True)
class RecordType:
    """One kind of record the purge may delete.

    ``expired(cutoff)``: the rows older than ``cutoff`` whose model is not under an open legal hold;
    ``delete(ids)``: delete those rows (and whatever cannot outlive them), returning the count per
    kind deleted; ``files(ids)``: the stored files to remove once the deletion has committed.
    ``setting`` names the key of ``settings.RETENTION_MONTHS`` and ``env`` its variable.
    """

    name: str
    model: type[models.Model]
    setting: str
    env: str
    expired: Callable[[dt.datetime], QuerySet[Any]]
    delete: Callable[[list[Any]], dict[str, dict[str, Any]]]
    files: Callable[[list[Any]], list[str]] = field(default=lambda ids: [])


# Never purged: the audit log is the record of everything else, purges included.
NEVER_PURGED: tuple[type[models.Model], ...] = (AuditEvent, AuditHead)
REGISTRY: dict[str, RecordType] = {}


def retention_register(entry: RecordType) -> RecordType:
    """Add a record type to the purge; refuse the audit log and a name registered twice."""
    if entry.model in NEVER_PURGED or entry.name in {"audit_log", "audit_events"}:
        raise ValueError("the audit log is never purged: it records every purge, and its chain must stay whole")
    if entry.name in REGISTRY:
        raise ValueError(f"record type {entry.name!r} is registered already")
    REGISTRY[entry.name] = entry
    return entry


def months_before(moment: dt.datetime, months: int) -> dt.datetime:
    """Return ``moment`` minus whole calendar months, the day clamped to the month's end (as PostgreSQL does)."""
    years, month_index = divmod(moment.month - 1 - months, 12)
    year, month = moment.year + years, month_index + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def ids_sha256(ids: Iterable[Any]) -> str:
    """Return the SHA-256 of the ids in ascending order, as decimal text, one per line (no trailing newline)."""
    return hashlib.sha256("\n".join(str(i) for i in sorted(ids)).encode()).hexdigest()


def _held_models() -> QuerySet[Any]:
    return LegalHold.objects.filter(lifted_at__isnull=True).values("registered_model_id")


def _batches(ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start:start + _BATCH]


def _delete_ids(model: type[models.Model], column: str, ids: Sequence[Any]) -> list[Any]:
    """Delete the rows of ``model`` whose ``column`` is in ``ids``; return their primary keys."""
    deleted: list[Any] = []
    for batch in _batches(ids):
        rows = model.objects.filter(**{f"{column}__in": batch})
        deleted += list(rows.values_list("pk", flat=True))
        rows.delete()
    return deleted


def _summary(ids: list[Any]) -> dict[str, Any]:
    return {"count": len(ids), "ids_sha256": ids_sha256(ids)}


# --- The decision ledger ------------------------------------------------------------------------------

def _ledger_expired(cutoff: dt.datetime) -> QuerySet[CreditDecision]:
    return CreditDecision.objects.filter(created_at__lt=cutoff).exclude(registered_model_id__in=_held_models())


def _ledger_delete(ids: list[Any]) -> dict[str, dict[str, Any]]:
    # An override and an outcome belong to their decision (and PROTECT it): they go first, with it.
    overrides = _delete_ids(DecisionOverride, "decision_id", ids)
    outcomes = _delete_ids(ObservedOutcome, "decision_id", ids)
    decisions = _delete_ids(CreditDecision, "pk", ids)
    return {"decision_ledger": _summary(decisions), "decision_overrides": _summary(overrides),
            "observed_outcomes": _summary(outcomes)}


# --- Observed outcomes ------------------------------------------------------------------------------

def _outcomes_expired(cutoff: dt.datetime) -> QuerySet[ObservedOutcome]:
    return ObservedOutcome.objects.filter(created_at__lt=cutoff).exclude(
        decision__registered_model_id__in=_held_models())


def _outcomes_delete(ids: list[Any]) -> dict[str, dict[str, Any]]:
    return {"observed_outcomes": _summary(_delete_ids(ObservedOutcome, "pk", ids))}


# --- Batch-scoring output files -------------------------------------------------------------------------
# The job row stays (ledger rows name it); its result loses the output's path and says when it was purged.

def _batch_outputs_expired(cutoff: dt.datetime) -> QuerySet[Job]:
    return Job.objects.filter(kind=JobKind.BATCH_SCORE, finished_at__lt=cutoff, result__has_key="output_path") \
        .exclude(registered_model_id__in=_held_models())


def _batch_outputs_files(ids: list[Any]) -> list[str]:
    return [job.result["output_path"] for job in Job.objects.filter(pk__in=ids)]


def _batch_outputs_delete(ids: list[Any]) -> dict[str, dict[str, Any]]:
    now = timezone.now().isoformat()
    purged = []
    for job in Job.objects.select_for_update().filter(pk__in=ids):
        result = {k: v for k, v in job.result.items() if k != "output_path"}
        Job.objects.filter(pk=job.pk).update(result={**result, "output_purged_at": now})
        purged.append(job.pk)
    return {"batch_scoring_outputs": _summary(purged)}


retention_register(RecordType(
    name="observed_outcomes", model=ObservedOutcome, setting="observed_outcomes",
    env="RETENTION_OBSERVED_OUTCOME_MONTHS", expired=_outcomes_expired, delete=_outcomes_delete))
retention_register(RecordType(
    name="decision_ledger", model=CreditDecision, setting="decision_ledger", env="RETENTION_DECISION_LEDGER_MONTHS",
    expired=_ledger_expired, delete=_ledger_delete))
retention_register(RecordType(
    name="batch_scoring_outputs", model=Job, setting="batch_scoring_outputs",
    env="RETENTION_BATCH_SCORING_OUTPUT_MONTHS", expired=_batch_outputs_expired, delete=_batch_outputs_delete,
    files=_batch_outputs_files))


# --- Documentation packs -----------------------------------------------------------------------------------

def _packs_expired(cutoff: dt.datetime) -> QuerySet[DocumentationPack]:
    return DocumentationPack.objects.filter(created_at__lt=cutoff).exclude(
        model_version__registered_model_id__in=_held_models())


def _packs_files(ids: list[Any]) -> list[str]:
    return [path for pack in DocumentationPack.objects.filter(pk__in=ids)
            for path in (pack.json_path, pack.html_path, pack.pdf_path)]


def _packs_delete(ids: list[Any]) -> dict[str, dict[str, Any]]:
    return {"documentation_packs": _summary(_delete_ids(DocumentationPack, "pk", ids))}


retention_register(RecordType(
    name="documentation_packs", model=DocumentationPack, setting="documentation_packs",
    env="RETENTION_DOCUMENTATION_PACK_MONTHS", expired=_packs_expired, delete=_packs_delete, files=_packs_files))


# --- The purge --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PurgedType:
    """What the purge removed (or, in a dry run, would remove) of one record type."""

    record_type: str
    months: int
    setting: str
    cutoff: dt.datetime
    deleted: dict[str, dict[str, Any]]
    files: int
    audit_event: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"record_type": self.record_type, "retention_months": self.months, "setting": self.setting,
                "cutoff": self.cutoff.isoformat(), "deleted": self.deleted, "files_removed": self.files}


def retention_purge(*, dry_run: bool = False, now: dt.datetime | None = None) -> list[PurgedType]:
    """Delete every registered record type's expired, unheld rows; one transaction and one audit event per type.

    A dry run does the same work in the same transaction and rolls it back (so its counts and
    hashes are exactly the real run's, and the database's triggers are consulted), removes no file
    and leaves no audit event. The cutoff comes from the application's clock; the ledger's trigger
    uses the database's, so a row the two disagree about fails its type's purge rather than being
    deleted young.
    """
    now = now or timezone.now()
    report = []
    for entry in REGISTRY.values():
        months = settings.RETENTION_MONTHS[entry.setting]
        cutoff = months_before(now, months)
        with transaction.atomic():
            ids = sorted(entry.expired(cutoff).values_list("pk", flat=True))
            files = entry.files(ids) if ids else []
            deleted = entry.delete(ids) if ids else {entry.name: _summary([])}
            purged = PurgedType(entry.name, months, entry.env, cutoff, deleted, len(files), None)
            event = audit_record(actor=None, actor_label=RETENTION_LABEL, action="retention.purged",
                                 target_type="retention.record_type", target_id=entry.name,
                                 target_repr=f"retention purge of {entry.name}", after=purged.as_dict())
            if dry_run:
                transaction.set_rollback(True)
        if not dry_run:
            delete_quietly(files)  # after the commit: a purge that rolled back keeps its files
        report.append(PurgedType(entry.name, months, entry.env, cutoff, deleted, len(files),
                                 None if dry_run else event.seq))
    return report

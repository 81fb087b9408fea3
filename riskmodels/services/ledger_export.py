"""Export the decision ledger as CSV or JSON Lines, streamed, with the export itself audited.

CSV cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab,
a carriage return, a newline or NUL) are prefixed with an apostrophe: a reference or a reason
text is data from outside and must not execute on an examiner's machine. Numbers are written
by the exporter, not taken from text, so a negative contribution is never mistaken for one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from governance.audit import audit_record
from governance.exceptions import ValidationFailed
from riskmodels.models import CreditDecision
from riskmodels.selectors.decisions import credit_decision_list_for_user

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
COLUMNS = ["id", "created_at", "reference", "model", "model_version", "version", "decisive", "source", "pd",
           "decision", "score_band", "reasons", "flags", "features_sha256", "fingerprint", "request_id", "actor",
           "override_outcome", "override_reason"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def csv_safe(value: Any) -> Any:
    """Return ``value`` with a leading apostrophe if a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _record(entry: CreditDecision) -> dict[str, Any]:
    override = getattr(entry, "override", None)  # a missing reverse one-to-one raises an AttributeError
    return {
        "id": entry.pk, "created_at": entry.created_at.isoformat(), "reference": entry.reference,
        "model": entry.registered_model.name, "model_version": entry.model_version_id,
        "version": entry.model_version.version, "decisive": entry.decisive, "source": entry.source, "pd": entry.pd,
        "decision": entry.outcome, "score_band": entry.band, "reasons": entry.reasons, "flags": entry.flags,
        "features": entry.features, "features_sha256": entry.features_sha256, "fingerprint": entry.fingerprint_id,
        "request_id": entry.request_id, "actor": entry.actor_username,
        "override_outcome": override.outcome if override else None,
        "override_reason": override.reason if override else None,
    }


def _csv_rows(entries: QuerySet[CreditDecision]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for entry in entries.iterator(chunk_size=2000):
        record = _record(entry)
        record["reasons"] = ";".join(r["feature"] for r in record["reasons"])
        record["flags"] = ";".join(record["flags"])
        writer.writerow([csv_safe(record[c]) for c in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _jsonl_rows(entries: QuerySet[CreditDecision]) -> Iterator[str]:
    for entry in entries.iterator(chunk_size=2000):
        yield json.dumps(_record(entry), sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Export:
    rows: Iterator[str]
    content_type: str
    filename: str
    count: int


def decisions_export(*, actor: Any, fmt: str, filters: dict[str, Any]) -> Export:
    """Return the ledger entries matching ``filters`` as a streamed CSV or JSON Lines file; audit the export."""
    if fmt not in FORMATS:
        raise ValidationFailed(f"file_format must be one of {', '.join(FORMATS)}", code="invalid", details={"field": "file_format"})
    entries = credit_decision_list_for_user(user=actor, **filters).order_by("id")
    count = entries.count()
    with transaction.atomic():
        audit_record(actor=actor, action="decisions.exported", target_type="riskmodels.creditdecision",
                     after={"format": fmt, "filters": {k: v for k, v in filters.items() if v not in (None, "")},
                            "rows": count})
    rows = _csv_rows(entries) if fmt == "csv" else _jsonl_rows(entries)
    return Export(rows=rows, content_type=FORMATS[fmt], filename=f"decisions.{fmt}", count=count)

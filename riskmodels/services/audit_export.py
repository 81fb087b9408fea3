"""Export the audit trail for auditors and examiners: the events as JSON Lines (and CSV), with a manifest.

An export is synchronous and job-less: it streams the matching events into stored files
(atomically, through riskmodels/storage/files.py), writes a manifest (filters, row count, first
and last sequence numbers, the sequence ranges the filters left out, the chain head at the
export, each file's SHA-256, who exported and when), and records ``audit.exported`` with the
manifest's and the files' SHA-256 in the chain itself. The ``audit.exported`` event is the
export's record: downloads find their files through it, so no table of exports is needed.

The JSON Lines rows carry exactly the fields each event's hash covers (plus the hash), so
tools/verify_audit_export.py recomputes every hash offline. The CSV is for spreadsheets: cells
a spreadsheet would run as a formula are neutralised, and it is not what the verifier checks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from governance.audit import audit_record, hashed_fields
from governance.exceptions import NotFound, ValidationFailed
from governance.models import GENESIS_HASH, AuditEvent, AuditHead
from governance.policy import Capability, require
from riskmodels.selectors.audit_history import moment_until, parse_moment, registered_model_audit_filter
from riskmodels.services.ledger_export import csv_safe
from riskmodels.storage.files import HashingWriter, delete_quietly, save_bytes, save_stream

MANIFEST_FORMAT = "governance-audit-export/1"
FILE_FORMATS = ("jsonl", "csv")
CONTENT_TYPES = {"events.jsonl": "application/x-ndjson", "events.csv": "text/csv; charset=utf-8",
                 "manifest.json": "application/json"}
CSV_COLUMNS = ["seq", "created_at", "actor_id", "actor_username", "action", "target_type", "target_id",
               "target_repr", "before", "after", "request_id", "prev_hash", "hash"]
EXPORTED = "audit.exported"
TARGET_TYPE = "governance.auditexport"
VERIFIER = Path(settings.BASE_DIR) / "tools" / "verify_audit_export.py"


@dataclass(frozen=True)
class AuditExport:
    """A finished export: its id and its manifest (as stored)."""

    id: str
    manifest: dict[str, Any]
    manifest_sha256: str


def _filters(*, actor: Any, model: str, actor_username: str, action: str, since: str,
             until: str) -> tuple[Q, dict[str, str]]:
    """Validate the filters; return the query and the filters as the manifest records them."""
    query, used = Q(), {}
    if model:
        query &= registered_model_audit_filter(user=actor, name=model)
        used["model"] = model
    if actor_username:
        query &= Q(actor_username=actor_username)
        used["actor"] = actor_username
    if action:
        # "model_version." or "model_version.*" matches every action of that family; anything else exactly.
        prefix = action[:-1] if action.endswith("*") else action
        query &= Q(action__startswith=prefix) if prefix.endswith(".") else Q(action=action)
        used["action"] = action
    lower = parse_moment(since, field="since") if since else None
    up_to, upper, inclusive = moment_until(until, field="until") if until else (Q(), None, True)
    if lower and upper and (lower > upper or (lower == upper and not inclusive)):
        raise ValidationFailed(f"since ({since}) is after until ({until})", code="invalid",
                               details={"field": "since"})
    if lower:
        query &= Q(created_at__gte=lower)
        used["since"] = since
    if upper:
        query &= up_to
        used["until"] = until
    return query, used


@dataclass
class _Span:
    """What the manifest says about the rows written: how many, first and last seq, the ranges left out."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    gaps: list[list[int]] = field(default_factory=list)

    def add(self, seq: int) -> None:
        if self.last is not None and seq > self.last + 1:
            self.gaps.append([self.last + 1, seq - 1])
        self.first = seq if self.first is None else self.first
        self.last, self.count = seq, self.count + 1


def _write_jsonl(events: QuerySet[AuditEvent], span: _Span, handle: BinaryIO) -> None:
    for event in events.iterator(chunk_size=2000):
        row = {**hashed_fields(event), "hash": event.hash}
        # ASCII only: a line separator (U+2028) inside a string must not split the line for any reader.
        handle.write((json.dumps(row, sort_keys=True) + "\n").encode())
        span.add(event.seq)


def _write_csv(events: QuerySet[AuditEvent], handle: BinaryIO) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        row = {**hashed_fields(event), "hash": event.hash}
        for name in ("before", "after"):
            row[name] = "" if row[name] is None else json.dumps(row[name], sort_keys=True, ensure_ascii=False)
        writer.writerow([csv_safe(row[c]) for c in CSV_COLUMNS])
        handle.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()


def _store(path: str, write: Any) -> tuple[str, dict[str, Any]]:
    """Store what ``write(handle)`` writes; return the path used and the file's SHA-256 and size."""
    hashing: list[HashingWriter] = []

    def fill(handle: BinaryIO) -> None:
        hashing.append(HashingWriter(handle))
        write(hashing[0])

    stored = save_stream(path, fill)
    return stored, {"sha256": hashing[0].digest.hexdigest(), "bytes": hashing[0].position}


def audit_events_export(*, actor: Any, file_format: str, model: str = "", actor_username: str = "", action: str = "",
                        since: str = "", until: str = "") -> AuditExport:
    """Export the audit events matching the filters to stored files with a manifest; audit the export.

    Every filter is checked before anything is written: a bad one raises ValidationFailed (400)
    naming it. The events are those up to the chain head read at the start, so rows appended
    meanwhile (this export's own event included) never make the manifest inconsistent.
    """
    require(actor, Capability.AUDIT_READ)
    if file_format not in FILE_FORMATS:
        raise ValidationFailed(f"file_format must be one of {', '.join(FILE_FORMATS)}; got {file_format!r}",
                               code="invalid", details={"field": "file_format"})
    query, used = _filters(actor=actor, model=model, actor_username=actor_username, action=action,
                           since=since, until=until)
    head = AuditHead.objects.filter(id=1).values("seq", "hash").first() or {"seq": 0, "hash": GENESIS_HASH}
    events = AuditEvent.objects.filter(query, seq__lte=head["seq"]).order_by("seq")
    export_id = uuid.uuid4().hex
    folder = f"audit-exports/{export_id}"
    span, paths, files = _Span(), {}, {}
    try:
        paths["events.jsonl"], files["events.jsonl"] = _store(f"{folder}/events.jsonl",
                                                             lambda h: _write_jsonl(events, span, h))
        if file_format == "csv":
            paths["events.csv"], files["events.csv"] = _store(f"{folder}/events.csv", lambda h: _write_csv(events, h))
        manifest = {
            "format": MANIFEST_FORMAT, "export_id": export_id, "exported_at": timezone.now().isoformat(),
            "exported_by": actor.username, "file_format": file_format, "filters": used,
            "row_count": span.count, "first_seq": span.first, "last_seq": span.last, "gaps": span.gaps,
            "chain_head": head, "reaches_head": span.last == head["seq"], "files": files,
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        paths["manifest.json"] = save_bytes(f"{folder}/manifest.json", body)
        manifest_sha256 = hashlib.sha256(body).hexdigest()
        with transaction.atomic():
            audit_record(actor=actor, action=EXPORTED, target_type=TARGET_TYPE, target_id=export_id,
                         target_repr=f"audit export {export_id[:12]} ({span.count} events)",
                         after={"manifest_sha256": manifest_sha256, "files": files,
                                "paths": paths, "filters": used, "file_format": file_format,
                                "row_count": span.count, "first_seq": span.first, "last_seq": span.last,
                                "chain_head": head})
    except BaseException:
        delete_quietly(list(paths.values()))
        raise
    return AuditExport(id=export_id, manifest=manifest, manifest_sha256=manifest_sha256)


@dataclass(frozen=True)
class ExportFile:
    """A stored file of an export: where it is, what it must hash to, how to serve it."""

    path: str
    sha256: str
    filename: str
    content_type: str


def audit_export_file_get_for_user(*, user: Any, id: str, name: str) -> ExportFile:
    """Return one file of an export (events.jsonl, events.csv or manifest.json), found through its audit event."""
    require(user, Capability.AUDIT_READ)
    event = AuditEvent.objects.filter(action=EXPORTED, target_type=TARGET_TYPE, target_id=id).first()
    if event is None:
        raise NotFound(f"audit export {id} does not exist")
    after = event.after or {}
    if name not in after.get("paths", {}):
        raise NotFound(f"audit export {id} has no file {name}")
    sha = after["manifest_sha256"] if name == "manifest.json" else after["files"][name]["sha256"]
    return ExportFile(path=after["paths"][name], sha256=sha, filename=name, content_type=CONTENT_TYPES[name])


def audit_verifier_source(*, user: Any) -> bytes:
    """Return the offline verifier (one standard-library Python file) for examiners to run on their machine."""
    require(user, Capability.AUDIT_READ)
    return VERIFIER.read_bytes()


def audit_export_bundle(*, user: Any, id: str, handle: BinaryIO) -> None:
    """Write a ZIP of the export's files, its manifest and the verifier to ``handle``."""
    found = []
    for name in ("events.jsonl", "events.csv", "manifest.json"):
        try:
            found.append(audit_export_file_get_for_user(user=user, id=id, name=name))
        except NotFound:
            if name != "events.csv":
                raise
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for stored in found:
            with default_storage.open(stored.path, "rb") as source, bundle.open(stored.filename, "w") as target:
                for block in iter(lambda: source.read(1 << 20), b""):
                    target.write(block)
        bundle.writestr("verify_audit_export.py", audit_verifier_source(user=user))

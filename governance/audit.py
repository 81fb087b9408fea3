"""Append to and verify the hash-chained audit log.

A leaf module: any app may call ``audit_record`` from inside its service's transaction.
Events are never written through signals (they miss changes made outside a request).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from governance.models import GENESIS_HASH, AuditEvent, AuditHead

# Arbitrary constant key for pg_advisory_xact_lock: serialises appends across processes.
_ADVISORY_LOCK_KEY = 7_203_114_551
_correlation: ContextVar[str] = ContextVar("audit_correlation_id", default="")


@contextlib.contextmanager
def correlation_id(value: str) -> Iterator[None]:
    """Tag every audit event recorded inside the block with a request or job id."""
    token = _correlation.set(value)
    try:
        yield
    finally:
        _correlation.reset(token)


def current_correlation_id() -> str:
    """Return the request or job id in force, or an empty string."""
    return _correlation.get()


def _as_stored_float(text: str) -> float | int:
    # PostgreSQL's jsonb keeps numbers as numerics: it gives 1e+16 back as 10000000000000000 (an int
    # once parsed) and -0.0 as 0.0. Hash what every database gives back, or the chain breaks on reading.
    value = float(text)
    if value == 0:
        return 0.0
    if value.is_integer() and abs(value) >= 1e16:
        return int(value)
    return value


def _normalise(data: Any) -> Any:
    """Return ``data`` as plain JSON values, exactly as the database will give it back."""
    if data is None:
        return None
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder, allow_nan=False, sort_keys=True),
                      parse_float=_as_stored_float)


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def hashed_fields(event: AuditEvent) -> dict[str, Any]:
    """Return the fields of ``event`` that its hash covers, as plain JSON values (exports carry exactly these)."""
    return {
        "seq": event.seq,
        "created_at": _format_time(event.created_at),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }


def canonical_bytes(event: AuditEvent) -> bytes:
    """Serialise the hashed fields of ``event`` deterministically (sorted keys, no spaces).

    tools/verify_audit_export.py repeats this for examiners (a test keeps the two equal).
    """
    return json.dumps(hashed_fields(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(event: AuditEvent) -> str:
    """Return the SHA-256 hex digest of the event's canonical bytes."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


def audit_chain_lock() -> None:
    """Take the chain's lock now (held to the end of the transaction; taking it again is free).

    audit_record takes it anyway. A transaction that locks or updates a row other writers
    reference (a registered model, a dataset) and then audits must take it before that row
    lock, so that every transaction takes its locks in one order, chain then rows, and two can
    never wait for each other: the load run saw PostgreSQL abort an evaluation that held the
    chain and waited on a model row that a training held while it waited for the chain. On
    SQLite the IMMEDIATE transaction mode already holds the database write lock.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_chain_lock must be called inside the transaction it serialises")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])


def audit_record(
    *,
    actor: Any | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    target_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one event to the chain; must run inside the caller's transaction.

    ``actor`` is a user or None for the system (then ``actor_label`` names it, e.g.
    ``system:worker``). ``target`` fills the target fields from a model instance.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction of the change it records")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_repr = target_repr or str(target)
    username = getattr(actor, "username", "") if actor is not None else ""
    if not username:
        username = actor_label or "system"

    audit_chain_lock()
    head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)

    event = AuditEvent(
        seq=head.seq + 1,
        created_at=timezone.now(),
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        actor_username=username[:150],
        action=action,
        target_type=str(target_type),
        target_id=str(target_id),
        target_repr=str(target_repr)[:300],
        before=_normalise(before),
        after=_normalise(after),
        request_id=current_correlation_id()[:100],
        prev_hash=head.hash,
    )
    event.hash = compute_hash(event)
    event.save()
    AuditHead.objects.filter(id=1).update(seq=event.seq, hash=event.hash)
    return event


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of checking the whole chain."""

    ok: bool
    count: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str = ""


def audit_verify(*, chunk_size: int = 2000) -> VerificationResult:
    """Walk the chain in sequence order and report the first row that breaks it."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            # One snapshot for the head and the rows: under READ COMMITTED an event appended by a
            # worker between the two reads would look like a tail added outside the service.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        head = AuditHead.objects.filter(id=1).first()
        for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
            if event.seq != expected_seq:
                kind = "missing (deleted?)" if event.seq > expected_seq else "duplicated"
                return VerificationResult(
                    False, count, prev_hash, expected_seq,
                    f"sequence {expected_seq} is {kind}: the next row found is {event.seq}",
                )
            if event.prev_hash != prev_hash:
                return VerificationResult(
                    False, count, prev_hash, event.seq,
                    f"row {event.seq} does not link to row {event.seq - 1} (prev_hash differs: inserted, deleted or reordered)",
                )
            if compute_hash(event) != event.hash:
                return VerificationResult(
                    False, count, prev_hash, event.seq, f"row {event.seq} was modified (its hash does not match its content)"
                )
            prev_hash = event.hash
            expected_seq += 1
            count += 1
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    if head_seq != count or head_hash != prev_hash:
        return VerificationResult(
            False, count, prev_hash, count + 1 if head_seq > count else head_seq,
            f"the chain ends at row {count} but the recorded head is row {head_seq}: rows were deleted or appended outside the service",
        )
    return VerificationResult(True, count, prev_hash)


def audit_checkpoint(*, actor_label: str = "system:worker") -> AuditEvent:
    """Verify the chain and append a checkpoint event that attests to it (the verified head).

    A checkpoint records how far the chain was intact at a point in time, so a later
    break can be dated between two checkpoints. A broken chain is recorded too, as such.
    """
    result = audit_verify()
    with transaction.atomic():
        return audit_record(
            actor=None,
            actor_label=actor_label,
            action="audit.checkpoint" if result.ok else "audit.checkpoint_failed",
            target_type="governance.auditchain",
            target_id="1",
            target_repr="audit chain",
            after={"ok": result.ok, "verified_events": result.count, "head_hash": result.head_hash,
                   "first_bad_seq": result.first_bad_seq, "reason": result.reason},
        )

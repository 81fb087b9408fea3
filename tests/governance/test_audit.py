"""The hash-chained audit log: appends, verification, and every kind of tampering."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from governance.audit import audit_checkpoint, audit_record, audit_verify, compute_hash, correlation_id
from governance.models import GENESIS_HASH, AuditEvent, AuditHead
from tests.db_backends import triggers_suspended

pytestmark = pytest.mark.django_db


def _append(n: int, actor=None) -> list[AuditEvent]:  # noqa: ANN001
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(audit_record(actor=actor, action="test.event", target_type="thing", target_id=i,
                                       target_repr=f"thing {i}", before={"i": i}, after={"i": i + 1, "x": [1.5, None]}))
    return events


def _sql(statement: str, params: list) -> None:  # noqa: ANN001
    # The tamperer these tests play owns the database: the append-only triggers
    # (tests/governance/test_append_only.py) are disabled first; the chain must still tell.
    with triggers_suspended({AuditEvent._meta.db_table}), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_events_link_into_a_chain_from_the_genesis_hash():
    events = _append(3)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    for event in AuditEvent.objects.all():
        assert compute_hash(event) == event.hash


def test_verify_reports_the_count_and_the_head_hash():
    events = _append(5)
    result = audit_verify()
    assert result.ok and result.count == 5
    assert result.head_hash == events[-1].hash == AuditHead.objects.get().hash


def test_numbers_postgres_gives_back_differently_still_verify():
    # jsonb returns 1e+16 as an integer and -0.0 as 0.0: the hash must be of what comes back.
    with transaction.atomic():
        recorded = audit_record(actor=None, action="test.event", target_type="thing", target_id=1,
                                after={"big": 1.5e300, "round": 1e16, "negative_zero": -0.0, "small": 2.5e-05})
    stored = AuditEvent.objects.get(pk=recorded.pk)
    assert stored.after == {"big": int(1.5e300), "round": 10**16, "negative_zero": 0.0, "small": 2.5e-05}
    assert compute_hash(stored) == stored.hash
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_record_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=None, action="x")


def test_it_records_the_actor_username_and_the_request_id(developer):  # noqa: ANN001
    with correlation_id("req-abc"), transaction.atomic():
        event = audit_record(actor=developer, action="test.event", target_type="t", target_id=1)
    assert event.actor_username == developer.username
    assert event.request_id == "req-abc"


def test_rows_cannot_be_updated_or_deleted_through_the_orm():
    event = _append(1)[0]
    event.action = "forged"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_a_rolled_back_change_leaves_no_event():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_record(actor=None, action="test.event")
        1 / 0  # noqa: B018
    assert AuditEvent.objects.count() == 0
    assert audit_verify().ok


def test_verify_names_an_edited_row():
    _append(5)
    _sql(f"UPDATE {AuditEvent._meta.db_table} SET target_repr = %s WHERE seq = %s", ["tampered", 3])
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 3
    assert "modified" in result.reason


def test_verify_names_an_edited_json_payload():
    _append(4)
    event = AuditEvent.objects.get(seq=2)
    forged = {**event.after, "i": 999}
    import json

    _sql(f"UPDATE {AuditEvent._meta.db_table} SET after = %s WHERE seq = %s", [json.dumps(forged), 2])
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 2


def test_verify_names_a_deleted_row():
    _append(5)
    _sql(f"DELETE FROM {AuditEvent._meta.db_table} WHERE seq = %s", [3])
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 3


def test_verify_notices_a_deleted_tail_through_the_head():
    _append(5)
    _sql(f"DELETE FROM {AuditEvent._meta.db_table} WHERE seq = %s", [5])
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 5
    assert "head" in result.reason


def test_verify_names_reordered_rows():
    _append(5)
    table = AuditEvent._meta.db_table
    # Swap rows 2 and 4 through a free sequence number (the column is unique).
    _sql(f"UPDATE {table} SET seq = 1000 WHERE seq = 2", [])
    _sql(f"UPDATE {table} SET seq = 2 WHERE seq = 4", [])
    _sql(f"UPDATE {table} SET seq = 4 WHERE seq = 1000", [])
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 2


def test_verify_names_an_inserted_row():
    events = _append(3)
    table = AuditEvent._meta.db_table
    _sql(f"UPDATE {table} SET seq = seq + 1 WHERE seq = 3", [])
    forged = AuditEvent(seq=3, created_at=events[1].created_at, actor_username="mallory", action="forged",
                        prev_hash=events[1].hash)
    forged.hash = compute_hash(forged)
    forged.save()
    result = audit_verify()
    assert not result.ok and result.first_bad_seq == 4


def test_deleting_a_user_keeps_the_chain_intact(developer):  # noqa: ANN001
    with transaction.atomic():
        audit_record(actor=developer, action="test.event")
    get_user_model().objects.filter(pk=developer.pk).delete()
    assert audit_verify().ok
    assert AuditEvent.objects.filter(actor_username=developer.username).exists()


def test_the_command_prints_verified_and_the_count(capsys):  # noqa: ANN001
    _append(4)
    call_command("verify_audit_log")
    assert "verified: 4 events" in capsys.readouterr().out


def test_the_command_fails_and_names_the_bad_row():
    _append(4)
    _sql(f"UPDATE {AuditEvent._meta.db_table} SET action = %s WHERE seq = %s", ["forged", 2])
    with pytest.raises(CommandError, match="sequence 2"):
        call_command("verify_audit_log")


def test_a_checkpoint_attests_to_the_verified_head():
    events = _append(3)
    checkpoint = audit_checkpoint()
    assert checkpoint.action == "audit.checkpoint"
    assert checkpoint.after["verified_events"] == 3
    assert checkpoint.after["head_hash"] == events[-1].hash
    assert audit_verify().ok


def test_a_checkpoint_records_a_broken_chain_as_broken():
    _append(3)
    _sql(f"UPDATE {AuditEvent._meta.db_table} SET action = %s WHERE seq = %s", ["forged", 1])
    checkpoint = audit_checkpoint()
    assert checkpoint.action == "audit.checkpoint_failed"
    assert checkpoint.after["first_bad_seq"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_an_intact_chain():
    """8 threads x 200 events, each thread on its own connection (PostgreSQL in CI; a SQLite file here)."""
    writers, per_writer = 8, 200
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write() -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                with transaction.atomic():
                    audit_record(actor=None, action="test.concurrent", target_id=i)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = audit_verify()
    assert result.ok, result.reason
    assert result.count == writers * per_writer

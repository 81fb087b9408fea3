"""The database refuses to rewrite evidence: the audit log never changes, the decision ledger (and its
overrides) only loses rows older than the legal floor whose model is not under a legal hold.

Every statement here is raw SQL, as a person with database access would send it: the ORM's own
refusals are tested beside the models (tests/governance/test_audit.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import DatabaseError, connection, transaction

from governance import append_only
from governance.append_only import AUDIT_RULE, AUDIT_TABLE, LEDGER_RULE, LEDGER_TABLE, OVERRIDE_TABLE, PG_TRIGGERS
from governance.audit import audit_record, audit_verify
from governance.models import AuditEvent
from riskmodels.models import CreditDecision, DecisionOverride, LegalHold
from tests.riskmodels.ledger import OLD, YOUNG, ledger_entries, ledger_world

pytestmark = pytest.mark.django_db

shared_media, _isolated_media, world = ledger_world("append-only-media")

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="TRUNCATE, session_replication_role and pg_trigger are PostgreSQL's")
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite triggers (sqlite_master)")


def _execute(sql: str, params: list | None = None) -> None:  # noqa: ANN001
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _refused(sql: str, params: list | None = None) -> str:  # noqa: ANN001
    """Run ``sql`` in a savepoint (the test's transaction survives the refusal); return the error."""
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        _execute(sql, params)
    return str(info.value)


def _event() -> int:
    with transaction.atomic():
        return audit_record(actor=None, action="test.event", target_type="thing", target_id=1).pk


def _override(decision: CreditDecision) -> DecisionOverride:
    return DecisionOverride.objects.create(decision=decision, outcome="decline", reason="other", text="test",
                                           actor_username="uma-underwriter")


def _hold(model) -> LegalHold:  # noqa: ANN001
    return LegalHold.objects.create(registered_model=model, reason="litigation", placed_by_username="carl")


# --- The audit log: nothing is ever changed or removed ---------------------------------------------------

@pytest.mark.parametrize("statement", [f"UPDATE {AUDIT_TABLE} SET action = 'forged' WHERE id = %s",
                                       f"DELETE FROM {AUDIT_TABLE} WHERE id = %s"])
def test_the_audit_log_refuses_update_and_delete_and_names_the_rule(statement):  # noqa: ANN001
    event = _event()
    assert AUDIT_RULE in _refused(statement, [event])
    assert audit_verify().ok


@on_postgresql
def test_the_audit_log_refuses_truncate():
    _event()
    assert AUDIT_RULE in _refused(f"TRUNCATE {AUDIT_TABLE}")
    assert AUDIT_RULE in _refused(f"TRUNCATE {AUDIT_TABLE} CASCADE")
    assert audit_verify().ok


@on_postgresql
@pytest.mark.parametrize("statement", [f"UPDATE {AUDIT_TABLE} SET action = 'forged'", f"DELETE FROM {AUDIT_TABLE}",
                                       f"TRUNCATE {AUDIT_TABLE}"])
def test_a_replica_session_is_refused_too(statement):  # noqa: ANN001
    _event()
    _execute("SET LOCAL session_replication_role = replica")  # skips ordinary triggers (and FK checks)
    assert AUDIT_RULE in _refused(statement)


@on_postgresql
def test_an_ordinary_trigger_would_be_skipped_by_a_replica_session_which_is_why_they_fire_always():
    # The protection's reason, shown: ENABLE (origin) instead of ENABLE ALWAYS lets a replica session through.
    event = _event()
    for name in PG_TRIGGERS[AUDIT_TABLE]:
        _execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {name}")
    _execute("SET LOCAL session_replication_role = replica")
    _execute(f"UPDATE {AUDIT_TABLE} SET action = 'forged' WHERE id = %s", [event])
    assert not audit_verify().ok  # the chain still tells


@on_postgresql
def test_every_append_only_trigger_fires_always():
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                       "WHERE NOT t.tgisinternal AND c.relname = ANY(%s)", [list(PG_TRIGGERS)])
        found = {(table, name): enabled for table, name, enabled in cursor.fetchall()}
    assert found == {(table, name): "A" for table, names in PG_TRIGGERS.items() for name in names}


@on_sqlite
def test_the_sqlite_triggers_are_installed():
    # A later migration that remakes one of these tables on SQLite would drop its triggers silently.
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        names = {row[0] for row in cursor.fetchall()}
    expected = {statement.split()[2] for group in ("audit", "ledger") for statement in
                append_only.install_sql(group, "sqlite")}
    assert expected <= names and len(expected) == 8


def test_djangos_own_flush_is_refused_so_manage_py_flush_cannot_empty_the_audit_log():
    # The test backends suspend the triggers around their flush; Django's own backend (production) does not.
    _event()
    djangos = type(connection.ops).__mro__[1](connection)
    with pytest.raises(DatabaseError, match=AUDIT_RULE), transaction.atomic():
        for statement in djangos.sql_flush(no_style(), [AUDIT_TABLE]):
            _execute(statement)
    assert AuditEvent.objects.count() == 1


# --- The decision ledger: no UPDATE, no TRUNCATE; DELETE only when old and unheld ---------------------------

def test_the_ledger_refuses_update_even_of_an_old_row(world):  # noqa: ANN001
    decision = ledger_entries(world.version, 1, decided_at=OLD)[0]
    assert LEDGER_RULE in _refused(f"UPDATE {LEDGER_TABLE} SET outcome = 'decline' WHERE id = %s", [decision.pk])
    override = _override(decision)
    assert LEDGER_RULE in _refused(f"UPDATE {OVERRIDE_TABLE} SET outcome = 'approve' WHERE id = %s", [override.pk])


@on_postgresql
def test_the_ledger_refuses_truncate_and_a_replica_session(world):  # noqa: ANN001
    # TRUNCATE first: PostgreSQL refuses it on its own after this transaction's inserts (pending FK checks).
    assert LEDGER_RULE in _refused(f"TRUNCATE {LEDGER_TABLE} CASCADE")
    assert LEDGER_RULE in _refused(f"TRUNCATE {OVERRIDE_TABLE}")
    decision = ledger_entries(world.version, 1, decided_at=OLD)[0]
    _execute("SET LOCAL session_replication_role = replica")
    assert LEDGER_RULE in _refused(f"UPDATE {LEDGER_TABLE} SET pd = 0 WHERE id = %s", [decision.pk])
    young = ledger_entries(world.version, 1, decided_at=YOUNG)[0]
    assert LEDGER_RULE in _refused(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [young.pk])


def test_a_young_decision_cannot_be_deleted(world):  # noqa: ANN001
    decision = ledger_entries(world.version, 1, decided_at=YOUNG)[0]
    message = _refused(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [decision.pk])
    assert LEDGER_RULE in message and "25-month legal retention floor" in message
    assert CreditDecision.objects.filter(pk=decision.pk).exists()


def test_an_old_unheld_decision_can_be_deleted(world):  # noqa: ANN001
    decision = ledger_entries(world.version, 1, decided_at=OLD)[0]
    _execute(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [decision.pk])
    assert not CreditDecision.objects.filter(pk=decision.pk).exists()


def test_an_old_decision_of_a_held_model_cannot_be_deleted_until_the_hold_is_lifted(world):  # noqa: ANN001
    held, other = ledger_entries(world.version, 1, decided_at=OLD)[0], ledger_entries(world.other_version, 1,
                                                                                         decided_at=OLD)[0]
    hold = _hold(world.model)
    message = _refused(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [held.pk])
    assert LEDGER_RULE in message and "legal hold" in message
    _execute(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [other.pk])  # another model's hold does not matter
    LegalHold.objects.filter(pk=hold.pk).update(lifted_at=OLD, lift_reason="settled")
    _execute(f"DELETE FROM {LEDGER_TABLE} WHERE id = %s", [held.pk])
    assert not CreditDecision.objects.filter(pk__in=[held.pk, other.pk]).exists()


def test_an_override_follows_its_decisions_age_and_hold(world):  # noqa: ANN001
    young = _override(ledger_entries(world.version, 1, decided_at=YOUNG)[0])
    assert "25-month" in _refused(f"DELETE FROM {OVERRIDE_TABLE} WHERE id = %s", [young.pk])
    old = _override(ledger_entries(world.version, 1, decided_at=OLD)[0])
    hold = _hold(world.model)
    assert "legal hold" in _refused(f"DELETE FROM {OVERRIDE_TABLE} WHERE id = %s", [old.pk])
    LegalHold.objects.filter(pk=hold.pk).update(lifted_at=OLD, lift_reason="settled")
    _execute(f"DELETE FROM {OVERRIDE_TABLE} WHERE id = %s", [old.pk])
    assert not DecisionOverride.objects.filter(pk=old.pk).exists()


def test_deleting_a_user_leaves_their_decisions_and_overrides_untouched(world, underwriter):  # noqa: ANN001
    decision = ledger_entries(world.version, 1, decided_at=YOUNG, actor=underwriter)[0]
    override = DecisionOverride.objects.create(decision=decision, outcome="decline", reason="other", text="t",
                                               actor=underwriter, actor_username=underwriter.username)
    get_user_model().objects.filter(pk=underwriter.pk).delete()  # no SET NULL: the triggers would refuse it
    assert CreditDecision.objects.get(pk=decision.pk).actor_username == underwriter.username
    assert DecisionOverride.objects.get(pk=override.pk).actor_id == underwriter.pk


# --- The SQL in one module, frozen in the migrations that installed it --------------------------------------

def _migration(app: str, suffix: str):  # noqa: ANN202
    # Found by name, not number: migrations are renumbered when branches merge.
    (path,) = (Path(importlib.import_module(f"{app}.migrations").__file__).parent).glob(f"*_{suffix}.py")
    return importlib.import_module(f"{app}.migrations.{path.stem}")


@pytest.mark.parametrize(("group", "app", "suffix", "name"), [
    ("audit", "governance", "retention_append_only", "AUDIT_TRIGGERS"),
    ("ledger", "riskmodels", "retention_legal_hold_append_only", "LEDGER_TRIGGERS"),
])
def test_the_module_says_what_the_latest_migration_installed(group, app, suffix, name):  # noqa: ANN001
    # A change to governance/append_only.py needs a new migration (and this test pointed at it).
    frozen = getattr(_migration(app, suffix), name)
    for vendor in ("postgresql", "sqlite"):
        assert frozen[vendor]["install"] == append_only.install_sql(group, vendor)
        assert frozen[vendor]["remove"] == append_only.remove_sql(group, vendor)

"""The database's own append-only rules: triggers on the audit log and the decision ledger, as SQL text.

LEAF MODULE, no imports: the migrations that install the triggers carry a frozen copy of this
text (a later edit here must come with a new migration; ``tests/governance/test_append_only.py``
checks that the two agree), and the test database backends use it to suspend the triggers
around a test flush.

- The audit log (``governance_auditevent``) refuses every UPDATE, DELETE and TRUNCATE.
- The decision ledger (``riskmodels_creditdecision``) and its overrides
  (``riskmodels_decisionoverride``: an override changes what the lender decided, so it is evidence
  of the same standing) refuse every UPDATE and TRUNCATE, and a DELETE of a row whose decision is
  younger than the legal floor (``LEDGER_LEGAL_FLOOR_MONTHS`` from the decision's ``created_at``)
  or whose model is under an open legal hold. Older, unheld rows may be deleted: that is the
  retention purge (``riskmodels/services/retention.py``).

On PostgreSQL the triggers are ``ENABLE ALWAYS``, so a session with
``session_replication_role = replica`` (which skips ordinary triggers) is refused too. A database
owner can still drop or disable a trigger: the hash chain and exported manifests detect that.
"""

from __future__ import annotations

AUDIT_TABLE = "governance_auditevent"
LEDGER_TABLE = "riskmodels_creditdecision"
OVERRIDE_TABLE = "riskmodels_decisionoverride"
LEGAL_HOLD_TABLE = "riskmodels_legalhold"
# The shortest time a decision must be kept (from its decision timestamp): the settings refuse a
# shorter configured retention, and the ledger's delete trigger refuses anything younger.
LEDGER_LEGAL_FLOOR_MONTHS = 25

AUDIT_RULE = "audit events are append-only"
LEDGER_RULE = "the decision ledger is append-only"

_FLOOR = f"{LEDGER_LEGAL_FLOOR_MONTHS} months"
_YOUNG = f"is younger than the {LEDGER_LEGAL_FLOOR_MONTHS}-month legal retention floor, so it cannot be deleted"
_HELD = "belongs to a model under an open legal hold, so it cannot be deleted"

# --- PostgreSQL -----------------------------------------------------------------------------------
# 23001 restrict_violation: Django raises it as IntegrityError, with the message below.
_PG_AUDIT = [
    f"""CREATE OR REPLACE FUNCTION governance_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = '{AUDIT_RULE}: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' is refused';
END
$$""",
    f"""CREATE TRIGGER governance_auditevent_append_only_row BEFORE UPDATE OR DELETE ON {AUDIT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION governance_auditevent_append_only()""",
    f"""CREATE TRIGGER governance_auditevent_append_only_truncate BEFORE TRUNCATE ON {AUDIT_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION governance_auditevent_append_only()""",
    f"ALTER TABLE {AUDIT_TABLE} ENABLE ALWAYS TRIGGER governance_auditevent_append_only_row",
    f"ALTER TABLE {AUDIT_TABLE} ENABLE ALWAYS TRIGGER governance_auditevent_append_only_truncate",
]
_PG_AUDIT_REMOVE = [
    f"DROP TRIGGER IF EXISTS governance_auditevent_append_only_row ON {AUDIT_TABLE}",
    f"DROP TRIGGER IF EXISTS governance_auditevent_append_only_truncate ON {AUDIT_TABLE}",
    "DROP FUNCTION IF EXISTS governance_auditevent_append_only()",
]

# One function for both ledger tables: an override is judged by its decision's age and model.
_PG_LEDGER = [
    f"""CREATE OR REPLACE FUNCTION riskmodels_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    decided_at timestamptz;
    model_id bigint;
    what text;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = '{LEDGER_RULE}: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' is refused';
    END IF;
    IF TG_TABLE_NAME = '{LEDGER_TABLE}' THEN
        decided_at := OLD.created_at;
        model_id := OLD.registered_model_id;
        what := 'decision ' || OLD.id;
    ELSE
        SELECT d.created_at, d.registered_model_id INTO decided_at, model_id
            FROM {LEDGER_TABLE} d WHERE d.id = OLD.decision_id;
        what := 'the override of decision ' || OLD.decision_id;
    END IF;
    IF decided_at IS NULL OR decided_at > now() - interval '{_FLOOR}' THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = '{LEDGER_RULE}: ' || what || ' {_YOUNG}';
    END IF;
    IF EXISTS (SELECT 1 FROM {LEGAL_HOLD_TABLE} h WHERE h.registered_model_id = model_id AND h.lifted_at IS NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = '{LEDGER_RULE}: ' || what || ' {_HELD}';
    END IF;
    RETURN OLD;
END
$$""",
]
for _table in (LEDGER_TABLE, OVERRIDE_TABLE):
    _PG_LEDGER += [
        f"""CREATE TRIGGER {_table}_append_only_row BEFORE UPDATE OR DELETE ON {_table}
    FOR EACH ROW EXECUTE FUNCTION riskmodels_ledger_append_only()""",
        f"""CREATE TRIGGER {_table}_append_only_truncate BEFORE TRUNCATE ON {_table}
    FOR EACH STATEMENT EXECUTE FUNCTION riskmodels_ledger_append_only()""",
        f"ALTER TABLE {_table} ENABLE ALWAYS TRIGGER {_table}_append_only_row",
        f"ALTER TABLE {_table} ENABLE ALWAYS TRIGGER {_table}_append_only_truncate",
    ]
_PG_LEDGER_REMOVE = [f"DROP TRIGGER IF EXISTS {_table}_append_only_{kind} ON {_table}"
                     for _table in (LEDGER_TABLE, OVERRIDE_TABLE) for kind in ("row", "truncate")]
_PG_LEDGER_REMOVE.append("DROP FUNCTION IF EXISTS riskmodels_ledger_append_only()")

# --- SQLite ---------------------------------------------------------------------------------------
# No TRUNCATE in SQLite (a DELETE without WHERE runs the row triggers). Django stores a datetime
# as 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC, which compares as text with datetime('now', ...).
_SQLITE_YOUNG = f"datetime('now', '-{_FLOOR}')"
_SQLITE_HELD = (f"EXISTS (SELECT 1 FROM {LEGAL_HOLD_TABLE} h WHERE h.registered_model_id = {{model}} "
                f"AND h.lifted_at IS NULL)")
_SQLITE_AUDIT = [
    f"""CREATE TRIGGER governance_auditevent_no_update BEFORE UPDATE ON {AUDIT_TABLE}
BEGIN SELECT RAISE(ABORT, '{AUDIT_RULE}: UPDATE on {AUDIT_TABLE} is refused'); END""",
    f"""CREATE TRIGGER governance_auditevent_no_delete BEFORE DELETE ON {AUDIT_TABLE}
BEGIN SELECT RAISE(ABORT, '{AUDIT_RULE}: DELETE on {AUDIT_TABLE} is refused'); END""",
]
_SQLITE_AUDIT_REMOVE = ["DROP TRIGGER IF EXISTS governance_auditevent_no_update",
                        "DROP TRIGGER IF EXISTS governance_auditevent_no_delete"]
_DECIDED_AT = f"(SELECT d.created_at FROM {LEDGER_TABLE} d WHERE d.id = OLD.decision_id)"
_DECIDED_BY = f"(SELECT d.registered_model_id FROM {LEDGER_TABLE} d WHERE d.id = OLD.decision_id)"
_SQLITE_LEDGER = [
    f"""CREATE TRIGGER {LEDGER_TABLE}_no_update BEFORE UPDATE ON {LEDGER_TABLE}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: UPDATE on {LEDGER_TABLE} is refused'); END""",
    f"""CREATE TRIGGER {LEDGER_TABLE}_no_young_delete BEFORE DELETE ON {LEDGER_TABLE}
WHEN OLD.created_at > {_SQLITE_YOUNG}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: a decision {_YOUNG}'); END""",
    f"""CREATE TRIGGER {LEDGER_TABLE}_no_held_delete BEFORE DELETE ON {LEDGER_TABLE}
WHEN {_SQLITE_HELD.format(model='OLD.registered_model_id')}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: a decision {_HELD}'); END""",
    f"""CREATE TRIGGER {OVERRIDE_TABLE}_no_update BEFORE UPDATE ON {OVERRIDE_TABLE}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: UPDATE on {OVERRIDE_TABLE} is refused'); END""",
    f"""CREATE TRIGGER {OVERRIDE_TABLE}_no_young_delete BEFORE DELETE ON {OVERRIDE_TABLE}
WHEN {_DECIDED_AT} IS NULL OR {_DECIDED_AT} > {_SQLITE_YOUNG}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: the override of a decision that {_YOUNG}'); END""",
    f"""CREATE TRIGGER {OVERRIDE_TABLE}_no_held_delete BEFORE DELETE ON {OVERRIDE_TABLE}
WHEN {_SQLITE_HELD.format(model=_DECIDED_BY)}
BEGIN SELECT RAISE(ABORT, '{LEDGER_RULE}: the override of a decision that {_HELD}'); END""",
]
_SQLITE_LEDGER_REMOVE = [f"DROP TRIGGER IF EXISTS {table}_{kind}" for table in (LEDGER_TABLE, OVERRIDE_TABLE)
                         for kind in ("no_update", "no_young_delete", "no_held_delete")]

INSTALL: dict[tuple[str, str], list[str]] = {
    ("audit", "postgresql"): _PG_AUDIT, ("audit", "sqlite"): _SQLITE_AUDIT,
    ("ledger", "postgresql"): _PG_LEDGER, ("ledger", "sqlite"): _SQLITE_LEDGER,
}
REMOVE: dict[tuple[str, str], list[str]] = {
    ("audit", "postgresql"): _PG_AUDIT_REMOVE, ("audit", "sqlite"): _SQLITE_AUDIT_REMOVE,
    ("ledger", "postgresql"): _PG_LEDGER_REMOVE, ("ledger", "sqlite"): _SQLITE_LEDGER_REMOVE,
}
# The PostgreSQL triggers of each protected table (what a test flush suspends).
PG_TRIGGERS: dict[str, tuple[str, ...]] = {
    AUDIT_TABLE: ("governance_auditevent_append_only_row", "governance_auditevent_append_only_truncate"),
    LEDGER_TABLE: (f"{LEDGER_TABLE}_append_only_row", f"{LEDGER_TABLE}_append_only_truncate"),
    OVERRIDE_TABLE: (f"{OVERRIDE_TABLE}_append_only_row", f"{OVERRIDE_TABLE}_append_only_truncate"),
}
_GROUP_OF = {AUDIT_TABLE: "audit", LEDGER_TABLE: "ledger", OVERRIDE_TABLE: "ledger"}


def install_sql(group: str, vendor: str) -> list[str]:
    """Return the statements that install ``group``'s ("audit" or "ledger") triggers on ``vendor``."""
    return list(INSTALL.get((group, vendor), []))


def remove_sql(group: str, vendor: str) -> list[str]:
    """Return the statements that remove ``group``'s triggers (a migration's reverse)."""
    return list(REMOVE.get((group, vendor), []))


def suspend_sql(vendor: str, tables: set[str] | None = None) -> list[str]:
    """Return the statements that lift the rules on ``tables`` (all protected tables by default).

    Only for tests (a flush between transactional tests, a simulated tamperer): PostgreSQL
    disables the triggers, SQLite drops them; ``restore_sql`` puts them back.
    """
    wanted = set(PG_TRIGGERS) if tables is None else set(tables) & set(PG_TRIGGERS)
    if vendor == "postgresql":
        return [f"ALTER TABLE {table} DISABLE TRIGGER {name}" for table in sorted(wanted)
                for name in PG_TRIGGERS[table]]
    if vendor == "sqlite":
        return [s for group in sorted({_GROUP_OF[t] for t in wanted}) for s in remove_sql(group, vendor)]
    return []


def restore_sql(vendor: str, tables: set[str] | None = None) -> list[str]:
    """Return the statements that put back what ``suspend_sql`` lifted (on PostgreSQL, ENABLE ALWAYS)."""
    wanted = set(PG_TRIGGERS) if tables is None else set(tables) & set(PG_TRIGGERS)
    if vendor == "postgresql":
        return [f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}" for table in sorted(wanted)
                for name in PG_TRIGGERS[table]]
    if vendor == "sqlite":
        return [s for group in sorted({_GROUP_OF[t] for t in wanted}) for s in install_sql(group, vendor)]
    return []

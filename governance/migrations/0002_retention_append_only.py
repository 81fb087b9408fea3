"""Make the audit log append-only in the database: triggers refuse UPDATE, DELETE and TRUNCATE."""

from django.db import migrations

# The append-only triggers, frozen here as they were installed (governance/append_only.py holds
# the current text; tests/governance/test_append_only.py checks that the two agree, so a change
# there comes with a new migration). PostgreSQL and SQLite only; other vendors get no triggers.

AUDIT_TRIGGERS = {'postgresql': {'install': ['CREATE OR REPLACE FUNCTION governance_auditevent_append_only() RETURNS trigger '
                            'LANGUAGE plpgsql AS $$\n'
                            'BEGIN\n'
                            "    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',\n"
                            "        MESSAGE = 'audit events are append-only: ' || TG_OP || ' on ' || "
                            "TG_TABLE_NAME || ' is refused';\n"
                            'END\n'
                            '$$',
                            'CREATE TRIGGER governance_auditevent_append_only_row BEFORE UPDATE OR DELETE ON '
                            'governance_auditevent\n'
                            '    FOR EACH ROW EXECUTE FUNCTION governance_auditevent_append_only()',
                            'CREATE TRIGGER governance_auditevent_append_only_truncate BEFORE TRUNCATE ON '
                            'governance_auditevent\n'
                            '    FOR EACH STATEMENT EXECUTE FUNCTION governance_auditevent_append_only()',
                            'ALTER TABLE governance_auditevent ENABLE ALWAYS TRIGGER '
                            'governance_auditevent_append_only_row',
                            'ALTER TABLE governance_auditevent ENABLE ALWAYS TRIGGER '
                            'governance_auditevent_append_only_truncate'],
                'remove': ['DROP TRIGGER IF EXISTS governance_auditevent_append_only_row ON governance_auditevent',
                           'DROP TRIGGER IF EXISTS governance_auditevent_append_only_truncate ON '
                           'governance_auditevent',
                           'DROP FUNCTION IF EXISTS governance_auditevent_append_only()']},
 'sqlite': {'install': ['CREATE TRIGGER governance_auditevent_no_update BEFORE UPDATE ON governance_auditevent\n'
                        "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on governance_auditevent "
                        "is refused'); END",
                        'CREATE TRIGGER governance_auditevent_no_delete BEFORE DELETE ON governance_auditevent\n'
                        "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE on governance_auditevent "
                        "is refused'); END"],
            'remove': ['DROP TRIGGER IF EXISTS governance_auditevent_no_update',
                       'DROP TRIGGER IF EXISTS governance_auditevent_no_delete']}}


def install_audit_triggers(apps, schema_editor):
    for statement in AUDIT_TRIGGERS.get(schema_editor.connection.vendor, {}).get("install", []):
        schema_editor.execute(statement)


def remove_audit_triggers(apps, schema_editor):
    for statement in AUDIT_TRIGGERS.get(schema_editor.connection.vendor, {}).get("remove", []):
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(install_audit_triggers, remove_audit_triggers),
    ]

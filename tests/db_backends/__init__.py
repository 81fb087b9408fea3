"""Test-only database backends: Django's, with a flush that suspends the append-only triggers.

pytest-django empties the database between transactional tests with TRUNCATE (PostgreSQL) or
DELETE (SQLite), which the audit log's and the ledger's triggers refuse, as they must in
production (``manage.py flush`` there is refused). These backends suspend the triggers for the
flush and put them back in the same transaction (on PostgreSQL, ENABLE ALWAYS again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from governance.append_only import restore_sql, suspend_sql


def flush_around_triggers(vendor: str, statements: list[str], tables: Any) -> list[str]:
    """Return ``statements`` between the suspension and the restoration of the triggers of ``tables``."""
    if not statements:
        return statements
    protected = set(tables)
    suspend = suspend_sql(vendor, protected)
    if not suspend:
        return statements
    return [*suspend, *statements, *restore_sql(vendor, protected)]


@contextlib.contextmanager
def triggers_suspended(tables: set[str] | None = None) -> Iterator[None]:
    """Act as a database owner who has disabled the append-only triggers (a tamperer, in tests).

    The suspension is DDL inside the test's transaction, so it is rolled back with the test even
    if the block fails; the triggers are put back at the end of the block all the same.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in suspend_sql(connection.vendor, tables):
            cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for statement in restore_sql(connection.vendor, tables):
                cursor.execute(statement)

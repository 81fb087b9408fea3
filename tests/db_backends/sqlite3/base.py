"""Django's SQLite backend with a flush that suspends the append-only triggers (tests only)."""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base, operations

from tests.db_backends import flush_around_triggers


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style: Any, tables: Any, *, reset_sequences: bool = False,
                  allow_cascade: bool = False) -> list[str]:
        statements = super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return flush_around_triggers("sqlite", statements, tables)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

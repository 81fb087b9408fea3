"""Verify the audit hash chain: exit 0 and print "verified: N events", or exit 1 naming the first bad row."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the tamper-evident audit log's hash chain."

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_verify()
        if not result.ok:
            raise CommandError(f"audit log broken at sequence {result.first_bad_seq}: {result.reason}")
        self.stdout.write(f"verified: {result.count} events")
        self.stdout.write(f"head hash: {result.head_hash}")

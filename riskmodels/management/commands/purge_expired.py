"""Purge the records whose retention period has ended (none of a model under a legal hold); audited per type."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from riskmodels.services.retention import retention_purge


class Command(BaseCommand):
    help = ("Delete expired records not under a legal hold, one transaction and one retention.purged audit event "
            "per record type. The audit log itself is never purged.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="count what would be purged (same counts and id hashes) and write nothing")

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        verb = "would purge" if dry_run else "purged"
        for purged in retention_purge(dry_run=dry_run):
            counts = ", ".join(f"{kind} {summary['count']} (ids sha256 {summary['ids_sha256'][:16]}…)"
                               for kind, summary in purged.deleted.items())
            event = f"; audit event #{purged.audit_event}" if purged.audit_event else ""
            self.stdout.write(f"{purged.record_type}: {verb} {counts}; {purged.files} files; older than "
                              f"{purged.cutoff.isoformat()} ({purged.months} months, {purged.setting}){event}")
        if dry_run:
            self.stdout.write("dry run: nothing was deleted and nothing was written")

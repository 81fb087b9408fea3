"""Create the demo users (one per role, two compliance officers), register the shipped German Credit dataset, and
build the demo model's lifecycle (a champion and a version awaiting validation). Demo only; a second run changes
nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from governance.accounts import api_token_issue, user_upsert
from governance.roles import Role
from riskmodels.services.datasets import dataset_version_create
from riskmodels.services.demo import demo_lifecycle_create

DEMO_DATASET = Path(settings.BASE_DIR) / "demo" / "german_credit.csv"
DEMO_ROLES = {
    "target": "creditability",
    "roles": {"personal_status_and_sex": "protected", "age_in_years": "protected", "foreign_worker": "protected"},
}
DEMO_USERS = {
    "dev": Role.DEVELOPER,
    "validator": Role.VALIDATOR,
    "compliance": Role.COMPLIANCE_OFFICER,
    "compliance2": Role.COMPLIANCE_OFFICER,  # a high-tier model needs two distinct approvers
    "auditor": Role.AUDITOR,
    "underwriter": Role.UNDERWRITER,
}


class Command(BaseCommand):
    help = "Create demo users, the German Credit demo dataset and a demo model lifecycle (never in production)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup runs only with DEBUG=1: it creates users with known passwords")
        self.stdout.write("Demo users (password = username + '-demo-pass'; demo only):")
        users = {}
        for username, role in DEMO_USERS.items():
            password = f"{username}-demo-pass"
            user, _ = user_upsert(username=username, role=role, password=password)
            token, _ = api_token_issue(user=user)
            users[username] = user
            self.stdout.write(f"  {username:<11} role={role.value:<19} password={password}  token={token}")
        with DEMO_DATASET.open("rb") as handle:
            version, created = dataset_version_create(
                actor=users["dev"], name="german-credit", source=handle, filename=DEMO_DATASET.name,
                size=DEMO_DATASET.stat().st_size, description="UCI Statlog German Credit (CC BY 4.0)", **DEMO_ROLES,
            )
        state = "registered" if created else "already registered"
        self.stdout.write(f"Demo dataset {version} {state} (sha256 {version.sha256[:16]}…, {version.n_rows} rows)")
        demo = demo_lifecycle_create(developer=users["dev"], validator=users["validator"],
                                     approvers=[users["compliance"], users["compliance2"]], dataset_version=version,
                                     underwriter=users["underwriter"])
        self.stdout.write(demo.summary)

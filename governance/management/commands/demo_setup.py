"""Create the demo teams and users (one per role, two compliance officers), register the shipped German Credit dataset,
and build the demo model's lifecycle (a champion and a version awaiting validation). Demo only; a second run changes
nothing.

Everything of the demo is in team "retail-credit": the developer and the underwriter work there; the validator,
the compliance officers and the auditor see every team. "sme-dev" is a developer of a second team ("sme-credit"),
who sees none of the demo's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from governance.accounts import api_token_issue, team_get_or_create, user_upsert
from governance.roles import Role
from riskmodels.services.datasets import dataset_version_create
from riskmodels.services.demo import demo_lifecycle_create

DEMO_DATASET = Path(settings.BASE_DIR) / "demo" / "german_credit.csv"
DEMO_ROLES = {
    "target": "creditability",
    "roles": {"personal_status_and_sex": "protected", "age_in_years": "protected", "foreign_worker": "protected"},
}
DEMO_TEAM = "retail-credit"
SECOND_TEAM = "sme-credit"
# username: (role, teams, sees every team)
DEMO_USERS = {
    "dev": (Role.DEVELOPER, [DEMO_TEAM], False),
    "validator": (Role.VALIDATOR, [DEMO_TEAM], True),
    "compliance": (Role.COMPLIANCE_OFFICER, [DEMO_TEAM], True),
    "compliance2": (Role.COMPLIANCE_OFFICER, [DEMO_TEAM], True),  # a high-tier model needs two distinct approvers
    "auditor": (Role.AUDITOR, [], True),
    "underwriter": (Role.UNDERWRITER, [DEMO_TEAM], False),
    "sme-dev": (Role.DEVELOPER, [SECOND_TEAM], False),
}


class Command(BaseCommand):
    help = "Create demo users, the German Credit demo dataset and a demo model lifecycle (never in production)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup runs only with DEBUG=1: it creates users with known passwords")
        self.stdout.write("Demo users (password = username + '-demo-pass'; demo only):")
        for team in (DEMO_TEAM, SECOND_TEAM):
            team_get_or_create(name=team)
        users = {}
        for username, (role, teams, sees_all) in DEMO_USERS.items():
            password = f"{username}-demo-pass"
            user, _ = user_upsert(username=username, role=role, password=password, teams=teams,
                                  sees_all_teams=sees_all)
            token, _ = api_token_issue(user=user)
            users[username] = user
            where = "all teams" if sees_all else ",".join(teams)
            self.stdout.write(f"  {username:<11} role={role.value:<19} teams={where:<13} password={password}  "
                              f"token={token}")
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

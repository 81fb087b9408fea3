"""Create or update a user with a role (and teams) and print a new API token alone on the last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.accounts import api_token_issue, team_get_or_create, user_upsert
from governance.exceptions import ServiceError
from governance.roles import Role


class Command(BaseCommand):
    help = ("Create (or update) a user with the given role, optionally set their teams, and print a new API token on "
            "the last line.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--email", default="")
        parser.add_argument("--team", action="append", dest="teams", metavar="SLUG",
                            help="A team the user belongs to (repeat for several); replaces their teams. The team "
                                 "must exist unless --create-team is given.")
        parser.add_argument("--create-team", action="store_true", help="Create the --team teams that do not exist.")
        parser.add_argument("--all-teams", action="store_true",
                            help="Validators, compliance officers and auditors: see every team.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["create_team"]:
                for slug in options["teams"] or []:
                    team_get_or_create(name=slug)
            user, created = user_upsert(username=options["username"], role=options["role"], email=options["email"],
                                        teams=options["teams"], sees_all_teams=True if options["all_teams"] else None)
            token, expiry = api_token_issue(user=user)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        verb = "created" if created else "updated"
        teams = ", ".join(sorted(user.teams.values_list("slug", flat=True))) or "none"
        self.stdout.write(f"{verb} user {user.username} with role {options['role']} (teams: {teams}"
                          f"{'; sees all teams' if options['all_teams'] else ''}); token expires "
                          f"{expiry:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(token)

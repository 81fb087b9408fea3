"""Create or update a user with a role and print a new API token alone on the last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.accounts import api_token_issue, user_upsert
from governance.exceptions import ServiceError
from governance.roles import Role


class Command(BaseCommand):
    help = "Create (or update) a user with the given role and print a new API token on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user, created = user_upsert(username=options["username"], role=options["role"], email=options["email"])
            token, expiry = api_token_issue(user=user)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} user {user.username} with role {options['role']}; token expires {expiry:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(token)

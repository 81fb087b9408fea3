"""Users, roles and the create_api_user command; every change is audited."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from knox.auth import TokenAuthentication

from governance.accounts import user_upsert
from governance.exceptions import ValidationFailed
from governance.models import AuditEvent
from governance.roles import Role, user_roles

pytestmark = pytest.mark.django_db


def test_create_api_user_prints_a_working_token_alone_on_the_last_line():
    out = io.StringIO()
    call_command("create_api_user", "rita", "--role", "validator", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    user, _ = TokenAuthentication().authenticate_credentials(token.encode())
    assert user.username == "rita"
    assert user_roles(user) == {Role.VALIDATOR}


def test_create_api_user_updates_the_role_of_an_existing_user_and_audits_it():
    call_command("create_api_user", "rita", "--role", "validator", stdout=io.StringIO())
    call_command("create_api_user", "rita", "--role", "auditor", stdout=io.StringIO())
    event = AuditEvent.objects.filter(action="user.updated").get()
    assert event.before["roles"] == ["validator"] and event.after["roles"] == ["auditor"]
    assert event.actor_username == "system:cli"


def test_create_api_user_refuses_an_unknown_role():
    with pytest.raises(CommandError):
        call_command("create_api_user", "rita", "--role", "wizard", stdout=io.StringIO())


def test_the_service_refuses_an_unknown_role_with_the_allowed_list():
    with pytest.raises(ValidationFailed, match="developer, validator"):
        user_upsert(username="x", role="wizard")


def test_an_unchanged_upsert_writes_no_event():
    user_upsert(username="sam", role=Role.DEVELOPER)
    count = AuditEvent.objects.count()
    user_upsert(username="sam", role=Role.DEVELOPER)
    assert AuditEvent.objects.count() == count

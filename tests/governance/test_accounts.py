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


def test_user_changes_in_the_admin_are_audited(client, django_user_model):  # noqa: ANN001
    admin_user = django_user_model.objects.create_superuser("root-admin", password="root-admin-pass-123")
    client.force_login(admin_user)
    user, _ = user_upsert(username="sam", role=Role.DEVELOPER)
    response = client.post(f"/admin/auth/user/{user.pk}/password/",
                           {"password1": "a-new-Strong-pass-42", "password2": "a-new-Strong-pass-42"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.password_changed")
    assert event.actor_username == "root-admin" and event.target_id == str(user.pk)
    assert "a-new-Strong-pass-42" not in str(event.after)

"""Brute-force protection of the password sign-ins (the API's login and the admin's form): the lockout
per username and address, what it answers and when it ends, the audit of failed sign-ins and lockouts,
and the client address behind proxies (a forged X-Forwarded-For changes nothing)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client, RequestFactory, override_settings
from knox.models import AuthToken
from rest_framework.test import APIClient

from governance.audit import audit_verify
from governance.logins import client_address
from governance.models import AuditEvent

pytestmark = pytest.mark.django_db

LIMIT = 3
PASSWORD = "dana-developer-pass-123"  # the developer persona's


def _login(password: str, *, username: str = "dana-developer", **extra: str):  # noqa: ANN202
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return APIClient().post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {basic}", **extra)


def _failures(action: str = "auth.login_failed") -> list[dict]:
    return [event.after for event in AuditEvent.objects.filter(action=action).order_by("seq")]


@pytest.fixture(autouse=True)
def _small_limit(settings):  # noqa: ANN001,ANN202
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


# --- The API's password login ---------------------------------------------------------------------

def test_a_failed_login_is_refused_and_audited_with_the_username_and_address(developer):  # noqa: ANN001
    response = _login("wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert _failures() == [{"username": "dana-developer", "client_address": "127.0.0.1", "interface": "api",
                            "locked_out": False}]
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_the_audit_of_a_failed_login_is_committed_although_the_login_is_refused(developer):  # noqa: ANN001
    # As in production, with no transaction around the request: the record has its own, committed
    # before the refusal is raised (audit_record refuses to run outside one).
    assert _login("wrong").status_code == 401
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 1
    assert audit_verify().ok


def test_an_unknown_username_is_audited_too():
    assert _login("whatever", username="nobody-here").status_code == 401
    assert _failures()[0]["username"] == "nobody-here"


def test_the_failure_that_reaches_the_limit_locks_the_username_out_with_429_saying_when_to_retry(developer):  # noqa: ANN001
    statuses = [_login("wrong").status_code for _ in range(LIMIT)]
    assert statuses == [401] * (LIMIT - 1) + [429]
    response = _login(PASSWORD)  # the right password no longer helps, and is not even checked
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "locked_out"
    assert "try again after" in error["message"]
    retry_after = int(response["Retry-After"])
    assert 14 * 60 < retry_after <= 15 * 60 and error["details"]["retry_after"] == retry_after
    assert [f["locked_out"] for f in _failures()] == [False] * (LIMIT - 1) + [True, True]
    locked = _failures("auth.locked_out")
    assert len(locked) == 1 and locked[0]["username"] == "dana-developer" and locked[0]["failure_limit"] == LIMIT
    assert not AuthToken.objects.filter(user=developer).exists()


def test_the_lockout_is_per_username_and_address(developer, validator):  # noqa: ANN001
    for _ in range(LIMIT):
        _login("wrong")
    assert _login(PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 201  # the same user from elsewhere
    assert _login("vera-validator-pass-123", username="vera-validator").status_code == 201  # another user, same address


def test_the_lockout_ends_after_the_cool_off(developer):  # noqa: ANN001
    for _ in range(LIMIT):
        _login("wrong")
    assert _login(PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert _login(PASSWORD).status_code == 201


def test_a_forged_x_forwarded_for_neither_changes_the_address_nor_escapes_the_lockout(developer):  # noqa: ANN001
    # With no trusted proxy (the default), a client cannot name its own address: each guess from
    # "another" address still counts against the socket's, and the lockout holds.
    statuses = [_login("wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(LIMIT)]
    assert statuses[-1] == 429
    assert {f["client_address"] for f in _failures()} == {"127.0.0.1"}
    assert _login(PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_trusted_proxy_the_client_is_the_address_it_appended(developer):  # noqa: ANN001
    # The proxy (REMOTE_ADDR) appends the client's address; whatever the client wrote before it is ignored.
    for _ in range(LIMIT):
        _login("wrong", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.10")
    assert {f["client_address"] for f in _failures()} == {"192.0.2.10"}
    assert _login(PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.10").status_code == 429
    assert _login(PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.11").status_code == 201


@pytest.mark.parametrize(("proxies", "forwarded", "expected"), [
    (0, "203.0.113.9", "10.0.0.1"),  # no proxy trusted: the header is the client's own words
    (1, "203.0.113.9", "203.0.113.9"),
    (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
    (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
    (2, "203.0.113.9", "10.0.0.1"),  # fewer hops than proxies: only the peer is known
    (1, "not-an-address", "10.0.0.1"),
    (1, "", "10.0.0.1"),
])
def test_the_client_address_trusts_x_forwarded_for_only_as_far_as_the_proxies(settings, proxies, forwarded,  # noqa: ANN001
                                                                              expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


# --- The admin's sign-in form ---------------------------------------------------------------------

def _admin_login(client: Client, password: str):  # noqa: ANN202
    return client.post("/admin/login/?next=/admin/", {"username": "dana-developer", "password": password})


def test_a_failed_admin_sign_in_is_audited(developer):  # noqa: ANN001
    response = _admin_login(Client(), "wrong")
    assert response.status_code == 200 and b"Please enter the correct username" in response.content
    assert _failures() == [{"username": "dana-developer", "client_address": "127.0.0.1", "interface": "admin",
                            "locked_out": False}]


def test_the_admin_shows_a_clear_page_while_locked_out_and_audits_the_lockout(developer):  # noqa: ANN001
    client = Client()
    for _ in range(LIMIT - 1):
        assert _admin_login(client, "wrong").status_code == 200
    response = _admin_login(client, "wrong")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in temporarily locked" in page and "try again after" in page
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
    assert _admin_login(client, PASSWORD).status_code == 429  # the right password is refused meanwhile
    assert len(_failures("auth.locked_out")) == 1
    assert _failures()[-1]["interface"] == "admin"
    assert client.get("/admin/").status_code == 302  # not signed in


def test_an_admin_sign_in_with_the_right_password_still_works(developer):  # noqa: ANN001
    client = Client()
    assert _admin_login(client, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


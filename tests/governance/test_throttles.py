"""Scoped throttles: uploads, training, scoring and batch scoring are counted per user, the password
login per address (before any password is checked); past the rate, 429 with Retry-After in the one
error shape. The rates come from settings; these tests set tiny ones."""

from __future__ import annotations

import base64

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from governance.models import AuditEvent
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _rates(**rates: str):  # noqa: ANN202
    """override_settings with the given scopes' rates (DRF reloads api_settings, which the throttles read)."""
    return override_settings(REST_FRAMEWORK={
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}})


def _assert_throttled(response) -> None:  # noqa: ANN001
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "throttled"
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60 and error["details"]["retry_after"] == retry_after
    assert f"try again in {retry_after} seconds" in error["message"]


# Each operation is refused on its own merits first (an empty body is a 400, an unknown model a 404):
# the throttle counts requests, whatever their outcome, before the view runs.
OPERATIONS = {
    "upload": ("/api/v1/datasets/", "multipart"),
    "training": ("/api/v1/training-jobs/", "json"),
    "scoring": ("/api/v1/models/no-such-model/score/", "json"),
    "batch_scoring": ("/api/v1/models/no-such-model/batch-scoring/", "json"),
}


@pytest.mark.parametrize("scope", list(OPERATIONS))
def test_past_its_rate_an_operation_answers_429_with_retry_after(scope, developer, underwriter):  # noqa: ANN001
    url, body_format = OPERATIONS[scope]
    user = underwriter if "scoring" in scope else developer
    client = client_for(user)
    with _rates(**{scope: "2/min"}):
        first = [client.post(url, {}, format=body_format).status_code for _ in range(2)]
        assert 429 not in first
        _assert_throttled(client.post(url, {}, format=body_format))


def test_the_count_is_per_user(developer, other_developer):  # noqa: ANN001
    with _rates(training="1/min"):
        client_for(developer).post("/api/v1/training-jobs/", {}, format="json")
        _assert_throttled(client_for(developer).post("/api/v1/training-jobs/", {}, format="json"))
        assert client_for(other_developer).post("/api/v1/training-jobs/", {}, format="json").status_code == 400


def test_reads_of_a_throttled_view_are_not_counted(developer):  # noqa: ANN001
    client = client_for(developer)
    with _rates(upload="1/min"):
        for _ in range(3):
            assert client.get("/api/v1/datasets/").status_code == 200
        assert client.post("/api/v1/datasets/", {}, format="multipart").status_code == 400


def test_unthrottled_operations_are_not_counted(developer):  # noqa: ANN001
    client = client_for(developer)
    with _rates(upload="1/min", training="1/min", scoring="1/min", batch_scoring="1/min"):
        for _ in range(3):
            assert client.post("/api/v1/models/", {}, format="json").status_code == 400


def _login(password: str, **extra: str):  # noqa: ANN202
    basic = base64.b64encode(f"dana-developer:{password}".encode()).decode()
    return APIClient().post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {basic}", **extra)


def test_the_login_is_throttled_per_address_before_the_password_is_checked(developer, settings):  # noqa: ANN001
    settings.AXES_FAILURE_LIMIT = 100
    with _rates(login="2/min"):
        assert [_login("wrong").status_code for _ in range(2)] == [401, 401]
        _assert_throttled(_login("dana-developer-pass-123"))
        # A forged X-Forwarded-For is no fresh address; another real address is.
        _assert_throttled(_login("wrong", HTTP_X_FORWARDED_FOR="203.0.113.5"))
        assert _login("dana-developer-pass-123", REMOTE_ADDR="10.0.0.9").status_code == 201
    # Throttled attempts never reached the password check: two failures were audited, not three.
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 2


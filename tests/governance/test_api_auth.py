"""Authentication everywhere, token login/logout, roles, and the audit API."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from governance.models import AuditEvent
from governance.policy import capabilities_of
from governance.roles import Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PROTECTED_ENDPOINTS = [
    ("get", "/api/v1/datasets/"),
    ("post", "/api/v1/datasets/"),
    ("get", "/api/v1/dataset-versions/"),
    ("get", "/api/v1/dataset-versions/1/"),
    ("get", "/api/v1/dataset-versions/1/download/"),
    ("get", "/api/v1/audit-events/"),
    ("get", "/api/v1/audit-events/verify/"),
    ("post", "/api/v1/audit-events/checkpoints/"),
    ("get", "/api/v1/me/"),
    ("get", "/api/v1/"),
    ("get", "/api/schema/"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED_ENDPOINTS)
def test_every_endpoint_requires_authentication(method, url):  # noqa: ANN001
    response = getattr(APIClient(), method)(url)
    assert response.status_code in (401, 403)
    if url.startswith("/api/v1/"):
        assert response.json()["error"]["code"] == "not_authenticated"


def test_the_docs_send_anonymous_visitors_to_sign_in():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_login_with_a_password_issues_a_token_that_works_and_is_audited(developer):  # noqa: ANN001
    client = APIClient()
    basic = base64.b64encode(b"dana-developer:dana-developer-pass-123").decode()
    response = client.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("cg_")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").json() == {
        "username": "dana-developer", "roles": ["developer"],
        "capabilities": sorted(c.value for c in capabilities_of(Role.DEVELOPER)),
        "teams": ["default"], "sees_all_teams": False,
    }
    event = AuditEvent.objects.filter(action="api_token.issued").last()
    assert event.actor_username == "dana-developer"
    assert token not in str(event.after)  # the secret is never written to the log


def test_tokens_are_stored_hashed(developer):  # noqa: ANN001
    client = client_for(developer)
    token = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    stored = AuthToken.objects.get(user=developer)
    assert token not in stored.digest and stored.digest != token


def test_a_wrong_password_is_refused(developer):  # noqa: ANN001
    basic = base64.b64encode(b"dana-developer:wrong").decode()
    response = APIClient().post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_an_expired_token_is_refused(developer):  # noqa: ANN001
    client = client_for(developer)
    AuthToken.objects.filter(user=developer).update(expiry=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/me/").status_code == 401


def test_logout_revokes_the_token(developer):  # noqa: ANN001
    client = client_for(developer)
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_logout_all_revokes_every_token_of_the_user_and_is_audited(developer, validator):  # noqa: ANN001
    first, second = client_for(developer), client_for(developer)
    others = client_for(validator)
    response = first.post("/api/v1/auth/logout-all/")
    assert response.status_code == 200 and response.json() == {"revoked": 2}
    assert first.get("/api/v1/me/").status_code == 401 and second.get("/api/v1/me/").status_code == 401
    assert others.get("/api/v1/me/").status_code == 200
    event = AuditEvent.objects.get(action="api_token.revoked_all")
    assert event.actor_username == "dana-developer" and event.after == {"revoked": 2}
    assert len(event.before["token_keys"]) == 2


def test_outsiders_authenticate_but_are_refused(outsider):  # noqa: ANN001
    response = client_for(outsider).get("/api/v1/dataset-versions/")
    assert response.status_code == 403
    assert "no role" in response.json()["error"]["message"]


def test_auditors_read_the_audit_log_with_hashes(auditor):  # noqa: ANN001
    body = client_for(auditor).get("/api/v1/audit-events/", {"action": "user.created"}).json()
    assert body["count"] >= 1
    row = body["results"][0]
    assert len(row["hash"]) == 64 and len(row["prev_hash"]) == 64


def test_developers_cannot_read_the_audit_log(developer):  # noqa: ANN001
    assert client_for(developer).get("/api/v1/audit-events/").status_code == 403


def test_the_verify_endpoint_reports_an_intact_chain(auditor):  # noqa: ANN001
    body = client_for(auditor).get("/api/v1/audit-events/verify/").json()
    assert body["ok"] is True and body["count"] == AuditEvent.objects.count()


def test_the_request_id_is_echoed_and_recorded(developer):  # noqa: ANN001
    client = APIClient()
    basic = base64.b64encode(b"dana-developer:dana-developer-pass-123").decode()
    response = client.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {basic}", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert AuditEvent.objects.filter(action="api_token.issued", request_id="abc-123").exists()


def test_a_wrong_content_type_gets_the_error_shape(dev_client):  # noqa: ANN001
    response = dev_client.post("/api/v1/datasets/", data="{}", content_type="application/json")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"

"""A signed-in browser session cannot be made to change anything by another site: unsafe API requests
authenticated by the session cookie need the CSRF token (403 without it), as do the admin's forms.
Token-authenticated API clients send no cookie and need none."""

from __future__ import annotations

import pytest
from django.test import Client

from riskmodels.models import ReasonText, RegisteredModel
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

MODEL = {"name": "csrf-probe", "owner_team": "retail credit risk", "purpose": "probe"}


def _session(user) -> Client:  # noqa: ANN001
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf_token(client: Client) -> str:
    client.get("/admin/")  # any page that renders a form sets the cookie
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize(("url", "body", "content_type"), [
    ("/api/v1/models/", MODEL, "application/json"),
    ("/api/v1/training-jobs/", {}, "application/json"),
    ("/api/v1/audit-events/checkpoints/", {}, "application/json"),
])
def test_a_session_request_without_the_csrf_token_is_refused(url, body, content_type, developer,  # noqa: ANN001
                                                             compliance_officer):
    user = compliance_officer if "checkpoints" in url else developer
    response = _session(user).post(url, body, content_type=content_type)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied" and "CSRF" in error["message"]


def test_a_session_upload_without_the_csrf_token_is_refused(developer):  # noqa: ANN001
    from django.core.files.uploadedfile import SimpleUploadedFile

    csv = SimpleUploadedFile("x.csv", b"a,b,target\n1,2,0\n3,4,1\n")
    response = _session(developer).post("/api/v1/datasets/", {"name": "csrf-probe", "file": csv, "target": "target"})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]["message"]


def test_with_the_csrf_token_the_same_session_request_succeeds(developer):  # noqa: ANN001
    client = _session(developer)
    response = client.post("/api/v1/models/", MODEL, content_type="application/json",
                           HTTP_X_CSRFTOKEN=_csrf_token(client))
    assert response.status_code == 201
    assert RegisteredModel.objects.filter(name="csrf-probe").exists()


def test_a_token_authenticated_client_needs_no_csrf_token(developer):  # noqa: ANN001
    assert client_for(developer).post("/api/v1/models/", MODEL, format="json").status_code == 201


def test_the_admin_sign_in_form_needs_the_csrf_token(developer):  # noqa: ANN001
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "dana-developer", "password": "dana-developer-pass-123"})
    assert response.status_code == 403
    assert client.get("/admin/").status_code == 302  # still signed out


def test_an_admin_form_posted_without_the_csrf_token_changes_nothing(compliance_officer, retail_model):  # noqa: ANN001
    client = _session(compliance_officer)
    form = {"registered_model": retail_model.pk, "feature": "purpose", "text": "The purpose of the loan."}
    assert client.post("/admin/riskmodels/reasontext/add/", form).status_code == 403
    assert not ReasonText.objects.exists()
    form["csrfmiddlewaretoken"] = _csrf_token(client)
    assert client.post("/admin/riskmodels/reasontext/add/", form).status_code == 302
    assert ReasonText.objects.filter(feature="purpose").exists()

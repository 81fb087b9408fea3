"""The OpenAPI schema generates with no warnings and documents every operation."""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_the_schema_generates_without_warnings_and_validates():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    assert {"/api/v1/datasets/", "/api/v1/dataset-versions/{id}/", "/api/v1/audit-events/"} <= set(schema["paths"])
    assert "knoxApiToken" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_the_docs_page_is_served_with_local_assets(client, developer):  # noqa: ANN001
    client.force_login(developer)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()

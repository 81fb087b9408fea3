"""The API index at /api/v1/ lists every endpoint; unknown API paths answer in the JSON error shape."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_index_lists_every_api_route_with_its_methods_and_what_it_does(outsider):  # noqa: ANN001
    # The OpenAPI generator walks the URLconf on its own: both must see the same operations.
    schema = SchemaGenerator().get_schema(request=None, public=True)
    expected = {path: sorted(method.upper() for method in operations)
                for path, operations in schema["paths"].items() if path.startswith("/api/v1/")}
    response = client_for(outsider).get("/api/v1/")  # any signed-in user, as /me/
    assert response.status_code == 200
    endpoints = response.json()["endpoints"]
    assert {e["path"]: sorted(e["methods"]) for e in endpoints} == expected
    assert len(endpoints) == len(expected)  # no path listed twice
    assert all(e["name"] and e["description"] for e in endpoints)
    datasets = next(e for e in endpoints if e["path"] == "/api/v1/datasets/")
    assert datasets["methods"] == ["GET", "POST"] and datasets["name"] == "datasets"


def test_the_index_needs_authentication_like_every_endpoint():
    response = APIClient().get("/api/v1/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v1/jobs/1/nope/", "/api/", "/api/v2/datasets/"])
def test_an_unknown_api_path_gets_a_json_404_in_the_error_shape(path, debug, developer, settings):  # noqa: ANN001
    settings.DEBUG = debug  # with DEBUG on, Django would otherwise answer its technical HTML page
    response = client_for(developer).get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"status": 404, "code": "not_found",
                                         "message": f"no API endpoint at {path}; GET /api/v1/ lists them",
                                         "details": {}}}
    assert response["X-Request-ID"]


def test_a_missing_trailing_slash_is_still_redirected(developer):  # noqa: ANN001
    response = client_for(developer).get("/api/v1/jobs")
    assert response.status_code == 301 and response["Location"] == "/api/v1/jobs/"


def test_an_unknown_object_keeps_the_views_own_404(developer):  # noqa: ANN001
    response = client_for(developer).get("/api/v1/jobs/999/")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "job 999 does not exist"


def test_paths_outside_the_api_keep_djangos_404_page(client):  # noqa: ANN001
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")

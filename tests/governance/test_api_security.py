"""Every operation of the live OpenAPI schema, tried the way an attacker or a curious auditor would:
without credentials (401), and as an auditor, who reads everything and may change nothing (403 on
every unsafe method, before anything is looked up). The same rule, read from the policy itself."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from governance.accounts import role_groups_sync
from governance.policy import GRANTS, Capability, admin_permissions_of, capabilities_of
from governance.roles import Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

UNSAFE = {"post", "put", "patch", "delete"}

# Unsafe operations an auditor may still call, each with why it changes nothing an auditor must not change.
AUDITOR_ALLOWED: dict[tuple[str, str], str] = {
    ("post", "/api/v1/auth/login/"): "one's own session: exchanging one's password for one's own token",
    ("post", "/api/v1/auth/logout/"): "one's own session: revoking the token in use",
    ("post", "/api/v1/auth/logout-all/"): "one's own session: revoking every token of one's own",
    ("post", "/api/v1/decisions/{id}/notice/"): "a read: renders the notice of a recorded decision; only the audit "
                                                "log notes that it was read",
    ("post", "/api/v1/decisions/{id}/reproduce/"): "a read: re-scores a recorded decision to show it reproduces (an "
                                                   "examiner's own work); only the audit log notes it",
}
# The capabilities that only read; everything else changes something.
READ_CAPABILITIES = frozenset({Capability.DOMAIN_READ, Capability.AUDIT_READ, Capability.DECISION_READ})


def _operations() -> list[tuple[str, str, str]]:
    """(method, path template, a concrete URL with placeholders filled) for every operation of the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for template, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "head", "options", *UNSAFE}:
                continue
            url = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    value = "1" if parameter["schema"].get("type") == "integer" else "placeholder"
                    url = url.replace("{" + parameter["name"] + "}", value)
            assert "{" not in url, f"unfilled path parameter in {template}"
            found.append((method, template, url))
    return found


OPERATIONS = _operations()


def _ids(value: Any) -> str:
    return value if isinstance(value, str) else ""


def test_the_schema_has_the_operations_these_tests_rely_on():
    methods = {(method, template) for method, template, _ in OPERATIONS}
    assert len(OPERATIONS) > 60
    assert set(AUDITOR_ALLOWED) <= methods, f"stale allow-list entries: {set(AUDITOR_ALLOWED) - methods}"


@pytest.mark.parametrize(("method", "template", "url"), OPERATIONS, ids=[f"{m} {t}" for m, t, _ in OPERATIONS])
def test_every_operation_refuses_a_request_without_credentials_with_401(method, template, url):  # noqa: ANN001
    response = getattr(APIClient(), method)(url)
    assert response.status_code == 401, f"{method.upper()} {url} answered {response.status_code}"
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.has_header("WWW-Authenticate")  # 401 tells the client how to authenticate


UNSAFE_OPERATIONS = [op for op in OPERATIONS if op[0] in UNSAFE]


@pytest.mark.parametrize(("method", "template", "url"), UNSAFE_OPERATIONS,
                         ids=[f"{m} {t}" for m, t, _ in UNSAFE_OPERATIONS])
def test_an_auditor_may_change_nothing_through_the_api(method, template, url, auditor):  # noqa: ANN001
    if (method, template) in AUDITOR_ALLOWED:
        pytest.skip(AUDITOR_ALLOWED[(method, template)])
    response = getattr(client_for(auditor), method)(url, {}, format="json")
    assert response.status_code == 403, f"{method.upper()} {url} answered {response.status_code}"
    assert response.json()["error"]["code"] == "permission_denied"


SAFE_OPERATIONS = [op for op in OPERATIONS if op[0] == "get"]


@pytest.mark.parametrize(("method", "template", "url"), SAFE_OPERATIONS,
                         ids=[f"{m} {t}" for m, t, _ in SAFE_OPERATIONS])
def test_an_auditor_may_read_everything_through_the_api(method, template, url, auditor):  # noqa: ANN001
    # Placeholder ids name nothing, so 404 is a fine answer; a refusal is not.
    response = client_for(auditor).get(url)
    assert response.status_code in (200, 400, 404), f"GET {url} answered {response.status_code}"


def test_the_policy_grants_the_auditor_only_capabilities_that_read():
    writes = capabilities_of(Role.AUDITOR) - READ_CAPABILITIES
    assert writes == frozenset(), f"auditors hold capabilities that change things: {sorted(writes)}"
    # And the read capabilities are what the auditor exists for.
    assert all(Role.AUDITOR in GRANTS[capability] for capability in READ_CAPABILITIES)


def test_the_auditors_admin_group_may_only_view():
    assert admin_permissions_of(Role.AUDITOR)
    assert all(p.split(".")[1].startswith("view_") for p in admin_permissions_of(Role.AUDITOR))
    group = role_groups_sync()[Role.AUDITOR]
    codenames = set(Permission.objects.filter(group=group).values_list("codename", flat=True))
    assert codenames and all(name.startswith("view_") for name in codenames)


def test_an_auditor_in_the_admin_may_open_the_audit_log_but_add_or_change_nothing(auditor):  # noqa: ANN001
    client = APIClient()
    client.force_login(auditor)
    assert client.get("/admin/governance/auditevent/").status_code == 200
    assert client.get("/admin/riskmodels/reasontext/add/").status_code == 403
    assert client.get("/admin/riskmodels/protectedcharacteristic/add/").status_code == 403
    assert client.get("/admin/auth/user/add/").status_code == 403

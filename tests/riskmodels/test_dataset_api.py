"""The dataset registry through the REST API: uploads, versions, hashes, and every bad input."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.audit import audit_verify
from governance.models import AuditEvent
from riskmodels.models import Dataset, DatasetVersion
from tests.conftest import GERMAN_CREDIT_ROLES, client_for, stored_files

pytestmark = pytest.mark.django_db
URL = "/api/v1/datasets/"


def upload(client, content: bytes, *, name: str = "german-credit", filename: str = "data.csv",  # noqa: ANN001
           target: str | None = "creditability", roles: dict | str | None = None, **extra: str):
    data = {"name": name, "file": SimpleUploadedFile(filename, content), **extra}
    if target is not None:
        data["target"] = target
    if roles is not None:
        data["roles"] = roles if isinstance(roles, str) else json.dumps(roles)
    return client.post(URL, data, format="multipart")


def test_uploading_the_demo_csv_returns_the_version_with_hash_schema_and_profile(dev_client, german_credit_csv,
                                                                                 _isolated_media):  # noqa: ANN001
    response = upload(dev_client, german_credit_csv.read_bytes(), roles=GERMAN_CREDIT_ROLES)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["dataset"] == "german-credit" and body["version"] == 1
    assert len(body["sha256"]) == 64
    assert (body["n_rows"], body["n_columns"]) == (1000, 21)
    roles = {c["name"]: c["role"] for c in body["schema"]}
    assert roles["creditability"] == "target"
    assert roles["age_in_years"] == "protected"
    assert roles["duration_in_month"] == "feature"
    assert body["profile"]["target"]["classes"] == {"good": 700, "bad": 300}
    assert body["profile"]["target"]["positive_class"] == "bad"

    # The stored file is Parquet, and the recorded hash is the hash of its bytes.
    version = DatasetVersion.objects.get(pk=body["id"])
    [stored] = stored_files(_isolated_media)
    import hashlib

    assert hashlib.sha256(stored.read_bytes()).hexdigest() == version.sha256
    assert pq.read_metadata(stored).num_rows == 1000


def test_the_registration_is_audited_with_the_hash(dev_client, german_credit_csv, developer):  # noqa: ANN001
    body = upload(dev_client, german_credit_csv.read_bytes()).json()
    event = AuditEvent.objects.get(action="dataset_version.registered")
    assert event.actor_username == developer.username
    assert event.after["sha256"] == body["sha256"]
    assert event.target_id == str(body["id"])
    assert AuditEvent.objects.filter(action="dataset.created").count() == 1
    assert audit_verify().ok


def test_one_changed_cell_makes_a_new_version_with_a_new_hash(dev_client, german_credit_csv):  # noqa: ANN001
    first = upload(dev_client, german_credit_csv.read_bytes()).json()
    rows = list(csv.reader(io.StringIO(german_credit_csv.read_text())))
    rows[10][4] = str(int(rows[10][4]) + 1)  # credit_amount of one applicant
    changed = io.StringIO()
    csv.writer(changed, lineterminator="\n").writerows(rows)
    second = upload(dev_client, changed.getvalue().encode())
    assert second.status_code == 201
    assert second.json()["version"] == 2
    assert second.json()["sha256"] != first["sha256"]


def test_uploading_identical_content_returns_the_existing_version(dev_client, german_credit_csv):  # noqa: ANN001
    first = upload(dev_client, german_credit_csv.read_bytes()).json()
    events = AuditEvent.objects.count()
    again = upload(dev_client, german_credit_csv.read_bytes())
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert DatasetVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_a_parquet_upload_is_accepted_and_hashes_like_its_csv(dev_client, german_credit_csv, tmp_path):  # noqa: ANN001
    import pyarrow.csv as pacsv

    parquet_path = tmp_path / "gc.parquet"
    pq.write_table(pacsv.read_csv(german_credit_csv), parquet_path)
    response = upload(dev_client, parquet_path.read_bytes(), filename="gc.parquet", name="gc-parquet")
    assert response.status_code == 201, response.json()
    assert response.json()["source_format"] == "parquet"
    assert response.json()["n_rows"] == 1000


def _ragged() -> bytes:
    return b"a,b,target\n1,2,0\n3,4\n5,6,1\n"


BAD_INPUTS = {
    "empty file": (b"", {}, "empty_file"),
    "header only": (b"a,b,target\n", {}, "empty_file"),
    "not csv or parquet": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, {}, "not_tabular"),
    "undecodable text": (b"a,b,target\n1,caf\xe9,0\n2,ok,1\n", {}, "undecodable"),
    "ragged rows": (_ragged(), {}, "ragged_rows"),
    "duplicate column names": (b"a,a,target\n1,2,0\n3,4,1\n", {}, "duplicate_columns"),
    "empty column name": (b"a,,target\n1,2,0\n3,4,1\n", {}, "empty_column_name"),
    "unknown target": (b"a,b,target\n1,2,0\n3,4,1\n", {"target": "nope"}, "unknown_column"),
    "unknown role column": (b"a,b,target\n1,2,0\n3,4,1\n", {"roles": {"ghost": "protected"}}, "unknown_column"),
    "target not binary": (b"a,b,target\n1,2,0\n3,4,1\n5,6,2\n", {}, "target_not_binary"),
    "invalid role": (b"a,b,target\n1,2,0\n3,4,1\n", {"roles": {"a": "secret"}}, "invalid_role"),
    "roles not json": (b"a,b,target\n1,2,0\n3,4,1\n", {"roles": "{not json"}, "invalid"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_bad_input_gets_a_400_that_names_the_problem_and_leaves_nothing(case, dev_client,  # noqa: ANN001
                                                                             _isolated_media):
    content, options, code = BAD_INPUTS[case]
    events_before = AuditEvent.objects.count()
    response = upload(dev_client, content, name="bad-data", target=options.get("target", "target"),
                      roles=options.get("roles"))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == code
    assert error["message"]
    assert not Dataset.objects.filter(name="bad-data").exists()
    assert DatasetVersion.objects.count() == 0
    assert AuditEvent.objects.count() == events_before
    assert stored_files(_isolated_media) == []


def test_the_messages_name_the_column_or_line(dev_client):  # noqa: ANN001
    ragged = upload(dev_client, _ragged(), name="bad", target="target").json()["error"]["message"]
    assert "3" in ragged  # the line with two fields
    unknown = upload(dev_client, b"a,b,target\n1,2,0\n3,4,1\n", name="bad", target="nope").json()["error"]["message"]
    assert "nope" in unknown


def test_a_file_over_the_limit_gets_413_and_leaves_nothing(dev_client, german_credit_csv, settings,  # noqa: ANN001
                                                           _isolated_media):
    settings.DATASET_MAX_UPLOAD_BYTES = 1000
    response = upload(dev_client, german_credit_csv.read_bytes())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "1000" in response.json()["error"]["message"]
    assert DatasetVersion.objects.count() == 0 and stored_files(_isolated_media) == []


def test_a_missing_file_field_is_a_400_naming_the_field(dev_client):  # noqa: ANN001
    response = dev_client.post(URL, {"name": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("file:")


def test_a_bad_dataset_name_is_refused(dev_client, german_credit_csv):  # noqa: ANN001
    response = upload(dev_client, german_credit_csv.read_bytes(), name="Bad Name!")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_name"


def test_only_developers_may_upload(validator, auditor, german_credit_csv):  # noqa: ANN001
    for user in (validator, auditor):
        response = upload(client_for(user), german_credit_csv.read_bytes())
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert DatasetVersion.objects.count() == 0


def test_every_role_reads_versions_and_outsiders_read_nothing(dev_client, validator, auditor, outsider,  # noqa: ANN001
                                                              german_credit_csv):
    created = upload(dev_client, german_credit_csv.read_bytes()).json()
    for user in (validator, auditor):
        client = client_for(user)
        listed = client.get("/api/v1/dataset-versions/", {"dataset": "german-credit"}).json()
        assert listed["count"] == 1 and listed["results"][0]["sha256"] == created["sha256"]
        assert client.get(f"/api/v1/dataset-versions/{created['id']}/").status_code == 200
    outsider_client = client_for(outsider)
    assert outsider_client.get("/api/v1/dataset-versions/").status_code == 403
    assert outsider_client.get(f"/api/v1/dataset-versions/{created['id']}/").status_code == 403


def test_the_download_is_the_stored_parquet_with_its_hash(dev_client, german_credit_csv):  # noqa: ANN001
    created = upload(dev_client, german_credit_csv.read_bytes()).json()
    response = dev_client.get(f"/api/v1/dataset-versions/{created['id']}/download/")
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    import hashlib

    assert hashlib.sha256(content).hexdigest() == created["sha256"] == response["X-Content-SHA256"]


def test_a_missing_version_is_a_404_in_the_error_shape(dev_client):  # noqa: ANN001
    response = dev_client.get("/api/v1/dataset-versions/99999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_dataset_list_shows_the_latest_version(dev_client, german_credit_csv):  # noqa: ANN001
    upload(dev_client, german_credit_csv.read_bytes())
    body = dev_client.get(URL).json()
    assert body["results"][0]["name"] == "german-credit"
    assert body["results"][0]["latest_version"] == 1


@pytest.mark.parametrize(("raw", "expected"), [
    ("{not json", "roles is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
    ('["age_in_years"]', 'roles must be an object mapping column names to roles, e.g. {"age": "protected"}'),
    ('{"a": "secret"}', "column 'a' has unknown role 'secret'; use one of:"),
])
def test_the_api_and_the_admin_form_refuse_bad_roles_with_the_same_message(raw, expected, dev_client):  # noqa: ANN001
    from riskmodels.admin import DatasetUploadForm

    message = upload(dev_client, b"a,b,target\n1,2,0\n3,4,1\n", name="bad", target="target",
                     roles=raw).json()["error"]["message"]
    form = DatasetUploadForm(data={"name": "bad", "roles": raw}, files={"file": SimpleUploadedFile("x.csv", b"a\n1\n")})
    assert not form.is_valid()
    assert message.startswith(expected) and form.errors["roles"] == [message]

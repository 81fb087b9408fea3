"""The audit-trail export: files + manifest through the API, audited; filters; neutralised CSV cells;
bad filters that write nothing; who may export; the ZIP bundle; the verifier passing on real exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from governance.audit import audit_record, audit_verify
from governance.models import AuditEvent, AuditHead
from tests.conftest import ROOT, client_for, register_model, stored_files

pytestmark = pytest.mark.django_db
VERIFIER = ROOT / "tools" / "verify_audit_export.py"


def _export(client: APIClient, **params: str):  # noqa: ANN202
    return client.get("/api/v1/audit-events/export/", params)


def _exported(client: APIClient, **params: str) -> dict:
    response = _export(client, **params)
    assert response.status_code == 200, response.json()
    return response.json()


def _download(client: APIClient, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


def save_export(client: APIClient, manifest: dict, folder: Path) -> tuple[Path, Path]:
    """Download an export's JSON Lines file and manifest into ``folder``, as an examiner would."""
    events, stored_manifest = folder / "events.jsonl", folder / "manifest.json"
    events.write_bytes(_download(client, manifest["downloads"]["events.jsonl"]))
    stored_manifest.write_bytes(_download(client, manifest["downloads"]["manifest.json"]))
    return events, stored_manifest


def run_verifier(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFIER), *map(str, paths)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def two_models(developer):  # noqa: ANN001,ANN201
    return register_model(developer, "retail-pd"), register_model(developer, "sme-pd")


def test_an_auditor_exports_the_whole_trail_and_the_offline_verifier_passes(auditor, two_models, tmp_path):  # noqa: ANN001
    client = client_for(auditor)  # issuing its token is an event too
    head = AuditHead.objects.get(id=1)
    manifest = _exported(client)
    assert (manifest["row_count"], manifest["first_seq"], manifest["last_seq"]) == (head.seq, 1, head.seq)
    assert manifest["chain_head"] == {"seq": head.seq, "hash": head.hash} and manifest["reaches_head"]
    assert manifest["gaps"] == [] and manifest["filters"] == {} and manifest["exported_by"] == auditor.username
    events, stored_manifest = save_export(client, manifest, tmp_path)
    assert hashlib.sha256(events.read_bytes()).hexdigest() == manifest["files"]["events.jsonl"]["sha256"]
    assert len(events.read_text().splitlines()) == head.seq

    result = run_verifier(events, stored_manifest)
    assert result.returncode == 0, result.stderr
    assert f"OK: {head.seq} rows" in result.stdout

    # The export is itself an audit event carrying the manifest's and the file's hashes; the chain still holds.
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor_username == auditor.username and exported.target_id == manifest["export_id"]
    assert exported.after["manifest_sha256"] == hashlib.sha256(stored_manifest.read_bytes()).hexdigest()
    assert exported.after["manifest_sha256"] == manifest["manifest_sha256"]
    assert exported.after["files"] == manifest["files"]
    assert audit_verify().ok


def test_validators_and_compliance_officers_export_too_but_developers_and_outsiders_do_not(  # noqa: ANN001
        validator, compliance_officer, developer, outsider):
    assert _export(client_for(validator)).status_code == 200
    assert _export(client_for(compliance_officer)).status_code == 200
    for user in (developer, outsider):
        assert _export(client_for(user)).status_code == 403
    assert _export(APIClient()).status_code == 401
    assert AuditEvent.objects.filter(action="audit.exported").count() == 2


def test_the_model_filter_keeps_the_models_events_and_its_rows_and_lists_what_it_left_out(  # noqa: ANN001
        auditor, developer, two_models, tmp_path):
    retail, sme = two_models
    with transaction.atomic():  # an event about a row of the model's (its reason text), not the model itself
        audit_record(actor=developer, action="reason_text.set", target_type="riskmodels.reasontext", target_id="999",
                     after={"registered_model": retail.name, "feature": "age_in_years"})
    client = client_for(auditor)
    manifest = _exported(client, model=retail.name)
    events, stored_manifest = save_export(client, manifest, tmp_path)
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["action"] for r in rows] == ["registered_model.created", "reason_text.set"]
    assert rows[0]["target_id"] == str(retail.pk)
    assert manifest["filters"] == {"model": retail.name} and manifest["gaps"]
    assert not any(r["target_id"] == str(sme.pk) and r["target_type"] == "riskmodels.registeredmodel" for r in rows)
    result = run_verifier(events, stored_manifest)
    assert result.returncode == 0, result.stderr
    assert "filtered" in result.stdout


def test_the_action_filter_matches_a_family_by_its_prefix_and_an_action_exactly(auditor, two_models):  # noqa: ANN001
    client = client_for(auditor)
    family = _exported(client, action="registered_model.")
    assert family["row_count"] == 2
    assert _exported(client, action="registered_model.*")["row_count"] == 2
    assert _exported(client, action="registered_model")["row_count"] == 0  # no such action: exact match
    assert _exported(client, action="registered_model.created")["row_count"] == 2


def test_the_actor_and_date_filters_narrow_the_export(auditor, developer, two_models):  # noqa: ANN001
    client = client_for(auditor)
    by_developer = AuditEvent.objects.filter(actor_username=developer.username).count()
    assert _exported(client, actor=developer.username)["row_count"] == by_developer
    first = AuditEvent.objects.get(seq=1).created_at
    day = first.date().isoformat()
    assert _exported(client, since=day, until=day)["row_count"] >= by_developer
    assert _exported(client, until="2000-01-01")["row_count"] == 0
    instant = AuditEvent.objects.get(seq=2).created_at.isoformat()
    assert _exported(client, since=instant, until=instant)["first_seq"] == 2


@pytest.mark.parametrize(("params", "field"), [
    ({"model": "no-such-model"}, "model"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-45"}, "until"),
    ({"since": "2026-03-02", "until": "2026-03-01"}, "since"),
    ({"file_format": "xlsx"}, "file_format"),
])
def test_a_bad_filter_is_refused_naming_it_and_writes_nothing(auditor, two_models, params, field, _isolated_media):  # noqa: ANN001
    client = client_for(auditor)
    before = AuditEvent.objects.count()
    response = _export(client, **params)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field
    assert next(iter(params.values())) in response.json()["error"]["message"]
    assert AuditEvent.objects.count() == before
    assert stored_files(_isolated_media) == []


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(auditor, developer, two_models, tmp_path):  # noqa: ANN001
    with transaction.atomic():
        audit_record(actor=developer, action="reason_text.set", target_type="riskmodels.reasontext", target_id="1",
                     target_repr='=HYPERLINK("http://x","y")', after={"text": "-2+3"})
    client = client_for(auditor)
    manifest = _exported(client, file_format="csv")
    assert set(manifest["files"]) == {"events.jsonl", "events.csv"}
    body = _download(client, manifest["downloads"]["events.csv"])
    assert hashlib.sha256(body).hexdigest() == manifest["files"]["events.csv"]["sha256"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == manifest["row_count"]
    evil = next(r for r in rows if r["action"] == "reason_text.set")
    assert evil["target_repr"] == '\'=HYPERLINK("http://x","y")'
    assert json.loads(evil["after"]) == {"text": "-2+3"}
    # The verifier also checks the CSV's bytes against the manifest when given it.
    events, stored_manifest = save_export(client, manifest, tmp_path)
    (tmp_path / "events.csv").write_bytes(body)
    assert run_verifier(events, stored_manifest, tmp_path / "events.csv").returncode == 0
    (tmp_path / "events.csv").write_bytes(body.replace(b"'=HYPERLINK", b"=HYPERLINK"))
    assert run_verifier(events, stored_manifest, tmp_path / "events.csv").returncode == 1


def test_an_unknown_export_or_file_is_not_found(auditor):  # noqa: ANN001
    client = client_for(auditor)
    assert client.get("/api/v1/audit-exports/0123456789abcdef/manifest.json").status_code == 404
    manifest = _exported(client)
    assert client.get(f"/api/v1/audit-exports/{manifest['export_id']}/events.csv").status_code == 404
    assert client.get(f"/api/v1/audit-exports/{manifest['export_id']}/settings.py").status_code == 404


def test_the_files_of_an_export_are_for_audit_readers_only(auditor, developer):  # noqa: ANN001
    manifest = _exported(client_for(auditor))
    assert client_for(developer).get(manifest["downloads"]["manifest.json"]).status_code == 403
    assert client_for(developer).get(manifest["downloads"]["verifier.py"]).status_code == 403
    assert APIClient().get(manifest["downloads"]["verifier.py"]).status_code == 401


def test_the_verifier_downloaded_from_the_api_is_the_shipped_file(auditor):  # noqa: ANN001
    response = client_for(auditor).get("/api/v1/audit-exports/verifier.py")
    assert response.status_code == 200 and response.content == VERIFIER.read_bytes()
    assert 'filename="verify_audit_export.py"' in response["Content-Disposition"]


def test_the_zip_bundle_holds_the_files_the_manifest_and_the_verifier_which_passes(auditor, two_models, tmp_path):  # noqa: ANN001
    client = client_for(auditor)
    manifest = _exported(client, file_format="csv")
    archive = zipfile.ZipFile(io.BytesIO(_download(client, manifest["downloads"]["bundle.zip"])))
    assert sorted(archive.namelist()) == ["events.csv", "events.jsonl", "manifest.json", "verify_audit_export.py"]
    archive.extractall(tmp_path)
    result = subprocess.run([sys.executable, "verify_audit_export.py", "events.jsonl", "manifest.json", "events.csv"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_events_appended_after_the_head_was_read_are_not_in_the_export(auditor, two_models, tmp_path):  # noqa: ANN001
    # The export's own event comes after the head it records: the manifest stays consistent.
    client = client_for(auditor)
    first = _exported(client)
    second = _exported(client)
    assert second["last_seq"] == first["last_seq"] + 1  # the first export's audit.exported event, and no more
    events, stored_manifest = save_export(client, second, tmp_path)
    assert json.loads(events.read_text().splitlines()[-1])["action"] == "audit.exported"
    assert run_verifier(events, stored_manifest).returncode == 0


def test_the_admin_page_exports_through_the_same_service_and_links_the_files(auditor, two_models, client):  # noqa: ANN001
    client.force_login(auditor)
    assert "Export for an examiner" in client.get("/admin/governance/auditevent/").content.decode()
    page = client.post("/admin/governance/auditevent/export/", {"file_format": "csv", "model": "retail-pd"})
    assert page.status_code == 200
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.after["filters"] == {"model": "retail-pd"}
    body = page.content.decode()
    assert f"/api/v1/audit-exports/{exported.target_id}/events.csv" in body
    assert client.get(f"/api/v1/audit-exports/{exported.target_id}/manifest.json").status_code == 200


def test_the_admin_page_shows_a_bad_filter_and_writes_nothing(auditor, client, _isolated_media):  # noqa: ANN001
    client.force_login(auditor)
    before = AuditEvent.objects.count()
    page = client.post("/admin/governance/auditevent/export/", {"file_format": "jsonl", "model": "no-such-model"})
    assert "model &#x27;no-such-model&#x27; does not exist" in page.content.decode()
    assert AuditEvent.objects.count() == before and stored_files(_isolated_media) == []


def test_the_admin_page_refuses_a_developer_with_the_policys_reason(developer, client):  # noqa: ANN001
    client.force_login(developer)
    page = client.post("/admin/governance/auditevent/export/", {"file_format": "jsonl"})
    assert "only validators, compliance officers and auditors can read the audit log" in page.content.decode()
    assert not AuditEvent.objects.filter(action="audit.exported").exists()

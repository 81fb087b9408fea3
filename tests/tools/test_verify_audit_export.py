"""The offline verifier (tools/verify_audit_export.py), run as a subprocess on files the real export made:
it passes an intact export and names the first bad sequence number of an edited, deleted, inserted or
moved row; it imports only the standard library; its serialisation is the service's own."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from django.db import transaction

from governance.audit import audit_record, canonical_bytes, hashed_fields
from governance.models import AuditEvent
from riskmodels.services.audit_export import audit_events_export
from tests.conftest import ROOT, client_for, register_demo_dataset, register_model
from tests.riskmodels.test_audit_export import run_verifier, save_export

pytestmark = pytest.mark.django_db
VERIFIER = ROOT / "tools" / "verify_audit_export.py"
# Payloads a JSON round trip or a careless serialiser could change: unicode, separators, floats, big numbers.
AWKWARD = [
    {"text": "Zürich – ünïcødé ✓", "line_separator": "a\u2028b", "quote": 'say "hi"\n\ttab'},
    {"floats": [0.1, 1e-07, 1.5e+300, -0.0, 3.0], "big": 2**63 + 1, "negative": -42},
    {"nested": {"z": [1, {"b": None, "a": True}], "a": []}, "empty": ""},
    None,
]


def _verifier_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("verify_audit_export", VERIFIER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def populated(developer, validator, auditor):  # noqa: ANN001,ANN201
    """A log of real events (accounts, a dataset, models) and events with awkward payloads."""
    register_demo_dataset(developer)
    for index, (name, payload) in enumerate(zip(("retail-pd", "sme-pd", "mortgage-pd", "cards-pd"), AWKWARD,
                                                 strict=True)):
        register_model(developer, name)
        with transaction.atomic():
            audit_record(actor=validator, action="test.awkward", target_type="riskmodels.registeredmodel",
                         target_id=str(index), target_repr=f"=awkward {index}", before=payload, after=payload)
    return auditor


@pytest.fixture
def export(populated, tmp_path):  # noqa: ANN001,ANN201
    """An unfiltered export through the API, saved as an examiner would: (events, manifest, their lines)."""
    client = client_for(populated)
    response = client.get("/api/v1/audit-events/export/")
    assert response.status_code == 200
    events, manifest = save_export(client, response.json(), tmp_path)
    return events, manifest, _lines(events)


def _lines(events: Path) -> list[str]:
    # Split on newlines only: str.splitlines() also splits on the separators JSON strings may hold.
    return events.read_text(encoding="utf-8").split("\n")[:-1]


def _write(events: Path, lines: list[str]) -> None:
    events.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _seq(line: str) -> int:
    return json.loads(line)["seq"]


def _fails_at(events: Path, manifest: Path, seq: int | None) -> str:
    result = run_verifier(events, manifest)
    assert result.returncode == 1, result.stdout
    if seq is not None:
        assert f"first bad seq {seq}:" in result.stderr, result.stderr
    return result.stderr


def test_an_intact_export_passes(export):  # noqa: ANN001
    events, manifest, lines = export
    result = run_verifier(events, manifest)
    assert result.returncode == 0, result.stderr
    assert f"OK: {len(lines)} rows" in result.stdout and "contiguous" in result.stdout


def test_an_edited_row_fails_at_its_sequence_number(export):  # noqa: ANN001
    events, manifest, lines = export
    row = json.loads(lines[4])
    row["actor_username"] = "someone-else"
    lines[4] = json.dumps(row, sort_keys=True)
    _write(events, lines)
    assert "was modified" in _fails_at(events, manifest, row["seq"])


def test_an_edit_of_an_awkward_payload_fails_too(export):  # noqa: ANN001
    events, manifest, lines = export
    index = next(i for i, line in enumerate(lines) if '"test.awkward"' in line)
    lines[index] = lines[index].replace("Z\\u00fcrich", "Zurich")
    _write(events, lines)
    _fails_at(events, manifest, _seq(lines[index]))


def test_a_deleted_row_fails_at_its_sequence_number(export):  # noqa: ANN001
    events, manifest, lines = export
    deleted = _seq(lines[3])
    del lines[3]
    _write(events, lines)
    assert "missing" in _fails_at(events, manifest, deleted)


def test_a_deleted_last_row_fails_at_its_sequence_number(export):  # noqa: ANN001
    events, manifest, lines = export
    _write(events, lines[:-1])
    _fails_at(events, manifest, _seq(lines[-1]))


def test_an_inserted_row_with_a_valid_hash_fails_at_its_sequence_number(export):  # noqa: ANN001
    events, manifest, lines = export
    verifier = _verifier_module()
    # A forger who knows the format: a row that links to row 3 and hashes correctly, placed after it.
    forged = {**json.loads(lines[3]), "action": "model_version.approve", "actor_username": "forger"}
    forged.update(seq=_seq(lines[3]) + 1, prev_hash=json.loads(lines[3])["hash"])
    forged["hash"] = verifier.row_hash(forged)
    lines.insert(4, json.dumps(forged, sort_keys=True))
    _write(events, lines)
    # The forged row passes its own checks; the genuine row it displaced is then out of place.
    assert "out of place" in _fails_at(events, manifest, forged["seq"])


def test_a_duplicated_row_fails_at_its_sequence_number(export):  # noqa: ANN001
    events, manifest, lines = export
    lines.insert(6, lines[2])
    _write(events, lines)
    _fails_at(events, manifest, _seq(lines[2]))


def test_two_swapped_rows_fail_at_the_first_one_out_of_place(export):  # noqa: ANN001
    events, manifest, lines = export
    lines[3], lines[4] = lines[4], lines[3]
    _write(events, lines)
    _fails_at(events, manifest, _seq(lines[4]))


def test_a_change_outside_the_hashed_fields_fails_on_the_files_sha256(export):  # noqa: ANN001
    events, manifest, lines = export
    lines[0] = json.dumps(json.loads(lines[0]), separators=(",", ":"), sort_keys=True)
    _write(events, lines)
    assert "SHA-256 differs" in _fails_at(events, manifest, None)


def test_a_manifest_that_does_not_match_the_file_fails(export):  # noqa: ANN001
    events, manifest, _ = export
    data = json.loads(manifest.read_text())
    data["row_count"] += 1
    data["last_seq"] += 1
    manifest.write_text(json.dumps(data))
    assert "missing" in _fails_at(events, manifest, data["last_seq"])


def test_unreadable_input_exits_with_two(tmp_path):  # noqa: ANN001
    result = run_verifier(tmp_path / "nothing.jsonl", tmp_path / "manifest.json")
    assert result.returncode == 2


def test_a_filtered_export_verifies_and_a_row_deleted_from_it_is_named(populated, tmp_path):  # noqa: ANN001
    client = client_for(populated)
    response = client.get("/api/v1/audit-events/export/", {"action": "registered_model."})
    events, manifest = save_export(client, response.json(), tmp_path)
    assert response.json()["gaps"]
    assert run_verifier(events, manifest).returncode == 0
    lines = _lines(events)
    _write(events, [lines[0], lines[2]])
    _fails_at(events, manifest, _seq(lines[1]))


def test_the_verifier_imports_only_the_standard_library():
    imported = set()
    for node in ast.walk(ast.parse(VERIFIER.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import would not work on an examiner's machine"
            imported.add(node.module.split(".")[0])
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


def test_the_verifiers_serialisation_is_the_services_on_every_event(populated):  # noqa: ANN001
    audit_events_export(actor=populated, file_format="jsonl", model="retail-pd")  # an audit.exported event too
    verifier = _verifier_module()
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(events) > 10 and {e.action for e in events} >= {"test.awkward", "audit.exported",
                                                                 "dataset_version.registered"}
    for event in events:
        # As an export row travels: serialised to a line, parsed back on the examiner's machine.
        row = json.loads(json.dumps({**hashed_fields(event), "hash": event.hash}, sort_keys=True,
                                    ensure_ascii=False))
        assert verifier.canonical_bytes(row) == canonical_bytes(event), event.seq
        assert verifier.row_hash(row) == event.hash

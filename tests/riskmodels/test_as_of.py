"""The inventory as of a date, rebuilt from the audit log alone: real lifecycle decisions through the
services, the clock moved between them, and the reconstruction checked at several moments against what
was true then (champions changing, approvals, a finding opened then closed)."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from governance.accounts import user_upsert
from governance.roles import Role
from riskmodels.models import ModelVersion, VersionStatus
from riskmodels.selectors.audit_history import parse_moment
from riskmodels.services import findings, lifecycle
from riskmodels.services.audit_export import audit_events_export, audit_export_file_get_for_user
from tests.conftest import (
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    train_submittable_version,
)

pytestmark = pytest.mark.django_db
DAY1, DAY2, DAY3, DAY4 = (dt.datetime(2031, month, 10, 10, 0, tzinfo=dt.UTC) for month in (1, 2, 3, 4))


def _at(moment: dt.datetime):  # noqa: ANN202
    # The audit record (and every decision) takes its time from django.utils.timezone.now.
    return mock.patch("django.utils.timezone.now", return_value=moment)


# Two submittable versions cost seconds: the module records the history once, committed, and each
# test's writes roll back.
shared_media, _isolated_media = module_media("as-of-media")


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    """Two versions of one model through a quarter of decisions; returns (model, first, second, finding)."""
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        # The personas of tests/conftest.py: the fixtures find these same users.
        developer, validator, compliance_officer = (user_upsert(username=name, role=role)[0] for name, role in (
            ("dana-developer", Role.DEVELOPER), ("vera-validator", Role.VALIDATOR),
            ("carl-compliance", Role.COMPLIANCE_OFFICER)))
        user_upsert(username="ada-auditor", role=Role.AUDITOR)
        dataset_version = register_demo_dataset(developer)
        model = register_model(developer)
        first, second = (train_submittable_version(developer, model, dataset_version) for _ in range(2))
        yield (model, first, second, _decide(developer, validator, compliance_officer, first, second))
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def _decide(developer, validator, compliance_officer, first, second):  # noqa: ANN001,ANN202
    why = "as the policy requires"
    with _at(DAY1):  # the first version becomes champion, with a medium finding open as a condition
        lifecycle.version_submit(actor=developer, version=first, rationale=why)
        lifecycle.version_take(actor=validator, version=first, rationale=why)
        finding = findings.finding_raise(actor=validator, version=first, title="Unstable age bins",
                                         description="The bins move between folds.", category="performance",
                                         severity="medium", due_date=dt.date(2031, 6, 30), owner=developer)
        lifecycle.version_validate(actor=validator, version=first, rationale=why, conclusion="fit_for_purpose")
        lifecycle.version_approve(actor=compliance_officer, version=first, rationale=why)
        lifecycle.version_promote(actor=compliance_officer, version=first, rationale=why)
    with _at(DAY2):  # the finding is remediated and closed; the second version is approved as a challenger
        findings.finding_remediate(actor=developer, finding=finding, remediation="Quantile bins.")
        findings.finding_close(actor=validator, finding=finding, evidence="Stable over five folds.")
        lifecycle.version_submit(actor=developer, version=second, rationale=why)
        lifecycle.version_take(actor=validator, version=second, rationale=why)
        lifecycle.version_validate(actor=validator, version=second, rationale=why, conclusion="fit_for_purpose")
        lifecycle.version_approve(actor=compliance_officer, version=second, rationale=why)
    with _at(DAY3):  # the second replaces the first as champion
        lifecycle.version_promote(actor=compliance_officer, version=second, rationale=why)
    with _at(DAY4):  # the first is retired
        lifecycle.version_retire(actor=compliance_officer, version=first, rationale=why)
    return finding


def _as_of(user, date: str) -> dict:  # noqa: ANN001
    response = client_for(user).get("/api/v1/inventory/as-of/", {"date": date})
    assert response.status_code == 200, response.json()
    (model,) = response.json()["models"]
    return model


def _ids(versions: list[dict]) -> list[int]:
    return [v["id"] for v in versions]


def test_the_inventory_at_each_date_is_what_was_true_then(auditor, history):  # noqa: ANN001
    model, first, second, finding = history

    before = _as_of(auditor, "2031-01-09")
    assert before["name"] == model.name and before["champion"] is None and before["approved"] == []
    assert {v["status"] for v in before["versions"]} == {"trained"} and before["open_findings"] == []

    day1 = _as_of(auditor, "2031-01-10")
    assert day1["champion"]["id"] == first.pk and day1["champion"]["since"].startswith("2031-01-10")
    assert _ids(day1["approved"]) == [first.pk]
    assert [(f["id"], f["status"], f["severity"], f["version_id"]) for f in day1["open_findings"]] == [
        (finding.pk, "open", "medium", first.pk)]

    day2_morning = _as_of(auditor, "2031-02-10T09:00:00Z")  # an instant before the day's decisions
    assert _ids(day2_morning["approved"]) == [first.pk] and _ids(day2_morning["open_findings"]) == [finding.pk]
    assert _as_of(auditor, "2031-02-10T11:00:00+02:00") == day2_morning  # the same instant, in another zone
    assert _ids(_as_of(auditor, "2031-02-10T10:00:00Z")["approved"]) == [first.pk, second.pk]  # the instant included

    day2 = _as_of(auditor, "2031-02-10")
    assert day2["champion"]["id"] == first.pk
    assert {v["id"]: v["status"] for v in day2["approved"]} == {first.pk: "champion", second.pk: "approved"}
    assert day2["open_findings"] == []

    day3 = _as_of(auditor, "2031-03-10")
    assert day3["champion"]["id"] == second.pk
    assert {v["id"]: v["status"] for v in day3["approved"]} == {first.pk: "approved", second.pk: "champion"}

    day4 = _as_of(auditor, "2031-04-10")
    assert day4["champion"]["id"] == second.pk and _ids(day4["approved"]) == [second.pk]
    assert {v["id"]: v["status"] for v in day4["versions"]} == {first.pk: "retired", second.pk: "champion"}


def test_the_latest_reconstruction_agrees_with_the_rows(auditor, history):  # noqa: ANN001
    now = _as_of(auditor, "2040-01-01")
    assert {v["id"]: v["status"] for v in now["versions"]} == dict(
        ModelVersion.objects.values_list("pk", "status"))


def test_the_reconstruction_reads_the_log_not_the_rows(auditor, history):  # noqa: ANN001
    _, first, second, _ = history
    # Rows changed behind the services' back do not rewrite history: the log says what was true.
    ModelVersion.objects.filter(pk=second.pk).update(status=VersionStatus.RETIRED)
    assert _as_of(auditor, "2031-03-10")["champion"]["id"] == second.pk


def test_the_inventory_as_of_is_for_holders_of_domain_and_audit_read(  # noqa: ANN001
        developer, validator, compliance_officer, history):
    for user in (validator, compliance_officer):
        assert client_for(user).get("/api/v1/inventory/as-of/", {"date": "2031-01-01"}).status_code == 200
    assert client_for(developer).get("/api/v1/inventory/as-of/", {"date": "2031-01-01"}).status_code == 403
    assert APIClient().get("/api/v1/inventory/as-of/", {"date": "2031-01-01"}).status_code == 401


@pytest.mark.parametrize("date", ["", "last tuesday", "2031-02-30"])
def test_a_bad_date_is_refused_naming_the_parameter(auditor, history, date):  # noqa: ANN001
    response = client_for(auditor).get("/api/v1/inventory/as-of/", {"date": date})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "date"


def test_an_export_filtered_by_the_model_holds_its_versions_decisions_and_findings(auditor, history):  # noqa: ANN001
    # The export's model filter over this real history (tests/riskmodels/test_audit_export.py has the rest).
    model, first, second, finding = history
    export = audit_events_export(actor=auditor, file_format="jsonl", model=model.name)
    stored = audit_export_file_get_for_user(user=auditor, id=export.id, name="events.jsonl")
    with default_storage.open(stored.path) as handle:
        rows = [json.loads(line) for line in handle]
    targets = {(r["target_type"], r["target_id"]) for r in rows}
    actions = {r["action"] for r in rows}
    assert {"registered_model.created", "registered_model.review_scheduled", "train_job.created",
            "model_version.created", "model_version.approve", "model_version.promote", "model_version.replace",
            "model_version.retire", "finding.raised", "finding.remediated", "finding.closed"} <= actions
    assert {("riskmodels.modelversion", str(first.pk)), ("riskmodels.modelversion", str(second.pk)),
            ("riskmodels.finding", str(finding.pk)), ("riskmodels.registeredmodel", str(model.pk))} <= targets
    # Nothing about users, tokens or datasets: they do not refer to the model.
    assert not {t for t, _ in targets} & {"auth.user", "knox.authtoken", "riskmodels.dataset",
                                           "riskmodels.datasetversion"}


def test_an_offset_whose_plus_a_query_string_turned_into_a_space_still_parses():
    assert parse_moment("2031-02-10T11:00:00 02:00", field="date") == DAY2 - dt.timedelta(hours=1)
    assert parse_moment("2031-02-10", field="date", end_of_day=True) == dt.datetime(2031, 2, 11, tzinfo=dt.UTC)

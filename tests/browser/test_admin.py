"""Compliance staff and developers in the admin, in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.models import AuditEvent
from riskmodels.models import DatasetVersion
from tests.browser.conftest import sign_in
from tests.conftest import GERMAN_CREDIT, register_demo_dataset, register_model

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_compliance_officer_reads_the_audit_log_but_cannot_change_it(page, compliance_officer, developer,  # noqa: ANN001
                                                                       tmp_path):
    register_demo_dataset(developer)
    sign_in(page, "carl-compliance", "carl-compliance-pass-123")
    page.click("text=Audit events")
    page.wait_for_url("**/governance/auditevent/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == AuditEvent.objects.count()
    assert page.locator("text=dataset_version.registered").count() >= 1
    assert page.locator(".object-tools a.addlink").count() == 0  # no "Add audit event"
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url("**/change/")
    assert page.locator("text=prev hash").count() >= 1
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.deletelink").count() == 0
    page.screenshot(path=str(tmp_path / "audit-event.png"))


def test_a_developer_uploads_a_dataset_through_the_admin_and_sees_its_profile(page, developer, _isolated_media):  # noqa: ANN001
    sign_in(page, "dana-developer", "dana-developer-pass-123")
    page.goto("/admin/riskmodels/datasetversion/")
    page.click("a.addlink")
    page.wait_for_url("**/upload/")
    page.fill("#id_name", "german-credit")
    page.set_input_files("#id_file", str(GERMAN_CREDIT))
    page.fill("#id_target", "creditability")
    page.fill("#id_roles", '{"age_in_years": "protected"}')
    page.click("input[type=submit]")
    page.wait_for_url("**/change/")
    version = DatasetVersion.objects.get()
    assert page.locator(".field-sha256 .readonly").inner_text() == version.sha256
    assert page.locator("td:text-is('age_in_years') + td + td").inner_text() == "protected"
    assert "Registered german-credit v1" in page.locator(".messagelist").inner_text()
    assert AuditEvent.objects.filter(action="dataset_version.registered", actor_username="dana-developer").exists()


def test_a_bad_upload_in_the_admin_shows_the_reason_and_stores_nothing(page, developer, tmp_path: Path,  # noqa: ANN001
                                                                       _isolated_media):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,target\n1,2,0\n3,4\n5,6,1\n")
    sign_in(page, "dana-developer", "dana-developer-pass-123")
    page.goto("/admin/riskmodels/datasetversion/upload/")
    page.fill("#id_name", "broken")
    page.set_input_files("#id_file", str(ragged))
    page.fill("#id_target", "target")
    page.click("input[type=submit]")
    error = page.locator(".errorlist.nonfield").inner_text()
    assert "line 3" in error.lower() or "3" in error
    assert DatasetVersion.objects.count() == 0
    assert not any(p.is_file() for p in _isolated_media.rglob("*"))


def test_the_job_list_shows_a_progress_bar(page, developer, compliance_officer):  # noqa: ANN001
    from riskmodels.models import Job
    from riskmodels.services.training import training_job_create

    dataset = register_demo_dataset(developer)
    model = register_model(developer)
    job = training_job_create(actor=developer, registered_model=model, dataset_version=dataset,
                              request={"algorithm": "logistic_regression"})
    Job.objects.filter(pk=job.pk).update(status="running", progress_stage="fit", progress_percent=70)
    sign_in(page, "carl-compliance", "carl-compliance-pass-123")
    page.goto("/admin/riskmodels/job/")
    bar = page.locator("#result_list progress").first
    assert bar.get_attribute("value") == "70"
    assert "running · fit" in page.locator("#result_list").inner_text()

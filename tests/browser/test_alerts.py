"""An alert in a real browser: a compliance officer finds it open on the start page and acknowledges it."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent
from riskmodels.jobs.kinds import job_execute
from riskmodels.models import Alert, ModelVersion
from riskmodels.services.training import training_job_create
from tests.browser.conftest import sign_in
from tests.riskmodels.alerting import raise_alerts

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_compliance_officer_acknowledges_an_open_alert_from_the_start_page(page, developer, compliance_officer,  # noqa: ANN001
                                                                            german_credit_version, retail_model):
    job = training_job_create(actor=developer, registered_model=retail_model, dataset_version=german_credit_version,
                              request={"algorithm": "logistic_regression"})
    job_execute(job_id=job.pk)
    alert = raise_alerts(ModelVersion.objects.get(training_job=job))[0]

    sign_in(page, "carl-compliance", "carl-compliance-pass-123")
    page.goto("/admin/riskmodels/modelversion/workspace/")
    row = page.locator(f"#alert-{alert.pk}")
    assert "psi:score" in row.inner_text() and "RED" in row.inner_text() and "open" in row.inner_text()
    row.get_by_role("link", name="Acknowledge").click()
    page.wait_for_selector("#decision-form")
    page.fill("textarea[name=comment]", "Drift after the spring campaign; revalidation requested.")
    page.click("input[name=_confirm]")
    page.wait_for_selector("#alerts")
    assert f"Alert #{alert.pk} acknowledged." in page.locator(".messagelist").inner_text()
    row_text = page.locator(f"#alert-{alert.pk}").inner_text()
    assert "acknowledged by carl-compliance" in row_text
    assert page.locator(f"#alert-{alert.pk}").get_by_role("link", name="Acknowledge").count() == 0

    stored = Alert.objects.get(pk=alert.pk)
    assert (stored.status, stored.comment) == ("acknowledged", "Drift after the spring campaign; revalidation requested.")
    assert AuditEvent.objects.filter(action="alert.acknowledged", actor_username="carl-compliance").count() == 1

"""The compliance workspace in a real browser: a version validated, a finding answered and closed, approved, promoted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from governance.models import AuditEvent
from riskmodels.models import Decision, Finding, ModelVersion, VersionStatus
from tests.browser.conftest import sign_in
from tests.riskmodels.test_admin_workspace import prepare_submitted_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FORCED_POST = """([url, token, rationale]) => {
  const form = document.createElement('form');
  form.method = 'post';
  form.action = url;
  for (const [name, value] of [['csrfmiddlewaretoken', token], ['rationale', rationale]]) {
    const input = document.createElement('input');
    input.type = 'hidden'; input.name = name; input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


class Person:
    """One signed-in person in their own browser context, saving a screenshot of each page they reach."""

    def __init__(self, browser, live_server, username: str, shots) -> None:  # noqa: ANN001
        self.context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.username = username
        self.shots = shots
        sign_in(self.page, username, f"{username}-pass-123")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{len(list(self.shots.iterdir())) + 1:02d}-{self.username}-{name}.png"),
                             full_page=True)

    def open_version(self, version: ModelVersion) -> None:
        self.page.goto(f"/admin/riskmodels/modelversion/{version.pk}/workspace/")
        self.page.wait_for_selector("#version-status")

    def decide(self, button: str, fields: dict[str, str], name: str) -> None:
        """Click a decision button, fill its form, confirm, and come back to the version page."""
        self.page.click(button)
        self.page.wait_for_selector("#decision-form")
        for selector, value in fields.items():
            if self.page.locator(selector).evaluate("e => e.tagName") == "SELECT":
                self.page.select_option(selector, value)
            else:
                self.page.fill(selector, value)
        self.shot(f"{name}-form")
        self.page.click("input[name=_confirm]")
        self.page.wait_for_selector("#version-status")
        self.shot(name)

    def status(self) -> str:
        return self.page.locator("#version-status").get_attribute("data-status")

    def close(self) -> None:
        self.context.close()


def test_a_version_goes_from_submitted_to_champion_through_the_workspace(browser, live_server, developer,  # noqa: ANN001
                                                                        validator, compliance_officer,
                                                                        german_credit_version, retail_model,
                                                                        tmp_path):
    version = prepare_submitted_version(developer, german_credit_version, retail_model)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nworkspace screenshots: {shots}")

    vera = Person(browser, live_server, "vera-validator", shots)
    vera.page.click("#workspace-link a")
    vera.page.wait_for_selector("#awaiting-validation")
    assert str(version) in vera.page.locator("#awaiting-validation").inner_text()
    vera.shot("start-page")
    vera.page.click(f"#awaiting-validation a:text-is('{version}')")
    vera.page.wait_for_selector("#version-status")
    # Everything needed to decide is on the page, the plots served inline.
    assert vera.page.locator("#metrics tr.metric-auc td").nth(1).inner_text().startswith("[")
    assert vera.page.locator("#metrics img.plot").count() >= 3
    assert vera.page.locator("#shap img[alt*=beeswarm]").count() == 1
    # Every plot arrives and decodes (waited for: the page's load event does not wait for all of them on a busy machine).
    vera.page.wait_for_function("[...document.querySelectorAll('img.plot')].every(i => i.complete && i.naturalWidth > 0)",
                                timeout=30_000)
    assert "model_version.submit" in vera.page.locator("#audit").inner_text()
    vera.shot("version-submitted")
    assert vera.page.locator("#action-approve").count() == 0

    vera.decide("#action-take", {"#id_rationale": "Starting the independent validation."}, "taken")
    assert vera.status() == VersionStatus.IN_VALIDATION
    due = (timezone.localdate() + dt.timedelta(days=14)).isoformat()
    vera.decide("#action-raise-finding", {"#id_title": "Calibration drifts in the top decile",
                                          "#id_description": "Observed default rate is twice the predicted one.",
                                          "#id_category": "performance", "#id_severity": "high",
                                          "#id_due_date": due}, "finding-raised")
    finding = Finding.objects.get()
    assert (finding.severity, finding.status, finding.raised_by_username) == ("high", "open", "vera-validator")

    dana = Person(browser, live_server, "dana-developer", shots)
    dana.page.goto("/admin/riskmodels/modelversion/workspace/")
    assert "Calibration drifts" in dana.page.locator("#open-findings table.findings-high").inner_text()
    dana.shot("start-page")
    dana.open_version(version)
    dana.decide(f"#remediate-{finding.pk}", {"#id_remediation": "Recalibrated with isotonic regression on the "
                                                                 "training folds."}, "finding-remediated")
    assert Finding.objects.get().status == Finding.Status.REMEDIATED

    vera.open_version(version)
    vera.decide(f"#close-{finding.pk}", {"#id_evidence": "Calibration plot of the refit: gap below 2 points."},
                "finding-closed")
    assert vera.page.locator(f"#finding-{finding.pk}").get_attribute("data-status") == "closed"
    vera.decide("#action-validate", {"#id_rationale": "Sound, stable and explainable on the test split.",
                                     "#id_conclusion": "fit_for_purpose"}, "validated")
    assert vera.status() == VersionStatus.VALIDATED

    # The developer sees no approve button; a forced POST is refused with the API's 403.
    dana.open_version(version)
    assert dana.page.locator("#action-approve").count() == 0
    dana.shot("validated-no-approve")
    token = next(c["value"] for c in dana.context.cookies() if c["name"] == "csrftoken")
    decisions = Decision.objects.count()
    with dana.page.expect_navigation() as navigation:
        dana.page.evaluate(FORCED_POST, [f"/admin/riskmodels/modelversion/{version.pk}/workspace/decide/approve/",
                                         token, "Approving my own model."])
    assert navigation.value.status == 403
    assert "only compliance officers approve versions" in dana.page.locator("#refusal").inner_text()
    dana.shot("forced-approve-refused")
    assert Decision.objects.count() == decisions
    assert ModelVersion.objects.get(pk=version.pk).status == VersionStatus.VALIDATED

    carl = Person(browser, live_server, "carl-compliance", shots)
    carl.page.goto("/admin/riskmodels/modelversion/workspace/")
    assert str(version) in carl.page.locator("#awaiting-approval").inner_text()
    carl.shot("start-page")
    carl.page.click(f"#awaiting-approval a:text-is('{version}')")
    carl.page.wait_for_selector("#version-status")
    carl.decide("#action-approve", {"#id_rationale": "Validated fit for purpose; no open findings."}, "approved")
    assert carl.status() == VersionStatus.APPROVED
    carl.decide("#action-promote", {"#id_rationale": "Replaces the scorecard from next month."}, "champion")
    assert carl.status() == VersionStatus.CHAMPION
    history = carl.page.locator("#history").inner_text()
    assert all(word in history for word in ("Submit", "Take", "validated", "Approve", "Promote"))

    assert list(Decision.objects.filter(model_version=version).values_list("action", "actor_username")) == [
        ("submit", "dana-developer"), ("take", "vera-validator"), ("validate", "vera-validator"),
        ("approve", "carl-compliance"), ("promote", "carl-compliance")]
    assert AuditEvent.objects.filter(action="finding.closed", actor_username="vera-validator").exists()
    for person in (vera, dana, carl):
        person.close()
    assert len(list(shots.iterdir())) >= 15

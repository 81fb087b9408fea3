"""The decision ledger in a real browser: an underwriter overrides a decision through the admin."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.models import CreditDecision, DecisionOverride, ModelVersion, VersionStatus
from riskmodels.services.reviews import registered_model_inventory_update
from tests.browser.conftest import sign_in
from tests.conftest import client_for, register_demo_dataset, register_model, train_version
from tests.riskmodels.test_admin_decisions import POLICY, applicants

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_underwriter_overrides_a_decision_in_the_admin_and_sees_it_on_the_decision_page(  # noqa: ANN001
        page, developer, compliance_officer, underwriter, tmp_path):
    model = register_model(developer)
    champion = train_version(developer, model, register_demo_dataset(developer))
    ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.CHAMPION)
    registered_model_inventory_update(actor=compliance_officer, model=model, changes={"scoring_policy": POLICY})
    rows = applicants(TrainingSpec.from_dict(champion.spec), 12)
    body = client_for(underwriter).post(f"/api/v1/models/{model.name}/score/", format="json", data={
        "applications": [{"reference": f"APP-{i}", "features": row} for i, row in enumerate(rows)]}).json()
    decision = CreditDecision.objects.get(pk=next(d["id"] for d in body["decisions"] if d["decision"] == "decline"))

    sign_in(page, "uma-underwriter", "uma-underwriter-pass-123")
    page.click("text=Credit decisions")
    page.wait_for_url("**/riskmodels/creditdecision/")
    assert page.locator("#result_list tbody tr").count() == 12
    assert page.locator(".object-tools a.addlink").count() == 0
    page.click(f"#result_list a:text-is('{decision.reference}')")
    page.wait_for_selector("#reasons")
    assert page.locator(".field-decision .readonly").inner_text() == "Decline"
    assert page.locator("input[name=_save]").count() == 0 and page.locator("a.deletelink").count() == 0
    page.screenshot(path=str(tmp_path / "decision.png"), full_page=True)

    page.click("#override-link")
    page.wait_for_selector("#override-form")
    page.select_option("#id_outcome", "refer")
    page.select_option("#id_reason", "verified_income")
    page.fill("#id_text", "Payslips for the last six months verified by phone.")
    page.screenshot(path=str(tmp_path / "override-form.png"), full_page=True)
    page.click("input[name=_confirm]")
    page.wait_for_selector("#override")
    assert "overridden: Decline → Refer" in page.locator(".messagelist").inner_text()
    assert page.locator("#override").get_attribute("data-outcome") == "refer"
    assert "Payslips for the last six months" in page.locator("#override").inner_text()
    assert page.locator("#override-link").count() == 0
    page.screenshot(path=str(tmp_path / "overridden.png"), full_page=True)

    override = DecisionOverride.objects.get()
    assert (override.decision_id, override.outcome, override.actor_username) == (decision.pk, "refer", "uma-underwriter")
    assert AuditEvent.objects.filter(action="decision.overridden", actor_username="uma-underwriter").count() == 1
    assert CreditDecision.objects.get(pk=decision.pk).outcome == "decline"  # the ledger entry never changes

"""`demo_setup`, as `make run` runs it: users, the dataset and the demo model's lifecycle, twice without harm."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from governance.audit import audit_verify
from governance.models import AuditEvent
from riskmodels.models import Decision, Finding, ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db(transaction=True)


def _run() -> str:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def test_the_demo_shows_a_champion_through_every_step_and_a_version_awaiting_validation(settings):  # noqa: ANN001
    settings.DEBUG = True
    first = _run()
    last_seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()  # pks need not be dense
    second = _run()

    model = RegisteredModel.objects.get(name="retail-pd")
    assert (model.risk_tier, model.model_type, model.min_auc) == ("high", "application_pd", 0.65)
    assert model.owner.username == "compliance" and model.business_use and model.limitations
    assert model.next_review_date is not None
    assert ModelVersion.objects.count() == 2  # the second run added nothing

    champion = model.versions.get(status="champion")
    decisions = list(Decision.objects.filter(model_version=champion).order_by("created_at", "id"))
    assert [d.action for d in decisions] == ["submit", "take", "validate", "approve", "approve", "promote"]
    by = {d.action: d.actor_username for d in decisions}
    approvers = {d.actor_username for d in decisions if d.action == "approve"}
    assert by["submit"] == "dev" and by["take"] == by["validate"] == "validator"
    assert approvers == {"compliance", "compliance2"}  # two distinct approvers: the model is high tier
    assert not {by["submit"], by["validate"]} & approvers and by["submit"] != by["validate"]
    assert decisions[0].evidence["floor_breaches"] == [] and decisions[0].evidence["reports"]
    assert decisions[2].conclusion == "fit_for_purpose"
    assert [d.evidence["approvals"] for d in decisions[3:5]] == [1, 2] and decisions[3].to_status == "validated"

    # Its monitoring reference, frozen by the job its promotion queued, with the evaluation's baseline.
    reference = champion.monitoring_reference
    evaluation = champion.evaluations.get(scope="test_split")
    assert reference.n_rows == 250 and reference.baseline["auc"] == evaluation.metrics["auc"]

    finding = Finding.objects.exclude(status__in=["proposed", "dismissed"]).get()  # the battery's drafts aside
    assert (finding.model_version, finding.severity, finding.status) == (champion, "medium", "closed")
    assert (finding.remediated_by_username, finding.closed_by_username) == ("dev", "validator")

    # Fairness at the cutoff on the champion's test split, for each protected column of the demo data.
    evaluation = champion.evaluations.get(scope="test_split")
    assert {c["column"] for c in evaluation.fairness["columns"]} == {
        "personal_status_and_sex", "age_in_years", "foreign_worker"}
    assert all(g["adverse_impact_ratio"] is not None for c in evaluation.fairness["columns"] for g in c["groups"])

    awaiting = model.versions.get(status="submitted")
    assert awaiting.version == 2 and awaiting.evaluations.filter(scope="test_split").exists()
    assert awaiting.explanations.filter(status="ok").exists()

    # The underwriter scored the first 25 applications with the champion and overrode one decline.
    from riskmodels.models import CreditDecision

    ledger = CreditDecision.objects.filter(model_version=champion)
    assert ledger.count() == 25 and set(ledger.values_list("actor_username", flat=True)) == {"underwriter"}
    overridden = ledger.get(override__isnull=False)
    assert (overridden.outcome, overridden.override.outcome) == ("decline", "refer")

    # A first stability run, over the development data: the monitoring charts have a point.
    from riskmodels.models import MonitoringRun

    run = MonitoringRun.objects.get(model_version=champion, kind="stability")
    assert run.dataset_version_id == champion.dataset_version_id and run.results

    # The champion's documentation pack, for a newcomer to download.
    from riskmodels.models import DocumentationPack

    pack = DocumentationPack.objects.get(model_version=champion)
    assert pack.created_by_username == "compliance" and pack.pdf_pages > 1

    assert "token=" in first and "compliance2" in first
    assert "Demo lifecycle created: retail-pd" in first and "Demo lifecycle already set up" in second
    assert "v1 champion" in second and "approved by compliance and compliance2" in second and "v2 submitted, awaiting validation" in second
    assert AuditEvent.objects.filter(action="model_version.promote").count() == 1
    # A second run re-issues nothing but the users' tokens.
    assert not AuditEvent.objects.filter(seq__gt=last_seq).exclude(action__startswith="user.").exclude(
        action__startswith="api_token.").exists()
    assert audit_verify().ok

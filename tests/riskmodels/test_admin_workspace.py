"""The compliance workspace in the admin, through Django's test client: start pages, the version page, decisions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from governance.models import AuditEvent
from riskmodels.jobs.kinds import chunk_execute, job_execute
from riskmodels.models import (
    Decision,
    ExplanationReport,
    Finding,
    Job,
    JobChunk,
    JobKind,
    JobStatus,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.services.explanations import explanation_job_create, explanation_plots_render
from riskmodels.services.findings import finding_raise
from riskmodels.services.lifecycle import version_submit, version_take, version_validate
from riskmodels.services.training import training_job_create

pytestmark = pytest.mark.django_db(transaction=True)


def prepare_submitted_version(developer, dataset_version, registered_model,  # noqa: ANN001,ANN201
                              algorithm: str = "logistic_regression") -> ModelVersion:
    """Do what the developer and the workers do: train, evaluate on the test split, explain, submit."""
    job = training_job_create(actor=developer, registered_model=registered_model, dataset_version=dataset_version,
                              request={"algorithm": algorithm})
    job_execute(job_id=job.pk)
    version = ModelVersion.objects.get(training_job=job)
    for evaluation in Job.objects.filter(kind=JobKind.EVALUATE, model_version=version, status=JobStatus.QUEUED):
        job_execute(job_id=evaluation.pk)
    explain = explanation_job_create(actor=developer, model_version=version)
    job_execute(job_id=explain.pk)
    for chunk_id in JobChunk.objects.filter(job=explain).order_by("index").values_list("pk", flat=True):
        chunk_execute(chunk_id=chunk_id)
    for report in ExplanationReport.objects.filter(job=explain):
        explanation_plots_render(report_id=report.pk)
    version_submit(actor=developer, version=version, rationale="Ready for independent validation.")
    return ModelVersion.objects.get(pk=version.pk)


def signed_in(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def version_page(client: Client, version: ModelVersion) -> str:
    response = client.get(reverse("admin:riskmodels_workspace_version", args=[version.pk]))
    assert response.status_code == 200
    return response.content.decode()


def start_page(client: Client) -> str:
    response = client.get(reverse("admin:riskmodels_workspace"))
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, section_id: str) -> str:
    """Return the HTML of the element with ``section_id`` (a workspace block: a div or section, not nested)."""
    start = html.index(f'id="{section_id}"')
    tag = html[html.rindex("<", 0, start) + 1:start].split()[0]
    return html[start:html.index(f"</{tag}>", start)]


def decide_url(version: ModelVersion, action: str) -> str:
    return reverse("admin:riskmodels_workspace_decide", args=[version.pk, action])


@pytest.fixture
def submitted(developer, german_credit_version, retail_model) -> ModelVersion:  # noqa: ANN001
    return prepare_submitted_version(developer, german_credit_version, retail_model)


def test_the_admin_index_links_to_the_workspace(validator):  # noqa: ANN001
    response = signed_in(validator).get(reverse("admin:index"))
    assert reverse("admin:riskmodels_workspace") in response.content.decode()


def test_a_submitted_version_awaits_the_validator_and_not_the_others(submitted, validator, developer,  # noqa: ANN001
                                                                     compliance_officer):
    assert str(submitted) in section(start_page(signed_in(validator)), "awaiting-validation")
    assert str(submitted) not in section(start_page(signed_in(developer)), "awaiting-validation")
    officer_page = start_page(signed_in(compliance_officer))
    assert str(submitted) not in section(officer_page, "awaiting-validation")
    assert str(submitted) not in section(officer_page, "awaiting-approval")


def test_a_version_in_validation_awaits_only_the_validator_who_took_it(submitted, validator, db):  # noqa: ANN001
    from tests.conftest import team_member
    from governance.roles import Role

    other, _ = team_member(username="val-two", role=Role.VALIDATOR, password="val-two-pass-123")
    version_take(actor=validator, version=submitted, rationale="Mine.")
    assert str(submitted) in section(start_page(signed_in(validator)), "awaiting-validation")
    assert str(submitted) not in section(start_page(signed_in(other)), "awaiting-validation")


def test_a_validated_version_awaits_the_compliance_officer(submitted, validator, compliance_officer):  # noqa: ANN001
    version_take(actor=validator, version=submitted, rationale="Taking it.")
    version_validate(actor=validator, version=submitted, rationale="Sound.", conclusion="fit_for_purpose")
    assert str(submitted) in section(start_page(signed_in(compliance_officer)), "awaiting-approval")
    assert str(submitted) not in section(start_page(signed_in(validator)), "awaiting-approval")


def test_open_findings_are_listed_by_severity_with_overdue_ones_marked(submitted, validator, developer):  # noqa: ANN001
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    finding_raise(actor=validator, version=submitted, title="Stale bureau data", description="d", category="data",
                  severity="high", due_date=yesterday)
    finding_raise(actor=validator, version=submitted, title="Thin docs", description="d", category="documentation",
                  severity="low", due_date=yesterday + dt.timedelta(days=60))
    findings = section(start_page(signed_in(developer)), "open-findings")
    high = findings[findings.index("High (1)"):findings.index("Medium (0)")]
    assert "Stale bureau data" in high and "OVERDUE" in high
    low = findings[findings.index("Low (1)"):]
    assert "Thin docs" in low and "OVERDUE" not in low


def test_reviews_overdue_or_due_within_30_days_are_listed(submitted, developer):  # noqa: ANN001
    # A champion is set up directly: the review schedule is what is tested here, not promotion.
    ModelVersion.objects.filter(pk=submitted.pk).update(status=VersionStatus.CHAMPION)
    today = timezone.localdate()
    RegisteredModel.objects.filter(pk=submitted.registered_model_id).update(next_review_date=today - dt.timedelta(days=3))
    reviews = section(start_page(signed_in(developer)), "reviews-due")
    assert "retail-pd" in reviews and "OVERDUE" in reviews
    RegisteredModel.objects.filter(pk=submitted.registered_model_id).update(next_review_date=today + dt.timedelta(days=20))
    reviews = section(start_page(signed_in(developer)), "reviews-due")
    assert "retail-pd" in reviews and "OVERDUE" not in reviews
    RegisteredModel.objects.filter(pk=submitted.registered_model_id).update(next_review_date=today + dt.timedelta(days=45))
    assert "retail-pd" not in section(start_page(signed_in(developer)), "reviews-due")


def test_the_version_page_shows_the_record_metrics_with_intervals_plots_shap_and_data_quality(submitted,  # noqa: ANN001
                                                                                             validator):
    html = version_page(signed_in(validator), submitted)
    assert submitted.artifact_sha256 in html and submitted.dataset_sha256 in html
    metrics = section(html, "metrics")
    assert "metric-auc" in metrics and "[0." in metrics  # the bootstrap interval
    evaluation = submitted.evaluations.get()
    assert reverse("admin:riskmodels_evaluation_plot", args=[evaluation.pk, "roc"]) in metrics
    report = submitted.explanations.get(status="ok")
    beeswarm = next(p for p in report.plot_files.all() if "beeswarm" in p.name)
    assert reverse("admin:riskmodels_explanationreport_plot", args=[report.pk, beeswarm.slug]) in html
    assert report.importance[0]["feature"] in section(html, "shap")
    assert "age_in_years" in section(html, "data-quality")
    assert "decision-submit" in section(html, "history")
    assert "model_version.submit" in section(html, "audit")


def test_the_version_page_and_the_version_admin_show_fairness_per_protected_column_with_the_caveat(  # noqa: ANN201
        submitted, validator):  # noqa: ANN001
    from riskmodels.ml.fairness import FOUR_FIFTHS_CAVEAT

    evaluation = submitted.evaluations.get()
    client = signed_in(validator)
    metrics = section(version_page(client, submitted), "metrics")
    admin_page = client.get(reverse("admin:riskmodels_modelversion_change", args=[submitted.pk])).content.decode()
    for html in (metrics, admin_page):
        assert FOUR_FIFTHS_CAVEAT in html.replace("&#x27;", "'")
        for column in evaluation.fairness["columns"]:
            assert f'id="fairness-{column["column"]}"' in html
        assert html.count('class="fairness-group') == sum(len(c["groups"]) for c in evaluation.fairness["columns"])
        flagged = sum(g["flagged"] for c in evaluation.fairness["columns"] for g in c["groups"])
        assert html.count('data-flagged="true"') == html.count('class="fairness-flag"') == flagged
    foreign = next(c for c in evaluation.fairness["columns"] if c["column"] == "foreign_worker")
    low, high = foreign["groups"][0]["approval_rate_ci"]
    assert f"[{low:.3f}, {high:.3f}]" in metrics  # the approval rate's interval


def test_each_role_sees_only_the_decisions_the_policy_allows(submitted, validator, developer,  # noqa: ANN001
                                                             compliance_officer):
    validator_page = section(version_page(signed_in(validator), submitted), "actions")
    assert 'id="action-take"' in validator_page and 'id="action-reject"' in validator_page
    assert 'id="action-approve"' not in validator_page
    developer_page = version_page(signed_in(developer), submitted)
    assert 'id="action-take"' not in developer_page and 'id="action-raise-finding"' not in developer_page
    assert "Only validators, compliance officers and auditors" in section(developer_page, "audit")
    officer_page = section(version_page(signed_in(compliance_officer), submitted), "actions")
    assert 'id="action-' not in officer_page


def test_a_forced_post_of_a_forbidden_decision_is_refused_with_403_and_changes_nothing(submitted, validator,  # noqa: ANN001
                                                                                       developer):
    version_take(actor=validator, version=submitted, rationale="Taking it.")
    version_validate(actor=validator, version=submitted, rationale="Sound.", conclusion="fit_for_purpose")
    decisions, events = Decision.objects.count(), AuditEvent.objects.count()
    client = signed_in(developer)
    assert 'id="action-approve"' not in version_page(client, submitted)
    response = client.post(decide_url(submitted, "approve"), {"rationale": "I approve my own model."})
    assert response.status_code == 403
    assert "only compliance officers approve versions" in response.content.decode()
    assert ModelVersion.objects.get(pk=submitted.pk).status == VersionStatus.VALIDATED
    assert (Decision.objects.count(), AuditEvent.objects.count()) == (decisions, events)


def test_separation_of_duties_is_refused_with_its_code(submitted, developer, db):  # noqa: ANN001
    from tests.conftest import team_member
    from governance.roles import Role

    # The trainer, later made a validator, still may not take their own version.
    team_member(username="dana-developer", role=Role.VALIDATOR, password="x-pass-123")
    developer.refresh_from_db()
    response = signed_in(developer).post(decide_url(submitted, "take"), {"rationale": "My own."})
    assert response.status_code == 403
    assert 'data-code="separation_of_duties"' in response.content.decode()
    assert ModelVersion.objects.get(pk=submitted.pk).status == VersionStatus.SUBMITTED


def test_a_decision_in_the_wrong_state_shows_the_conflict_and_changes_nothing(submitted, validator):  # noqa: ANN001
    client = signed_in(validator)
    response = client.post(decide_url(submitted, "validate"),
                           {"rationale": "Too early.", "conclusion": "fit_for_purpose"}, follow=True)
    assert "cannot validate" in response.content.decode().lower()
    assert ModelVersion.objects.get(pk=submitted.pk).status == VersionStatus.SUBMITTED


def test_a_validator_takes_raises_a_finding_and_concludes_from_the_page(submitted, validator, developer):  # noqa: ANN001
    client = signed_in(validator)
    assert client.get(decide_url(submitted, "take")).status_code == 200
    response = client.post(decide_url(submitted, "take"), {"rationale": "Starting the validation."})
    assert response.status_code == 302
    due = (timezone.localdate() + dt.timedelta(days=14)).isoformat()
    raised = client.post(reverse("admin:riskmodels_workspace_finding_raise", args=[submitted.pk]),
                         {"title": "Unstable bins", "description": "Bins move between runs.", "category": "performance",
                          "severity": "medium", "due_date": due})
    assert raised.status_code == 302
    finding = Finding.objects.get()
    remediated = signed_in(developer).post(
        reverse("admin:riskmodels_workspace_finding_move", args=[finding.pk, "remediate"]),
        {"remediation": "Bins frozen at training."})
    assert remediated.status_code == 302
    closed = client.post(reverse("admin:riskmodels_workspace_finding_move", args=[finding.pk, "close"]),
                         {"evidence": "Re-ran twice; identical bins."})
    assert closed.status_code == 302
    assert Finding.objects.get().status == Finding.Status.CLOSED
    missing = client.post(decide_url(submitted, "validate"), {"rationale": "Sound.", "conclusion": "fit_with_conditions"})
    assert missing.status_code == 400 and "must state them" in missing.content.decode()
    client.post(decide_url(submitted, "validate"), {"rationale": "Sound.", "conclusion": "fit_for_purpose"})
    assert ModelVersion.objects.get(pk=submitted.pk).status == VersionStatus.VALIDATED


def test_compliance_officers_edit_the_inventory_through_the_service(retail_model, compliance_officer,  # noqa: ANN001
                                                                    developer):
    url = reverse("admin:riskmodels_registeredmodel_change", args=[retail_model.pk])
    response = signed_in(compliance_officer).post(url, {
        "risk_tier": "high", "model_type": "application_pd", "business_use": "Retail loan origination.",
        "limitations": "", "owner": compliance_officer.pk, "review_cadence_months": "6", "min_auc": "0.7",
        "min_ks": "", "max_brier": "", "max_calibration_gap": "",
        "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:2000]
    model = RegisteredModel.objects.get(pk=retail_model.pk)
    assert (model.risk_tier, model.owner_id, model.review_cadence_months, model.min_auc) == (
        "high", compliance_officer.pk, 6, 0.7)
    event = AuditEvent.objects.get(action="registered_model.inventory_updated")
    assert event.actor_username == "carl-compliance" and event.after["risk_tier"] == "high"
    refused = signed_in(developer).post(url, {"risk_tier": "low"})
    assert refused.status_code == 403
    assert RegisteredModel.objects.get(pk=retail_model.pk).risk_tier == "high"


def test_opening_the_form_of_a_decision_not_open_to_the_user_goes_back_with_the_reason(submitted, developer):  # noqa: ANN001
    response = signed_in(developer).get(decide_url(submitted, "take"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:riskmodels_workspace_version", args=[submitted.pk])
    assert "is not open to you" in response.content.decode()


def test_an_unknown_decision_or_version_is_not_found(submitted, validator):  # noqa: ANN001
    client = signed_in(validator)
    assert client.get(decide_url(submitted, "bless")).status_code == 404
    assert client.get(reverse("admin:riskmodels_workspace_version", args=[submitted.pk + 99])).status_code == 404


def test_the_audit_trail_on_the_page_includes_the_events_of_its_findings(submitted, validator, auditor):  # noqa: ANN001
    finding_raise(actor=validator, version=submitted, title="Leaky feature", description="d", category="data",
                  severity="medium", due_date=timezone.localdate())
    audit = section(version_page(signed_in(auditor), submitted), "audit")
    assert "finding.raised" in audit and "model_version.submit" in audit
    assert 'id="action-' not in section(version_page(signed_in(auditor), submitted), "actions")


def test_only_compliance_officers_get_an_editable_inventory_form(retail_model, validator, compliance_officer):  # noqa: ANN001
    url = reverse("admin:riskmodels_registeredmodel_change", args=[retail_model.pk])
    assert 'name="risk_tier"' not in signed_in(validator).get(url).content.decode()
    assert 'name="risk_tier"' in signed_in(compliance_officer).get(url).content.decode()


def test_the_version_page_shows_the_battery_and_a_validator_triages_its_proposed_findings(  # noqa: ANN201
        submitted, validator, developer):
    from riskmodels.models import Finding, ValidationRun

    battery = Job.objects.get(kind=JobKind.VALIDATE, model_version=submitted)
    job_execute(job_id=battery.pk)
    run = ValidationRun.objects.get(model_version=submitted)
    html = version_page(signed_in(validator), submitted)
    table = section(html, "battery")
    assert f'data-outcome="{run.outcome}"' in table
    assert all(f'id="battery-{r["name"]}"' in table for r in run.results)
    # This model passes every test; two drafts as the battery writes them when one does not.
    for name in ("calibration", "weak_segments"):
        Finding.objects.create(model_version=submitted, title=f"{name}: off", description="as the battery found",
                               category="performance", severity="medium", status="proposed",
                               due_date="2030-01-01", raised_by_username="system:validation-battery",
                               validation_run=run, test_name=name)
    proposed = list(Finding.objects.filter(model_version=submitted, status="proposed").order_by("id"))
    html = version_page(signed_in(validator), submitted)
    first = proposed[0]
    assert f'id="accept-{first.pk}"' in html and f'id="dismiss-{first.pk}"' not in version_page(
        signed_in(developer), submitted)
    url = reverse("admin:riskmodels_workspace_finding_move", args=[first.pk, "dismiss"])
    assert signed_in(validator).post(url, {"reason": ""}).status_code == 400  # a reason is required
    response = signed_in(validator).post(url, {"reason": "within tolerance for a 1,000-row portfolio"})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == "dismissed" and first.dismissal_reason.startswith("within tolerance")
    forced = signed_in(developer).post(reverse("admin:riskmodels_workspace_finding_move", args=[proposed[-1].pk,
                                                                                             "accept"]), {})
    assert forced.status_code == 403

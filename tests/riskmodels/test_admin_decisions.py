"""The decision ledger in the admin, through Django's test client: read-only pages, the override form, the stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from governance.models import AuditEvent
from governance.roles import Role
from riskmodels.admin_decisions import _percent
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.models import (
    CreditDecision,
    DecisionOverride,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from riskmodels.selectors.decisions import decision_stats_for_user
from riskmodels.services.overrides import decision_override
from riskmodels.services.reviews import registered_model_inventory_update
from tests.conftest import (
    GERMAN_CREDIT,
    client_for,
    media_settings,
    module_media,
    register_demo_dataset,
    register_model,
    team_member,
    train_version,
)
from tests.riskmodels.test_admin_workspace import section, signed_in

pytestmark = pytest.mark.django_db

POLICY = {"cutoff": 0.5, "refer_from": 0.35}


@dataclass(frozen=True)
class World:
    model: RegisteredModel
    champion: ModelVersion
    decisions: list[CreditDecision]  # decisive, scored by the champion through the API
    shadows: list[CreditDecision]  # the same applicants scored by an approved challenger in shadow


shared_media, _isolated_media = module_media("admin-decisions-media")




def applicants(spec: TrainingSpec, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(GERMAN_CREDIT)[list(spec.features)].head(n)
    return [{f: (v.item() if isinstance(v, np.generic) else v) for f, v in record.items()}
            for record in frame.to_dict("records")]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, shared_media):  # noqa: ANN001,ANN201
    with django_db_blocker.unblock(), override_settings(**media_settings(shared_media)):
        owner, _ = team_member(username="owen-owner", role=Role.DEVELOPER)
        officer, _ = team_member(username="olga-officer", role=Role.COMPLIANCE_OFFICER)
        scorer, _ = team_member(username="sam-scorer", role=Role.UNDERWRITER)
        dataset_version = register_demo_dataset(owner)
        model = register_model(owner)
        champion, challenger = train_version(owner, model, dataset_version), train_version(owner, model, dataset_version)
        # The lifecycle that gets a version here is tested in test_lifecycle; these tests need its result.
        ModelVersion.objects.filter(pk=champion.pk).update(status=VersionStatus.CHAMPION)
        ModelVersion.objects.filter(pk=challenger.pk).update(status=VersionStatus.APPROVED)
        model = registered_model_inventory_update(actor=officer, model=model, changes={"scoring_policy": POLICY})
        rows = applicants(TrainingSpec.from_dict(champion.spec), 30)
        body = client_for(scorer).post(
            f"/api/v1/models/{model.name}/score/", format="json", data={
                "applications": [{"reference": f"APP-{i}", "features": row} for i, row in enumerate(rows)],
                "shadow_version": challenger.pk}).json()
        decisions = [CreditDecision.objects.get(pk=d["id"]) for d in body["decisions"]]
        assert {d.outcome for d in decisions} >= {"approve", "decline"}
        shadows = [CreditDecision.objects.get(pk=d["id"]) for d in body["shadow"]]
        yield World(model=model, champion=champion, decisions=decisions, shadows=shadows)
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def declined(world: World) -> CreditDecision:
    return next(d for d in world.decisions if d.outcome == "decline" and d.reasons)


def change_url(decision: CreditDecision) -> str:
    return reverse("admin:riskmodels_creditdecision_change", args=[decision.pk])


def override_url(decision: CreditDecision) -> str:
    return reverse("admin:riskmodels_creditdecision_override", args=[decision.pk])


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


OVERRIDE = {"outcome": "approve", "reason": "collateral", "text": "Guarantor with verified assets."}


# --- The ledger: read-only pages --------------------------------------------------------------------------

@pytest.mark.parametrize("role_fixture", ["compliance_officer", "underwriter"])
def test_the_ledger_lists_every_decision_with_its_model_version_pd_band_and_override(world, request,  # noqa: ANN001
                                                                                      role_fixture, underwriter):
    decision = declined(world)
    decision_override(actor=underwriter, decision=decision, **OVERRIDE)
    html = page(signed_in(request.getfixturevalue(role_fixture)), reverse("admin:riskmodels_creditdecision_changelist"))
    row = html[html.index(f'<a href="{change_url(decision)}">{decision.pk}</a>'):]
    row = row[:row.index("</tr>")]
    for cell in (decision.reference, "retail-pd", f"v{world.champion.version}", "Decline", f"{decision.pd:.4f}",
                 decision.band, ">Approve<"):
        assert cell in row, cell
    assert html.count("field-reference") == len(world.decisions) + len(world.shadows)  # shadow entries too
    assert 'name="action"' not in html and "delete_selected" not in html  # no bulk actions, no bulk delete


def test_the_ledger_filters_by_decision_and_is_searched_by_reference(world, compliance_officer):  # noqa: ANN001
    client = signed_in(compliance_officer)
    url = reverse("admin:riskmodels_creditdecision_changelist")
    declines = page(client, f"{url}?outcome__exact=decline")
    assert declines.count("field-reference") == sum(d.outcome == "decline" for d in [*world.decisions, *world.shadows])
    found = page(client, f"{url}?q=APP-3")
    assert found.count("field-reference") == 2  # APP-3 by the champion and by the challenger in shadow
    assert page(client, f"{url}?decisive__exact=0").count("field-reference") == len(world.shadows)
    for name in ("outcome", "decisive", "source"):  # a model filter is drawn once there are two models
        assert f"?{name}__exact=" in page(client, url)
    by_model = page(client, f"{url}?registered_model__id__exact={world.model.pk}")
    assert by_model.count("field-reference") == len(world.decisions) + len(world.shadows)


@pytest.mark.parametrize("role_fixture", ["compliance_officer", "underwriter", "auditor"])
def test_a_decision_page_shows_its_reasons_flags_policy_and_fingerprint_read_only(world, request,  # noqa: ANN001
                                                                                  role_fixture):
    decision = declined(world)
    html = page(signed_in(request.getfixturevalue(role_fixture)), change_url(decision))
    reasons = section(html, "reasons")
    for reason in decision.reasons:
        assert reason["feature"] in reasons and reason["text"] in reasons
        assert f"{reason['contribution']:+.4f}" in reasons and _percent(reason["share"]) in reasons
    assert "log-odds" in reasons
    assert decision.fingerprint_id in html and decision.fingerprint.data["explainer"] in html
    assert "cutoff" in html and "refer_from" in html
    assert "field-flags_list" in html
    assert 'name="_save"' not in html and "deletelink" not in html
    # Links to the model and version pages only for who may open them (not an underwriter).
    model_page = reverse("admin:riskmodels_registeredmodel_change", args=[world.model.pk])
    assert (model_page in html) == (role_fixture != "underwriter")
    assert f"retail-pd v{world.champion.version}" in html


def test_nobody_adds_changes_or_deletes_a_decision_or_an_override(world, compliance_officer, underwriter,  # noqa: ANN001
                                                                 developer, auditor):
    decision = declined(world)
    override = decision_override(actor=underwriter, decision=decision, **OVERRIDE)
    for user in (compliance_officer, underwriter, developer, auditor):
        client = signed_in(user)
        assert client.get(reverse("admin:riskmodels_creditdecision_add")).status_code == 403
        assert client.post(reverse("admin:riskmodels_creditdecision_add"), {"reference": "X"}).status_code == 403
        assert client.post(change_url(decision), {"reference": "EDITED"}).status_code == 403
        assert client.post(reverse("admin:riskmodels_creditdecision_delete", args=[decision.pk]),
                           {"post": "yes"}).status_code == 403
        changelist = reverse("admin:riskmodels_creditdecision_changelist")
        response = client.post(changelist, {"action": "delete_selected", "_selected_action": [decision.pk],
                                            "post": "yes"})
        assert response.status_code in (200, 302, 403)
        assert client.get(reverse("admin:riskmodels_decisionoverride_add")).status_code == 403
        assert client.post(reverse("admin:riskmodels_decisionoverride_delete", args=[override.pk]),
                           {"post": "yes"}).status_code == 403
        request = RequestFactory().get("/")
        request.user = user
        for model in (CreditDecision, DecisionOverride):
            model_admin = admin.site._registry[model]
            assert not model_admin.has_add_permission(request)
            assert not model_admin.has_change_permission(request, None)
            assert not model_admin.has_delete_permission(request, None)
            assert model_admin.get_actions(request) == {}
    assert CreditDecision.objects.get(pk=decision.pk).reference == decision.reference
    assert DecisionOverride.objects.filter(pk=override.pk).exists()


def test_whoever_may_not_read_decisions_does_not_see_the_ledger(world, outsider, developer):  # noqa: ANN001
    outsider.is_staff = True
    outsider.save()
    client = signed_in(outsider)
    assert client.get(reverse("admin:riskmodels_creditdecision_changelist")).status_code == 403
    assert client.get(change_url(declined(world))).status_code in (302, 403)
    assert client.get(override_url(declined(world))).status_code == 403


# --- The override form -------------------------------------------------------------------------------------

def test_an_underwriter_overrides_a_decision_through_the_form_and_it_is_recorded_and_audited(world,  # noqa: ANN001
                                                                                            underwriter):
    decision = declined(world)
    client = signed_in(underwriter)
    assert override_url(decision) in page(client, change_url(decision))
    assert "override-form" in page(client, override_url(decision))
    response = client.post(override_url(decision), OVERRIDE, follow=True)
    assert response.redirect_chain[-1][0] == change_url(decision)
    html = response.content.decode()
    assert "overridden: Decline → Approve" in html  # the success message
    assert 'data-outcome="approve"' in section(html, "override") and OVERRIDE["text"] in html
    assert override_url(decision) not in html  # one override per decision: the link is gone
    override = DecisionOverride.objects.get(decision=decision)
    assert (override.outcome, override.reason, override.actor_username) == ("approve", "collateral", underwriter.username)
    event = AuditEvent.objects.get(action="decision.overridden")
    assert (event.after["from"], event.after["to"], event.actor_username) == ("decline", "approve", underwriter.username)
    overrides = page(client, reverse("admin:riskmodels_decisionoverride_changelist"))
    for cell in (decision.reference, "Decline → Approve", "Collateral or guarantee offered", OVERRIDE["text"],
                 underwriter.username):
        assert cell in overrides, cell


@pytest.mark.parametrize("role_fixture", ["developer", "compliance_officer", "auditor", "validator"])
def test_only_underwriters_see_the_link_and_reach_the_form(world, request, role_fixture):  # noqa: ANN001
    decision = declined(world)
    client = signed_in(request.getfixturevalue(role_fixture))
    html = page(client, change_url(decision))
    assert override_url(decision) not in html and "Override this decision" not in html
    assert client.get(override_url(decision)).status_code == 403
    response = client.post(override_url(decision), OVERRIDE)
    assert response.status_code == 403 and "only underwriters override decisions" in response.content.decode()
    assert not DecisionOverride.objects.exists()


@pytest.mark.parametrize("body, message", [
    ({**OVERRIDE, "outcome": "decline"}, "the decision already is decline: an override changes the outcome"),
    ({**OVERRIDE, "text": "   "}, "text must say why, in at most 2000 characters"),
])
def test_a_bad_override_shows_the_services_reason_and_records_nothing(world, underwriter, body, message):  # noqa: ANN001
    response = signed_in(underwriter).post(override_url(declined(world)), body)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not DecisionOverride.objects.exists()
    assert not AuditEvent.objects.filter(action="decision.overridden").exists()


def test_a_shadow_decision_offers_no_override_and_the_form_shows_why(world, underwriter):  # noqa: ANN001
    shadow = world.shadows[0]
    client = signed_in(underwriter)
    assert override_url(shadow) not in page(client, change_url(shadow))
    response = client.post(override_url(shadow), {**OVERRIDE, "outcome": "refer" if shadow.outcome != "refer" else "approve"})
    assert response.status_code == 400
    assert "a shadow decision decided nothing and cannot be overridden" in response.content.decode()
    assert not DecisionOverride.objects.exists()


def test_an_unknown_decision_is_404_on_the_form(world, underwriter):  # noqa: ANN001
    assert signed_in(underwriter).get(reverse("admin:riskmodels_creditdecision_override",
                                              args=[999_999])).status_code == 404


# --- The model page's statistics ---------------------------------------------------------------------------

def test_the_model_page_shows_the_decision_stats_of_the_last_30_days(world, compliance_officer,  # noqa: ANN001
                                                                     underwriter):
    declines = [d for d in world.decisions if d.outcome == "decline"][:2]
    for decision, reason in zip(declines, ("collateral", "data_error"), strict=True):
        decision_override(actor=underwriter, decision=decision, outcome="approve", reason=reason, text="checked")
    stats = decision_stats_for_user(user=compliance_officer, model=world.model, days=30)
    assert stats.decisions == len(world.decisions) and stats.overridden == 2  # shadow entries are not counted
    html = page(signed_in(compliance_officer), reverse("admin:riskmodels_registeredmodel_change",
                                                       args=[world.model.pk]))
    block = section(html, "decision-stats")
    assert "Decisions (last 30 days)" in block
    assert f">{stats.decisions}</a>" in section(block, "stats-decisions")
    assert f"{_percent(stats.approve_rate)} ({stats.approved})" in section(block, "stats-approve-rate")
    assert f"{_percent(stats.override_rate)} ({stats.overridden})" in section(block, "stats-override-rate")
    reasons = section(html, "stats-overrides-by-reason")
    for reason, n in stats.overrides_by_reason.items():
        assert f'data-reason="{reason}">{n}<' in reasons
    assert "Collateral or guarantee offered" in reasons and "The application data was wrong" in reasons


def test_the_stats_block_is_shown_only_to_who_may_read_decisions(world, developer, validator):  # noqa: ANN001
    url = reverse("admin:riskmodels_registeredmodel_change", args=[world.model.pk])
    assert 'id="decision-stats"' in page(signed_in(developer), url)
    from governance import policy

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(policy.GRANTS, policy.Capability.DECISION_READ, frozenset({Role.DEVELOPER}))
        assert 'id="decision-stats"' not in page(signed_in(validator), url)


def test_the_admin_home_offers_the_workspace_only_to_those_who_may_read_the_domain(world, underwriter,  # noqa: ANN001
                                                                                   compliance_officer):
    assert 'id="workspace-link"' in signed_in(compliance_officer).get("/admin/").content.decode()
    home = signed_in(underwriter).get("/admin/")
    assert home.status_code == 200
    assert 'id="workspace-link"' not in home.content.decode() and "Credit decisions" in home.content.decode()

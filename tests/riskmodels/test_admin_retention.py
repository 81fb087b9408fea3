"""Legal holds in the admin: listed on the model's page; placed and lifted by compliance officers on forms
that call the service; refused to everyone else."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from governance.models import AuditEvent
from governance.policy import REFUSALS, Capability
from riskmodels.models import LegalHold

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def _model_page(model) -> str:  # noqa: ANN001
    return reverse("admin:riskmodels_registeredmodel_change", args=[model.pk])


def _place_url(model) -> str:  # noqa: ANN001
    return reverse("admin:riskmodels_registeredmodel_legal_hold_place", args=[model.pk])


def test_a_compliance_officer_places_and_lifts_a_hold_from_the_models_page(compliance_officer, retail_model):  # noqa: ANN001
    client = signed_in(compliance_officer)
    page = client.get(_model_page(retail_model)).content.decode()
    assert 'id="legal-holds"' in page and "No legal hold has been placed" in page and _place_url(retail_model) in page
    response = client.post(_place_url(retail_model), {"reason": "Regulator inquiry 17"})
    assert response.status_code == 302 and response.url == _model_page(retail_model)
    hold = LegalHold.objects.get()
    assert hold.is_open and hold.reason == "Regulator inquiry 17" and hold.placed_by_username == compliance_officer.username
    page = client.get(_model_page(retail_model)).content.decode()
    assert "Under a legal hold" in page and "Regulator inquiry 17" in page and _place_url(retail_model) not in page
    lift = reverse("admin:riskmodels_registeredmodel_legal_hold_lift", args=[hold.pk])
    assert lift in page
    assert client.post(lift, {"reason": "Inquiry closed"}).status_code == 302
    hold.refresh_from_db()
    assert not hold.is_open and hold.lift_reason == "Inquiry closed"
    assert list(AuditEvent.objects.filter(action__startswith="legal_hold").values_list("action", flat=True)) == [
        "legal_hold.placed", "legal_hold.lifted"]


def test_an_empty_reason_shows_the_services_message_and_writes_nothing(compliance_officer, retail_model):  # noqa: ANN001
    response = signed_in(compliance_officer).post(_place_url(retail_model), {"reason": "  "})
    assert response.status_code == 400 and "reason must say why" in response.content.decode()
    assert not LegalHold.objects.exists()


@pytest.mark.parametrize("persona", ["developer", "validator", "auditor"])
def test_others_see_the_holds_but_may_not_place_or_lift_them(persona, compliance_officer, retail_model, request):  # noqa: ANN001
    hold = LegalHold.objects.create(registered_model=retail_model, reason="litigation",
                                    placed_by_username=compliance_officer.username)
    client = signed_in(request.getfixturevalue(persona))
    page = client.get(_model_page(retail_model)).content.decode()
    assert "litigation" in page and _place_url(retail_model) not in page and "Lift…" not in page
    lift = reverse("admin:riskmodels_registeredmodel_legal_hold_lift", args=[hold.pk])
    for response in (client.get(lift), client.post(lift, {"reason": "x"}), client.post(_place_url(retail_model),
                                                                                       {"reason": "x"})):
        assert response.status_code == 403
        assert REFUSALS[Capability.LEGAL_HOLD_MANAGE] in response.content.decode()
    hold.refresh_from_db()
    assert hold.is_open and LegalHold.objects.count() == 1

"""Legal holds through the API: compliance officers place and lift them with a reason, audited; everyone
else is refused; a second hold and a second lift are conflicts."""

from __future__ import annotations

import pytest

from governance.models import AuditEvent
from governance.policy import REFUSALS, Capability
from riskmodels.models import LegalHold
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _place(user, model, reason: str = "Litigation: complaint 2026-114"):  # noqa: ANN001,ANN202
    return client_for(user).post(f"/api/v1/models/{model.name}/legal-holds/", {"reason": reason}, format="json")


def _lift(user, hold_id: int, reason: str = "Litigation settled"):  # noqa: ANN001,ANN202
    return client_for(user).post(f"/api/v1/legal-holds/{hold_id}/lift/", {"reason": reason}, format="json")


def test_a_compliance_officer_places_a_hold_which_is_listed_and_audited(compliance_officer, retail_model):  # noqa: ANN001
    response = _place(compliance_officer, retail_model)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["is_open"] and body["reason"] == "Litigation: complaint 2026-114"
    assert body["placed_by_username"] == compliance_officer.username
    event = AuditEvent.objects.get(action="legal_hold.placed")
    assert event.actor_username == compliance_officer.username and event.target_id == str(retail_model.pk)
    assert event.after["reason"] == "Litigation: complaint 2026-114" and event.after["legal_hold"] == body["id"]
    listed = client_for(compliance_officer).get(f"/api/v1/models/{retail_model.name}/legal-holds/").json()
    assert [h["id"] for h in listed] == [body["id"]]


def test_a_second_hold_on_a_held_model_is_a_conflict(compliance_officer, retail_model):  # noqa: ANN001
    assert _place(compliance_officer, retail_model).status_code == 201
    response = _place(compliance_officer, retail_model)
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_held"
    assert LegalHold.objects.count() == 1 and AuditEvent.objects.filter(action="legal_hold.placed").count() == 1


def test_lifting_records_who_when_and_why_and_a_second_lift_is_a_conflict(compliance_officer, retail_model):  # noqa: ANN001
    hold_id = _place(compliance_officer, retail_model).json()["id"]
    response = _lift(compliance_officer, hold_id)
    assert response.status_code == 200, response.json()
    assert not response.json()["is_open"] and response.json()["lift_reason"] == "Litigation settled"
    event = AuditEvent.objects.get(action="legal_hold.lifted")
    assert event.before["reason"] == "Litigation: complaint 2026-114" and event.after["lift_reason"] == "Litigation settled"
    again = _lift(compliance_officer, hold_id)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_held"
    assert _place(compliance_officer, retail_model).status_code == 201  # held again, a new hold


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_empty_reason_is_refused_and_nothing_is_written(compliance_officer, retail_model, reason):  # noqa: ANN001
    response = _place(compliance_officer, retail_model, reason)
    assert response.status_code == 400 and response.json()["error"]["code"] == "reason_required"
    assert not LegalHold.objects.exists() and not AuditEvent.objects.filter(action__startswith="legal_hold").exists()
    hold_id = _place(compliance_officer, retail_model).json()["id"]
    assert _lift(compliance_officer, hold_id, reason).status_code == 400
    assert LegalHold.objects.get(pk=hold_id).is_open


@pytest.mark.parametrize("persona", ["developer", "validator", "auditor", "underwriter", "outsider"])
def test_no_one_else_places_or_lifts_a_hold(persona, compliance_officer, retail_model, request):  # noqa: ANN001
    user = request.getfixturevalue(persona)
    refused = _place(user, retail_model)
    assert refused.status_code == 403
    if persona in {"developer", "validator", "auditor"}:  # they read the model, so the hold's own refusal applies
        assert refused.json()["error"]["message"] == REFUSALS[Capability.LEGAL_HOLD_MANAGE]
    hold_id = _place(compliance_officer, retail_model).json()["id"]
    assert _lift(user, hold_id).status_code == 403
    assert LegalHold.objects.get(pk=hold_id).is_open
    assert AuditEvent.objects.filter(action__startswith="legal_hold").count() == 1


def test_unknown_models_and_holds_are_not_found(compliance_officer):  # noqa: ANN001
    client = client_for(compliance_officer)
    assert client.post("/api/v1/models/nope/legal-holds/", {"reason": "x"}, format="json").status_code == 404
    assert client.post("/api/v1/legal-holds/999/lift/", {"reason": "x"}, format="json").status_code == 404

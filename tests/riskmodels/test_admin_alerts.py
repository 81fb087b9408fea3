"""Alerts in the admin: on the compliance start page, acknowledged on a form that calls the service, listed read-only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from governance.models import AuditEvent
from governance.policy import REFUSALS, Capability
from riskmodels.models import Alert
from riskmodels.services.alerts import Breach, alert_acknowledge
from tests.conftest import module_media
from tests.riskmodels.alerting import raise_alerts, trained_version_world

pytestmark = pytest.mark.django_db

shared_media, _isolated_media = module_media("admin-alerts-media")
world = trained_version_world()
START = "/admin/riskmodels/modelversion/workspace/"


def signed_in(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def _form_url(alert: Alert) -> str:
    return reverse("admin:riskmodels_workspace_alert_acknowledge", args=[alert.pk])


def test_the_start_page_shows_open_alerts_first_with_value_threshold_and_window(world, compliance_officer):  # noqa: ANN001
    older, newer = raise_alerts(world, Breach("psi:score", 0.31, 0.25, "red", "Shift."),
                                Breach("csi:duration_in_month", 0.12, 0.10, "amber", "Duration shifted."))
    alert_acknowledge(actor=compliance_officer, alert=newer, comment="Seasonal; watching.")
    page = signed_in(compliance_officer).get(START).content.decode()
    section = page.split('id="alerts"', 1)[1].split('id="awaiting-validation"', 1)[0]
    assert section.index(f'id="alert-{older.pk}"') < section.index(f'id="alert-{newer.pk}"')
    for text in ("psi:score", "0.3100", "0.2500", "RED", f"v{world.version}", world.registered_model.name,
                 "acknowledged by carl-compliance", "Seasonal; watching."):
        assert text in section, text
    assert _form_url(older) in section and _form_url(newer) not in section  # only the open one


@pytest.mark.parametrize(("persona", "offered"), [("compliance_officer", True), ("validator", True),
                                                  ("auditor", False), ("developer", False)])
def test_the_acknowledge_button_is_drawn_for_those_the_policy_allows(world, persona, offered, request):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    page = signed_in(request.getfixturevalue(persona)).get(START).content.decode()
    assert f'id="alert-{alert.pk}"' in page
    assert (_form_url(alert) in page) is offered


def test_a_compliance_officer_acknowledges_on_the_form(world, compliance_officer):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    client = signed_in(compliance_officer)
    assert 'name="comment"' in client.get(_form_url(alert)).content.decode()
    response = client.post(_form_url(alert), {"comment": "Revalidation scheduled for next week."})
    assert response.status_code == 302 and response["Location"] == START + "#alerts"
    stored = Alert.objects.get(pk=alert.pk)
    assert (stored.status, stored.comment, stored.acknowledged_by_username) == (
        "acknowledged", "Revalidation scheduled for next week.", "carl-compliance")
    assert AuditEvent.objects.filter(action="alert.acknowledged", target_id=str(alert.pk)).count() == 1


def test_an_empty_comment_shows_the_form_again_and_writes_nothing(world, compliance_officer):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    response = signed_in(compliance_officer).post(_form_url(alert), {"comment": "  "})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert Alert.objects.get(pk=alert.pk).status == "open"
    assert not AuditEvent.objects.filter(action="alert.acknowledged").exists()


def test_a_second_acknowledgement_is_refused_with_a_message(world, compliance_officer, validator):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    alert_acknowledge(actor=validator, alert=alert, comment="Seen first.")
    response = signed_in(compliance_officer).post(_form_url(alert), {"comment": "Seen second."}, follow=True)
    assert "already acknowledged by vera-validator" in response.content.decode()
    assert Alert.objects.get(pk=alert.pk).comment == "Seen first."
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1


@pytest.mark.parametrize("persona", ["auditor", "developer"])
def test_others_get_403_on_the_forms_url_without_a_form(world, persona, request):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    client = signed_in(request.getfixturevalue(persona))
    for response in (client.get(_form_url(alert)), client.post(_form_url(alert), {"comment": "Forced."})):
        body = response.content.decode()
        assert response.status_code == 403 and REFUSALS[Capability.ALERT_ACKNOWLEDGE] in body
        assert 'name="comment"' not in body
    assert Alert.objects.get(pk=alert.pk).status == "open"


def test_an_unknown_alerts_form_is_404(compliance_officer):  # noqa: ANN001
    assert signed_in(compliance_officer).get(reverse("admin:riskmodels_workspace_alert_acknowledge",
                                                     args=[999999])).status_code == 404


def test_the_alert_list_is_read_only_and_filters_by_status_light_and_model(world, compliance_officer):  # noqa: ANN001
    red, amber = raise_alerts(world, Breach("psi:score", 0.31, 0.25, "red", "Shift."),
                              Breach("auc", 0.70, 0.72, "amber", "AUC dropped."))
    client = signed_in(compliance_officer)
    listing = client.get("/admin/riskmodels/alert/?light__exact=amber&status__exact=open"
                         f"&registered_model__id__exact={world.registered_model_id}")
    assert listing.status_code == 200
    assert [a.pk for a in listing.context["cl"].result_list] == [amber.pk]
    assert "/admin/riskmodels/alert/add/" not in listing.content.decode()
    detail = client.get(f"/admin/riskmodels/alert/{red.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert client.post(f"/admin/riskmodels/alert/{red.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Alert.objects.filter(pk=red.pk).exists()

"""Alerts: acknowledged through the API and the service (once, with a comment, by whom the policy allows),
and sent to a real local webhook receiver (HMAC-signed, retried on 5xx) and by e-mail."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
from django.core import mail
from django.db import transaction

from governance.exceptions import Conflict, PermissionDenied, ValidationFailed
from governance.models import AuditEvent
from governance.policy import REFUSALS, Capability
from riskmodels.exceptions import NotificationDeferred
from riskmodels.jobs.dispatch import NOTIFY_ALERT
from riskmodels.models import Alert
from riskmodels.services.alerts import Breach, alert_acknowledge, alert_notify, alert_summary
from tests.conftest import client_for, module_media
from tests.riskmodels.alerting import raise_alerts, receiver, trained_version_world  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

shared_media, _isolated_media = module_media("alerts-media")
world = trained_version_world()
SECRET = "test-webhook-secret-of-the-receiver"


@pytest.fixture
def alert(world):  # noqa: ANN001,ANN201
    return raise_alerts(world)[0]


def _audits(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


def _notify_task():  # noqa: ANN202
    # By name, as the runner sends it: nothing imports the task module.
    from governance.celery import app

    app.loader.import_default_modules()
    return app.tasks[NOTIFY_ALERT]


# --- Raised ---------------------------------------------------------------------------------------

def test_a_red_result_raises_an_alert_with_its_window_and_an_audit_event(world):  # noqa: ANN001
    alert = raise_alerts(world)[0]
    assert (alert.metric, alert.value, alert.threshold, alert.light, alert.status) == (
        "psi:score", 0.31, 0.25, "red", "open")
    assert set(alert.window) == {"start", "end"}
    event = AuditEvent.objects.get(action="alert.raised", target_id=str(alert.pk))
    assert event.after["light"] == "red" and event.after["model_version"] == world.pk


def test_raising_sends_the_notification_after_commit_only_when_something_is_configured(  # noqa: ANN001
        world, settings, monkeypatch, django_capture_on_commit_callbacks):
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, kwargs: sent.append((name, kwargs)))
    with django_capture_on_commit_callbacks(execute=True):
        raise_alerts(world)
    assert sent == []
    settings.ALERT_EMAIL_RECIPIENTS = ["risk@example.org"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alerts = raise_alerts(world, Breach("auc", 0.70, 0.72, "amber", "AUC dropped."),
                              Breach("ks", 0.20, 0.25, "red", "KS dropped."))
        assert sent == []  # nothing leaves before the run's transaction commits
    assert len(callbacks) == 2
    assert sent == [(NOTIFY_ALERT, {"alert_id": a.pk}) for a in alerts]


def test_a_green_result_raises_nothing(world):  # noqa: ANN001
    with pytest.raises(ValidationFailed, match="only amber and red"):
        raise_alerts(world, Breach("psi:score", 0.01, 0.10, "green", "fine"))
    assert not Alert.objects.exists()


# --- Acknowledged: the service -----------------------------------------------------------------

def test_a_compliance_officer_acknowledges_an_open_alert_with_a_comment(alert, compliance_officer):  # noqa: ANN001
    done = alert_acknowledge(actor=compliance_officer, alert=alert, comment="  Revalidation requested.  ")
    stored = Alert.objects.get(pk=alert.pk)
    assert (stored.status, stored.comment, stored.acknowledged_by, stored.acknowledged_by_username) == (
        "acknowledged", "Revalidation requested.", compliance_officer, compliance_officer.username)
    assert stored.acknowledged_at is not None and done.status == "acknowledged"
    event = AuditEvent.objects.get(action="alert.acknowledged")
    assert (event.actor_username, event.target_id, event.before, event.after["comment"]) == (
        compliance_officer.username, str(alert.pk), {"status": "open"}, "Revalidation requested.")


def test_a_validator_may_acknowledge_too(alert, validator):  # noqa: ANN001
    assert alert_acknowledge(actor=validator, alert=alert, comment="Drift expected after the campaign.").status == (
        "acknowledged")


def test_a_stale_copy_cannot_acknowledge_an_alert_twice(alert, compliance_officer, validator):  # noqa: ANN001
    # Both read it open; the conditional update lets exactly one of them through.
    stale = Alert.objects.get(pk=alert.pk)
    alert_acknowledge(actor=validator, alert=alert, comment="First.")
    before = _audits("alert.acknowledged")
    with pytest.raises(Conflict) as refused:
        alert_acknowledge(actor=compliance_officer, alert=stale, comment="Second.")
    assert refused.value.code == "already_acknowledged" and validator.username in refused.value.message
    assert Alert.objects.get(pk=alert.pk).comment == "First." and _audits("alert.acknowledged") == before


@pytest.mark.parametrize("comment", ["", "   ", "x" * 2001])
def test_an_acknowledgement_needs_a_comment_of_at_most_2000_characters(alert, compliance_officer, comment):  # noqa: ANN001
    with pytest.raises(ValidationFailed) as refused:
        alert_acknowledge(actor=compliance_officer, alert=alert, comment=comment)
    assert refused.value.details == {"field": "comment"}
    assert Alert.objects.get(pk=alert.pk).status == "open" and _audits("alert.acknowledged") == 0


@pytest.mark.parametrize("persona", ["developer", "auditor", "underwriter", "outsider"])
def test_other_roles_may_not_acknowledge(alert, persona, request):  # noqa: ANN001
    with pytest.raises(PermissionDenied, match=REFUSALS[Capability.ALERT_ACKNOWLEDGE]):
        alert_acknowledge(actor=request.getfixturevalue(persona), alert=alert, comment="Seen.")
    assert Alert.objects.get(pk=alert.pk).status == "open" and _audits("alert.acknowledged") == 0


# --- Acknowledged and read: the API ----------------------------------------------------------------

def test_the_api_lists_alerts_filtered_by_status_and_model(world, compliance_officer, auditor):  # noqa: ANN001
    first, second = raise_alerts(world, Breach("psi:score", 0.31, 0.25, "red", "Shift."),
                                 Breach("csi:duration", 0.12, 0.10, "amber", "Duration shifted."))
    alert_acknowledge(actor=compliance_officer, alert=first, comment="Known.")
    client = client_for(auditor)
    everything = client.get("/api/v1/alerts/").json()["results"]
    assert [a["id"] for a in everything] == [second.pk, first.pk]
    assert [a["id"] for a in client.get("/api/v1/alerts/?status=open").json()["results"]] == [second.pk]
    named = client.get(f"/api/v1/alerts/?model={world.registered_model.name}&status=acknowledged").json()["results"]
    assert [(a["id"], a["comment"], a["acknowledged_by_username"]) for a in named] == [
        (first.pk, "Known.", compliance_officer.username)]
    assert client.get("/api/v1/alerts/?model=no-such-model").json()["results"] == []
    assert client.get("/api/v1/alerts/?status=maybe").status_code == 400


def test_the_api_shows_one_alert_and_404s_an_unknown_one(alert, auditor):  # noqa: ANN001
    client = client_for(auditor)
    body = client.get(f"/api/v1/alerts/{alert.pk}/").json()
    assert {k: body[k] for k in ("metric", "value", "threshold", "light", "status", "registered_model")} == {
        "metric": "psi:score", "value": 0.31, "threshold": 0.25, "light": "red", "status": "open",
        "registered_model": alert.registered_model.name}
    assert body["window"] == alert.window and body["version"] == alert.model_version.version
    assert client.get("/api/v1/alerts/999999/").status_code == 404


def test_reading_alerts_needs_a_role_that_reads_the_domain(alert, underwriter):  # noqa: ANN001
    response = client_for(underwriter).get("/api/v1/alerts/")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == REFUSALS[Capability.DOMAIN_READ]


def test_the_api_acknowledges_once_then_answers_409(alert, compliance_officer, validator):  # noqa: ANN001
    url = f"/api/v1/alerts/{alert.pk}/acknowledge/"
    response = client_for(compliance_officer).post(url, {"comment": "Model owner informed."}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["comment"]) == ("acknowledged", "Model owner informed.")
    again = client_for(validator).post(url, {"comment": "Me too."}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_acknowledged"
    assert _audits("alert.acknowledged") == 1


@pytest.mark.parametrize(("body", "status"), [({}, 400), ({"comment": ""}, 400), ({"comment": "x" * 2001}, 400)])
def test_the_api_refuses_a_missing_empty_or_long_comment(alert, compliance_officer, body, status):  # noqa: ANN001
    response = client_for(compliance_officer).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", body, format="json")
    assert response.status_code == status and "comment" in json.dumps(response.json()["error"])
    assert Alert.objects.get(pk=alert.pk).status == "open" and _audits("alert.acknowledged") == 0


def test_the_api_refuses_the_wrong_role_and_an_unknown_alert(alert, developer, compliance_officer):  # noqa: ANN001
    audits = AuditEvent.objects.count()
    refused = client_for(developer).post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"comment": "Mine."},
                                         format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == REFUSALS[Capability.ALERT_ACKNOWLEDGE]
    missing = client_for(compliance_officer).post("/api/v1/alerts/999999/acknowledge/", {"comment": "?"},
                                                  format="json")
    assert missing.status_code == 404
    # Issuing the two tokens is audited; nothing else was written.
    assert AuditEvent.objects.count() == audits + 2
    assert Alert.objects.get(pk=alert.pk).status == "open"


# --- Sent: the webhook --------------------------------------------------------------------------

def _expect_signed(headers, body: bytes, secret: str = SECRET) -> None:  # noqa: ANN001
    # What a receiver does (README, "Alerts"): recompute over the raw body, compare in constant time, check the age.
    timestamp = headers["X-Signature-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["X-Signature-SHA256"])
    assert abs(time.time() - int(timestamp)) < 300


@pytest.fixture
def webhook(receiver, settings):  # noqa: ANN001,ANN201
    settings.ALERT_WEBHOOK_URL = receiver.url
    settings.ALERT_WEBHOOK_SECRET = SECRET
    settings.ALERT_EMAIL_RECIPIENTS = []
    return receiver


def test_the_webhook_receives_the_alert_as_signed_json_and_the_outcome_is_recorded(alert, webhook):  # noqa: ANN001
    alert_notify(alert_id=alert.pk)
    [(headers, body)] = webhook.received
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == json.loads(json.dumps(alert_summary(alert)))
    _expect_signed(headers, body)
    notified = Alert.objects.get(pk=alert.pk).notified
    assert (notified["attempt"], notified["webhook"]["state"], notified["webhook"]["status"]) == (1, "delivered", 200)
    assert "email" not in notified and notified["webhook"]["at"]
    event = AuditEvent.objects.get(action="alert.notified")
    assert (event.actor_username, event.after["webhook"]["state"]) == ("system:worker", "delivered")


def test_a_signature_made_with_another_secret_or_over_another_body_does_not_verify(alert, webhook):  # noqa: ANN001
    alert_notify(alert_id=alert.pk)
    [(headers, body)] = webhook.received
    with pytest.raises(AssertionError):
        _expect_signed(headers, body, secret="not-the-secret")
    with pytest.raises(AssertionError):
        _expect_signed(headers, body.replace(b"0.31", b"0.01"))


def test_a_second_delivery_of_a_delivered_alert_sends_nothing(alert, webhook):  # noqa: ANN001
    alert_notify(alert_id=alert.pk)
    notified = Alert.objects.get(pk=alert.pk).notified
    assert alert_notify(alert_id=alert.pk) == notified
    assert len(webhook.received) == 1 and _audits("alert.notified") == 1


def test_a_500_then_a_200_is_retried_by_the_task_and_delivered(alert, webhook):  # noqa: ANN001
    webhook.answers.extend([500])
    _notify_task().apply(kwargs={"alert_id": alert.pk})
    assert len(webhook.received) == 2
    for headers, body in webhook.received:
        _expect_signed(headers, body)
    notified = Alert.objects.get(pk=alert.pk).notified
    assert (notified["attempt"], notified["webhook"]["state"], notified["webhook"]["status"]) == (2, "delivered", 200)
    states = [e.after["webhook"]["state"] for e in AuditEvent.objects.filter(action="alert.notified").order_by("id")]
    assert states == ["retrying", "delivered"]


def test_retries_are_bounded_and_the_last_failure_is_recorded(alert, webhook, settings):  # noqa: ANN001
    task = _notify_task()
    webhook.answers.extend([503] * (task.max_retries + 5))
    task.apply(kwargs={"alert_id": alert.pk})
    assert len(webhook.received) == task.max_retries + 1
    notified = Alert.objects.get(pk=alert.pk).notified
    assert (notified["attempt"], notified["webhook"]["state"], notified["webhook"]["status"]) == (
        task.max_retries + 1, "failed", 503)


def test_a_4xx_is_recorded_and_not_retried(alert, webhook):  # noqa: ANN001
    webhook.answers.extend([410])
    _notify_task().apply(kwargs={"alert_id": alert.pk}).get()  # raises nothing into the caller
    assert len(webhook.received) == 1
    webhook_outcome = Alert.objects.get(pk=alert.pk).notified["webhook"]
    assert (webhook_outcome["state"], webhook_outcome["status"]) == ("refused", 410)
    assert _audits("alert.notified") == 1


def test_an_unreachable_receiver_is_a_transient_failure_retried_then_recorded(alert, settings):  # noqa: ANN001
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.ALERT_WEBHOOK_URL, settings.ALERT_WEBHOOK_SECRET = f"http://127.0.0.1:{port}/alerts", SECRET
    with pytest.raises(NotificationDeferred, match="webhook"):
        alert_notify(alert_id=alert.pk, final_attempt=False)
    assert Alert.objects.get(pk=alert.pk).notified["webhook"]["state"] == "retrying"
    alert_notify(alert_id=alert.pk, final_attempt=True)
    webhook = Alert.objects.get(pk=alert.pk).notified["webhook"]
    assert webhook["state"] == "failed" and "refused" in webhook["error"].lower()


def test_without_a_secret_nothing_is_sent_and_the_reason_is_recorded(alert, receiver, settings):  # noqa: ANN001
    # The settings refuse this at start-up (tests/governance/test_settings_env.py); a runtime override must not leak.
    settings.ALERT_WEBHOOK_URL, settings.ALERT_WEBHOOK_SECRET = receiver.url, ""
    alert_notify(alert_id=alert.pk)
    assert receiver.received == []
    assert Alert.objects.get(pk=alert.pk).notified["webhook"]["error"] == (
        "not configured: ALERT_WEBHOOK_SECRET missing")


def test_a_delivery_that_loses_the_claim_to_a_concurrent_one_sends_nothing(alert, webhook, monkeypatch):  # noqa: ANN001
    from riskmodels.services import alerts as service

    pending = service._pending_channels

    def claimed_meanwhile(notified):  # noqa: ANN001,ANN202
        # Another delivery claims attempt 1 after this one read the alert, before it claims.
        Alert.objects.filter(pk=alert.pk).update(notified={"attempt": 1})
        return pending(notified)

    monkeypatch.setattr(service, "_pending_channels", claimed_meanwhile)
    assert alert_notify(alert_id=alert.pk) == {"attempt": 1}
    assert webhook.received == [] and _audits("alert.notified") == 0


# --- Sent: e-mail -----------------------------------------------------------------------------------

def test_the_alert_is_e_mailed_to_the_recipients_once(alert, settings):  # noqa: ANN001
    settings.ALERT_WEBHOOK_URL = ""
    settings.ALERT_EMAIL_RECIPIENTS = ["risk@example.org", "cro@example.org"]
    settings.DEFAULT_FROM_EMAIL = "governance@example.org"
    alert_notify(alert_id=alert.pk)
    [message] = mail.outbox
    assert message.to == ["risk@example.org", "cro@example.org"] and message.from_email == "governance@example.org"
    assert message.subject.startswith(f"[RED] {alert.registered_model.name} v{alert.model_version.version}: psi:score")
    assert "Threshold: 0.25" in message.body and "Value:     0.31" in message.body and alert.message in message.body
    assert Alert.objects.get(pk=alert.pk).notified["email"]["state"] == "sent"
    alert_notify(alert_id=alert.pk)
    assert len(mail.outbox) == 1


def test_webhook_and_e_mail_go_out_together_and_a_failed_webhook_does_not_resend_the_e_mail(  # noqa: ANN001
        alert, webhook, settings):
    settings.ALERT_EMAIL_RECIPIENTS = ["risk@example.org"]
    webhook.answers.extend([502])
    with pytest.raises(NotificationDeferred):
        alert_notify(alert_id=alert.pk, final_attempt=False)
    alert_notify(alert_id=alert.pk)
    assert len(mail.outbox) == 1 and len(webhook.received) == 2
    notified = Alert.objects.get(pk=alert.pk).notified
    assert (notified["webhook"]["state"], notified["email"]["state"]) == ("delivered", "sent")


def test_notifying_an_alert_that_does_not_exist_is_a_no_op(webhook):  # noqa: ANN001
    with transaction.atomic():
        assert alert_notify(alert_id=999999) == {}
    assert webhook.received == []

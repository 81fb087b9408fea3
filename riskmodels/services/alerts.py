"""Alerts: a monitoring result past its threshold becomes a record and an audit event, in the run's transaction;
compliance staff acknowledge it with a comment; a worker sends it to the configured webhook and e-mail recipients.

The webhook is a JSON POST of ``alert_summary`` (compact, sorted keys) signed with the shared secret
``ALERT_WEBHOOK_SECRET``: ``X-Signature-Timestamp`` carries the Unix time of the attempt and
``X-Signature-SHA256`` the hex HMAC-SHA256 of ``<timestamp>.<body>``. A receiver recomputes it over the
raw body, compares in constant time and rejects old timestamps (replays); README's "Alerts" shows how.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import Conflict, ValidationFailed
from governance.policy import Capability, require
from riskmodels.exceptions import NotificationDeferred
from riskmodels.jobs.dispatch import NOTIFY_ALERT, send_on_commit
from riskmodels.jobs.state import WORKER_LABEL
from riskmodels.models import Alert, MonitoringRun

COMMENT_MAX_CHARS = 2000
SIGNATURE_HEADER = "X-Signature-SHA256"
TIMESTAMP_HEADER = "X-Signature-Timestamp"

# A channel's state in ``Alert.notified``; only "retrying" is sent again.
DELIVERED, REFUSED, SENT, FAILED, RETRYING, NOT_CONFIGURED = (
    "delivered", "refused", "sent", "failed", "retrying", "not_configured")

LIGHTS = (MonitoringRun.Light.GREEN, MonitoringRun.Light.AMBER, MonitoringRun.Light.RED)


@dataclass(frozen=True)
class Breach:
    """One metric of a run past its threshold: what to raise."""

    metric: str  # e.g. "psi:score", "csi:credit_amount", "auc", "fairness:age_in_years"
    value: float
    threshold: float
    light: str  # amber or red
    message: str


def worst_light(lights: list[str]) -> str:
    """Return the worst of some traffic lights (green for none)."""
    return max(lights, key=LIGHTS.index, default=MonitoringRun.Light.GREEN)


def alerts_raise(*, run: MonitoringRun, breaches: list[Breach]) -> list[Alert]:
    """Record one alert and one audit event per breach of ``run``; call inside the run's transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("alerts are raised inside the transaction that records their run")
    window = ({"dataset_version": run.dataset_version_id} if run.dataset_version_id else
              {"start": run.window_start.isoformat(), "end": run.window_end.isoformat()})
    version = run.model_version
    alerts = []
    for breach in breaches:
        if breach.light not in (MonitoringRun.Light.AMBER, MonitoringRun.Light.RED):
            raise ValidationFailed(f"only amber and red results raise alerts; got {breach.light!r}")
        alert = Alert.objects.create(registered_model_id=version.registered_model_id, model_version=version, run=run,
                                     metric=breach.metric, value=breach.value, threshold=breach.threshold,
                                     light=breach.light, window=window, message=breach.message)
        audit_record(actor=None, actor_label=WORKER_LABEL, action="alert.raised", target=alert,
                     after={"metric": breach.metric, "value": breach.value, "threshold": breach.threshold,
                            "light": breach.light, "run": run.pk, "model_version": version.pk, "window": window})
        if alert_notifications_configured():
            send_on_commit(NOTIFY_ALERT, alert_id=alert.pk)
        alerts.append(alert)
    return alerts


def alert_summary(alert: Alert) -> dict[str, Any]:
    """Return what a notification says about an alert (JSON-serialisable)."""
    return {"id": alert.pk, "model": alert.registered_model.name, "model_version": alert.model_version_id,
            "metric": alert.metric, "value": alert.value, "threshold": alert.threshold, "light": alert.light,
            "window": alert.window, "message": alert.message, "created_at": alert.created_at.isoformat()}


def alert_acknowledge(*, actor: Any, alert: Alert, comment: str) -> Alert:
    """Acknowledge an open alert with a comment (what is being done about it); audited."""
    require(actor, Capability.ALERT_ACKNOWLEDGE)
    if not isinstance(comment, str) or not comment.strip():
        raise ValidationFailed("comment is required", code="invalid", details={"field": "comment"})
    comment = comment.strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise ValidationFailed(f"comment is at most {COMMENT_MAX_CHARS} characters", code="invalid",
                               details={"field": "comment"})
    now = timezone.now()
    with transaction.atomic():
        # Conditional: of two people acknowledging at once, one succeeds and the other is told.
        updated = Alert.objects.filter(pk=alert.pk, status=Alert.Status.OPEN).update(
            status=Alert.Status.ACKNOWLEDGED, acknowledged_by=actor, acknowledged_by_username=actor.username,
            acknowledged_at=now, comment=comment)
        alert.refresh_from_db()
        if not updated:
            raise Conflict(f"alert {alert.pk} was already acknowledged by {alert.acknowledged_by_username} "
                           f"at {alert.acknowledged_at:%Y-%m-%d %H:%M} UTC", code="already_acknowledged",
                           details={"state": alert.status})
        audit_record(actor=actor, action="alert.acknowledged", target=alert, before={"status": Alert.Status.OPEN},
                     after={"status": alert.status, "comment": comment, "metric": alert.metric,
                            "light": alert.light, "model_version": alert.model_version_id})
    return alert


def alert_notifications_configured() -> bool:
    """Return whether alerts are sent anywhere (a webhook URL or e-mail recipients)."""
    return bool(settings.ALERT_WEBHOOK_URL or settings.ALERT_EMAIL_RECIPIENTS)


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret``: what a receiver recomputes."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A signed alert is not re-posted wherever a redirect points: the 3xx is recorded as the receiver's answer.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _webhook_post(alert: Alert) -> dict[str, Any]:
    if not settings.ALERT_WEBHOOK_SECRET:
        # The settings refuse this at start-up; a runtime override must not send unsigned alerts either.
        return {"state": NOT_CONFIGURED, "error": "not configured: ALERT_WEBHOOK_SECRET missing"}
    body = json.dumps(alert_summary(alert), sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(settings.ALERT_WEBHOOK_URL, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "model-governance-alerts", TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: webhook_signature(secret=settings.ALERT_WEBHOOK_SECRET, timestamp=timestamp, body=body)})
    try:
        with _OPENER.open(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except OSError as exc:  # refused, unreachable, timed out, TLS (URLError is an OSError)
        return {"state": RETRYING, "error": f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"}
    if 200 <= status < 300:
        return {"state": DELIVERED, "status": status}
    # A 5xx may pass; a 4xx (or a redirect) is the receiver's answer and is not sent again.
    return {"state": RETRYING if status >= 500 else REFUSED, "status": status}


def _email_send(alert: Alert) -> dict[str, Any]:
    summary = alert_summary(alert)
    version = alert.model_version.version
    subject = (f"[{alert.light.upper()}] {summary['model']} v{version}: {alert.metric} = {alert.value:.4g} "
               f"(threshold {alert.threshold:.4g})")
    window = ", ".join(f"{key} {value}" for key, value in alert.window.items())
    body = "\n".join([
        f"Monitoring alert {alert.pk}: {alert.light.upper()}", "",
        f"Model:     {summary['model']}, version {version}", f"Metric:    {alert.metric}",
        f"Value:     {alert.value:.6g}", f"Threshold: {alert.threshold:.6g}", f"Window:    {window}",
        f"Raised at: {summary['created_at']}", "", alert.message, "",
        "Acknowledge it with a comment on the compliance workspace or POST /api/v1/alerts/"
        f"{alert.pk}/acknowledge/."])
    try:
        send_mail(subject, body, None, settings.ALERT_EMAIL_RECIPIENTS, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        return {"state": RETRYING, "error": f"{type(exc).__name__}: {exc}"}
    return {"state": SENT, "recipients": len(settings.ALERT_EMAIL_RECIPIENTS)}


def _pending_channels(notified: dict[str, Any]) -> dict[str, Any]:
    channels = {"webhook": (settings.ALERT_WEBHOOK_URL, _webhook_post),
                "email": (settings.ALERT_EMAIL_RECIPIENTS, _email_send)}
    return {name: send for name, (configured, send) in channels.items()
            if configured and notified.get(name, {}).get("state", RETRYING) == RETRYING}


def alert_notify(*, alert_id: int, final_attempt: bool = True) -> dict[str, Any]:
    """Send an alert to the configured webhook and e-mail recipients; record the outcome on it and audit it.

    A channel is sent until it is settled (delivered, sent, refused with a 4xx, or failed on the final
    attempt), so a second delivery of the task sends nothing again. Raise NotificationDeferred when a
    channel failed transiently and this is not the final attempt: the task retries it with backoff.
    """
    alert = Alert.objects.select_related("registered_model", "model_version").filter(pk=alert_id).first()
    if alert is None:
        return {}
    pending = _pending_channels(alert.notified)
    if not pending:
        return alert.notified
    # Claim the attempt with a conditional update: of two deliveries that read the same attempt, one sends.
    seen = alert.notified.get("attempt")
    attempt = (seen or 0) + 1
    same_attempt = {"notified__attempt__isnull": True} if seen is None else {"notified__attempt": seen}
    if not Alert.objects.filter(pk=alert.pk, **same_attempt).update(notified={**alert.notified, "attempt": attempt}):
        return Alert.objects.get(pk=alert.pk).notified
    # Sent outside any transaction: a slow receiver must not hold database locks.
    outcome = {name: send(alert) for name, send in pending.items()}
    at = timezone.now().isoformat()
    for result in outcome.values():
        result["at"] = at
        if result["state"] == RETRYING and final_attempt:
            result["state"] = FAILED
    notified = {**alert.notified, "attempt": attempt, **outcome}
    with transaction.atomic():
        if Alert.objects.filter(pk=alert.pk, notified__attempt=attempt).update(notified=notified):
            audit_record(actor=None, actor_label=WORKER_LABEL, action="alert.notified", target=alert,
                         after={"attempt": attempt, **outcome})
    retrying = sorted(name for name, result in outcome.items() if result["state"] == RETRYING)
    if retrying:
        raise NotificationDeferred(f"alert {alert.pk}: {', '.join(retrying)} to be retried ({outcome})")
    return notified

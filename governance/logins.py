"""Sign-in protection: the client's address behind trusted proxies, the brute-force lockout
(django-axes, counting failures per username and address), and the audit of every failed
sign-in and every lockout, for the API's password login and the admin's sign-in form alike."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from governance.audit import audit_record
from governance.exceptions import TooManyRequests


def client_address(request: Any) -> str:
    """Return the client's IP address, trusting X-Forwarded-For only as far as TRUSTED_PROXY_COUNT says.

    Each trusted proxy appends the address it received the request from, so the client is the
    N-th entry from the right; anything to its left was written by the client and may be forged.
    With no trusted proxy (the default) the header is ignored and the socket's peer is the client.
    """
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote  # the request did not come through every proxy: only its peer is known
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


@dataclass(frozen=True)
class Lockout:
    """A username locked out from one address, and when the next attempt will be heard."""

    until: datetime

    @property
    def retry_after(self) -> int:
        """Whole seconds until the lockout ends (at least 1)."""
        return max(1, math.ceil((self.until - timezone.now()).total_seconds()))

    @property
    def message(self) -> str:
        return (f"too many failed sign-ins for this account from your address: try again after "
                f"{self.until.isoformat(timespec='seconds')} (in {self.retry_after} seconds)")


def login_lockout(*, request: Any, username: str) -> Lockout | None:
    """Return the lockout in force for ``username`` from this request's address, or None."""
    credentials = {"username": username}
    if not AxesProxyHandler.is_locked(request, credentials):
        return None
    # Locked-out attempts do not extend the cool-off (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT),
    # so the lockout ends a cool-off after the failure that reached the limit.
    last = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).aggregate(
        last=Max("attempt_time"))["last"]
    return Lockout(until=(last or timezone.now()) + settings.AXES_COOLOFF_TIME)


def login_failure_record(*, request: Any, username: str, interface: str, was_locked: bool) -> Lockout | None:
    """Audit a failed sign-in (and, when it reached the limit, the lockout); return the lockout now in force.

    Its own transaction, committed before the caller refuses the sign-in: the refusal is an
    exception, and the record of it must not roll back with it.
    """
    lockout = login_lockout(request=request, username=username)
    address = client_address(request)
    tried = (username or "")[:150]
    with transaction.atomic():
        audit_record(actor=None, actor_label="anonymous", action="auth.login_failed", target_type="auth.user",
                     target_repr=tried,
                     after={"username": tried, "client_address": address, "interface": interface,
                            "locked_out": lockout is not None})
        if lockout is not None and not was_locked:
            audit_record(actor=None, actor_label="system:lockout", action="auth.locked_out", target_type="auth.user",
                         target_repr=tried,
                         after={"username": tried, "client_address": address, "interface": interface,
                                "failure_limit": settings.AXES_FAILURE_LIMIT, "until": lockout.until})
    return lockout


def api_login_authenticate(*, request: Any, username: str, password: str) -> Any | None:
    """Return the active user these credentials name, or None; audit every failure.

    Raises TooManyRequests (429, with when to retry) while the username is locked out from this
    address, without checking the password, and on the failure that reaches the limit.
    """
    if login_lockout(request=request, username=username) is not None:
        lockout = login_failure_record(request=request, username=username, interface="api", was_locked=True)
        if lockout is not None:
            raise TooManyRequests(lockout.message, retry_after=lockout.retry_after, code="locked_out")
    user = authenticate(request=request, username=username, password=password)
    if user is not None and user.is_active:
        return user
    lockout = login_failure_record(request=request, username=username, interface="api", was_locked=False)
    if lockout is not None:
        raise TooManyRequests(lockout.message, retry_after=lockout.retry_after, code="locked_out")
    return None

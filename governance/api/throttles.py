"""Scoped rate limits on the costly operations (uploads, training, scoring, batch scoring) and on
the password login; rates come from settings (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]), counts
live in the default cache, and a refusal is 429 with Retry-After in the one error shape."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from governance.logins import client_address


class ScopedThrottle(SimpleRateThrottle):
    """Count a scope's unsafe requests per user (per address when anonymous); reads are never throttled."""

    scope = ""

    def get_rate(self) -> str:
        # DRF copies the rates onto the class at import; reading them per request lets a changed
        # setting (a test's override_settings, which reloads api_settings) take effect.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"no throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES") from None

    def get_ident(self, request: Any) -> str:
        return client_address(request)

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = request.user
        ident = f"user-{user.pk}" if user is not None and user.is_authenticated else f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def throttle_for(scope: str) -> type[ScopedThrottle]:
    """Return the throttle class of ``scope`` (a key of DEFAULT_THROTTLE_RATES)."""
    return type(f"{scope.title().replace('_', '')}Throttle", (ScopedThrottle,), {"scope": scope})


class LoginThrottle(ScopedThrottle):
    """Count password logins per client address, before any password is checked.

    It never asks who the user is (that would check the password first); it is what slows guessing
    across many usernames from one address, which the per-username lockout cannot see.
    """

    scope = "login"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


UploadThrottle = throttle_for("upload")
TrainingThrottle = throttle_for("training")
ScoringThrottle = throttle_for("scoring")
BatchScoringThrottle = throttle_for("batch_scoring")

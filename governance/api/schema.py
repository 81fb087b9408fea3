"""OpenAPI naming: nested ``InputSerializer``/``OutputSerializer`` get their view's name as a prefix."""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class LockoutBasicScheme(BasicScheme):
    """The password login's HTTP Basic, behind the lockout, is documented as plain HTTP Basic."""

    target_class = "governance.api.auth.LockoutBasicAuthentication"


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with unique component names for per-view nested serializers."""

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        name = super().get_serializer_name(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer = cls.__qualname__.split(".")
        if len(outer) > 1:
            return outer[0].removesuffix("Api") + name
        return name

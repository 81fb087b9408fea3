"""The API's own index (``GET /api/v1/``): every endpoint, read from the URLconf so it cannot fall behind."""

from __future__ import annotations

import inspect
import re
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

API_PREFIX = "api/v1/"
_METHODS = ("get", "post", "put", "patch", "delete")
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _patterns(patterns: list[Any], prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _patterns(entry.url_patterns, route)
        else:
            found.append((route, entry))
    return found


def _summary(view: type) -> str:
    # The view's own docstring only: one inherited from a base class would describe another endpoint.
    return inspect.cleandoc(view.__doc__).splitlines()[0].replace("``", "`") if view.__doc__ else ""


def api_endpoints() -> list[dict[str, Any]]:
    """Return every route under /api/v1/ in URLconf order: name, methods, path and its view's summary."""
    endpoints = []
    for route, pattern in _patterns(get_resolver().url_patterns):
        view = getattr(pattern.callback, "view_class", None)
        if not route.startswith(API_PREFIX) or view is None:
            continue
        endpoints.append({
            "name": pattern.name,
            "methods": [method.upper() for method in _METHODS if hasattr(view, method)],
            "path": "/" + _PARAMETER.sub(r"{\1}", route),
            "description": _summary(view),
        })
    return endpoints


class ApiIndexApi(APIView):
    """List every endpoint of this API: its name, methods, path and what it does."""

    @extend_schema(
        summary="The API index",
        responses=inline_serializer("ApiIndex", {
            "endpoints": inline_serializer("ApiEndpoint", {
                "name": serializers.CharField(), "methods": serializers.ListField(child=serializers.CharField()),
                "path": serializers.CharField(), "description": serializers.CharField(),
            }, many=True),
            "schema": serializers.CharField(), "docs": serializers.CharField(),
        }),
    )
    def get(self, request: Request) -> Response:
        return Response({"endpoints": api_endpoints(), "schema": "/api/schema/", "docs": "/api/docs/"})

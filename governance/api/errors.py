"""One JSON error shape for every API failure: ``{"error": {"status", "code", "message", "details"}}``."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.exceptions import ServiceError, TooManyRequests


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        inner = _first_message(value)
        return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    return str(detail)


def error_body(*, status_code: int, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the error body used by every API response that is not a success."""
    return {"error": {"status": status_code, "code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render service errors and DRF errors in the one shape; leave others to Django (500)."""
    if isinstance(exc, ServiceError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return Response(
            error_body(status_code=exc.status_code, code=exc.code, message=exc.message, details=exc.details),
            status=exc.status_code, headers=headers,
        )
    if isinstance(exc, RequestDataTooBig):
        # Django's own cap on a form's fields, or the upload handler's on a file: raised while the
        # body is read, inside the view, so it arrives here rather than as Django's 400 page.
        return Response(error_body(status_code=413, code="payload_too_large", message=str(exc)), status=413)
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait or 1)
        message = f"too many requests of this kind: try again in {wait} seconds"
        return Response(error_body(status_code=429, code="throttled", message=message, details={"retry_after": wait}),
                        status=429, headers={"Retry-After": str(wait)})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else response.data
    if isinstance(exc, exceptions.ValidationError):
        code, details = "invalid", {"fields": detail}
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code, details = (codes if isinstance(codes, str) else "error"), {}
    response.data = error_body(status_code=response.status_code, code=code, message=_first_message(detail), details=details)
    return response

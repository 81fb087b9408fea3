"""Attach a correlation id to every request so audit events can name the request."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from governance.audit import correlation_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Take ``X-Request-ID`` when it is well-formed, else make one; echo it in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _SAFE_ID.match(supplied) else f"req-{uuid.uuid4().hex}"
        request.request_id = request_id  # type: ignore[attr-defined]
        with correlation_id(request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response

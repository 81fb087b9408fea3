"""Attach a correlation id to every request so audit events can name the request; answer unknown
API paths in the API's JSON error shape."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

from governance.api.errors import error_body
from governance.audit import correlation_id
from governance.uploads import body_limit

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


class RequestSizeLimitMiddleware:
    """Refuse a body whose length is over its limit with 413, before a byte of it is read.

    Placed before CSRF, which reads a form's fields: a 600 MB "form" is never parsed. A file
    upload may be DATASET_MAX_UPLOAD_BYTES plus a small envelope; any other body
    DATA_UPLOAD_MAX_MEMORY_SIZE (which DRF's JSON parser would not check by itself). The API
    answers in its JSON error shape, anything else with a short page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit, in_words = body_limit(request.content_type or "")
        if length <= limit:
            return self.get_response(request)
        message = f"the request body is {length} bytes; {in_words}"
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(status_code=413, code="payload_too_large", message=message), status=413)
        return HttpResponse(f"<!doctype html><title>Request too large</title><h1>Request too large</h1>"
                            f"<p>{escape(message)}.</p>", status=413)


class ApiNotFoundMiddleware:
    """Answer a path under /api/ that matches no route with the JSON error shape, not Django's HTML page.

    It sits inside CommonMiddleware (after it in MIDDLEWARE), so a 404 for a missing trailing
    slash still becomes a redirect. A 404 from a view that did match (an unknown id) is the
    view's own, already in the API's shape, and passes untouched.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 404 and request.path.startswith("/api/") and request.resolver_match is None:
            message = f"no API endpoint at {request.path}; GET /api/v1/ lists them"
            return JsonResponse(error_body(status_code=404, code="not_found", message=message), status=404)
        return response

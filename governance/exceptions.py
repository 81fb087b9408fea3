"""Domain exceptions raised by services; the API turns each into one JSON error shape."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a service raises on purpose; carries an HTTP status for interfaces."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class ValidationFailed(ServiceError):
    status_code = 400
    default_code = "invalid"


class PermissionDenied(ServiceError):
    status_code = 403
    default_code = "permission_denied"


class NotFound(ServiceError):
    status_code = 404
    default_code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    default_code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    default_code = "payload_too_large"


class TooManyRequests(ServiceError):
    """Refuse a request until ``retry_after`` seconds have passed (429 with a Retry-After header)."""

    status_code = 429
    default_code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after

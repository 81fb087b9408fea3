"""DRF permission classes built on the service's roles."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from governance.roles import ALL_ROLES, user_has_any_role


class HasAnyRole(BasePermission):
    """Allow authenticated users who hold at least one role; refuse outsiders."""

    message = "your account has no role in this service; ask an administrator for one"

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and user_has_any_role(request.user, ALL_ROLES))

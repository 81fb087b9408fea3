"""Shared API view bases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from rest_framework.generics import ListAPIView

from governance.api.permissions import CanReadDomain


class SelectorListApi(ListAPIView):
    """A paginated, filterable list whose rows come from a selector taking ``user=``."""

    permission_classes = [CanReadDomain]
    selector: Callable[..., QuerySet[Any]]

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return self.get_serializer_class().Meta.model.objects.none()
        return type(self).selector(user=self.request.user)

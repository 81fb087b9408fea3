"""Monitoring alerts: list and read them, acknowledge one with a comment."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.api.views import SelectorListApi
from governance.policy import Capability
from riskmodels.models import Alert
from riskmodels.selectors import alert_get_for_user, alert_list_for_user
from riskmodels.services.alerts import COMMENT_MAX_CHARS, alert_acknowledge


class AlertOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name")
    version = serializers.IntegerField(source="model_version.version")

    class Meta:
        model = Alert
        fields = ["id", "registered_model", "model_version", "version", "run", "metric", "value", "threshold",
                  "light", "window", "message", "status", "acknowledged_by_username", "acknowledged_at", "comment",
                  "notified", "created_at"]


class AlertFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Alert.Status.choices)
    light = django_filters.ChoiceFilter(choices=[(c, c) for c in ("amber", "red")])
    model = django_filters.CharFilter(field_name="registered_model__name", label="The registered model's name.")

    class Meta:
        model = Alert
        fields = ["status", "light", "model", "model_version"]


class AlertListApi(SelectorListApi):
    """List monitoring alerts, newest first; filter by status, light, model (name) and model_version."""

    permission_classes = [CanReadDomain]
    serializer_class = AlertOutputSerializer
    filterset_class = AlertFilter
    selector = staticmethod(alert_list_for_user)


class AlertDetailApi(APIView):
    """One alert, with its acknowledgement and notification outcome."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get an alert", responses=AlertOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(AlertOutputSerializer(alert_get_for_user(user=request.user, id=id)).data)


class AlertAcknowledgeApi(APIView):
    """Acknowledge an open alert with a comment (compliance officers and validators); 409 if already acknowledged."""

    permission_classes = [CanReadDomain, capability_permission(Capability.ALERT_ACKNOWLEDGE)]

    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(max_length=COMMENT_MAX_CHARS,
                                        help_text="What is being done about it; recorded with the alert and audited.")

    @extend_schema(summary="Acknowledge an alert", request=InputSerializer, responses=AlertOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = alert_get_for_user(user=request.user, id=id)
        return Response(AlertOutputSerializer(alert_acknowledge(actor=request.user, alert=alert,
                                                                **serializer.validated_data)).data)

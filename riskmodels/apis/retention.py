"""Legal holds: list a model's holds, place one (compliance officers), lift one with a reason."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.models import LegalHold
from riskmodels.selectors import registered_model_get_for_user
from riskmodels.selectors.retention import legal_hold_get_for_user, legal_hold_list_for_user
from riskmodels.services.legal_holds import REASON_MAX_CHARS, legal_hold_lift, legal_hold_place


class LegalHoldOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name")
    is_open = serializers.BooleanField()

    class Meta:
        model = LegalHold
        fields = ["id", "registered_model", "is_open", "reason", "placed_by_username", "placed_at",
                  "lifted_by_username", "lifted_at", "lift_reason"]


class ReasonInputSerializer(serializers.Serializer):
    # Blank passes here: the service's rule (and message) for an empty reason is the one that applies.
    reason = serializers.CharField(max_length=REASON_MAX_CHARS, allow_blank=True, trim_whitespace=False,
                                   help_text="Why: recorded with the hold and in the audit log.")


class LegalHoldsApi(APIView):
    """GET lists a model's legal holds, newest first; POST places one (compliance officers; 409 if one is open)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.LEGAL_HOLD_MANAGE, writes_only=True)]

    @extend_schema(summary="List a model's legal holds", responses=LegalHoldOutputSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        return Response(LegalHoldOutputSerializer(legal_hold_list_for_user(user=request.user, name=name),
                                                  many=True).data)

    @extend_schema(summary="Place a legal hold on a model", request=ReasonInputSerializer,
                   responses={201: LegalHoldOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        serializer = ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = registered_model_get_for_user(user=request.user, name=name)
        hold = legal_hold_place(user=request.user, model=model, reason=serializer.validated_data["reason"])
        return Response(LegalHoldOutputSerializer(hold).data, status=201)


class LegalHoldLiftApi(APIView):
    """Lift an open legal hold with a reason (compliance officers; 409 if it is lifted already)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.LEGAL_HOLD_MANAGE)]

    @extend_schema(summary="Lift a legal hold", request=ReasonInputSerializer, responses=LegalHoldOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        serializer = ReasonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hold = legal_hold_get_for_user(user=request.user, id=id)
        return Response(LegalHoldOutputSerializer(
            legal_hold_lift(user=request.user, hold=hold, reason=serializer.validated_data["reason"])).data)

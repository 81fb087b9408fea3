"""The inventory fields of a model, the review schedule, and periodic reviews of champions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.apis.models import RegisteredModelOutputSerializer
from riskmodels.models import LedgerInputs, ModelType, PeriodicReview, RiskTier
from riskmodels.selectors import (
    evaluation_get_for_user,
    model_version_get_for_user,
    registered_model_get_for_user,
    reviews_due_list_for_user,
)
from riskmodels.services.reviews import periodic_review_record, registered_model_inventory_update


def _floor(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0, help_text=help_text)


class RegisteredModelInventoryUpdateApi(APIView):
    """Set any of a model's inventory fields: risk tier, type, use, limitations, owner, review cadence, floors."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_INVENTORY_EDIT)]

    class InputSerializer(serializers.Serializer):
        risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)
        model_type = serializers.ChoiceField(choices=ModelType.choices, required=False)
        business_use = serializers.CharField(required=False, allow_blank=True)
        limitations = serializers.CharField(required=False, allow_blank=True)
        owner = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                             required=False, allow_null=True, help_text="Username, or null.")
        review_cadence_months = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=120,
                                                         help_text="Null: the risk tier's default.")
        min_auc = _floor("Lowest acceptable AUC, or null.")
        min_ks = _floor("Lowest acceptable KS, or null.")
        max_brier = _floor("Highest acceptable Brier score, or null.")
        max_calibration_gap = _floor("Highest acceptable calibration gap, or null.")
        battery_thresholds = serializers.DictField(
            child=serializers.FloatField(min_value=0), required=False,
            help_text="Overrides of the validation battery's thresholds for this model, e.g. "
                      '{"overfit_auc_gap_fail": 0.08}; {} for the tier\'s defaults.')
        scoring_policy = serializers.JSONField(
            required=False, help_text='How a PD becomes a decision: {"cutoff": 0.3, "refer_from": 0.2, "bands": '
                                      '[{"name": "A", "upper": 0.05}, ..., {"name": "E", "upper": 1.0}], '
                                      '"materiality_share": 0.1, "materiality_min_log_odds": 0.05, "max_reasons": 4}; '
                                      'only cutoff is required. Nothing scores until a cutoff is set.')
        ledger_inputs = serializers.ChoiceField(choices=LedgerInputs.choices, required=False,
                                                help_text="Keep each decision's input features, or only their hash.")
        monitoring_thresholds = serializers.DictField(
            child=serializers.FloatField(), required=False,
            help_text='Overrides of the monitoring traffic lights, e.g. {"psi_amber": 0.08, "psi_red": 0.2}; '
                      'each amber must stay below its red.')
        actionable_features = serializers.ListField(
            child=serializers.CharField(), required=False,
            help_text="Features a counterfactual may change; [] for every feature that is neither protected nor "
                      "in COUNTERFACTUAL_IMMUTABLE_FEATURES.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: "not an inventory field" for name in unknown})
            if not attrs:
                raise serializers.ValidationError(f"give at least one of: {', '.join(self.fields)}")
            return attrs

    @extend_schema(summary="Update a model's inventory fields", request=InputSerializer,
                   responses=RegisteredModelOutputSerializer)
    def patch(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = registered_model_get_for_user(user=request.user, name=name)
        model = registered_model_inventory_update(actor=request.user, model=model, changes=serializer.validated_data)
        return Response(RegisteredModelOutputSerializer(model).data)


class ReviewsDueApi(APIView):
    """Models whose champion's periodic review is overdue or falls due within ``within_days`` (30)."""

    permission_classes = [CanReadDomain]

    class InputSerializer(serializers.Serializer):
        within_days = serializers.IntegerField(required=False, default=30, min_value=0, max_value=3660)

    class OutputSerializer(serializers.Serializer):
        registered_model = serializers.CharField()
        risk_tier = serializers.CharField()
        owner = serializers.CharField(allow_null=True)
        champion = serializers.IntegerField()
        next_review_date = serializers.DateField()
        days_overdue = serializers.IntegerField(help_text="Negative: days left before the review falls due.")
        overdue = serializers.BooleanField()

    @extend_schema(summary="List the periodic reviews due",
                   parameters=[OpenApiParameter("within_days", int, required=False,
                                                description="Also list reviews due within this many days (30).")],
                   responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        due = reviews_due_list_for_user(user=request.user, **serializer.validated_data)
        return Response(self.OutputSerializer(due, many=True).data)


class PeriodicReviewOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PeriodicReview
        fields = ["id", "model_version", "evaluation", "conclusion", "rationale", "reviewer_username", "due_date",
                  "next_review_date", "created_at"]


class PeriodicReviewCreateApi(APIView):
    """Record a periodic review of a champion on an evaluation on newer data (validators): 201."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(serializers.Serializer):
        evaluation = serializers.IntegerField(help_text="Id of an evaluation of this version on a newer dataset "
                                                        "version.")
        conclusion = serializers.ChoiceField(choices=PeriodicReview.Conclusion.choices)
        rationale = serializers.CharField()

    @extend_schema(summary="Record a periodic review", request=InputSerializer,
                   responses={201: PeriodicReviewOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version = model_version_get_for_user(user=request.user, id=id)
        evaluation = evaluation_get_for_user(user=request.user, id=data.pop("evaluation"))
        review = periodic_review_record(actor=request.user, version=version, evaluation=evaluation, **data)
        return Response(PeriodicReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED)

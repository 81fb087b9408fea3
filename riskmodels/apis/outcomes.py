"""Observed outcomes of ledger decisions, and performance runs of a champion on them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.models import Alert, MonitoringRun
from riskmodels.selectors import dataset_version_get_for_user, registered_model_get_for_user
from riskmodels.selectors.performance import performance_run_get_for_user, performance_run_list_for_user
from riskmodels.services.outcomes import outcomes_record
from riskmodels.services.performance import performance_run_create

CanRecordOutcomes = capability_permission(Capability.OUTCOME_RECORD)


class OutcomesRecordApi(APIView):
    """Record what became of decided applicants, all or nothing (201).

    400 names the item (``details.index``) for an unknown decision (``unknown_decision``), a
    shadow score (``shadow_decision``), an observation before the decision
    (``outcome_before_decision``) or in the future (``outcome_in_future``), or a ``protected``
    column the decision's model data does not mark protected (``unknown_protected_column``); 409
    ``duplicate_outcome`` for a decision named twice or already recorded. Nothing is written then.
    """

    permission_classes = [CanRecordOutcomes]

    class InputSerializer(serializers.Serializer):
        outcomes = serializers.JSONField(help_text='[{"decision": 123, "defaulted": false, "observed_on": '
                                                   '"2026-06-30", "protected": {"age_in_years": 31}}, ...] (at most '
                                                   'OUTCOMES_MAX_PER_REQUEST; protected is optional, for fairness '
                                                   'monitoring only)')

    class OutputSerializer(serializers.Serializer):
        recorded = serializers.IntegerField()
        defaulted = serializers.IntegerField()
        outcome_ids = serializers.DictField(child=serializers.IntegerField(), help_text="first and last id recorded")
        decision_ids = serializers.DictField(child=serializers.IntegerField(), help_text="min and max decision id")

    @extend_schema(summary="Record observed outcomes of decisions", request=InputSerializer,
                   responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        recorded = outcomes_record(actor=request.user, items=serializer.validated_data["outcomes"])
        return Response(self.OutputSerializer(recorded.to_dict()).data, status=status.HTTP_201_CREATED)


class AlertSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Alert
        fields = ["id", "metric", "value", "threshold", "light", "message", "status"]


class PerformanceRunOutputSerializer(serializers.ModelSerializer):
    """One performance run: what it measured, against which baseline, the lights and the alerts raised."""

    model = serializers.CharField(source="model_version.registered_model.name")
    results = serializers.JSONField(help_text="status (measured | insufficient), message, n, n_defaults, metrics "
                                              "(auc, ks, brier: value, ci, baseline, change, light), hosmer_lemeshow, "
                                              "bands, source, baseline, fairness (computed, the fairness report of the same "
                                              "rows or a note saying why none was computed)")
    thresholds = serializers.JSONField()
    alerts = AlertSummarySerializer(many=True, read_only=True)

    class Meta:
        model = MonitoringRun
        fields = ["id", "model", "model_version", "kind", "window_start", "window_end", "dataset_version", "n_rows",
                  "light", "results", "thresholds", "job", "alerts", "created_at"]


class PerformanceRunListApi(ListAPIView):
    """List a model's performance runs, newest first."""

    permission_classes = [CanReadDomain]
    serializer_class = PerformanceRunOutputSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return MonitoringRun.objects.none()
        model = registered_model_get_for_user(user=self.request.user, name=self.kwargs["name"])
        return performance_run_list_for_user(user=self.request.user, model=model)


class PerformanceRunsApi(PerformanceRunListApi):
    """GET lists a model's performance runs; POST queues one for its champion (202).

    POST either a cohort (``decided_since``, ``decided_until``, optional ``maturity_days``) or
    a labelled ``dataset_version``.
    """

    permission_classes = [CanReadDomain, capability_permission(Capability.MONITORING_RUN, writes_only=True)]

    class InputSerializer(serializers.Serializer):
        decided_since = serializers.CharField(required=False, allow_null=True, default=None,
                                              help_text="ISO date or date-time (inclusive).")
        decided_until = serializers.CharField(required=False, allow_null=True, default=None,
                                              help_text="ISO date or date-time (exclusive).")
        maturity_days = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0,
                                                 help_text="Only decisions at least this old (default "
                                                           "OUTCOME_MATURITY_DAYS).")
        dataset_version = serializers.IntegerField(required=False, allow_null=True, default=None,
                                                   help_text="A labelled dataset version, instead of a cohort.")

    @extend_schema(summary="Queue a performance run of a model's champion", request=InputSerializer,
                   responses={202: JobOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        model = registered_model_get_for_user(user=request.user, name=name)
        if data["dataset_version"] is not None:
            data["dataset_version"] = dataset_version_get_for_user(user=request.user, id=data["dataset_version"],
                                                                   for_model=model)
        job = performance_run_create(actor=request.user, model=model, **data)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PerformanceRunDetailApi(APIView):
    """One performance run with its results and alerts."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a performance run", responses=PerformanceRunOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(PerformanceRunOutputSerializer(performance_run_get_for_user(user=request.user, id=id)).data)

"""Stability monitoring: request a run of a champion, list a model's runs, read a run and a version's reference."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.models import MonitoringReference, MonitoringRun
from riskmodels.selectors import dataset_version_get_for_user, model_version_get_for_user, registered_model_get_for_user
from riskmodels.selectors.monitoring import (
    monitoring_reference_get_for_user,
    monitoring_run_get_for_user,
    stability_run_list_for_user,
)
from riskmodels.services.stability import stability_run_request


class MonitoringRunOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="model_version.registered_model.name")
    results = serializers.JSONField(help_text="metrics: per metric (psi:score, csi:<feature>) its value, light, "
                                              "thresholds and bins with expected and actual shares; notes")
    thresholds = serializers.JSONField()

    class Meta:
        model = MonitoringRun
        fields = ["id", "registered_model", "model_version", "kind", "window_start", "window_end", "dataset_version",
                  "n_rows", "light", "results", "thresholds", "job", "created_at"]


class MonitoringReferenceOutputSerializer(serializers.ModelSerializer):
    score_bins = serializers.JSONField()
    feature_bins = serializers.JSONField()
    baseline = serializers.JSONField()

    class Meta:
        model = MonitoringReference
        fields = ["id", "model_version", "dataset_version", "n_rows", "score_bins", "feature_bins", "baseline", "job",
                  "created_at"]


class StabilityRunsApi(APIView):
    """GET lists a model's stability runs, newest first; POST queues a run of its champion (202 with the job)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MONITORING_RUN, writes_only=True)]

    class InputSerializer(serializers.Serializer):
        dataset_version = serializers.IntegerField(required=False, help_text="Id of a dataset version to compare.")
        since = serializers.DateTimeField(required=False, help_text="Start of a ledger window (inclusive).")
        until = serializers.DateTimeField(required=False, help_text="End of a ledger window (exclusive).")

    @extend_schema(summary="List a model's stability runs", responses=MonitoringRunOutputSerializer(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = registered_model_get_for_user(user=request.user, name=name)
        runs = stability_run_list_for_user(user=request.user, model=model)
        return Response(MonitoringRunOutputSerializer(runs, many=True).data)

    @extend_schema(summary="Request a stability run of the champion", request=InputSerializer,
                   responses={202: JobOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = registered_model_get_for_user(user=request.user, name=name)
        dataset_version = (dataset_version_get_for_user(user=request.user, id=data["dataset_version"], for_model=model)
                           if "dataset_version" in data else None)
        job = stability_run_request(actor=request.user, model=model, dataset_version=dataset_version,
                                    since=data.get("since"), until=data.get("until"))
        return Response(JobOutputSerializer(job).data, status=202)


class MonitoringRunDetailApi(APIView):
    """One monitoring run: its window, rows, worst light and each metric's value, light and bins."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a monitoring run", responses=MonitoringRunOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(MonitoringRunOutputSerializer(monitoring_run_get_for_user(user=request.user, id=id)).data)


class MonitoringReferenceDetailApi(APIView):
    """A version's frozen monitoring reference: score and feature bins with their reference shares, baseline."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a version's monitoring reference", responses=MonitoringReferenceOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        reference = monitoring_reference_get_for_user(user=request.user, version=version)
        return Response(MonitoringReferenceOutputSerializer(reference).data)

"""Jobs: queue training, follow progress, cancel."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.api.throttles import TrainingThrottle
from governance.api.views import SelectorListApi
from governance.policy import Capability
from riskmodels.ml.pipelines import ALGORITHMS, SPLITS
from riskmodels.models import Job
from riskmodels.selectors import dataset_version_get_for_user, job_get_for_user, job_list_for_user, registered_model_get_for_user
from riskmodels.jobs import job_cancel
from riskmodels.services.training import training_job_create


class JobOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name", default=None, allow_null=True)
    model_version = serializers.IntegerField(source="model_version_id", allow_null=True)
    dataset_version = serializers.IntegerField(source="dataset_version_id")
    params = serializers.JSONField()
    result = serializers.JSONField()

    class Meta:
        model = Job
        fields = ["id", "kind", "status", "progress_stage", "progress_percent", "attempts", "max_attempts",
                  "cancel_requested", "registered_model", "model_version", "dataset_version", "params", "result",
                  "error", "requested_by_username", "created_at", "started_at", "heartbeat_at", "finished_at"]


class TrainingJobCreateApi(APIView):
    """Queue the training of a new model version; answers 202 with the job to follow."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_TRAIN)]
    throttle_classes = [TrainingThrottle]

    class InputSerializer(serializers.Serializer):
        registered_model = serializers.CharField(help_text="Name of a registered model.")
        dataset_version = serializers.IntegerField(help_text="Id of the dataset version to train on.")
        algorithm = serializers.ChoiceField(choices=ALGORITHMS)
        hyperparameters = serializers.DictField(required=False, help_text="See GET /api/v1/algorithms/.")
        features = serializers.ListField(child=serializers.CharField(), required=False,
                                         help_text="Defaults to every column whose role is 'feature'.")
        categorical = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="Defaults to the string/boolean features.")
        target = serializers.CharField(required=False, help_text="Defaults to the dataset's target.")
        positive_class = serializers.JSONField(required=False, help_text="The label meaning default.")
        allow_protected_features = serializers.BooleanField(required=False, default=False)
        allow_excluded_features = serializers.BooleanField(required=False, default=False)
        seed = serializers.JSONField(required=False, help_text="Integer random seed (default 0).")
        test_size = serializers.JSONField(required=False, help_text="Fraction for the test split (default 0.25).")
        split = serializers.ChoiceField(choices=SPLITS, required=False)
        date_column = serializers.CharField(required=False)
        cutoff = serializers.CharField(required=False, help_text="ISO date: rows on or after it are the test set.")
        search = serializers.DictField(required=False, help_text="Optional hyperparameter search.")
        threshold = serializers.JSONField(required=False, help_text="Decision threshold for evaluation (0.5).")

    @extend_schema(summary="Train a model version", request=InputSerializer, responses={202: JobOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        model = registered_model_get_for_user(user=request.user, name=data.pop("registered_model"))
        dataset_version = dataset_version_get_for_user(user=request.user, id=data.pop("dataset_version"), for_model=model)
        job = training_job_create(actor=request.user, registered_model=model, dataset_version=dataset_version,
                                  request=data)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobFilter(django_filters.FilterSet):
    registered_model = django_filters.CharFilter(field_name="registered_model__name")

    class Meta:
        model = Job
        fields = ["kind", "status", "registered_model", "model_version"]


class JobListApi(SelectorListApi):
    """List jobs, newest first; filter by kind, status, registered_model, model_version."""

    permission_classes = [CanReadDomain]
    serializer_class = JobOutputSerializer
    filterset_class = JobFilter
    selector = staticmethod(job_list_for_user)


class JobDetailApi(APIView):
    """Return one job with its state, progress, result or error."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a job", responses=JobOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(JobOutputSerializer(job_get_for_user(user=request.user, id=id)).data)


class JobCancelApi(APIView):
    """Cancel a queued job, or ask a running one to stop at its next checkpoint."""

    permission_classes = [CanReadDomain, capability_permission(Capability.JOB_CANCEL)]

    @extend_schema(summary="Cancel a job", request=None, responses=JobOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        job = job_cancel(actor=request.user, job=job_get_for_user(user=request.user, id=id))
        return Response(JobOutputSerializer(job).data)

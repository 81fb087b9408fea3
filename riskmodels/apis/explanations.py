"""SHAP explanations: request global reports, read them, explain single applicants."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.exceptions import NotFound
from governance.policy import Capability
from riskmodels.apis.files import PARQUET, stored_download, stored_png
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.models import DatasetVersion, ExplanationReport
from riskmodels.selectors import dataset_version_get_for_user, explanation_report_get_for_user, model_version_get_for_user
from riskmodels.services.explanations import explanation_job_create, explanation_local


class ExplanationReportOutputSerializer(serializers.ModelSerializer):
    fingerprint = serializers.JSONField()
    selection = serializers.JSONField()
    importance = serializers.JSONField()
    plots = serializers.SerializerMethodField()
    values_url = serializers.SerializerMethodField()

    class Meta:
        model = ExplanationReport
        fields = ["id", "model_version", "dataset_version", "scope", "status", "message", "fingerprint", "selection",
                  "importance", "additivity_error", "base_value", "n_rows", "values_sha256", "values_url", "plots",
                  "job", "created_at"]

    def get_plots(self, obj: ExplanationReport) -> dict[str, str]:
        """Plots appear shortly after the report: they are rendered by a follow-up task."""
        return {plot.name: f"/api/v1/explanation-reports/{obj.pk}/plots/{plot.slug}.png" for plot in obj.plot_files.all()}

    def get_values_url(self, obj: ExplanationReport) -> str:
        return f"/api/v1/explanation-reports/{obj.pk}/values.parquet"


def _optional_dataset_version(request: Request, data: dict, version: Any) -> DatasetVersion | None:  # type: ignore[type-arg]
    if "dataset_version" not in data:
        return None
    return dataset_version_get_for_user(user=request.user, id=data["dataset_version"],
                                        for_model=version.registered_model)


class ExplanationReportCreateApi(APIView):
    """Queue a global SHAP report of this version (202): its test split by default, or a dataset version."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_EXPLAIN)]

    class InputSerializer(serializers.Serializer):
        dataset_version = serializers.IntegerField(required=False, help_text="Default: the version's test split.")
        max_rows = serializers.IntegerField(required=False, min_value=1,
                                            help_text="Rows to explain; a seeded sample above it.")
        seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**32 - 1)

    @extend_schema(summary="Request a global SHAP report", request=InputSerializer, responses={202: JobOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = model_version_get_for_user(user=request.user, id=id)
        job = explanation_job_create(actor=request.user, model_version=version,
                                     dataset_version=_optional_dataset_version(request, data, version),
                                     max_rows=data.get("max_rows"), seed=data["seed"])
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExplanationReportDetailApi(APIView):
    """A SHAP report: explainer fingerprint, rows, ranked importances, additivity, links to values and plots."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a SHAP report", responses=ExplanationReportOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(ExplanationReportOutputSerializer(explanation_report_get_for_user(user=request.user, id=id)).data)


class ExplanationValuesApi(APIView):
    """Download the per-row SHAP values (Parquet; one column per original feature)."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Download SHAP values (Parquet)",
                   responses={(200, "application/vnd.apache.parquet"): OpenApiResponse(description="Parquet")})
    def get(self, request: Request, id: int) -> FileResponse:
        report = explanation_report_get_for_user(user=request.user, id=id)
        return stored_download(report.values_path, sha256=report.values_sha256, content_type=PARQUET,
                               filename=f"shap-report-{report.pk}.parquet")


class ExplanationPlotApi(APIView):
    """One plot of a SHAP report: beeswarm, bar, or dependence-<feature>."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a SHAP plot (PNG)", responses={(200, "image/png"): OpenApiResponse(description="PNG")})
    def get(self, request: Request, id: int, plot: str) -> FileResponse:
        report = explanation_report_get_for_user(user=request.user, id=id)
        names = {p.slug: p.path for p in report.plot_files.all()}
        if plot not in names:
            have = ", ".join(sorted(names)) or "none yet (plots are rendered just after the report)"
            raise NotFound(f"report {id} has no plot {plot!r}; it has: {have}")
        return stored_png(names[plot])


class LocalExplanationApi(APIView):
    """Explain applicants now: contributions per original feature, base value, output, reason codes."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_EXPLAIN)]

    class InputSerializer(serializers.Serializer):
        rows = serializers.JSONField(required=False, help_text="A list of objects: feature → value, one per applicant.")
        dataset_version = serializers.IntegerField(required=False)
        row_ids = serializers.JSONField(required=False, help_text="Row numbers of the dataset version.")

    @extend_schema(summary="Explain applicants (reason codes)", request=InputSerializer,
                   parameters=[OpenApiParameter("plots", bool, description="Add waterfall PNGs (base64)")],
                   responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = model_version_get_for_user(user=request.user, id=id)
        body = explanation_local(actor=request.user, model_version=version, rows=data.get("rows"),
                                 dataset_version=_optional_dataset_version(request, data, version), row_ids=data.get("row_ids"),
                                 with_plots=request.query_params.get("plots") in ("1", "true"))
        return Response(body)

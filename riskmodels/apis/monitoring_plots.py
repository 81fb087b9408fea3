"""Charts drawn on request: a model's monitoring (score PSI, feature CSI, AUC by cohort) and an
evaluation's approval rate by group of a protected column."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain
from riskmodels.selectors import evaluation_get_for_user, registered_model_get_for_user
from riskmodels.services.monitoring_plots import MONITORING_PLOTS, fairness_plot_render, monitoring_plot_render

PNG = {(200, "image/png"): OpenApiResponse(description="PNG image"),
       404: OpenApiResponse(description="Unknown chart (the message names those that exist) or nothing to chart yet")}


def png_response(image: bytes) -> HttpResponse:
    """Return PNG bytes inline."""
    return HttpResponse(image, content_type="image/png")


class MonitoringPlotApi(APIView):
    """One monitoring chart of a model's champion, or of a version named by ?version=, over its newest 30 runs."""

    permission_classes = [CanReadDomain]

    class FilterSerializer(serializers.Serializer):
        version = serializers.IntegerField(required=False, min_value=1,
                                           help_text="Id of a version of the model; default: its champion.")

    @extend_schema(summary="Get a monitoring chart (PNG)", responses=PNG, parameters=[
        OpenApiParameter("plot", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(MONITORING_PLOTS)),
        OpenApiParameter("version", OpenApiTypes.INT, description="Id of a version of the model; default: its champion.")])
    def get(self, request: Request, name: str, plot: str) -> HttpResponse:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        model = registered_model_get_for_user(user=request.user, name=name)
        return png_response(monitoring_plot_render(user=request.user, model=model, plot=plot,
                                                   version_id=filters.validated_data.get("version")))


class EvaluationFairnessPlotApi(APIView):
    """Approval rate by group of one protected column of an evaluation, with intervals and the four-fifths line."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get an evaluation's approval rate by group (PNG)", responses=PNG)
    def get(self, request: Request, id: int, column: str) -> HttpResponse:
        evaluation = evaluation_get_for_user(user=request.user, id=id)
        return png_response(fairness_plot_render(evaluation=evaluation, column=column))

"""The model inventory: registered models, versions, artifacts, evaluations, comparisons."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.api.views import SelectorListApi
from governance.exceptions import NotFound, ValidationFailed
from governance.policy import Capability
from riskmodels.apis.files import download_response, stored_png
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.ml.pipelines import hyperparameter_schema
from riskmodels.models import Evaluation, ModelVersion, RegisteredModel
from riskmodels.selectors import (
    dataset_version_get_for_user,
    evaluation_get_for_user,
    model_version_get_for_user,
    model_version_list_for_user,
    registered_model_champion,
    registered_model_get_for_user,
    registered_model_list_for_user,
)
from riskmodels.services.downloads import model_version_artifact_download
from riskmodels.services.evaluation import evaluation_job_create, model_versions_compare
from riskmodels.services.lifecycle import review_cadence_months
from riskmodels.services.registry import registered_model_create
from riskmodels.services.reproduce import reproduction_job_create


class AlgorithmListApi(APIView):
    """The algorithms and, for each, its hyperparameters with types, defaults and ranges."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Algorithms and hyperparameters", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(hyperparameter_schema())


class RegisteredModelOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True)
    team = serializers.CharField(source="team.slug")
    review_cadence_in_force = serializers.SerializerMethodField(
        help_text="Months between periodic reviews: the model's own cadence, else its risk tier's default.")
    champion = serializers.SerializerMethodField(help_text="Id of the version that scores now, or null.")

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "team", "owner_team", "purpose", "description", "risk_tier", "model_type", "business_use",
                  "limitations", "owner", "review_cadence_months", "review_cadence_in_force", "next_review_date",
                  "min_auc", "min_ks", "max_brier", "max_calibration_gap", "battery_thresholds", "scoring_policy",
                  "ledger_inputs", "actionable_features", "monitoring_thresholds", "champion", "created_at", "created_by"]

    def get_review_cadence_in_force(self, obj: RegisteredModel) -> int:
        return review_cadence_months(obj)

    def get_champion(self, obj: RegisteredModel) -> int | None:
        # The selectors annotate it; a model just created or updated by a service is asked directly.
        if hasattr(obj, "champion_version_id"):
            return obj.champion_version_id
        champion = registered_model_champion(registered_model=obj)
        return champion.pk if champion else None


class RegisteredModelsApi(SelectorListApi):
    """GET lists the model inventory; POST registers a new model (developers)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_REGISTER, writes_only=True)]
    serializer_class = RegisteredModelOutputSerializer

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        owner_team = serializers.CharField(max_length=100)
        purpose = serializers.CharField()
        description = serializers.CharField(required=False, allow_blank=True, default="")
        team = serializers.SlugField(required=False, help_text="Slug of the team the model belongs to; default: your "
                                                                "only team (required if you have several).")

    selector = staticmethod(registered_model_list_for_user)

    @extend_schema(summary="Register a model", request=InputSerializer, responses={201: RegisteredModelOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = registered_model_create(actor=request.user, **serializer.validated_data)
        return Response(RegisteredModelOutputSerializer(model).data, status=status.HTTP_201_CREATED)


class EvaluationOutputSerializer(serializers.ModelSerializer):
    metrics = serializers.JSONField()
    train_metrics = serializers.JSONField()
    degradation = serializers.JSONField()
    fairness = serializers.JSONField(help_text="Approval fairness per protected column at the model's cutoff "
                                               "(riskmodels.ml.fairness); columns [] with a note when none is protected")
    plots = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = ["id", "model_version", "dataset_version", "scope", "threshold", "metrics", "train_metrics",
                  "degradation", "fairness", "plots", "job", "created_at"]

    def get_plots(self, obj: Evaluation) -> dict[str, str]:
        return {name: f"/api/v1/evaluations/{obj.pk}/plots/{name}.png" for name in obj.plots}


class ModelVersionOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name")
    spec = serializers.JSONField()
    environment = serializers.JSONField()
    preprocessing = serializers.JSONField()
    search_results = serializers.JSONField()
    split_summary = serializers.JSONField()
    timings = serializers.JSONField()
    allowed_exceptions = serializers.JSONField()
    evaluations = EvaluationOutputSerializer(many=True, read_only=True)
    explanations = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["id", "registered_model", "version", "status", "status_changed_at", "algorithm", "dataset_version",
                  "dataset_sha256", "spec",
                  "allowed_exceptions", "preprocessing", "environment", "artifact_sha256", "artifact_size",
                  "search_results", "split_summary", "timings", "training_job", "created_at",
                  "created_by_username", "evaluations", "explanations"]

    def get_explanations(self, obj: ModelVersion) -> list[dict]:
        return [{"id": r.pk, "status": r.status, "scope": r.scope, "n_rows": r.n_rows, "created_at": r.created_at,
                 "url": f"/api/v1/explanation-reports/{r.pk}/"} for r in obj.explanations.all()]


class RegisteredModelDetailApi(APIView):
    """One registered model with its versions."""

    permission_classes = [CanReadDomain]

    class OutputSerializer(RegisteredModelOutputSerializer):
        versions = ModelVersionOutputSerializer(many=True, read_only=True)

        class Meta(RegisteredModelOutputSerializer.Meta):
            fields = [*RegisteredModelOutputSerializer.Meta.fields, "versions"]

    @extend_schema(summary="Get a registered model", responses=OutputSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(self.OutputSerializer(registered_model_get_for_user(user=request.user, name=name)).data)


class ModelVersionListApi(SelectorListApi):
    """List model versions; filter with ``?registered_model=NAME``, ``?algorithm=`` and ``?status=``."""

    permission_classes = [CanReadDomain]
    serializer_class = ModelVersionOutputSerializer
    filterset_fields = {"algorithm": ["exact"], "registered_model__name": ["exact"], "status": ["exact"]}

    selector = staticmethod(model_version_list_for_user)


class ModelVersionDetailApi(APIView):
    """One model version: everything that reproduces it, and its evaluations."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a model version", responses=ModelVersionOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(ModelVersionOutputSerializer(model_version_get_for_user(user=request.user, id=id)).data)


class ModelVersionArtifactApi(APIView):
    """Download the skops artifact (audited); ``X-Content-SHA256`` carries its recorded hash."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Download a model artifact (skops)",
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="skops bytes")})
    def get(self, request: Request, id: int) -> FileResponse:
        return download_response(model_version_artifact_download(user=request.user, id=id),
                                 content_type="application/octet-stream")


class EvaluationCreateApi(APIView):
    """Queue an evaluation of this version on another dataset version (202)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_EVALUATE)]

    class InputSerializer(serializers.Serializer):
        dataset_version = serializers.IntegerField()
        threshold = serializers.FloatField(required=False, default=0.5, min_value=0.0, max_value=1.0)

    @extend_schema(summary="Evaluate a model version on a dataset version", request=InputSerializer,
                   responses={202: JobOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = model_version_get_for_user(user=request.user, id=id)
        dataset_version = dataset_version_get_for_user(user=request.user, id=serializer.validated_data["dataset_version"],
                                                       for_model=version.registered_model)
        job = evaluation_job_create(actor=request.user, model_version=version, dataset_version=dataset_version,
                                    threshold=serializer.validated_data["threshold"])
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ReproductionCreateApi(APIView):
    """Queue a re-training of this version from its record; the job's result says whether predictions match."""

    permission_classes = [CanReadDomain, capability_permission(Capability.MODEL_REPRODUCE)]

    @extend_schema(summary="Check that a model version reproduces", request=None, responses={202: JobOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        job = reproduction_job_create(actor=request.user, model_version=version)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    """One evaluation with every metric, curve data and links to its plots."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get an evaluation", responses=EvaluationOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(EvaluationOutputSerializer(evaluation_get_for_user(user=request.user, id=id)).data)


class EvaluationPlotApi(APIView):
    """One PNG plot of an evaluation (roc, pr, calibration, deciles)."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get an evaluation plot (PNG)",
                   responses={(200, "image/png"): OpenApiResponse(description="PNG image")})
    def get(self, request: Request, id: int, plot: str) -> FileResponse:
        evaluation = evaluation_get_for_user(user=request.user, id=id)
        if plot not in evaluation.plots:
            raise NotFound(f"evaluation {id} has no plot {plot!r}; it has: {', '.join(sorted(evaluation.plots))}")
        return stored_png(evaluation.plots[plot])


class ModelVersionCompareApi(APIView):
    """Champion vs challenger: metrics side by side on the same evaluation data."""

    permission_classes = [CanReadDomain]

    @extend_schema(
        summary="Compare two model versions",
        parameters=[OpenApiParameter("champion", int, required=True), OpenApiParameter("challenger", int, required=True),
                    OpenApiParameter("dataset_version", int, required=False,
                                     description="Compare on this dataset version (both must be evaluated on it); "
                                                 "default: their common test split")],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        try:
            champion_id = int(request.query_params["champion"])
            challenger_id = int(request.query_params["challenger"])
            dataset_id = request.query_params.get("dataset_version")
            dataset_id = int(dataset_id) if dataset_id else None
        except (KeyError, ValueError):
            raise ValidationFailed("champion and challenger must be model version ids (integers)",
                                   code="invalid") from None
        champion = model_version_get_for_user(user=request.user, id=champion_id)
        challenger = model_version_get_for_user(user=request.user, id=challenger_id)
        dataset_version = dataset_version_get_for_user(user=request.user, id=dataset_id,
                                                       for_model=champion.registered_model) if dataset_id else None
        return Response(model_versions_compare(champion=champion, challenger=challenger,
                                               dataset_version=dataset_version))

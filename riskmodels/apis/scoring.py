"""Scoring behind the approval gate, the decision ledger, reproduction, overrides and decision statistics."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import capability_permission
from governance.api.throttles import BatchScoringThrottle, ScoringThrottle
from governance.policy import Capability
from riskmodels.models import CreditDecision, DecisionOverride, Outcome, OverrideReason
from riskmodels.selectors.decisions import (
    credit_decision_get_for_user,
    credit_decision_list_for_user,
    decision_model_get_for_user,
    decision_stats_for_user,
    scoring_model_get_for_user,
)
from riskmodels.apis.files import PARQUET, stored_download
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.selectors import dataset_version_get_for_user
from riskmodels.selectors.decisions import batch_scoring_job_get_for_user
from riskmodels.services.batch_scoring import batch_scoring_job_create
from riskmodels.services.ledger_export import FORMATS, decisions_export
from riskmodels.services.notices import decision_notice
from riskmodels.services.overrides import decision_override
from riskmodels.services.scoring import applications_score, decision_rescore

CanScore = capability_permission(Capability.MODEL_SCORE)
CanReadDecisions = capability_permission(Capability.DECISION_READ)
CanOverride = capability_permission(Capability.DECISION_OVERRIDE)
_FILTERS = ("reference", "model", "version", "since", "until", "decisive")


class OverrideOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = DecisionOverride
        fields = ["id", "decision", "outcome", "reason", "text", "actor_username", "created_at"]


class CreditDecisionOutputSerializer(serializers.ModelSerializer):
    """One ledger entry: what was decided, by which approved version, on what, and why."""

    model = serializers.CharField(source="registered_model.name")
    version = serializers.IntegerField(source="model_version.version")
    decision = serializers.CharField(source="outcome", help_text="approve, refer or decline")
    score_band = serializers.CharField(source="band")
    fingerprint = serializers.CharField(source="fingerprint_id", help_text="SHA-256 of the explainer's fingerprint")
    override = serializers.SerializerMethodField()

    class Meta:
        model = CreditDecision
        fields = ["id", "created_at", "reference", "model", "model_version", "version", "decisive", "source", "pd",
                  "decision", "score_band", "reasons", "flags", "flag_details", "features", "features_sha256",
                  "contributions", "base_log_odds", "policy", "fingerprint", "request_id", "job", "actor_username",
                  "override"]

    def get_override(self, obj: CreditDecision) -> dict[str, Any] | None:
        override = getattr(obj, "override", None)  # a missing reverse one-to-one raises an AttributeError
        return OverrideOutputSerializer(override).data if override is not None else None


class ScoredOutputSerializer(serializers.Serializer):
    """What an applicant is told about: PD, decision, band, up to four material reasons, flags, ledger id."""

    id = serializers.IntegerField(help_text="The ledger id of this decision.")
    reference = serializers.CharField()
    pd = serializers.FloatField(help_text="Probability of default: the model's own output.")
    decision = serializers.CharField(source="outcome")
    score_band = serializers.CharField(source="band")
    reasons = serializers.JSONField(help_text="For refer and decline: rank, feature, contribution (log-odds of "
                                              "default), share of the adverse push, text.")
    flags = serializers.JSONField()
    flag_details = serializers.JSONField()
    decisive = serializers.BooleanField()


class ModelScoreApi(APIView):
    """Score applications with the model's champion; every answer is a ledger entry.

    409 ``not_approved`` when the model has no champion (or a named shadow version is not an
    approved challenger); nothing is written then.
    """

    permission_classes = [CanScore]
    throttle_classes = [ScoringThrottle]

    class InputSerializer(serializers.Serializer):
        applications = serializers.JSONField(help_text='[{"reference": "A-1", "features": {...}}, ...]')
        shadow_version = serializers.IntegerField(required=False, allow_null=True,
                                                  help_text="Id of an approved challenger to score in shadow mode.")

    class OutputSerializer(serializers.Serializer):
        model = serializers.CharField()
        model_version = serializers.IntegerField()
        version = serializers.IntegerField()
        decisions = ScoredOutputSerializer(many=True)
        shadow = ScoredOutputSerializer(many=True)

    @extend_schema(summary="Score applicants with a model's champion", request=InputSerializer,
                   responses=OutputSerializer)
    def post(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = scoring_model_get_for_user(user=request.user, name=name)
        result = applications_score(actor=request.user, model=model, **serializer.validated_data)
        return Response(self.OutputSerializer({
            "model": model.name, "model_version": result.champion.pk, "version": result.champion.version,
            "decisions": result.decisions, "shadow": result.shadow}).data)


class DecisionListApi(ListAPIView):
    """Query the ledger by reference, model, version (id) and time (``since`` inclusive, ``until`` exclusive)."""

    permission_classes = [CanReadDecisions]
    serializer_class = CreditDecisionOutputSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return CreditDecision.objects.none()
        query = self.request.query_params
        return credit_decision_list_for_user(user=self.request.user, reference=query.get("reference"),
                                             model=query.get("model"), version=query.get("version"),
                                             since=query.get("since"), until=query.get("until"),
                                             decisive=query.get("decisive"))

    @extend_schema(parameters=[OpenApiParameter(name, str, required=False) for name in _FILTERS])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DecisionExportApi(APIView):
    """Export the ledger entries matching the list's filters as CSV or JSON Lines (streamed; audited)."""

    permission_classes = [CanReadDecisions]

    @extend_schema(summary="Export the decision ledger",
                   parameters=[OpenApiParameter("file_format", str, enum=list(FORMATS), required=False),
                               *(OpenApiParameter(name, str, required=False) for name in _FILTERS)],
                   responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        query = request.query_params
        export = decisions_export(actor=request.user, fmt=query.get("file_format", "csv"),
                                  filters={name: query.get(name) for name in _FILTERS})
        response = StreamingHttpResponse(export.rows, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Row-Count"] = str(export.count)
        return response


class DecisionDetailApi(APIView):
    """One ledger entry, with its override if any."""

    permission_classes = [CanReadDecisions]

    @extend_schema(summary="Get a ledger entry", responses=CreditDecisionOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(CreditDecisionOutputSerializer(credit_decision_get_for_user(user=request.user, id=id)).data)


class DecisionReproduceApi(APIView):
    """Score a ledger entry again with its own version and policy, and say whether PD and reasons are the same."""

    permission_classes = [CanReadDecisions]

    class InputSerializer(serializers.Serializer):
        features = serializers.JSONField(required=False, allow_null=True, default=None,
                                         help_text="Required when the model's ledger keeps only a hash of the inputs.")

    @extend_schema(summary="Reproduce a ledger entry", request=InputSerializer, responses=dict)
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decision = credit_decision_get_for_user(user=request.user, id=id)
        return Response(decision_rescore(actor=request.user, decision=decision, **serializer.validated_data))


class DecisionNoticeApi(APIView):
    """The adverse-action notice of a decline or refer: principal reasons in plain words and a counterfactual.

    POST the application's features when the model's ledger keeps only their hash.
    """

    permission_classes = [CanReadDecisions]

    @extend_schema(summary="Get a decision's adverse-action notice", responses=dict)
    def get(self, request: Request, id: int) -> Response:
        decision = credit_decision_get_for_user(user=request.user, id=id)
        return Response(decision_notice(actor=request.user, decision=decision))

    @extend_schema(summary="Get a notice, giving the features of a hash-only ledger entry",
                   request=DecisionReproduceApi.InputSerializer, responses=dict)
    def post(self, request: Request, id: int) -> Response:
        serializer = DecisionReproduceApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decision = credit_decision_get_for_user(user=request.user, id=id)
        return Response(decision_notice(actor=request.user, decision=decision, **serializer.validated_data))


class DecisionOverrideApi(APIView):
    """Override a decision (underwriters): the new outcome, a reason from the list, and why."""

    permission_classes = [CanOverride]

    class InputSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=Outcome.choices)
        reason = serializers.ChoiceField(choices=OverrideReason.choices)
        text = serializers.CharField(max_length=2000)

    @extend_schema(summary="Override a decision", request=InputSerializer, responses={201: OverrideOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decision = credit_decision_get_for_user(user=request.user, id=id)
        override = decision_override(actor=request.user, decision=decision, **serializer.validated_data)
        return Response(OverrideOutputSerializer(override).data, status=201)


class DecisionStatsApi(APIView):
    """A model's decision volume, approve rate and override rates (by reason and direction) over recent days."""

    permission_classes = [CanReadDecisions]

    @extend_schema(summary="Decision volume and override rates of a model", responses=dict,
                   parameters=[OpenApiParameter("days", int, required=False, description="Window (default 30).")])
    def get(self, request: Request, name: str) -> Response:
        days = request.query_params.get("days", "30")
        if not days.isdigit() or not 1 <= int(days) <= 3660:
            raise serializers.ValidationError({"days": "a whole number of days from 1 to 3660"})
        model = decision_model_get_for_user(user=request.user, name=name)
        return Response(decision_stats_for_user(user=request.user, model=model, days=int(days)).to_dict())


class BatchScoringJobCreateApi(APIView):
    """Score every row of a dataset version with the model's champion, as a job (202); the output is a Parquet."""

    permission_classes = [CanScore]
    throttle_classes = [BatchScoringThrottle]

    class InputSerializer(serializers.Serializer):
        dataset_version = serializers.IntegerField(help_text="Id of the dataset version to score.")
        reference_column = serializers.CharField(required=False, allow_null=True, default=None,
                                                 help_text="Column holding each row's reference (default: row-N).")

    @extend_schema(summary="Batch-score a dataset version", request=InputSerializer, responses={202: JobOutputSerializer})
    def post(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = scoring_model_get_for_user(user=request.user, name=name)
        dataset_version = dataset_version_get_for_user(user=request.user, id=serializer.validated_data["dataset_version"],
                                                       for_model=model)
        job = batch_scoring_job_create(actor=request.user, model=model, dataset_version=dataset_version,
                                       reference_column=serializer.validated_data["reference_column"])
        return Response(JobOutputSerializer(job).data, status=202)


class BatchScoringOutputApi(APIView):
    """Download a finished batch scoring job's decisions (Parquet: row, reference, pd, decision, band, reasons)."""

    permission_classes = [CanReadDecisions]

    @extend_schema(summary="Download batch scoring output (Parquet)",
                   responses={(200, "application/vnd.apache.parquet"): OpenApiResponse(description="Parquet")})
    def get(self, request: Request, id: int) -> Any:
        job = batch_scoring_job_get_for_user(user=request.user, id=id)
        return stored_download(job.result["output_path"], sha256=job.result["output_sha256"],
                               content_type=PARQUET, filename=f"batch-scoring-{job.pk}.parquet")

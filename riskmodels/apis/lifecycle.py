"""The version lifecycle: one endpoint per move (submit, take, validate, return, reject, approve, promote,
retire), each answering with its decision record and the version's new status; and the history."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.models import Decision, ModelVersion, ValidationRun
from riskmodels.selectors import (
    decision_list_for_user,
    model_version_get_for_user,
    validation_run_get_for_user,
    validation_run_list_for_user,
)
from riskmodels.services.lifecycle import (
    CONCLUSIONS,
    version_approve,
    version_promote,
    version_reject,
    version_retire,
    version_return,
    version_submit,
    version_take,
    version_validate,
)


class DecisionOutputSerializer(serializers.ModelSerializer):
    actor_roles = serializers.JSONField()
    evidence = serializers.JSONField()

    class Meta:
        model = Decision
        fields = ["id", "model_version", "action", "from_status", "to_status", "actor_username", "actor_roles",
                  "rationale", "evidence", "conclusion", "conditions", "policy_exception", "created_at"]


class TransitionOutputSerializer(serializers.Serializer):
    """The decision just recorded, and where the version stands now."""

    decision = DecisionOutputSerializer()
    model_version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ModelVersion._meta.get_field("status").choices)


class RationaleInputSerializer(serializers.Serializer):
    rationale = serializers.CharField(help_text="Why: recorded with the decision and in the audit log.")


def _input(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _moved(version: ModelVersion, decision: Decision) -> Response:
    return Response(TransitionOutputSerializer(
        {"decision": decision, "model_version": version.pk, "status": version.status}).data)


class ModelVersionSubmitApi(APIView):
    """Submit a trained or returned version for validation (developers); its evidence is recorded."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_SUBMIT)]

    class InputSerializer(RationaleInputSerializer):
        justification = serializers.CharField(required=False, allow_blank=True, default="",
                                              help_text="Required when the version's validation battery failed: "
                                                        "why it should be validated anyway (recorded).")

    @extend_schema(summary="Submit a version for validation", request=InputSerializer,
                   responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_submit(actor=request.user, version=version, **data))


class ModelVersionTakeApi(APIView):
    """Take a submitted version for validation (a validator who neither trained nor submitted it)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]
    InputSerializer = RationaleInputSerializer

    @extend_schema(summary="Take a version for validation", request=InputSerializer,
                   responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_take(actor=request.user, version=version, **data))


class ModelVersionValidateApi(APIView):
    """Conclude a validation: fit for purpose, or fit with the conditions stated."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(RationaleInputSerializer):
        conclusion = serializers.ChoiceField(choices=CONCLUSIONS)
        conditions = serializers.CharField(required=False, allow_blank=True, default="",
                                           help_text="Required with fit_with_conditions.")

    @extend_schema(summary="Conclude the validation of a version", request=InputSerializer,
                   responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_validate(actor=request.user, version=version, **data))


class ModelVersionReturnApi(APIView):
    """Return a version in validation to its developer, with its open findings."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]
    InputSerializer = RationaleInputSerializer

    @extend_schema(summary="Return a version to its developer", request=InputSerializer,
                   responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_return(actor=request.user, version=version, **data))


class ModelVersionRejectApi(APIView):
    """Reject a version for good: a validator during validation, a compliance officer once validated."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE, Capability.VERSION_APPROVE)]
    InputSerializer = RationaleInputSerializer

    @extend_schema(summary="Reject a version", request=InputSerializer, responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_reject(actor=request.user, version=version, **data))


class ModelVersionApproveApi(APIView):
    """Approve a validated version (compliance officers independent of it; two for a high-tier model)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_APPROVE)]

    class InputSerializer(RationaleInputSerializer):
        policy_exception = serializers.CharField(
            required=False, allow_blank=True, default="",
            help_text="Needed when a metric breaches the model's performance floors: why it is accepted.")

    @extend_schema(summary="Approve a version", request=InputSerializer, responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_approve(actor=request.user, version=version, **data))


class ModelVersionPromoteApi(APIView):
    """Make an approved version its model's champion; the previous champion goes back to approved."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_PROMOTE)]
    InputSerializer = RationaleInputSerializer

    @extend_schema(summary="Promote a version to champion", request=InputSerializer,
                   responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_promote(actor=request.user, version=version, **data))


class ModelVersionRetireApi(APIView):
    """Retire a version for good, with the reason."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_RETIRE)]
    InputSerializer = RationaleInputSerializer

    @extend_schema(summary="Retire a version", request=InputSerializer, responses=TransitionOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        data = _input(self.InputSerializer, request)
        version = model_version_get_for_user(user=request.user, id=id)
        return _moved(version, version_retire(actor=request.user, version=version, **data))


class ModelVersionDecisionListApi(APIView):
    """The lifecycle history of a version: every decision, oldest first."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="List the decisions on a version", responses=DecisionOutputSerializer(many=True))
    def get(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        decisions = decision_list_for_user(user=request.user, model_version_id=version.pk)
        return Response(DecisionOutputSerializer(decisions, many=True).data)


class ValidationRunOutputSerializer(serializers.ModelSerializer):
    results = serializers.JSONField()
    thresholds = serializers.JSONField()

    class Meta:
        model = ValidationRun
        fields = ["id", "model_version", "evaluation", "job", "outcome", "results", "thresholds", "n_rows", "seconds",
                  "created_at"]


class ModelVersionValidationRunListApi(APIView):
    """The validation battery's runs on a version, newest first: each test's outcome, figures and proposed finding."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="List a version's validation battery runs", responses=ValidationRunOutputSerializer(many=True))
    def get(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        runs = validation_run_list_for_user(user=request.user).filter(model_version=version)
        return Response(ValidationRunOutputSerializer(runs, many=True).data)


class ValidationRunDetailApi(APIView):
    """One run of the validation battery."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a validation battery run", responses=ValidationRunOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(ValidationRunOutputSerializer(validation_run_get_for_user(user=request.user, id=id)).data)

"""The findings register: raise a finding on a version, list and read findings, remediate, close."""

from __future__ import annotations

from collections.abc import Callable

import django_filters
import django_filters.widgets
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.api.views import SelectorListApi
from governance.policy import Capability
from riskmodels.models import Finding
from riskmodels.selectors import finding_get_for_user, finding_list_for_user, model_version_get_for_user
from riskmodels.services.findings import finding_accept, finding_close, finding_dismiss, finding_raise, finding_remediate


class FindingOutputSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="model_version.registered_model.name")
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Finding
        fields = ["id", "model_version", "registered_model", "title", "description", "category", "severity",
                  "status", "owner", "due_date", "overdue", "raised_by_username", "remediation",
                  "remediated_by_username", "closing_evidence", "closed_by_username", "created_at", "closed_at",
                  "validation_run", "test_name", "dismissal_reason"]

    def get_overdue(self, obj: Finding) -> bool:
        return obj.status in (Finding.Status.OPEN, Finding.Status.REMEDIATED) and obj.due_date < timezone.localdate()


class FindingRaiseApi(APIView):
    """Raise a finding on a version (a validator independent of it): 201 with the finding."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200)
        description = serializers.CharField()
        category = serializers.ChoiceField(choices=Finding.Category.choices)
        severity = serializers.ChoiceField(choices=Finding.Severity.choices)
        due_date = serializers.DateField(help_text="YYYY-MM-DD")
        owner = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                             required=False, allow_null=True, default=None,
                                             help_text="Username of whoever must remediate it.")

    @extend_schema(summary="Raise a finding on a version", request=InputSerializer,
                   responses={201: FindingOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = model_version_get_for_user(user=request.user, id=id)
        finding = finding_raise(actor=request.user, version=version, **serializer.validated_data)
        return Response(FindingOutputSerializer(finding).data, status=status.HTTP_201_CREATED)


class FindingFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Finding.Status.choices)
    severity = django_filters.ChoiceFilter(choices=Finding.Severity.choices)
    overdue = django_filters.BooleanFilter(method="filter_overdue", widget=django_filters.widgets.BooleanWidget(),
                                           label="Past its due date and not closed (1/true or 0/false).")

    class Meta:
        model = Finding
        fields = ["model_version", "status", "severity", "overdue"]

    def filter_overdue(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        late = Q(due_date__lt=timezone.localdate()) & Q(status__in=(Finding.Status.OPEN, Finding.Status.REMEDIATED))
        return queryset.filter(late) if value else queryset.exclude(late)


class FindingListApi(SelectorListApi):
    """List findings; filter by model_version, status, severity, and ``overdue=1``."""

    permission_classes = [CanReadDomain]
    serializer_class = FindingOutputSerializer
    filterset_class = FindingFilter
    selector = staticmethod(finding_list_for_user)


class FindingDetailApi(APIView):
    """One finding, with its remediation and closing evidence."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a finding", responses=FindingOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(FindingOutputSerializer(finding_get_for_user(user=request.user, id=id)).data)


def _move_finding(request: Request, id: int, input_class: type[serializers.Serializer],
                  service: Callable[..., Finding]) -> Response:
    """Validate the input, read the finding the user may see, and make the one service call that moves it."""
    serializer = input_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    finding = finding_get_for_user(user=request.user, id=id)
    return Response(FindingOutputSerializer(service(actor=request.user, finding=finding,
                                                    **serializer.validated_data)).data)


class FindingRemediateApi(APIView):
    """Answer an open finding with a remediation (developers); a validator then closes it."""

    permission_classes = [CanReadDomain, capability_permission(Capability.FINDING_REMEDIATE)]

    class InputSerializer(serializers.Serializer):
        remediation = serializers.CharField()

    @extend_schema(summary="Remediate a finding", request=InputSerializer, responses=FindingOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        return _move_finding(request, id, self.InputSerializer, finding_remediate)


class FindingCloseApi(APIView):
    """Close a finding with the evidence that it is resolved (a validator independent of the version)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(serializers.Serializer):
        evidence = serializers.CharField()

    @extend_schema(summary="Close a finding", request=InputSerializer, responses=FindingOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        return _move_finding(request, id, self.InputSerializer, finding_close)


class FindingAcceptApi(APIView):
    """Accept a finding the validation battery proposed, edited or not (a validator independent of the version)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False)
        severity = serializers.ChoiceField(choices=Finding.Severity.choices, required=False)
        due_date = serializers.DateField(required=False, help_text="YYYY-MM-DD")
        owner = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                             required=False, allow_null=True, default=None)

    @extend_schema(summary="Accept a proposed finding", request=InputSerializer, responses=FindingOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        return _move_finding(request, id, self.InputSerializer, finding_accept)


class FindingDismissApi(APIView):
    """Dismiss a finding the validation battery proposed, with the reason (recorded)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.VERSION_VALIDATE)]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField()

    @extend_schema(summary="Dismiss a proposed finding", request=InputSerializer, responses=FindingOutputSerializer)
    def post(self, request: Request, id: int) -> Response:
        return _move_finding(request, id, self.InputSerializer, finding_dismiss)

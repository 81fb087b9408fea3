"""Read-only API over the audit trail, and an on-demand chain verification."""

from __future__ import annotations

import django_filters
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanCheckpointAuditLog, CanReadAuditLog, CanReadDomain
from governance.api.views import SelectorListApi
from governance.audit import audit_verify, current_correlation_id
from governance.models import AuditEvent
from governance.selectors import audit_event_list_for_user


class AuditEventFilter(django_filters.FilterSet):
    seq_from = django_filters.NumberFilter(field_name="seq", lookup_expr="gte")
    seq_to = django_filters.NumberFilter(field_name="seq", lookup_expr="lte")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "target_type", "target_id", "actor_username", "request_id"]


class AuditEventListApi(SelectorListApi):
    """List audit events in sequence order, with their hashes, for validators, compliance and auditors."""

    permission_classes = [CanReadDomain, CanReadAuditLog]
    filterset_class = AuditEventFilter

    class OutputSerializer(serializers.ModelSerializer):
        before = serializers.JSONField()
        after = serializers.JSONField()

        class Meta:
            model = AuditEvent
            fields = ["seq", "created_at", "actor_username", "action", "target_type", "target_id", "target_repr",
                      "before", "after", "request_id", "prev_hash", "hash"]

    serializer_class = OutputSerializer
    selector = staticmethod(audit_event_list_for_user)


class AuditVerifyApi(APIView):
    """Verify the whole hash chain now and report the first broken row, if any."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    @extend_schema(
        summary="Verify the audit chain",
        responses=inline_serializer("AuditVerification", {
            "ok": serializers.BooleanField(), "count": serializers.IntegerField(),
            "head_hash": serializers.CharField(), "first_bad_seq": serializers.IntegerField(allow_null=True),
            "reason": serializers.CharField(),
        }),
    )
    def get(self, request: Request) -> Response:
        result = audit_verify()
        return Response({"ok": result.ok, "count": result.count, "head_hash": result.head_hash,
                         "first_bad_seq": result.first_bad_seq, "reason": result.reason})


class AuditCheckpointCreateApi(APIView):
    """Ask a worker to verify the chain and append a signed-off checkpoint event (202)."""

    permission_classes = [CanReadDomain, CanCheckpointAuditLog]

    @extend_schema(summary="Request an audit checkpoint", request=None,
                   responses={202: inline_serializer("CheckpointQueued", {"queued": serializers.BooleanField()})})
    def post(self, request: Request) -> Response:
        from governance.tasks import audit_checkpoint_task

        request_id = current_correlation_id()
        transaction.on_commit(lambda: audit_checkpoint_task.delay(request_id=request_id))
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)

"""The audit-trail export for examiners (files + manifest + offline verifier) and the inventory as of a date."""

from __future__ import annotations

import tempfile

from django.http import FileResponse, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadAuditLog, CanReadDomain
from riskmodels.apis.files import stored_download
from riskmodels.selectors.audit_history import inventory_as_of_for_user
from riskmodels.services.audit_export import (
    FILE_FORMATS,
    audit_events_export,
    audit_export_bundle,
    audit_export_file_get_for_user,
    audit_verifier_source,
)

_EXPORT_FILTERS = {
    "model": "A registered model's name: events whose target is the model or a row referring to it or its versions.",
    "actor": "The actor's username, exactly.",
    "action": "An action, exactly; ending in '.' (or '.*') it matches the whole family, e.g. 'model_version.'.",
    "since": "From this date (YYYY-MM-DD, UTC) or ISO datetime, included.",
    "until": "Up to this date (the whole day, UTC) or ISO datetime, included.",
}


class ManifestSerializer(serializers.Serializer):
    format = serializers.CharField()
    export_id = serializers.CharField()
    exported_at = serializers.DateTimeField()
    exported_by = serializers.CharField()
    file_format = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField())
    row_count = serializers.IntegerField()
    first_seq = serializers.IntegerField(allow_null=True)
    last_seq = serializers.IntegerField(allow_null=True)
    gaps = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                 help_text="Ranges [from, to] of sequence numbers between first and last left out "
                                           "by the filters.")
    chain_head = serializers.DictField(help_text="The chain head (seq, hash) when the export was made.")
    reaches_head = serializers.BooleanField()
    files = serializers.DictField(help_text="By file name: sha256 and bytes.")
    manifest_sha256 = serializers.CharField(help_text="Also recorded in the audit.exported event.")
    downloads = serializers.DictField(child=serializers.CharField())


class AuditEventsExportApi(APIView):
    """Export the audit events matching the filters: stored files + manifest, audited; answers the manifest."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    @extend_schema(summary="Export the audit trail (JSON Lines, or CSV too) with a manifest",
                   parameters=[OpenApiParameter("file_format", str, enum=list(FILE_FORMATS), required=False,
                                                description="jsonl (default) or csv; the JSON Lines file the "
                                                            "verifier checks is always written."),
                               *(OpenApiParameter(name, str, required=False, description=text)
                                 for name, text in _EXPORT_FILTERS.items())],
                   responses=ManifestSerializer)
    def get(self, request: Request) -> Response:
        query = request.query_params
        export = audit_events_export(actor=request.user, file_format=query.get("file_format", "jsonl"),
                                     model=query.get("model", ""), actor_username=query.get("actor", ""),
                                     action=query.get("action", ""), since=query.get("since", ""),
                                     until=query.get("until", ""))
        downloads = {name: request.build_absolute_uri(reverse("audit-export-file", args=[export.id, name]))
                     for name in (*export.manifest["files"], "manifest.json")}
        downloads["bundle.zip"] = request.build_absolute_uri(reverse("audit-export-bundle", args=[export.id]))
        downloads["verifier.py"] = request.build_absolute_uri(reverse("audit-export-verifier"))
        return Response({**export.manifest, "manifest_sha256": export.manifest_sha256, "downloads": downloads})


class AuditExportFileApi(APIView):
    """Download one file of an export: events.jsonl, events.csv or manifest.json (SHA-256 in a header)."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    @extend_schema(summary="Download a file of an audit export",
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="The file's bytes")})
    def get(self, request: Request, id: str, name: str) -> FileResponse:
        stored = audit_export_file_get_for_user(user=request.user, id=id, name=name)
        return stored_download(stored.path, sha256=stored.sha256, filename=stored.filename,
                               content_type=stored.content_type)


class AuditExportBundleApi(APIView):
    """Download an export as one ZIP: its files, its manifest and the offline verifier."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    @extend_schema(summary="Download an audit export as a ZIP",
                   responses={(200, "application/zip"): OpenApiResponse(description="ZIP bytes")})
    def get(self, request: Request, id: str) -> FileResponse:
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - FileResponse closes it
        audit_export_bundle(user=request.user, id=id, handle=spool)
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=f"audit-export-{id[:12]}.zip",
                            content_type="application/zip")


class AuditVerifierApi(APIView):
    """Download the offline verifier: one Python file, standard library only."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    @extend_schema(summary="Download the offline audit-export verifier",
                   responses={(200, "text/x-python"): OpenApiTypes.STR})
    def get(self, request: Request) -> HttpResponse:
        response = HttpResponse(audit_verifier_source(user=request.user), content_type="text/x-python; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="verify_audit_export.py"'
        return response


class InventoryAsOfVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    since = serializers.CharField(help_text="When the version reached this status.")
    approved_at = serializers.CharField(allow_null=True)


class InventoryAsOfFindingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version_id = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    raised_at = serializers.CharField()
    since = serializers.CharField()


class InventoryAsOfModelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    registered_at = serializers.CharField()
    champion = InventoryAsOfVersionSerializer(allow_null=True)
    approved = InventoryAsOfVersionSerializer(many=True, help_text="Approved versions, the champion included.")
    versions = InventoryAsOfVersionSerializer(many=True)
    open_findings = InventoryAsOfFindingSerializer(many=True, help_text="Open or remediated, not closed.")


class InventoryAsOfApi(APIView):
    """The inventory as of a date, rebuilt from the audit log alone: champions, approved versions, open findings."""

    permission_classes = [CanReadDomain, CanReadAuditLog]

    class OutputSerializer(serializers.Serializer):
        as_of = serializers.CharField()
        bound = serializers.CharField(help_text="Events recorded up to this instant count (before it, for a date).")
        last_seq = serializers.IntegerField(help_text="The last audit event at or before the moment.")
        models = InventoryAsOfModelSerializer(many=True)

    @extend_schema(summary="The model inventory as of a date (from the audit log)",
                   parameters=[OpenApiParameter("date", str, required=True,
                                                description="YYYY-MM-DD (as at the end of that day, UTC) or an ISO "
                                                            "datetime.")],
                   responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(inventory_as_of_for_user(user=request.user, moment=request.query_params.get("date", "")))

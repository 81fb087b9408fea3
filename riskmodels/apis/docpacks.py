"""Documentation packs: queue one for a version, list a version's packs, read a pack's record, download its files."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.policy import Capability
from riskmodels.apis.files import stored_download
from riskmodels.apis.jobs import JobOutputSerializer
from riskmodels.models import DocumentationPack
from riskmodels.selectors import model_version_get_for_user
from riskmodels.selectors.docpacks import (
    documentation_pack_file_for_user,
    documentation_pack_get_for_user,
    documentation_pack_list_for_user,
)
from riskmodels.services.docpack import CONTENT_TYPES, documentation_pack_request


class DocumentationPackOutputSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version_id")
    registered_model = serializers.CharField(source="model_version.registered_model.name")
    version = serializers.IntegerField(source="model_version.version")
    job = serializers.IntegerField(source="job_id")
    sha256 = serializers.CharField(help_text="The pack's SHA-256: that of its JSON file (as in the audit log).")
    files = serializers.SerializerMethodField(help_text="Each file's download URL, SHA-256 and size in bytes.")

    class Meta:
        model = DocumentationPack
        fields = ["id", "model_version", "registered_model", "version", "job", "schema", "sha256", "pdf_pages",
                  "files", "created_at", "created_by_username"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_files(self, obj: DocumentationPack) -> dict[str, dict[str, object]]:
        return {fmt: {"url": f"/api/v1/documentation-packs/{obj.pk}/pack.{fmt}", "sha256": obj.file(fmt)[1],
                      "size": obj.file(fmt)[2]} for fmt in ("html", "pdf", "json")}


class ModelVersionDocumentationPacksApi(APIView):
    """GET lists a version's documentation packs, newest first; POST queues a new one (202, the job to follow)."""

    permission_classes = [CanReadDomain, capability_permission(Capability.DOCPACK_GENERATE, writes_only=True)]

    @extend_schema(summary="List a version's documentation packs", responses=DocumentationPackOutputSerializer(many=True))
    def get(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        packs = documentation_pack_list_for_user(user=request.user, model_version_id=version.pk)
        return Response(DocumentationPackOutputSerializer(packs, many=True).data)

    @extend_schema(summary="Generate a documentation pack (HTML, PDF, JSON) of a version", request=None,
                   responses={202: JobOutputSerializer})
    def post(self, request: Request, id: int) -> Response:
        version = model_version_get_for_user(user=request.user, id=id)
        job = documentation_pack_request(actor=request.user, model_version=version)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class DocumentationPackDetailApi(APIView):
    """One documentation pack's record: its version, schema, the SHA-256 and size of each file."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a documentation pack's record", responses=DocumentationPackOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        return Response(DocumentationPackOutputSerializer(documentation_pack_get_for_user(user=request.user, id=id)).data)


class DocumentationPackFileApi(APIView):
    """Download ``pack.pdf``, ``pack.html`` or ``pack.json``; ``X-Content-SHA256`` carries the recorded hash."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Download a documentation pack file (pdf, html or json)",
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="the file's bytes")})
    def get(self, request: Request, id: int, file_format: str) -> FileResponse:
        pack, path, sha256 = documentation_pack_file_for_user(user=request.user, id=id, file_format=file_format)
        name = f"{pack.model_version.registered_model.name}-v{pack.model_version.version}-pack-{pack.pk}.{file_format}"
        return stored_download(path, sha256=sha256, filename=name, content_type=CONTENT_TYPES[file_format])

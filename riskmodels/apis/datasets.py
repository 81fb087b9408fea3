"""REST API views of the ML domain: one view per operation, each one call into a service or selector."""

from __future__ import annotations

import django_filters
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.api.permissions import CanReadDomain, capability_permission
from governance.api.throttles import UploadThrottle
from governance.api.views import SelectorListApi
from governance.policy import Capability
from riskmodels.apis.files import PARQUET, download_response
from riskmodels.ml.ingest import ROLES
from riskmodels.models import Dataset, DatasetVersion
from riskmodels.selectors import dataset_list_for_user, dataset_version_get_for_user, dataset_version_list_for_user
from riskmodels.services.datasets import dataset_roles_parse, dataset_version_create
from riskmodels.services.downloads import dataset_version_download


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField()
    role = serializers.ChoiceField(choices=ROLES)


class DatasetVersionOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    team = serializers.CharField(source="dataset.team.slug")
    schema = ColumnSerializer(many=True)
    profile = serializers.JSONField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    class Meta:
        model = DatasetVersion
        fields = ["id", "dataset", "team", "version", "sha256", "size_bytes", "n_rows", "n_columns", "target", "schema",
                  "profile", "source_filename", "source_format", "note", "created_at", "created_by"]


class DatasetListApi(SelectorListApi):
    """List datasets with their latest version number."""

    permission_classes = [CanReadDomain]

    class OutputSerializer(serializers.ModelSerializer):
        latest_version = serializers.SerializerMethodField()
        team = serializers.CharField(source="team.slug")

        class Meta:
            model = Dataset
            fields = ["id", "name", "team", "description", "created_at", "latest_version"]

        def get_latest_version(self, obj: Dataset) -> int | None:
            latest = obj.versions.order_by("-version").values_list("version", flat=True).first()
            return latest

    serializer_class = OutputSerializer
    selector = staticmethod(dataset_list_for_user)


class DatasetsApi(DatasetListApi):
    """GET lists datasets; POST uploads a CSV or Parquet file as a new, immutable version of a dataset."""

    permission_classes = [CanReadDomain, capability_permission(Capability.DATASET_UPLOAD, writes_only=True)]
    throttle_classes = [UploadThrottle]
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, help_text="Dataset name, e.g. german-credit.")
        # Empty files reach the service, which explains what is wrong with them.
        file = serializers.FileField(allow_empty_file=True, help_text="CSV (UTF-8, header row) or Parquet.")
        target = serializers.CharField(required=False, allow_blank=True, help_text="The binary target column.")
        roles = serializers.CharField(
            required=False, allow_blank=True,
            help_text='JSON object mapping columns to roles (feature, target, protected, identifier, excluded), '
                      'e.g. {"age_in_years": "protected"}. Unnamed columns are features.',
        )
        description = serializers.CharField(required=False, allow_blank=True, default="")
        note = serializers.CharField(required=False, allow_blank=True, default="")
        team = serializers.SlugField(required=False, help_text="Slug of the team a new dataset belongs to; "
                                                                "default: your only team (required if you have several).")

        def validate_roles(self, value: str) -> dict[str, str]:
            # The service's parser, shared with the admin's upload form; its ValidationFailed
            # becomes a 400 naming the problem.
            return dataset_roles_parse(value)

    @extend_schema(
        summary="Register a dataset version (upload)",
        request=InputSerializer,
        responses={201: DatasetVersionOutputSerializer, 200: DatasetVersionOutputSerializer,
                   400: OpenApiResponse(description="The file or schema was rejected"),
                   413: OpenApiResponse(description="The file exceeds DATASET_MAX_UPLOAD_BYTES, or a Parquet "
                                                        "file decodes past DATASET_MAX_DECODED_BYTES")},
    )
    def post(self, request: Request) -> Response:
        # A body over the limit was refused by RequestSizeLimitMiddleware before it was read, and
        # one of unknown length is stopped at the limit while it streams (governance/uploads.py).
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload
        version, created = dataset_version_create(
            actor=request.user, name=data["name"], source=source, filename=upload.name, size=upload.size,
            target=data.get("target") or None, roles=data.get("roles") or {}, description=data["description"],
            note=data["note"], team=data.get("team"),
        )
        return Response(DatasetVersionOutputSerializer(version).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DatasetVersionFilter(django_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__name", help_text="Dataset name")
    sha256 = django_filters.CharFilter()

    class Meta:
        model = DatasetVersion
        fields = ["dataset", "sha256", "version"]


class DatasetVersionListApi(SelectorListApi):
    """List dataset versions, newest first within each dataset; filter by ``dataset``, ``version``, ``sha256``."""

    permission_classes = [CanReadDomain]
    serializer_class = DatasetVersionOutputSerializer
    filterset_class = DatasetVersionFilter
    selector = staticmethod(dataset_version_list_for_user)


class DatasetVersionDetailApi(APIView):
    """Return one dataset version with its schema and data-quality profile."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Get a dataset version", responses=DatasetVersionOutputSerializer)
    def get(self, request: Request, id: int) -> Response:
        version = dataset_version_get_for_user(user=request.user, id=id)
        return Response(DatasetVersionOutputSerializer(version).data)


class DatasetVersionDownloadApi(APIView):
    """Download the stored Parquet file (audited); its SHA-256 is in the ``X-Content-SHA256`` header."""

    permission_classes = [CanReadDomain]

    @extend_schema(summary="Download a dataset version (Parquet)",
                   responses={(200, "application/vnd.apache.parquet"): OpenApiResponse(description="Parquet bytes")})
    def get(self, request: Request, id: int) -> FileResponse:
        return download_response(dataset_version_download(user=request.user, id=id), content_type=PARQUET)

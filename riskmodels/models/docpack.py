"""Documentation packs: the auditor's and examiner's dossier of one model version, as HTML, PDF and JSON."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from riskmodels.models.base import ImmutableModel


class DocumentationPack(ImmutableModel):
    """Record one generated documentation pack of a version: its three files, their SHA-256 and sizes.

    The JSON is the pack's canonical form (``sha256`` below is its hash, the one the audit log
    names); the HTML and PDF render the same records for people. ``created_at`` is the
    generation time, kept here and never inside the JSON, so the same records give the same
    JSON bytes.
    """

    model_version = models.ForeignKey("riskmodels.ModelVersion", on_delete=models.PROTECT,
                                      related_name="documentation_packs")
    job = models.OneToOneField("riskmodels.Job", on_delete=models.PROTECT, related_name="produced_documentation_pack")
    schema = models.CharField(max_length=40)  # e.g. "riskgov.docpack/1"
    json_path = models.CharField(max_length=300)
    json_sha256 = models.CharField(max_length=64)
    json_size = models.BigIntegerField()
    html_path = models.CharField(max_length=300)
    html_sha256 = models.CharField(max_length=64)
    html_size = models.BigIntegerField()
    pdf_path = models.CharField(max_length=300)
    pdf_sha256 = models.CharField(max_length=64)
    pdf_size = models.BigIntegerField()
    pdf_pages = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_username = models.CharField(max_length=150)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"documentation pack #{self.pk} of version {self.model_version_id}"

    @property
    def sha256(self) -> str:
        """Return the pack's hash: the SHA-256 of its JSON, the canonical form."""
        return self.json_sha256

    def file(self, file_format: str) -> tuple[str, str, int]:
        """Return (path, sha256, size) of the pack's ``html``, ``pdf`` or ``json`` file."""
        return (getattr(self, f"{file_format}_path"), getattr(self, f"{file_format}_sha256"),
                getattr(self, f"{file_format}_size"))

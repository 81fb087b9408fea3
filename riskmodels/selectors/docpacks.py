"""Reads of documentation packs: a version's packs, one pack, one of its files (reading is not audited)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.exceptions import NotFound
from governance.policy import Capability, require
from riskmodels.models import DocumentationPack

PACK_FORMATS = ("html", "pdf", "json")


def documentation_pack_list_for_user(*, user: Any, model_version_id: int | None = None) -> QuerySet[DocumentationPack]:
    """Return the documentation packs the user may see (of one version, if given), newest first."""
    require(user, Capability.DOMAIN_READ)
    packs = DocumentationPack.objects.select_related("model_version__registered_model").order_by("-created_at", "-id")
    return packs if model_version_id is None else packs.filter(model_version_id=model_version_id)


def documentation_pack_get_for_user(*, user: Any, id: int) -> DocumentationPack:
    """Return one documentation pack, or raise NotFound / PermissionDenied."""
    try:
        return documentation_pack_list_for_user(user=user).get(pk=id)
    except (DocumentationPack.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"documentation pack {id} does not exist") from None


def documentation_pack_file_for_user(*, user: Any, id: int, file_format: str) -> tuple[DocumentationPack, str, str]:
    """Return (the pack, the stored path, the recorded SHA-256) of one of its files: ``html``, ``pdf`` or ``json``."""
    pack = documentation_pack_get_for_user(user=user, id=id)
    if file_format not in PACK_FORMATS:
        raise NotFound(f"a documentation pack has no {file_format!r} file; its files are pack.html, pack.pdf, pack.json")
    path, sha256, _ = pack.file(file_format)
    return pack, path, sha256

"""Downloads of stored evidence: reading a dataset file or a model artifact is itself an audit event.

The selector decides what the user may see; these services write who took a copy of which file,
in a transaction committed before the response streams, and hand back the open file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from django.core.files.storage import default_storage
from django.db import transaction

from governance.audit import audit_record
from riskmodels.selectors import dataset_version_get_for_user, model_version_get_for_user


@dataclass(frozen=True)
class Download:
    """An open stored file with what the response needs to name and vouch for it."""

    handle: IO[bytes]
    sha256: str
    filename: str


def _opened(path: str, *, sha256: str, filename: str) -> Download:
    return Download(handle=default_storage.open(path, "rb"), sha256=sha256, filename=filename)


def dataset_version_download(*, user: Any, id: int) -> Download:
    """Return a dataset version's Parquet file, after auditing ``dataset_version.downloaded``."""
    version = dataset_version_get_for_user(user=user, id=id)
    with transaction.atomic():
        audit_record(actor=user, action="dataset_version.downloaded", target=version,
                     after={"dataset": version.dataset.name, "version": version.version, "sha256": version.sha256})
    return _opened(version.storage_path, sha256=version.sha256,
                   filename=f"{version.dataset.name}-v{version.version}.parquet")


def model_version_artifact_download(*, user: Any, id: int) -> Download:
    """Return a model version's skops artifact, after auditing ``model_version.artifact_downloaded``."""
    version = model_version_get_for_user(user=user, id=id)
    with transaction.atomic():
        audit_record(actor=user, action="model_version.artifact_downloaded", target=version,
                     after={"registered_model": version.registered_model.name, "version": version.version,
                            "artifact_sha256": version.artifact_sha256})
    return _opened(version.artifact_path, sha256=version.artifact_sha256,
                   filename=f"{version.registered_model.name}-v{version.version}.skops")

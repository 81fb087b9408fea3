"""Read and write the files behind datasets and models through Django's storage API, hash-checked."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pyarrow.parquet as pq
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from riskmodels.models import DatasetVersion


class StoredFileCorrupt(Exception):
    """A stored file's bytes no longer match the hash recorded when it was registered."""


def read_verified(path: str, expected_sha256: str) -> bytes:
    """Return a stored file's bytes after checking them against the recorded SHA-256."""
    with default_storage.open(path, "rb") as handle:
        data = handle.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise StoredFileCorrupt(f"{path}: stored bytes hash to {actual[:12]}…, the record says {expected_sha256[:12]}…")
    return data


def dataset_frame(version: DatasetVersion) -> pd.DataFrame:
    """Load a dataset version into pandas after verifying its hash."""
    data = read_verified(version.storage_path, version.sha256)
    return pq.read_table(io.BytesIO(data)).to_pandas()


def save_bytes(path: str, data: bytes) -> str:
    """Store ``data`` at ``path`` (or a free variant of it) and return the path used."""
    return default_storage.save(path, ContentFile(data))

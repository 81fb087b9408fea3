"""Read and write the files behind datasets and models through Django's storage API, hash-checked."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage

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


def verify_stored(path: str, expected_sha256: str) -> None:
    """Check a stored file's hash reading 1 MiB at a time (for files too large to hold)."""
    digest = hashlib.sha256()
    with default_storage.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise StoredFileCorrupt(f"{path}: stored bytes no longer match the registered SHA-256")


def dataset_frame(version: DatasetVersion) -> pd.DataFrame:
    """Load a dataset version into pandas after verifying its hash."""
    data = read_verified(version.storage_path, version.sha256)
    return pq.read_table(io.BytesIO(data)).to_pandas()


def save_bytes(path: str, data: bytes) -> str:
    """Store ``data`` at ``path`` (or a free variant of it) atomically; return the path used.

    On the local filesystem Django writes in place, so a worker killed mid-write would
    leave a torn file: write a temporary file beside it, fsync, and rename instead. An
    object store's PUT is already all-or-nothing.
    """
    if not isinstance(default_storage, FileSystemStorage):
        return default_storage.save(path, ContentFile(data))
    name = default_storage.get_available_name(path)
    target = Path(default_storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)
    return name

"""Files behind datasets, models and reports: hash-checked reads and atomic writes through Django's storage API.

Everything the service stores goes through here, so a file a committed row points at is
always whole (written to a temporary name, flushed and renamed) and a file read back is
always the one recorded (its SHA-256 checked).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, default_storage

logger = logging.getLogger(__name__)


class StoredFileCorrupt(Exception):
    """A stored file's bytes no longer match the hash recorded when it was registered."""


def read_verified(path: str, expected_sha256: str) -> bytes:
    """Return a stored file's bytes after checking them against the recorded SHA-256."""
    with default_storage.open(path, "rb") as handle:
        data = handle.read()
    _check(path, hashlib.sha256(data).hexdigest(), expected_sha256)
    return data


def _stored_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with default_storage.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def verified_in_background(path: str, expected_sha256: str) -> Iterator[None]:
    """Check a stored file's hash in a thread while the body reads it; raise on exit if it differs.

    hashlib and Arrow's Parquet reader both release the GIL, so the check costs no wall time
    next to a read of the same file. Whatever the body read must not be used (nor anything
    written from it) unless the block exits without StoredFileCorrupt.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as pool:
        future = pool.submit(_stored_sha256, path)
        try:
            yield
        except Exception as exc:
            # A corrupt file often fails to parse first: the mismatch is the cause to report.
            _check(path, future.result(), expected_sha256, cause=exc)
            raise
        _check(path, future.result(), expected_sha256)


def _check(path: str, actual: str, expected: str, cause: BaseException | None = None) -> None:
    if actual != expected:
        raise StoredFileCorrupt(f"{path}: stored bytes hash to {actual[:12]}…, the record says {expected[:12]}…") \
            from cause


def save_stream(path: str, fill: Callable[[BinaryIO], None], *, durable: bool = True) -> str:
    """Store what ``fill(handle)`` writes at ``path`` (or a free variant of it) atomically; return the path.

    The bytes go to a temporary file (never all in memory), so a large file costs a worker
    no memory. On the local filesystem Django writes in place, so a worker killed mid-write
    would leave a torn file: write the temporary file beside the target, fsync, and rename
    instead. An object store's PUT is already all-or-nothing.

    ``durable=False`` skips the fsyncs (the rename stays atomic for a killed process): for
    hand-over files between a job's own tasks, which a crash of the machine makes the job
    redo anyway (the reaper requeues it and the retry discards them). Files a committed row
    points at must be durable.
    """
    if not isinstance(default_storage, FileSystemStorage):
        with tempfile.TemporaryFile() as spool:
            fill(spool)
            spool.seek(0)
            return default_storage.save(path, File(spool))
    name = default_storage.get_available_name(path)
    target = Path(default_storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return name
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)
    return name


def save_bytes(path: str, data: bytes, *, durable: bool = True) -> str:
    """Store ``data`` at ``path`` (or a free variant of it) atomically; return the path used (see save_stream)."""
    return save_stream(path, lambda handle: handle.write(data), durable=durable)


def delete_quietly(paths: list[str]) -> None:
    """Delete stored files, logging (never raising) a failure: cleanup must not hide the outcome it follows."""
    for path in paths:
        try:
            default_storage.delete(path)
        except Exception:  # noqa: BLE001 - the caller's own outcome matters more than a leftover file
            logger.exception("could not delete %s", path)


class HashingWriter:
    """A write-only file that hashes what passes through it, for the SHA-256 of a file written as a stream."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.position = handle, hashlib.sha256(), 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.position += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        self.handle.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True  # the handle belongs to save_stream

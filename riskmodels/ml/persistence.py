"""Save and load fitted pipelines safely: skops format, atomic writes, hash-checked loads.

Artifacts are never pickled. Loading first checks the SHA-256 recorded with the model version,
then lets skops rebuild only the types in :data:`TRUSTED_TYPES`, so a tampered or foreign file
is refused before any of its content is turned into objects.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

import skops.io as sio
from sklearn.pipeline import Pipeline

__all__ = [
    "TRUSTED_TYPES",
    "ArtifactError",
    "ArtifactIntegrityError",
    "UntrustedArtifactError",
    "dumps_artifact",
    "environment_versions",
    "load_artifact",
    "save_artifact",
    "sha256_hex",
]

# Types beyond skops' built-in safe set that the five pipelines of riskmodels.ml.pipelines
# contain, found with skops.io.get_untrusted_types on a fitted pipeline per algorithm (with and
# without categorical features, sigmoid and isotonic calibration). Extend it only together with
# a test in tests/riskmodels/ml/test_persistence.py that needs the new type.
TRUSTED_TYPES: list[str] = [
    # HistGradientBoosting keeps a partial of check_array for its categorical preprocessing.
    "functools.partial",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
]

_VERSIONED_DISTRIBUTIONS = ("scikit-learn", "numpy", "scipy", "pandas", "shap", "skops")


class ArtifactError(Exception):
    """Base class for artifacts that cannot be loaded."""


class ArtifactIntegrityError(ArtifactError):
    """Report an artifact whose bytes do not match the recorded SHA-256."""


class UntrustedArtifactError(ArtifactError):
    """Report an artifact that contains types outside :data:`TRUSTED_TYPES`."""

    def __init__(self, types: list[str]) -> None:
        super().__init__(
            "artifact contains types that are not trusted and was not loaded: " + ", ".join(types)
        )
        self.types = types


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def dumps_artifact(pipeline: Pipeline) -> bytes:
    """Serialise ``pipeline`` with skops (no pickle), in skops' own file format.

    The bytes are not stable across calls (skops' zip entries carry timestamps and object ids),
    so hash the bytes actually stored, not a fresh dump.
    """
    return sio.dumps(pipeline)


def save_artifact(pipeline: Pipeline, path: str | os.PathLike[str]) -> str:
    """Write ``pipeline`` to ``path`` atomically and return the SHA-256 of the written bytes.

    The data goes to a temporary file in the same directory, is fsynced, and is then renamed
    over ``path``: a crash leaves either the old file or the complete new one, never a torn
    artifact whose hash would no longer match the version record.
    """
    data = dumps_artifact(pipeline)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return sha256_hex(data)


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk (POSIX only).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_artifact(path_or_bytes: str | os.PathLike[str] | bytes, *, expected_sha256: str) -> Pipeline:
    """Load a pipeline after checking its hash and that it holds only trusted types.

    Raises ArtifactIntegrityError if the bytes do not hash to ``expected_sha256`` and
    UntrustedArtifactError if they contain a type outside :data:`TRUSTED_TYPES`.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
    else:
        data = Path(path_or_bytes).read_bytes()
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, expected_sha256.strip().lower()):
        raise ArtifactIntegrityError(
            f"artifact SHA-256 is {actual}, expected {expected_sha256}; refusing to load it"
        )
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedArtifactError(untrusted)
    obj = sio.loads(data, trusted=TRUSTED_TYPES)
    if not isinstance(obj, Pipeline):
        raise ArtifactError(f"artifact holds a {type(obj).__name__}, not a Pipeline")
    return obj


def environment_versions() -> dict[str, str | None]:
    """Return the Python and library versions to record with a model version.

    Reads installed distribution metadata rather than importing, so recording versions does
    not pay for importing shap. Looked up once per process (installed versions do not change
    under a running process); callers get their own copy.
    """
    return dict(_environment_versions())


@functools.cache
def _environment_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for distribution in _VERSIONED_DISTRIBUTIONS:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions

"""Types shared by the explainers: options, fingerprints, results and the explainer interface."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from riskmodels.ml.encoding import RowEncoder
from riskmodels.ml.pipelines import TrainingSpec, prepare_features

__all__ = [
    "FEW_ROWS",
    "OUTPUT_LOG_ODDS",
    "OUTPUT_PROBABILITY",
    "Attributions",
    "ExplainOptions",
    "ExplainerFingerprint",
    "ExplanationError",
    "ModelExplainer",
    "matrix_sha256",
    "preprocessed_matrix",
    "select_background",
    "sum_to_features",
]

# Below this many rows a request is a scoring or local-explanation call: per-call overheads
# (the preprocess step's machinery, parallel regions) outweigh the work on the rows.
FEW_ROWS = 256
OUTPUT_LOG_ODDS = "log_odds"
OUTPUT_PROBABILITY = "probability"


class ExplanationError(ValueError):
    """Report a model, option or input that cannot be explained, with the reason."""


@dataclass(frozen=True)
class ExplainOptions:
    """Set how many rows a report explains and how its sampled parts are drawn.

    ``max_rows`` caps a global report (``None``: every row); above it a seeded sample is taken
    and recorded. ``background_size`` rows are the reference population of the linear and
    permutation explainers. ``permutations`` is the number of antithetic permutations per row
    of the permutation explainer. ``chunk_size`` bounds the rows held in memory at once and is
    the natural unit of work for one worker task; for permutation explainers, whose rows cost
    thousands of model evaluations each, use a few hundred rows per task
    (``estimate_cost(...)["seconds_per_row"]`` says how long a chunk will take).
    """

    max_rows: int | None = 10_000
    seed: int = 0
    background_size: int = 100
    permutations: int = 10
    chunk_size: int = 5_000

    def __post_init__(self) -> None:
        def positive(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExplanationError(f"{name} must be a positive integer; got {value!r}")

        if self.max_rows is not None:
            positive("max_rows", self.max_rows)
        for name in ("background_size", "permutations", "chunk_size"):
            positive(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ExplanationError(f"seed must be an integer between 0 and 2**32 - 1; got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the options as a JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True)
class ExplainerFingerprint:
    """Record exactly which explainer produced a set of SHAP values, to reproduce or compare them.

    ``background_sha256`` is the SHA-256 of the float64 background matrix (C order) the
    explainer integrates over; tree explainers use the training-data covers stored in the
    trees instead and record ``None`` and size 0. ``adapter`` says how the model was handed
    to shap when that was not shap's own loader.
    """

    algorithm: str
    explainer: str
    feature_perturbation: str
    output_space: str
    input_space: str
    exact: bool
    background_sha256: str | None
    background_size: int
    seed: int
    permutations: int | None
    adapter: str | None
    versions: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the fingerprint as a JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExplainerFingerprint:
        """Rebuild a fingerprint from :meth:`to_dict` output."""
        return cls(**data)


@dataclass(frozen=True)
class Attributions:
    """Hold SHAP values per original feature for some rows, with the base value and outputs.

    ``values[i].sum() + base_value`` reproduces ``output[i]`` (the model's log-odds or
    probability of default, per the fingerprint's output space) up to floating point.
    """

    values: npt.NDArray[np.float64]
    base_value: float
    output: npt.NDArray[np.float64]


def sum_to_features(
    values: npt.NDArray[np.float64], column_features: Sequence[str], features: Sequence[str]
) -> npt.NDArray[np.float64]:
    """Return ``values`` (one column per encoded column) summed into one column per feature.

    ``column_features[j]`` names the original feature of encoded column ``j``. Columns are added
    one at a time, left to right, so a row's result never depends on the other rows in the
    array: chunked and single-process reports stay bit-for-bit equal.
    """
    if values.shape[1] != len(column_features):
        raise ExplanationError(
            f"{values.shape[1]} SHAP columns but {len(column_features)} names in the feature map"
        )
    index = {name: i for i, name in enumerate(features)}
    unknown = sorted(set(column_features) - set(index))
    if unknown:
        raise ExplanationError(f"encoded columns of unknown features: {', '.join(unknown)}")
    out = np.zeros((values.shape[0], len(features)), dtype=np.float64)
    for j, name in enumerate(column_features):
        out[:, index[name]] += values[:, j]
    return out


def select_background(frame: pd.DataFrame, *, size: int, seed: int) -> pd.DataFrame:
    """Return a seeded sample of ``size`` rows of ``frame`` (all of it if smaller), in frame order.

    Draw it from the training rows: the base value is then the model's average over the
    population it learned from.
    """
    if len(frame) == 0:
        raise ExplanationError("the background sample needs at least one row")
    if len(frame) <= size:
        return frame
    # A stream of its own (key 1), so it does not move when the row sample (key 0) changes.
    rng = np.random.default_rng([seed, 1])
    return frame.iloc[np.sort(rng.choice(len(frame), size=size, replace=False))]


def matrix_sha256(matrix: npt.NDArray[np.float64], extra: str = "") -> str:
    """Return the SHA-256 of a float64 matrix (C order) with its shape and ``extra`` text."""
    digest = hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float64).tobytes())
    digest.update(f"|shape={matrix.shape}|{extra}".encode())
    return digest.hexdigest()


def preprocessed_matrix(pipeline: Pipeline, spec: TrainingSpec, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Return raw ``rows`` as the float64 matrix the pipeline's model sees."""
    matrix = pipeline[:-1].transform(prepare_features(rows, spec))
    return np.ascontiguousarray(matrix, dtype=np.float64)


class ModelExplainer(ABC):
    """Explain one fitted pipeline's risk output per original feature.

    Build it with :func:`make_explainer`. ``column_features`` names, for each column the
    underlying shap explainer sees, the original feature it belongs to.
    """

    kind: ClassVar[str]
    fingerprint: ExplainerFingerprint
    features: tuple[str, ...]
    column_features: tuple[str, ...]

    def __init__(self, pipeline: Pipeline, spec: TrainingSpec) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.features = tuple(spec.features)
        # Binary targets are 0/1 (1 = default) by riskmodels.ml.training.binary_target.
        classes = list(pipeline.classes_)
        if classes != [0, 1]:
            raise ExplanationError(f"expected a binary 0/1 classifier; classes are {classes}")
        self.encoder = RowEncoder.from_pipeline(pipeline, spec)

    def matrix(self, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return raw ``rows`` as the matrix the model sees: a few rows by the row encoder (the same
        bits, without the pipeline's per-call cost), many by the pipeline."""
        if self.encoder is not None and len(rows) < FEW_ROWS:
            return self.encoder.encode(rows)
        return preprocessed_matrix(self.pipeline, self.spec, rows)

    @property
    def exact(self) -> bool:
        """Return whether values are exact (tree, linear) rather than sampled (permutation)."""
        return self.fingerprint.exact

    @abstractmethod
    def explain_columns(
        self, rows: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64]]:
        """Return per-column SHAP values, the base value and the model output for raw rows."""

    def explain(self, rows: pd.DataFrame) -> Attributions:
        """Return SHAP values per original feature for raw ``rows`` (as stored in the dataset)."""
        values, base, output = self.explain_columns(rows)
        return Attributions(
            values=sum_to_features(values, self.column_features, self.features),
            base_value=base,
            output=output,
        )

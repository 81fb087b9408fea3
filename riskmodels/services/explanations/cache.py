"""What every explanation task of a version needs, kept per worker process: the model, its tree explainer, its background.

Each is keyed by the immutable content it derives from (an artifact's verified SHA-256, a
dataset's hash and the spec that fixes the split), so a cached value is always the right
one; a few entries only, so a worker's memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from riskmodels.ml.explain import ExplainOptions, make_explainer, needs_background, select_background
from riskmodels.ml.persistence import load_artifact
from riskmodels.ml.pipelines import TrainingSpec
from riskmodels.ml.training import split
from riskmodels.models import ModelVersion
from riskmodels.storage import dataset_rows, read_verified


class ProcessCache:
    """Keep a few values per process, oldest dropped first, keyed by the immutable content they derive from."""

    def __init__(self, size: int) -> None:
        self.size, self.entries = size, dict[Any, Any]()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self.entries:
            value = compute()
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = value
        return self.entries[key]


PIPELINES = ProcessCache(4)
BACKGROUNDS = ProcessCache(8)
# A tree explainer holds no state between calls and uses no background; building one
# (HistGradientBoosting's tables) is paid once per process instead of once per chunk.
TREE_EXPLAINERS = ProcessCache(4)


def pipeline_load(version: ModelVersion) -> Any:
    """Load a version's artifact (hash-checked), kept per process: every chunk task needs it."""
    return PIPELINES.get(version.artifact_sha256, lambda: load_artifact(
        read_verified(version.artifact_path, version.artifact_sha256), expected_sha256=version.artifact_sha256))


def explainer_for(version: ModelVersion, spec: TrainingSpec, options: ExplainOptions,
                  background: Callable[[], pd.DataFrame]) -> Any:
    """Return a version's explainer: a tree model's from this process's cache (it uses no background,
    so none is read), else a new one on ``background()``."""
    if not needs_background(spec.algorithm):
        return TREE_EXPLAINERS.get((version.artifact_sha256, options.seed),
                                   lambda: make_explainer(pipeline_load(version), spec, options=options))
    return make_explainer(pipeline_load(version), spec, background=background(), options=options)


def source_rows(version: ModelVersion, scope: str, *, train: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (rows to explain from, training rows for the background) as dataset row numbers.

    The rows to explain from are None for a whole dataset version (its rows ``0 .. n - 1``,
    not held). With ``train=False`` (no background needed) a report on a whole dataset version
    does not read the training data at all; the training rows come back empty.
    """
    spec = TrainingSpec.from_dict(version.spec)
    if scope != "test_split" and not train:
        return None, np.empty(0, dtype=np.int64)
    needed = [spec.target] + ([spec.date_column] if spec.date_column else [])
    with default_storage.open(version.dataset_version.storage_path, "rb") as handle:
        narrow = pq.read_table(handle, columns=needed).to_pandas()
    train_idx, test_idx = split(narrow, spec)
    if scope == "test_split":
        return test_idx.astype(np.int64), train_idx.astype(np.int64)
    return None, train_idx.astype(np.int64)


def background_read(version: ModelVersion, train_rows: np.ndarray, options: ExplainOptions) -> pd.DataFrame:
    """Read the seeded background sample of a version's training rows (its features only)."""
    spec = TrainingSpec.from_dict(version.spec)
    chosen = select_background(pd.DataFrame(index=train_rows), size=options.background_size, seed=options.seed).index
    return dataset_rows(version.dataset_version, np.asarray(chosen, dtype=np.int64), list(spec.features))


def training_background(version: ModelVersion, options: ExplainOptions) -> pd.DataFrame:
    """Return a version's background sample of training rows, kept per process (a copy each time).

    Local explanations need it on every request; finding it means reading the target column
    for the split and every row group of the training data.
    """
    def compute() -> pd.DataFrame:
        _, train_rows = source_rows(version, "test_split")
        return background_read(version, train_rows, options)

    key = (version.dataset_version.sha256, json.dumps(version.spec, sort_keys=True), options.background_size,
           options.seed)
    return BACKGROUNDS.get(key, compute).copy()

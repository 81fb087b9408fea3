"""Explain models without a fast exact explainer (mlp, linear_svm) by sampling permutations.

The permutation explainer plays one player per *original* feature: it explains
``pipeline.predict_proba(rows)[:, 1]`` as a function of the raw features, categories handed to
shap as integer codes. Masking a one-hot column on its own would ask the model about applicants
with two categories at once, or none; masking the whole feature cannot. It also keeps efficiency
exact per feature, which summing independently masked one-hot columns would not.

Antithetic permutations telescope, so base value plus values reproduce the output exactly even
though the values themselves are estimates. Each row is seeded from the report seed and the
row's own values, so a row gets the same explanation whichever batch, chunk or worker explains
it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import shap
from sklearn.pipeline import Pipeline

from riskmodels.ml.explain.base import (
    OUTPUT_PROBABILITY,
    ExplainerFingerprint,
    ModelExplainer,
    matrix_sha256,
)
from riskmodels.ml.persistence import environment_versions
from riskmodels.ml.pipelines import TrainingSpec, prepare_features

__all__ = ["FeaturePermutationExplainer", "permutation_row_seed"]


def permutation_row_seed(seed: int, row: Sequence[Any]) -> int:
    """Return the permutation seed for one row: a hash of the report seed and the row's values.

    Floats are written in hex so the seed does not depend on how a library prints numbers.
    """
    parts = [str(seed)]
    for value in row:
        if isinstance(value, float | np.floating):
            parts.append("nan" if math.isnan(value) else float(value).hex())
        elif value is None or value is pd.NA:
            parts.append("nan")
        else:
            parts.append(f"{type(value).__name__}:{value}")
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class FeaturePermutationExplainer(ModelExplainer):
    """Estimate SHAP values per original feature with shap's permutation explainer."""

    kind = "permutation"

    def __init__(
        self,
        pipeline: Pipeline,
        spec: TrainingSpec,
        *,
        background: pd.DataFrame,
        seed: int,
        permutations: int,
    ) -> None:
        super().__init__(pipeline, spec)
        self.column_features = self.features
        self.seed = seed
        self.permutations = permutations
        prepared = prepare_features(background, spec)
        # Codes follow first appearance in the background, so the background's code matrix (and
        # its hash) depends only on the background; unseen categories of explained rows get
        # codes after these, per call.
        self._codebooks: dict[str, list[Any]] = {
            name: list(pd.unique(prepared[name].dropna())) for name in spec.categorical
        }
        self.background = self.encode(prepared, self._codebooks)
        # The base value is the model's mean over the background, computed once here: shap's
        # per-row estimate of it comes from batches whose size varies by row, and a neural
        # network's last bits depend on the batch size (BLAS blocking).
        self.base_value = float(np.mean(self.model_function(self._codebooks)(self.background)))
        self.fingerprint = ExplainerFingerprint(
            algorithm=spec.algorithm,
            explainer="shap.PermutationExplainer",
            feature_perturbation="interventional",
            output_space=OUTPUT_PROBABILITY,
            input_space="original_features",
            exact=False,
            background_sha256=matrix_sha256(
                self.background, json.dumps(self._codebooks, default=str, sort_keys=True)
            ),
            background_size=len(self.background),
            seed=seed,
            permutations=permutations,
            adapter=None,
            versions=environment_versions(),
        )

    @property
    def max_evals(self) -> int:
        """Return shap's evaluation budget per row: ``permutations`` forward-backward passes."""
        return self.permutations * (2 * len(self.features) + 1)

    def codebooks_for(self, prepared: pd.DataFrame) -> dict[str, list[Any]]:
        """Return the background codebooks extended with categories first seen in ``prepared``."""
        out = {}
        for name, known in self._codebooks.items():
            seen = set(known)
            extra = [v for v in pd.unique(prepared[name].dropna()) if v not in seen]
            out[name] = known + extra
        return out

    def encode(self, prepared: pd.DataFrame, codebooks: dict[str, list[Any]]) -> npt.NDArray[np.float64]:
        """Return prepared rows as a float matrix: numbers as they are, categories as codes."""
        out = np.empty((len(prepared), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            column = prepared[name]
            if name in codebooks:
                index = {value: code for code, value in enumerate(codebooks[name])}
                out[:, j] = [np.nan if pd.isna(v) else index[v] for v in column]
            else:
                out[:, j] = column.to_numpy(dtype=np.float64)
        return out

    def model_function(self, codebooks: dict[str, list[Any]]) -> Callable[[npt.NDArray[np.float64]], Any]:
        """Return f(code matrix) = the pipeline's probability of default for the decoded rows."""
        lookups = {
            name: np.array([*values, np.nan], dtype=object) for name, values in codebooks.items()
        }

        def f(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            columns: dict[str, Any] = {}
            for j, name in enumerate(self.features):
                if name in lookups:
                    codes = matrix[:, j]
                    missing = len(lookups[name]) - 1
                    columns[name] = lookups[name][np.where(np.isnan(codes), missing, codes).astype(np.intp)]
                else:
                    columns[name] = matrix[:, j]
            frame = pd.DataFrame(columns, columns=list(self.features))
            return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)

        return f

    def explain_columns(
        self, rows: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64]]:
        prepared = prepare_features(rows, self.spec)
        codebooks = self.codebooks_for(prepared)
        matrix = self.encode(prepared, codebooks)
        f = self.model_function(codebooks)
        masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        values = np.empty_like(matrix)
        # shap seeds numpy's global generator; keep the caller's state as it was.
        state = np.random.get_state()
        try:
            for i, row in enumerate(prepared.itertuples(index=False, name=None)):
                explainer = shap.PermutationExplainer(f, masker, seed=permutation_row_seed(self.seed, row))
                values[i] = explainer(matrix[i : i + 1], max_evals=self.max_evals, silent=True).values[0]
        finally:
            np.random.set_state(state)
        # One row at a time for the same reason as the base value: the output of a row must
        # not depend on which other rows share its batch.
        output = np.array([f(matrix[i : i + 1])[0] for i in range(len(matrix))], dtype=np.float64)
        return values, self.base_value, output

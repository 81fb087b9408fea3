"""The fitted preprocess step of a pipeline as plain array operations, for scoring a few rows fast.

``ColumnTransformer.transform`` on one row costs milliseconds of validation, joblib dispatch
and pandas indexing around microseconds of arithmetic; a scoring request pays it on every
call. :class:`RowEncoder` reads the fitted parameters through the estimators' public attributes
(``statistics_``, ``mean_``, ``scale_``, ``categories_``) and applies the same operations in the
same order, so its matrix is bit-for-bit the pipeline's (a test holds it to that on every
algorithm, with missing values and unseen categories). No library offers this for a fitted
scikit-learn pipeline; where the pipeline holds anything it does not know (infrequent category
grouping, another step), :meth:`RowEncoder.from_pipeline` returns None and callers use the
pipeline itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from riskmodels.ml.pipelines import TrainingSpec

__all__ = ["RowEncoder"]


@dataclass(frozen=True)
class _Numeric:
    name: str
    fill: float
    mean: float | None
    scale: float | None


@dataclass(frozen=True)
class _Categorical:
    name: str
    fill: Any
    codes: dict[Any, int]
    width: int  # 1 for an ordinal code, the number of categories for one-hot
    unknown: float | None  # the ordinal code of an unseen category; None for one-hot (all zeros)


def _steps(transformer: Any) -> list[Any]:
    return list(transformer.named_steps.values()) if isinstance(transformer, Pipeline) else [transformer]


@dataclass(frozen=True)
class RowEncoder:
    """Encode raw rows into the matrix the pipeline's model sees, without the pipeline's machinery."""

    numeric: tuple[_Numeric, ...]
    categorical: tuple[_Categorical, ...]
    width: int

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, spec: TrainingSpec) -> RowEncoder | None:
        """Return the encoder of a pipeline built by ``build_pipeline``, or None if it holds anything else."""
        preprocess = pipeline.named_steps.get("preprocess")
        numeric: list[_Numeric] = []
        categorical: list[_Categorical] = []
        for name, transformer, columns in getattr(preprocess, "transformers_", ()):
            if name == "remainder" or len(columns) == 0:
                continue
            steps = _steps(transformer)
            if name == "num" and isinstance(steps[0], SimpleImputer) and len(steps) <= 2:
                scaler = steps[1] if len(steps) == 2 else None
                if scaler is not None and not (isinstance(scaler, StandardScaler) and scaler.with_mean
                                               and scaler.with_std):
                    return None
                for j, column in enumerate(columns):
                    fill = float(steps[0].statistics_[j])
                    numeric.append(_Numeric(column, 0.0 if np.isnan(fill) else fill,
                                            float(scaler.mean_[j]) if scaler is not None else None,
                                            float(scaler.scale_[j]) if scaler is not None else None))
            elif name == "cat" and len(steps) == 2 and isinstance(steps[0], SimpleImputer):
                encoder = steps[1]
                infrequent = getattr(encoder, "infrequent_categories_", None)
                if infrequent is not None and any(c is not None for c in infrequent):
                    return None
                if isinstance(encoder, OrdinalEncoder) and encoder.handle_unknown == "use_encoded_value":
                    width, unknown = 1, float(encoder.unknown_value)
                elif isinstance(encoder, OneHotEncoder) and encoder.handle_unknown == "ignore" and encoder.drop is None:
                    width, unknown = 0, None
                else:
                    return None
                for j, column in enumerate(columns):
                    categories = encoder.categories_[j].tolist()
                    categorical.append(_Categorical(column, steps[0].statistics_[j],
                                                    {c: i for i, c in enumerate(categories)},
                                                    width or len(categories), unknown))
            else:
                return None
        if tuple(c.name for c in numeric) != spec.numeric or tuple(c.name for c in categorical) != \
                spec.categorical_in_order:
            return None
        return cls(tuple(numeric), tuple(categorical), len(numeric) + sum(c.width for c in categorical))

    def encode(self, rows: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return raw ``rows`` as the float64 matrix ``pipeline[:-1].transform(prepare_features(rows))`` gives."""
        out = np.zeros((len(rows), self.width), dtype=np.float64)
        for j, feature in enumerate(self.numeric):
            values = pd.to_numeric(rows[feature.name]).to_numpy(dtype=np.float64, na_value=np.nan)
            column = np.where(np.isnan(values), feature.fill, values)
            if feature.mean is not None:
                column = column - feature.mean
                column /= feature.scale
            out[:, j] = column
        position = len(self.numeric)
        for feature in self.categorical:
            values = rows[feature.name].to_numpy(dtype=object)
            missing = pd.isna(values)
            for i, value in enumerate(values):
                code = feature.codes.get(feature.fill if missing[i] else value)
                if feature.unknown is not None:
                    out[i, position] = feature.unknown if code is None else code
                elif code is not None:
                    out[i, position + code] = 1.0
            position += feature.width
        return out

    def unseen(self, rows: pd.DataFrame) -> list[list[str]]:
        """Return, per row, the categorical features whose (non-missing) value the encoder never saw."""
        out: list[list[str]] = [[] for _ in range(len(rows))]
        for feature in self.categorical:
            for i, value in enumerate(rows[feature.name].to_numpy(dtype=object)):
                if not pd.isna(value) and value not in feature.codes:
                    out[i].append(feature.name)
        return out

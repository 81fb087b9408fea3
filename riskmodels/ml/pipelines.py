"""Describe, validate and build the scikit-learn pipelines the service trains.

A :class:`TrainingSpec` is the complete, JSON-serialisable recipe for one model version: which
algorithm, which columns, which hyperparameters and which seed. Constructing one validates
everything that can be checked without data; :func:`validate_against_schema` checks the rest
against a dataset's column types, roles and class counts. :func:`build_pipeline` turns a spec into
an unfitted :class:`~sklearn.pipeline.Pipeline` of the fixed shape::

    Pipeline([("preprocess", ColumnTransformer([("num", ...), ("cat", ...)])), ("model", estimator)])

The explanation code relies on that shape (see :func:`feature_names_map`), so keep it.

Pipelines are fitted on, and must be scored with, frames passed through :func:`prepare_features`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import LinearSVC

__all__ = [
    "ALGORITHMS",
    "MIN_ROWS_PER_CLASS",
    "SPLITS",
    "SEARCH_METHODS",
    "SEARCH_SCORING",
    "SearchSpec",
    "SpecError",
    "TrainingSpec",
    "build_pipeline",
    "default_features",
    "describe_pipeline",
    "feature_names_map",
    "hyperparameter_schema",
    "infer_categorical",
    "prepare_features",
    "validate_against_schema",
    "validate_hyperparameters",
    "validate_target_counts",
]

ALGORITHMS = ("logistic_regression", "random_forest", "gradient_boosting", "mlp", "linear_svm")
SPLITS = ("stratified", "out_of_time")
SEARCH_METHODS = ("grid", "random")
SEARCH_SCORING = "roc_auc"
SEARCH_DISTRIBUTIONS = ("uniform", "loguniform", "randint")

# Fewer rows than this in either class make AUC, KS and calibration estimates too noisy to
# support a governance decision, and stratified splitting/cross-validation fragile.
MIN_ROWS_PER_CLASS = 10
MAX_SEARCH_CANDIDATES = 200

# Column roles as recorded by dataset ingestion. Only ROLE_FEATURE columns are used by default.
ROLE_FEATURE = "feature"
ROLE_TARGET = "target"
ROLE_PROTECTED = "protected"
ROLE_IDENTIFIER = "identifier"
ROLE_EXCLUDED = "excluded"

_SCALED_ALGORITHMS = frozenset({"logistic_regression", "mlp", "linear_svm"})
_TREE_ALGORITHMS = frozenset({"random_forest", "gradient_boosting"})
# HistGradientBoosting accepts at most max_bins (255) categories per categorical feature.
_HGB_MAX_CATEGORIES = 255


class SpecError(ValueError):
    """Report an invalid training spec, naming the offending field.

    ``field`` is a dotted path into the spec (``"features"``, ``"hyperparameters.max_depth"``,
    ``"search.param_grid.C"``) so an API can attach the message to the right input.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------------------------
# Hyperparameters


@dataclass(frozen=True)
class _Param:
    type: str  # "int" | "float" | "choice" | "int_list"
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False  # None is accepted and means "no limit"
    max_length: int | None = None  # for int_list

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "default": _jsonable(self.default)}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        else:
            out["min"] = self.min
            out["max"] = self.max
        if self.nullable:
            out["nullable"] = True
        if self.max_length is not None:
            out["max_length"] = self.max_length
        return out


# Defaults are scikit-learn's except where a comment says otherwise.
_SCHEMA: dict[str, dict[str, _Param]] = {
    "logistic_regression": {
        "C": _Param("float", 1.0, min=1e-6, max=1e6),
        # penalty=None means unpenalised; scikit-learn >= 1.8 expresses that as C=inf.
        "penalty": _Param("choice", "l2", choices=("l2", None)),
        # 100 iterations often stop short of convergence on one-hot encoded credit data.
        "max_iter": _Param("int", 1000, min=10, max=100_000),
        "class_weight": _Param("choice", None, choices=(None, "balanced")),
    },
    "random_forest": {
        "n_estimators": _Param("int", 100, min=1, max=2000),
        # Bounded by default: unbounded trees with one-row leaves memorise the training set
        # (train AUC near 1) and make exact SHAP reports of them slow. None stays available.
        "max_depth": _Param("int", 8, min=1, max=100, nullable=True),
        "min_samples_leaf": _Param("int", 20, min=1, max=10_000),
        "max_features": _Param("choice", "sqrt", choices=("sqrt", "log2", None)),
        "class_weight": _Param("choice", None, choices=(None, "balanced", "balanced_subsample")),
    },
    "gradient_boosting": {
        # Bounded (never None) and shallow by default: tree depth drives the cost of exact
        # TreeSHAP explanations, and shallow boosted trees are easier to review.
        "max_depth": _Param("int", 3, min=1, max=12),
        "learning_rate": _Param("float", 0.1, min=1e-4, max=1.0),
        "max_iter": _Param("int", 100, min=1, max=5000),
        "max_leaf_nodes": _Param("int", 31, min=2, max=4096),
        "min_samples_leaf": _Param("int", 20, min=1, max=10_000),
        "l2_regularization": _Param("float", 0.0, min=0.0, max=1e6),
    },
    "mlp": {
        "hidden_layer_sizes": _Param("int_list", (100,), min=1, max=1024, max_length=5),
        "alpha": _Param("float", 1e-4, min=0.0, max=1e3),
        "learning_rate_init": _Param("float", 1e-3, min=1e-6, max=1.0),
        "max_iter": _Param("int", 200, min=1, max=10_000),
    },
    "linear_svm": {
        "C": _Param("float", 1.0, min=1e-6, max=1e6),
        "calibration_method": _Param("choice", "sigmoid", choices=("sigmoid", "isotonic")),
        "calibration_cv": _Param("int", 5, min=2, max=20),
        "max_iter": _Param("int", 1000, min=100, max=100_000),
    },
}


def hyperparameter_schema() -> dict[str, dict[str, dict[str, Any]]]:
    """Return, per algorithm, each accepted hyperparameter's type, default and allowed range.

    Ranges are inclusive. ``int_list`` values are lists of ints each within ``min``..``max``.
    """
    return {
        algorithm: {name: param.describe() for name, param in params.items()}
        for algorithm, params in _SCHEMA.items()
    }


def _unknown_algorithm(algorithm: object) -> str:
    return f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_value(field: str, param: _Param, value: Any) -> Any:
    """Return ``value`` normalised for ``param`` or raise SpecError describing the allowed range."""
    if value is None and param.nullable:
        return None
    if param.type == "choice":
        # Compare with type too: True == 1 must not select a choice by accident.
        for choice in param.choices or ():
            if type(value) is type(choice) and value == choice:
                return value
        allowed = ", ".join(repr(c) for c in param.choices or ())
        raise SpecError(field, f"must be one of {allowed}; got {value!r}")
    if param.type == "int":
        # bool is a subclass of int and a string "3" is not a number: both are refused so that
        # what is stored in the version record is exactly what was fitted.
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise SpecError(field, f"{_range_text(param)}; got {value!r} ({_type_name(value)})")
        value = int(value)
    elif param.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise SpecError(field, f"{_range_text(param)}; got {value!r} ({_type_name(value)})")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(field, f"{_range_text(param)}; got {value!r}")
    elif param.type == "int_list":
        if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
            raise SpecError(
                field,
                f"must be a non-empty list of at most {param.max_length} integers; got {value!r}",
            )
        if param.max_length is not None and len(value) > param.max_length:
            raise SpecError(field, f"must have at most {param.max_length} entries; got {len(value)}")
        item = _Param("int", None, min=param.min, max=param.max)
        return tuple(_check_value(f"{field}[{i}]", item, v) for i, v in enumerate(value))
    else:  # pragma: no cover - the schema is static
        raise AssertionError(param.type)
    if (param.min is not None and value < param.min) or (
        param.max is not None and value > param.max
    ):
        raise SpecError(field, f"{_range_text(param)}; got {value!r}")
    return value


def _range_text(param: _Param) -> str:
    kind = "an integer" if param.type in ("int", "int_list") else "a number"
    text = f"must be {kind} between {param.min:g} and {param.max:g}"
    if param.nullable:
        text += " or null"
    return text


def validate_hyperparameters(
    algorithm: str, params: Mapping[str, Any], *, field: str = "hyperparameters"
) -> dict[str, Any]:
    """Check ``params`` against ``algorithm``'s whitelist and return them with defaults filled.

    Raises SpecError for an unknown algorithm, an unknown parameter, a value of the wrong type
    (bool is not an int; "3" is not an int) or a value out of range. ``int_list`` values are
    returned as tuples.
    """
    if algorithm not in _SCHEMA:
        raise SpecError("algorithm", _unknown_algorithm(algorithm))
    if not isinstance(params, Mapping):
        raise SpecError(field, f"must be a mapping of parameter names to values; got {_type_name(params)}")
    schema = _SCHEMA[algorithm]
    unknown = sorted(str(k) for k in params if k not in schema)
    if unknown:
        raise SpecError(
            f"{field}.{unknown[0]}",
            f"unknown hyperparameter for {algorithm}; allowed: {', '.join(schema)}",
        )
    out: dict[str, Any] = {}
    for name, param in schema.items():
        if name in params:
            out[name] = _check_value(f"{field}.{name}", param, params[name])
        else:
            out[name] = param.default
    return out


# --------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class SearchSpec:
    """Describe an optional hyperparameter search, scored by cross-validated ROC AUC.

    ``param_grid`` (method ``"grid"``) maps hyperparameter names to lists of candidate values.
    ``param_distributions`` (method ``"random"``) maps names to lists of candidates or to
    ``{"distribution": "uniform" | "loguniform" | "randint", "low": ..., "high": ...}``
    (bounds inclusive). Candidates are validated against the algorithm's schema when the
    enclosing :class:`TrainingSpec` is built.
    """

    method: str
    param_grid: Mapping[str, Any] = field(default_factory=dict)
    param_distributions: Mapping[str, Any] = field(default_factory=dict)
    n_iter: int = 10
    cv: int = 5

    @property
    def scoring(self) -> str:
        return SEARCH_SCORING

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict that :meth:`from_dict` turns back into this spec."""
        return {
            "method": self.method,
            "param_grid": _plain(self.param_grid),
            "param_distributions": _plain(self.param_distributions),
            "n_iter": self.n_iter,
            "cv": self.cv,
            "scoring": SEARCH_SCORING,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpec:
        """Build a SearchSpec from a mapping, refusing unknown keys."""
        if not isinstance(data, Mapping):
            raise SpecError("search", f"must be an object; got {_type_name(data)}")
        data = dict(data)
        scoring = data.pop("scoring", SEARCH_SCORING)
        if scoring != SEARCH_SCORING:
            raise SpecError("search.scoring", f"only {SEARCH_SCORING!r} is supported; got {scoring!r}")
        _refuse_unknown_keys("search", data, {f.name for f in dataclasses.fields(cls)})
        if "method" not in data:
            raise SpecError("search.method", "is required")
        return cls(**data)

    def validated(self, algorithm: str) -> SearchSpec:
        """Return a copy with every candidate checked against ``algorithm``'s schema."""
        if self.method not in SEARCH_METHODS:
            raise SpecError(
                "search.method", f"must be one of {', '.join(SEARCH_METHODS)}; got {self.method!r}"
            )
        _check_int("search.cv", self.cv, 2, 20)
        _check_int("search.n_iter", self.n_iter, 1, MAX_SEARCH_CANDIDATES)
        schema = _SCHEMA[algorithm]
        if self.method == "grid":
            if self.param_distributions:
                raise SpecError("search.param_distributions", "only applies to method 'random'")
            space = self._validated_grid(schema)
            n_candidates = math.prod(len(v) for v in space.values())
            if n_candidates > MAX_SEARCH_CANDIDATES:
                raise SpecError(
                    "search.param_grid",
                    f"has {n_candidates} combinations; at most {MAX_SEARCH_CANDIDATES} are allowed",
                )
            return dataclasses.replace(
                self, param_grid=MappingProxyType(space), param_distributions=MappingProxyType({})
            )
        if self.param_grid:
            raise SpecError("search.param_grid", "only applies to method 'grid'")
        dists = self._validated_distributions(schema)
        return dataclasses.replace(
            self, param_distributions=MappingProxyType(dists), param_grid=MappingProxyType({})
        )

    def _validated_grid(self, schema: Mapping[str, _Param]) -> dict[str, tuple[Any, ...]]:
        if not isinstance(self.param_grid, Mapping) or not self.param_grid:
            raise SpecError("search.param_grid", "must map at least one hyperparameter to a list of values")
        space: dict[str, tuple[Any, ...]] = {}
        for name, values in self.param_grid.items():
            where = f"search.param_grid.{name}"
            space[name] = _validated_candidates(where, name, schema, values)
        return space

    def _validated_distributions(self, schema: Mapping[str, _Param]) -> dict[str, Any]:
        if not isinstance(self.param_distributions, Mapping) or not self.param_distributions:
            raise SpecError(
                "search.param_distributions",
                "must map at least one hyperparameter to a list of values or a distribution",
            )
        out: dict[str, Any] = {}
        for name, spec in self.param_distributions.items():
            where = f"search.param_distributions.{name}"
            if isinstance(spec, Mapping):
                out[name] = _validated_distribution(where, name, schema, spec)
            else:
                out[name] = _validated_candidates(where, name, schema, spec)
        return out


def _validated_candidates(
    where: str, name: str, schema: Mapping[str, _Param], values: Any
) -> tuple[Any, ...]:
    if name not in schema:
        raise SpecError(where, f"unknown hyperparameter; allowed: {', '.join(schema)}")
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence) or not values:
        raise SpecError(where, "must be a non-empty list of candidate values")
    return tuple(_check_value(f"{where}[{i}]", schema[name], v) for i, v in enumerate(values))


def _validated_distribution(
    where: str, name: str, schema: Mapping[str, _Param], spec: Mapping[str, Any]
) -> dict[str, Any]:
    if name not in schema:
        raise SpecError(where, f"unknown hyperparameter; allowed: {', '.join(schema)}")
    _refuse_unknown_keys(where, spec, {"distribution", "low", "high"})
    kind = spec.get("distribution")
    param = schema[name]
    expected = {"uniform": "float", "loguniform": "float", "randint": "int"}
    if kind not in expected:
        raise SpecError(
            f"{where}.distribution",
            f"must be one of {', '.join(SEARCH_DISTRIBUTIONS)}; got {kind!r}",
        )
    if param.type != expected[kind]:
        raise SpecError(f"{where}.distribution", f"{kind!r} does not fit a {param.type} hyperparameter")
    low = _check_value(f"{where}.low", dataclasses.replace(param, nullable=False), spec.get("low"))
    high = _check_value(f"{where}.high", dataclasses.replace(param, nullable=False), spec.get("high"))
    if not low < high:
        raise SpecError(where, f"low ({low!r}) must be less than high ({high!r})")
    if kind == "loguniform" and low <= 0:
        raise SpecError(f"{where}.low", "must be positive for a loguniform distribution")
    return {"distribution": kind, "low": low, "high": high}


@dataclass(frozen=True)
class TrainingSpec:
    """Describe everything needed to reproduce one fitted model.

    Construction validates the spec on its own (algorithm, hyperparameters with defaults
    filled, split settings, search space); :func:`validate_against_schema` checks it against a
    dataset. Invalid specs raise :class:`SpecError`.
    """

    algorithm: str
    target: str
    positive_class: object
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    test_size: float = 0.25
    split: str = "stratified"
    date_column: str | None = None
    cutoff: str | None = None
    search: SearchSpec | None = None

    def __post_init__(self) -> None:
        # Frozen, so normalised values are written with object.__setattr__; after this point the
        # spec is immutable and always valid.
        set_ = object.__setattr__
        if isinstance(self.positive_class, float) and self.positive_class.is_integer():
            set_(self, "positive_class", int(self.positive_class))  # a 0.0/1.0 target read as floats
        if self.algorithm not in ALGORITHMS:
            raise SpecError("algorithm", _unknown_algorithm(self.algorithm))
        if not isinstance(self.target, str) or not self.target:
            raise SpecError("target", "must be a column name")
        if isinstance(self.positive_class, float) or not isinstance(self.positive_class, str | int | bool):
            raise SpecError(
                "positive_class",
                f"must be a string, integer or boolean label; got {self.positive_class!r}",
            )
        set_(self, "features", _names_tuple("features", self.features))
        if not self.features:
            raise SpecError("features", "at least one feature is required")
        if self.target in self.features:
            raise SpecError("features", f"the target {self.target!r} cannot also be a feature")
        set_(self, "categorical", _names_tuple("categorical", self.categorical))
        stray = [c for c in self.categorical if c not in self.features]
        if stray:
            raise SpecError("categorical", f"not among the features: {', '.join(stray)}")
        params = validate_hyperparameters(self.algorithm, self.hyperparameters)
        set_(self, "hyperparameters", MappingProxyType(params))
        _check_int("seed", self.seed, 0, 2**32 - 1)
        if isinstance(self.test_size, bool) or not isinstance(self.test_size, int | float):
            raise SpecError("test_size", f"must be a number between 0.05 and 0.5; got {self.test_size!r}")
        if not 0.05 <= self.test_size <= 0.5:
            raise SpecError("test_size", f"must be between 0.05 and 0.5; got {self.test_size!r}")
        set_(self, "test_size", float(self.test_size))
        self._validate_split()
        if self.search is not None:
            if not isinstance(self.search, SearchSpec):
                raise SpecError("search", f"must be a SearchSpec; got {_type_name(self.search)}")
            set_(self, "search", self.search.validated(self.algorithm))

    def _validate_split(self) -> None:
        if self.split not in SPLITS:
            raise SpecError("split", f"must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if self.split == "stratified":
            for name in ("date_column", "cutoff"):
                if getattr(self, name) is not None:
                    raise SpecError(name, "only applies to split 'out_of_time'")
            return
        if not isinstance(self.date_column, str) or not self.date_column:
            raise SpecError("date_column", "is required for an out-of-time split")
        if self.date_column in self.features:
            raise SpecError("date_column", "the split date cannot also be a feature")
        if self.date_column == self.target:
            raise SpecError("date_column", "cannot be the target")
        if not isinstance(self.cutoff, str) or not self.cutoff:
            raise SpecError("cutoff", "an ISO 8601 date is required for an out-of-time split")
        try:
            dt.datetime.fromisoformat(self.cutoff)
        except ValueError:
            raise SpecError(
                "cutoff", f"must be an ISO 8601 date such as 2024-01-01; got {self.cutoff!r}"
            ) from None

    @property
    def numeric(self) -> tuple[str, ...]:
        """Return the features not declared categorical, in feature order."""
        return tuple(f for f in self.features if f not in self.categorical)

    @property
    def categorical_in_order(self) -> tuple[str, ...]:
        """Return the categorical features in feature order (the order the encoder sees)."""
        return tuple(f for f in self.features if f in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict that :meth:`from_dict` turns back into this spec."""
        return {
            "algorithm": self.algorithm,
            "target": self.target,
            "positive_class": self.positive_class,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "hyperparameters": _plain(self.hyperparameters),
            "seed": self.seed,
            "test_size": self.test_size,
            "split": self.split,
            "date_column": self.date_column,
            "cutoff": self.cutoff,
            "search": None if self.search is None else self.search.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        """Build and validate a spec from a mapping such as a parsed API request."""
        if not isinstance(data, Mapping):
            raise SpecError("spec", f"must be an object; got {_type_name(data)}")
        _refuse_unknown_keys("spec", data, {f.name for f in dataclasses.fields(cls)})
        for required in ("algorithm", "target", "positive_class", "features"):
            if required not in data:
                raise SpecError(required, "is required")
        kwargs = dict(data)
        if kwargs.get("search") is not None:
            kwargs["search"] = SearchSpec.from_dict(kwargs["search"])
        if kwargs.get("hyperparameters") is None:
            kwargs["hyperparameters"] = {}
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    """Convert mappings and tuples (as stored in specs) to JSON-native dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _names_tuple(field: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise SpecError(field, "must be a list of column names")
    out = tuple(names)
    bad = [n for n in out if not isinstance(n, str) or not n]
    if bad:
        raise SpecError(field, f"column names must be non-empty strings; got {bad[0]!r}")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise SpecError(field, f"listed more than once: {', '.join(dupes)}")
    return out


def _check_int(field: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(field, f"must be an integer between {low} and {high}; got {value!r}")


def _refuse_unknown_keys(field: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise SpecError(f"{field}.{unknown[0]}" if field != "spec" else unknown[0], "unknown key")


# --------------------------------------------------------------------------------------------
# Dataset checks


def _dtype_kind(dtype: object) -> str:
    """Classify a pandas or Arrow dtype (or its string spelling) as categorical/numeric/temporal."""
    name = str(dtype).strip().lower()
    if name.startswith(("dictionary", "category")) or name in {
        "object", "str", "string", "large_string", "utf8", "large_utf8", "bool", "boolean",
    } or name.startswith(("string[", "str[")):
        return "categorical"
    if name.startswith(("timestamp", "datetime", "date", "time", "duration", "timedelta", "period")):
        return "temporal"
    if name.startswith(("int", "uint", "float", "double", "halffloat", "decimal")):
        return "numeric"
    return "unknown"


def infer_categorical(dtypes: Mapping[str, object]) -> tuple[str, ...]:
    """Return the columns whose type is string, boolean or dictionary/category, in order.

    Accepts pandas dtypes, Arrow types or their string spellings (``"string"``,
    ``"large_string"``, ``"bool"``, ``"dictionary<values=string, ...>"``, ``"category"``).
    """
    return tuple(name for name, dtype in dtypes.items() if _dtype_kind(dtype) == "categorical")


def default_features(columns: Iterable[str], roles: Mapping[str, str]) -> tuple[str, ...]:
    """Return the columns whose role is ``"feature"``, in dataset order.

    Protected attributes, identifiers, the target and excluded columns are left out, so a model
    only uses them when someone asks for them explicitly.
    """
    return tuple(c for c in columns if roles.get(c) == ROLE_FEATURE)


def validate_target_counts(counts: Mapping[Any, int], positive_class: object) -> None:
    """Raise SpecError unless the target is binary, contains ``positive_class`` and both
    classes have at least :data:`MIN_ROWS_PER_CLASS` rows."""
    present = {k: int(v) for k, v in counts.items() if int(v) > 0}
    described = ", ".join(f"{k}={v}" for k, v in present.items())
    if len(present) < 2:
        raise SpecError("target", f"has a single class ({described or 'no rows'}); two are needed")
    if len(present) > 2:
        raise SpecError("target", f"must be binary; found {len(present)} classes ({described})")
    if positive_class not in present:
        raise SpecError("positive_class", f"{positive_class!r} is not a value of the target ({described})")
    if min(present.values()) < MIN_ROWS_PER_CLASS:
        raise SpecError(
            "target",
            f"too few rows per class ({described}); each class needs at least {MIN_ROWS_PER_CLASS}",
        )


def validate_against_schema(
    spec: TrainingSpec,
    columns: Mapping[str, str],
    roles: Mapping[str, str],
    target_counts: Mapping[Any, int] | None,
    *,
    allow_protected: bool = False,
    allow_excluded: bool = False,
) -> None:
    """Check that ``spec`` can be trained on a dataset with these column types, roles and counts.

    ``columns`` maps column name to dtype (pandas or Arrow spelling), ``roles`` maps column name
    to its role (``feature``, ``target``, ``protected``, ``identifier``, ``excluded``).
    Protected attributes and excluded columns are refused as features unless explicitly allowed
    (a fair-lending reviewer must opt in); identifiers and target-role columns are always
    refused because they leak or memorise the outcome.
    """
    if spec.target not in columns:
        raise SpecError("target", f"column {spec.target!r} is not in the dataset")
    missing = [f for f in spec.features if f not in columns]
    if missing:
        raise SpecError("features", f"not in the dataset: {', '.join(missing)}")
    if spec.split == "out_of_time" and spec.date_column not in columns:
        raise SpecError("date_column", f"column {spec.date_column!r} is not in the dataset")

    def used_with_role(role: str) -> list[str]:
        return [f for f in spec.features if roles.get(f) == role]

    if (found := used_with_role(ROLE_IDENTIFIER)):
        raise SpecError("features", f"identifier columns cannot be features: {', '.join(found)}")
    if (found := used_with_role(ROLE_TARGET)):
        raise SpecError("features", f"target columns cannot be features: {', '.join(found)}")
    if (found := used_with_role(ROLE_PROTECTED)) and not allow_protected:
        raise SpecError(
            "features",
            f"protected attributes used as features: {', '.join(found)}; "
            "this needs an explicit exception",
        )
    if (found := used_with_role(ROLE_EXCLUDED)) and not allow_excluded:
        raise SpecError("features", f"excluded columns used as features: {', '.join(found)}")

    for name in spec.features:
        kind = _dtype_kind(columns[name])
        if kind == "temporal":
            raise SpecError("features", f"{name!r} has type {columns[name]} which cannot be a feature")
        if kind == "categorical" and name not in spec.categorical:
            raise SpecError(
                "categorical",
                f"{name!r} has type {columns[name]} and must be declared categorical",
            )
    if target_counts is not None:
        validate_target_counts(target_counts, spec.positive_class)


# --------------------------------------------------------------------------------------------
# Pipelines


def prepare_features(frame: pd.DataFrame, spec: TrainingSpec) -> pd.DataFrame:
    """Return the spec's feature columns in the form the pipeline is fitted and scored on.

    Categorical columns become object columns with ``np.nan`` for missing values (scikit-learn's
    imputers cannot compare ``pd.NA``); other columns become float64. Apply this before both
    ``fit`` and ``predict_proba`` so training and scoring see identical encodings.
    """
    missing = [f for f in spec.features if f not in frame.columns]
    if missing:
        raise SpecError("features", f"not in the data: {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name in spec.features:
        column = frame[name]
        if name in spec.categorical:
            # The Series keeps object dtype (pandas would otherwise infer its string dtype).
            out[name] = pd.Series(_category_objects(column), index=frame.index, dtype=object, copy=False)
        else:
            try:
                out[name] = pd.to_numeric(column).to_numpy(dtype=np.float64, na_value=np.nan)
            except (ValueError, TypeError):
                raise SpecError(
                    "categorical",
                    f"{name!r} is not numeric and must be declared categorical",
                ) from None
    return pd.DataFrame(out, index=frame.index, columns=list(spec.features), copy=False)


def _category_objects(column: pd.Series) -> npt.NDArray[np.object_]:
    """Return a categorical column as Python objects, missing values as ``np.nan``.

    Each distinct value becomes one Python object that every row holding it shares: cheaper than
    converting row by row, and the encoders' hashing then hits cached hashes.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):  # read as a Parquet dictionary: coded already
        codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
    else:
        codes, uniques = pd.factorize(column)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = np.asarray(uniques, dtype=object)
    table[-1] = np.nan  # code -1 (missing) picks the last entry
    return table[codes]


def _estimator(spec: TrainingSpec) -> BaseEstimator:
    hp = spec.hyperparameters
    seed = spec.seed
    if spec.algorithm == "logistic_regression":
        return LogisticRegression(
            C=math.inf if hp["penalty"] is None else hp["C"],
            max_iter=hp["max_iter"],
            class_weight=hp["class_weight"],
            random_state=seed,
        )
    if spec.algorithm == "random_forest":
        return RandomForestClassifier(
            n_estimators=hp["n_estimators"],
            max_depth=hp["max_depth"],
            min_samples_leaf=hp["min_samples_leaf"],
            max_features=hp["max_features"],
            class_weight=hp["class_weight"],
            random_state=seed,
        )
    if spec.algorithm == "gradient_boosting":
        n_numeric = len(spec.numeric)
        n_categorical = len(spec.categorical)
        return HistGradientBoostingClassifier(
            max_depth=hp["max_depth"],
            learning_rate=hp["learning_rate"],
            max_iter=hp["max_iter"],
            max_leaf_nodes=hp["max_leaf_nodes"],
            min_samples_leaf=hp["min_samples_leaf"],
            l2_regularization=hp["l2_regularization"],
            # The ordinal-encoded columns follow the numeric ones in the preprocess output.
            categorical_features=(
                list(range(n_numeric, n_numeric + n_categorical)) if n_categorical else None
            ),
            # 'auto' would switch early stopping on above 10,000 rows, silently holding out data
            # and making max_iter a ceiling rather than the recorded number of iterations.
            early_stopping=False,
            random_state=seed,
        )
    if spec.algorithm == "mlp":
        return MLPClassifier(
            hidden_layer_sizes=tuple(hp["hidden_layer_sizes"]),
            alpha=hp["alpha"],
            learning_rate_init=hp["learning_rate_init"],
            max_iter=hp["max_iter"],
            random_state=seed,
        )
    if spec.algorithm == "linear_svm":
        # LinearSVC has no probabilities; calibration on internal folds provides PDs. An int cv
        # means unshuffled StratifiedKFold, which is deterministic without a random_state.
        return CalibratedClassifierCV(
            LinearSVC(C=hp["C"], max_iter=hp["max_iter"], random_state=seed),
            method=hp["calibration_method"],
            cv=hp["calibration_cv"],
        )
    raise SpecError("algorithm", f"unknown algorithm {spec.algorithm!r}")  # pragma: no cover


def build_pipeline(spec: TrainingSpec) -> Pipeline:
    """Return the unfitted preprocessing + model pipeline described by ``spec``.

    Numeric features are median-imputed (and standardised for the linear and neural models);
    categorical features are mode-imputed and one-hot encoded, or ordinal encoded for trees.
    The preprocess step outputs a dense float64 array, which the explainers need.
    """
    scaled = spec.algorithm in _SCALED_ALGORITHMS
    # keep_empty_features keeps one output column per input even if a column is all-missing in
    # training, so output positions (HGB categorical indices, feature_names_map) stay fixed.
    num_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    ]
    if scaled:
        num_steps.append(("scale", StandardScaler()))
    if spec.algorithm in _TREE_ALGORITHMS:
        encoder: Any = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            max_categories=_HGB_MAX_CATEGORIES if spec.algorithm == "gradient_boosting" else None,
        )
    else:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    cat_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
        ("encode", encoder),
    ]
    preprocess = ColumnTransformer(
        [
            ("num", Pipeline(num_steps), list(spec.numeric)),
            ("cat", Pipeline(cat_steps), list(spec.categorical_in_order)),
        ],
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=True,
    )
    return Pipeline([("preprocess", preprocess), ("model", _estimator(spec))])


def _changed_params(estimator: BaseEstimator) -> dict[str, Any]:
    """Return the estimator's parameters that differ from its constructor's defaults, by name."""
    defaults = {name: p.default for name, p in inspect.signature(type(estimator).__init__).parameters.items()}
    changed = {}
    for name, value in sorted(estimator.get_params(deep=False).items()):
        default = defaults.get(name, inspect.Parameter.empty)
        if _holds_estimator(value):
            # Steps, transformers, a wrapped model: never a default, and repr would format them.
            changed[name] = value
            continue
        both_nan = all(isinstance(v, float) and math.isnan(v) for v in (value, default))
        if repr(value) != repr(default) and not both_nan:
            changed[name] = value
    return changed


def _holds_estimator(value: Any) -> bool:
    if isinstance(value, BaseEstimator):
        return True
    return isinstance(value, list | tuple) and any(_holds_estimator(item) for item in value)


def _describe_value(value: Any, indent: int) -> str:
    if isinstance(value, BaseEstimator):
        return describe_pipeline(value, indent)
    if isinstance(value, list) and value and all(
            isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], BaseEstimator | str) for item in value):
        # A Pipeline's steps or a ColumnTransformer's transformers: one per line.
        pad = " " * (indent + 4)
        items = [f"{pad}({item[0]!r}, {_describe_value(item[1], indent + 4)}"
                 + "".join(f", {extra!r}" for extra in item[2:]) + ")," for item in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    return repr(value)


def describe_pipeline(estimator: BaseEstimator, indent: int = 0) -> str:
    """Return an estimator as text: class names and the parameters that differ from the defaults.

    What scikit-learn's ``repr`` shows, nested steps one per line, but never cut short (its
    repr elides the middle of anything over 700 characters, such as a long column list) and
    without its pretty-printer, which inspects every estimator's signature again for each
    attempt at a line width.
    """
    params = ", ".join(f"{name}={_describe_value(value, indent)}" for name, value in _changed_params(estimator).items())
    return f"{type(estimator).__name__}({params})"


def feature_names_map(fitted_pipeline: Pipeline) -> list[str]:
    """Return, for each column the model sees, the original feature it was encoded from.

    One-hot encoding turns one categorical feature into several columns; summing per-column
    attributions (e.g. SHAP values) over this map gives per-feature attributions.
    """
    preprocess: ColumnTransformer = fitted_pipeline.named_steps["preprocess"]
    names: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder" or isinstance(transformer, str) or len(columns) == 0:
            continue
        last = transformer[-1] if isinstance(transformer, Pipeline) else transformer
        if isinstance(last, OneHotEncoder):
            widths = [len(categories) for categories in last.categories_]
        else:
            widths = [1] * len(columns)
        for column, width in zip(columns, widths, strict=True):
            names.extend([column] * width)
    expected = len(preprocess.get_feature_names_out())
    if len(names) != expected:
        # Would happen if someone added drop= or infrequent categories to the encoder.
        raise RuntimeError(
            f"feature map has {len(names)} entries but the preprocess step outputs {expected} columns"
        )
    return names


def known_categories(fitted_pipeline: Pipeline) -> dict[str, list[Any]]:
    """Return, per categorical feature, the categories the fitted encoder saw in training.

    A value outside them is scored as the encoder handles unknowns (all-zero one-hot columns,
    or the trees' unknown code), which the caller may want to flag.
    """
    preprocess: ColumnTransformer = fitted_pipeline.named_steps["preprocess"]
    out: dict[str, list[Any]] = {}
    for name, transformer, columns in preprocess.transformers_:
        # With no categorical columns scikit-learn leaves the "cat" step unfitted.
        if name != "cat" or isinstance(transformer, str) or len(columns) == 0:
            continue
        encoder = transformer[-1] if isinstance(transformer, Pipeline) else transformer
        for column, categories in zip(columns, encoder.categories_, strict=True):
            out[column] = [c for c in categories.tolist() if not (isinstance(c, float) and math.isnan(c))]
    return out

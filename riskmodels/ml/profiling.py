"""Profile a Parquet dataset for data quality, one column at a time.

The profile is what a validator reads before a model is trained on the data:
missing values, cardinality, distributions, duplicate rows, the target's
balance and any column that predicts the target suspiciously well (leakage).

Memory stays bounded by reading one column at a time; columns are profiled
on a small thread pool because Parquet decoding, Arrow kernels and numpy
sorts all release the GIL. Everything returned is JSON-ready: only str, int,
float, bool, None, list and dict, and never NaN or infinity.

The profile::

    n_rows, n_columns
    columns: {name: {dtype, role, missing, missing_fraction, distinct, constant,
                     numeric:  min, max, mean, std (n - 1), q1, median, q3, outliers_iqr,
                     temporal: min, max (ISO 8601),
                     discrete: top [{value, count}] (text, booleans),
                     univariate_auc (feature and protected columns, when there is a binary target),
                     unique_per_row (text columns with a different value in every row)}}
    duplicate_rows, constant_columns
    target: {column, classes {class_key(value): count}, positive_class, positive_rate} or None
    leakage: [{column, score, message}], warnings: [str]

Missing means null, or NaN in a float column. Distinct values exclude missing.
Quantiles interpolate linearly, as numpy and pandas do by default.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["LEAKAGE_AUC", "POSITIVE_LABELS", "class_key", "positive_class", "profile_parquet"]

# A single column that ranks defaulters above non-defaulters this reliably is
# almost always derived from the outcome (a collections flag, a write-off date).
LEAKAGE_AUC = 0.98
HIGH_MISSING_FRACTION = 0.5
MIN_MINORITY_RATE = 0.05
TOP_VALUES = 5
POSITIVE_LABELS = frozenset({"bad", "default", "defaulted", "1", "yes", "true", "y"})
# Roles whose columns may feed a model and so are checked for leakage.
# Identifier and excluded columns never reach a model: they are skipped.
LEAKAGE_ROLES = frozenset({"feature", "protected"})
# When scoring a category by its target rate, categories rarer than this are
# pooled: a category seen once has a rate of exactly 0 or 1, which would make
# any high-cardinality column look like a perfect predictor.
MIN_CATEGORY_ROWS = 10

_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = 0x9E3779B97F4A7C15
_NULL_CODE = np.uint64(0xA5A5_5A5A_DEAD_BEEF)


def positive_class(value_counts: Mapping[Any, int]) -> Any:
    """Return which of a binary target's two values is the positive (default) class.

    {0, 1} and {False, True} give 1 / True. Otherwise a value that reads, case
    insensitively, as one of POSITIVE_LABELS ("bad", "default", "yes", ...)
    wins. Otherwise the minority class is positive; on a tie, the value that
    sorts last as text.
    """
    values = list(value_counts)
    if len(values) != 2:
        raise ValueError(f"a binary target has exactly 2 values, got {len(values)}")
    if all(_is_number(v) and v in (0, 1) for v in values) and values[0] != values[1]:
        return next(v for v in values if v == 1)
    named = [v for v in values if str(v).strip().lower() in POSITIVE_LABELS]
    if len(named) == 1:
        return named[0]
    by_text = sorted(values, key=str, reverse=True)
    return min(by_text, key=lambda v: value_counts[v])


def profile_parquet(
    path: str | Path, *, roles: Mapping[str, str] | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Return the data-quality profile of the Parquet file at ``path``.

    ``roles`` maps column names to roles (default "feature"); the column with
    role "target", if any, is profiled as the label and every feature and
    protected column is scored against it for leakage.
    """
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    n_rows = parquet.metadata.num_rows
    roles = {f.name: (roles or {}).get(f.name, "feature") for f in schema}
    target = next((name for name, role in roles.items() if role == "target"), None)
    hashes = _RowHashes(n_rows)
    warnings: list[str] = []

    target_section: dict[str, Any] | None = None
    labels: np.ndarray | None = None
    if target is not None:
        target_section, labels = _target(parquet.read(columns=[target]).column(0), target, n_rows)
        if labels is None:
            warnings.append(f"The target {target!r} is not binary, so leakage was not checked.")

    def run(index: int) -> tuple[dict[str, Any], float | None]:
        return _profile_column(Path(path), schema, index, roles[schema.field(index).name], n_rows, labels, hashes)

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="profile") as pool:
        results = list(pool.map(run, range(len(schema))))

    columns: dict[str, Any] = {}
    leakage: list[dict[str, Any]] = []
    for f, (stats, score) in zip(schema, results):
        columns[f.name] = stats
        if score is not None and score >= LEAKAGE_AUC and roles[f.name] in LEAKAGE_ROLES:
            leakage.append(
                {
                    "column": f.name,
                    "score": round(score, 4),
                    "message": (
                        f"Column {f.name!r} alone separates the target almost perfectly (AUC {score:.3f}); "
                        "check that it is not recorded after, or derived from, the outcome."
                    ),
                }
            )
    constant = [name for name, stats in columns.items() if stats["constant"]]
    duplicates = hashes.duplicates()

    for name, stats in columns.items():
        if stats["missing_fraction"] > HIGH_MISSING_FRACTION:
            warnings.append(f"Column {name!r} is {stats['missing_fraction']:.0%} missing.")
        if stats["constant"]:
            what = "entirely missing" if stats["distinct"] == 0 else "constant (a single value)"
            warnings.append(f"Column {name!r} is {what} and carries no information.")
        if stats.get("unique_per_row") and roles[name] in LEAKAGE_ROLES:
            warnings.append(
                f"Column {name!r} has a different value in every row; if it is an identifier, "
                "give it the role 'identifier'."
            )
    if duplicates:
        warnings.append(
            f"{duplicates} row{'s' if duplicates != 1 else ''} ({duplicates / n_rows:.1%}) "
            "exactly duplicate an earlier row."
        )
    warnings.extend(item["message"] for item in leakage)
    if target_section is not None and target_section["positive_rate"] is not None:
        rate = target_section["positive_rate"]
        if min(rate, 1 - rate) < MIN_MINORITY_RATE:
            if rate < 0.5:
                minority = f"the positive class {target_section['positive_class']!r}"
            else:
                minority = "the negative class"
            warnings.append(
                f"The classes are extremely imbalanced: {minority} is only {min(rate, 1 - rate):.1%} of rows."
            )

    return {
        "n_rows": n_rows,
        "n_columns": len(schema),
        "columns": columns,
        "duplicate_rows": duplicates,
        "constant_columns": constant,
        "target": target_section,
        "leakage": leakage,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------
# Target


def _target(column: pa.ChunkedArray, name: str, n_rows: int) -> tuple[dict[str, Any], np.ndarray | None]:
    counts = pc.value_counts(column.drop_null() if column.null_count else column)
    values = counts.field("values")
    plain = [_plain(v) for v in values.to_pylist()]
    value_counts = dict(zip(plain, counts.field("counts").to_pylist()))
    classes = {class_key(v): value_counts[v] for v in sorted(value_counts, key=class_key)}
    if len(value_counts) != 2:
        return {"column": name, "classes": classes, "positive_class": None, "positive_rate": None}, None
    positive = positive_class(value_counts)
    labels = pc.fill_null(pc.equal(column, values[plain.index(positive)]), False)
    return (
        {
            "column": name,
            "classes": classes,
            "positive_class": positive,
            "positive_rate": value_counts[positive] / n_rows,
        },
        labels.to_numpy(zero_copy_only=False).astype(bool, copy=False),
    )


# --------------------------------------------------------------------------
# Columns


def _profile_column(
    path: Path,
    schema: pa.Schema,
    index: int,
    role: str,
    n_rows: int,
    labels: np.ndarray | None,
    hashes: _RowHashes,
) -> tuple[dict[str, Any], float | None]:
    name = schema.field(index).name
    if role not in LEAKAGE_ROLES:
        labels = None  # the target trivially "predicts" itself; identifiers never reach a model
    data_type = schema_type = schema.field(index).type
    # Text comes back dictionary-encoded straight from Parquet's own
    # dictionary pages: no string copies, and the codes are what we need.
    text = _is_text(data_type)
    column = pq.ParquetFile(path, read_dictionary=[name] if text else None).read(columns=[name]).column(0)
    stats: dict[str, Any] = {"dtype": str(schema_type), "role": role}
    if _is_numeric(data_type) or _is_temporal(data_type):
        body, score, codes = _ordered_column(column, labels)
    elif pa.types.is_null(data_type):
        body, score, codes = {"missing": n_rows, "distinct": 0}, None, np.zeros(n_rows, dtype=np.uint64)
    else:
        body, score, codes = _categorical_column(column, labels)
    hashes.add(index, codes)
    del codes
    missing = body.pop("missing")
    stats["missing"] = missing
    stats["missing_fraction"] = missing / n_rows if n_rows else 0.0
    stats["distinct"] = body.pop("distinct")
    stats["constant"] = stats["distinct"] <= 1
    stats.update(body)
    if score is not None:
        stats["univariate_auc"] = round(score, 4)
    return stats, score


def _ordered_column(
    column: pa.ChunkedArray, labels: np.ndarray | None
) -> tuple[dict[str, Any], float | None, np.ndarray]:
    """Profile a numeric or temporal column from one sorted copy of its values."""
    data_type = column.type
    temporal = _is_temporal(data_type)
    if temporal:
        # Order-preserving integers: days, seconds, microseconds... since the epoch.
        as_numbers = column.cast(pa.int32() if data_type.bit_width == 32 else pa.int64())
    elif pa.types.is_integer(data_type) and not pa.types.is_uint64(data_type):
        as_numbers = column.cast(pa.int64())
    else:
        as_numbers = column.cast(pa.float64())
    values = np.asarray(as_numbers.fill_null(0).to_numpy())
    valid = None if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            valid = ~nan if valid is None else valid & ~nan
    present = values if valid is None else values[valid]
    ordered = np.sort(present)
    del present
    n_present = ordered.size
    body: dict[str, Any] = {
        "missing": int(values.size - n_present),
        "distinct": int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if n_present else 0,
    }
    if temporal:
        extremes = pc.min_max(column)
        body["min"] = _plain(extremes["min"].as_py())
        body["max"] = _plain(extremes["max"].as_py())
    elif n_present:
        body.update(_numeric_summary(ordered))
    else:
        body.update(dict.fromkeys(("min", "max", "mean", "std", "q1", "median", "q3", "outliers_iqr")))
    score = _ranked_auc(ordered, values, valid, labels)
    del ordered

    # Row-hash codes: the value's bits, with -0.0 folded onto 0.0 and every
    # missing value (null or NaN) onto one code.
    if values.dtype.kind == "f":
        codes = (values + 0.0).view(np.uint64)
    else:
        codes = values.astype(np.int64, copy=True).view(np.uint64)
    if valid is not None:
        codes[~valid] = _NULL_CODE
    return body, score, codes


def _numeric_summary(ordered: np.ndarray) -> dict[str, Any]:
    count = ordered.size
    q1, median, q3 = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
    spread = q3 - q1
    low = np.searchsorted(ordered, q1 - 1.5 * spread, side="left")
    high = count - np.searchsorted(ordered, q3 + 1.5 * spread, side="right")
    mean = float(np.sum(ordered, dtype=np.float64)) / count
    # Square in place rather than np.dot: the dot product goes to OpenBLAS,
    # whose idle threads spin and steal the cores the other columns need.
    deviations = ordered - mean
    np.square(deviations, out=deviations)
    variance = float(deviations.sum()) / (count - 1) if count > 1 else math.nan
    del deviations
    native = ordered.dtype.kind in "iu"
    return {
        "min": int(ordered[0]) if native else _finite(ordered[0]),
        "max": int(ordered[-1]) if native else _finite(ordered[-1]),
        "mean": _finite(mean),
        "std": _finite(math.sqrt(variance)) if count > 1 else None,
        "q1": _finite(q1),
        "median": _finite(median),
        "q3": _finite(q3),
        "outliers_iqr": int(low + high),
    }


def _quantile(ordered: np.ndarray, q: float) -> float:
    """Return the q-quantile of sorted values, interpolating linearly as numpy and pandas do."""
    position = q * (ordered.size - 1)
    below = math.floor(position)
    above = min(below + 1, ordered.size - 1)
    fraction = position - below
    low, high = float(ordered[below]), float(ordered[above])
    return low + (high - low) * fraction


def _ranked_auc(
    ordered: np.ndarray, values: np.ndarray, valid: np.ndarray | None, labels: np.ndarray | None
) -> float | None:
    """Return max(AUC, 1 - AUC) of the column as a score for the positive class.

    Missing values rank below every present value, so a column whose
    missingness gives the outcome away is caught too. Ties get mid-ranks
    (Mann-Whitney U), computed from the sorted values by binary search.
    """
    if labels is None:
        return None
    positives = int(np.count_nonzero(labels))
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    n_missing = labels.size - ordered.size
    if valid is None:
        positive_values = np.sort(values[labels])
        missing_positives = 0
    else:
        positive_values = np.sort(values[labels & valid])
        missing_positives = positives - positive_values.size
    below = np.searchsorted(ordered, positive_values, side="left")
    upto = np.searchsorted(ordered, positive_values, side="right")
    rank_sum = missing_positives * (n_missing + 1) / 2
    rank_sum += positive_values.size * (n_missing + 0.5) + float(below.sum() + upto.sum()) / 2
    auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return max(auc, 1.0 - auc)


def _categorical_column(
    column: pa.ChunkedArray, labels: np.ndarray | None
) -> tuple[dict[str, Any], float | None, np.ndarray]:
    """Profile a text, boolean or other discrete column through one dictionary encoding."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    encoded = column.unify_dictionaries()
    if encoded.num_chunks:
        dictionary = encoded.chunk(0).dictionary
        indices = pa.chunked_array([chunk.indices for chunk in encoded.chunks])
    else:
        dictionary = pa.array([], type=column.type.value_type)
        indices = pa.chunked_array([], type=pa.int32())
    n_categories = len(dictionary)
    # Missing values become one extra category at the end.
    codes = np.asarray(indices.fill_null(n_categories).to_numpy()).astype(np.int64)
    counts = np.bincount(codes, minlength=n_categories + 1)
    body: dict[str, Any] = {
        "missing": int(counts[n_categories]),
        "distinct": int(np.count_nonzero(counts[:n_categories])),
        "top": _top_values(dictionary, counts[:n_categories]),
    }
    readable = pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)
    if readable and 1 < body["distinct"] == codes.size - body["missing"]:
        body["unique_per_row"] = True
    score = None
    if labels is not None:
        positives = np.bincount(codes, weights=labels, minlength=n_categories + 1)
        score = _grouped_auc(positives, counts - positives)
    return body, score, codes.view(np.uint64)


def _top_values(dictionary: pa.Array, counts: np.ndarray) -> list[dict[str, Any]]:
    """Return up to TOP_VALUES most frequent values; ties go to the value seen first."""
    if counts.size == 0:
        return []
    if counts.size > TOP_VALUES:
        threshold = np.partition(counts, counts.size - TOP_VALUES)[counts.size - TOP_VALUES]
        candidates = np.flatnonzero(counts >= threshold)
    else:
        candidates = np.arange(counts.size)
    order = candidates[np.argsort(-counts[candidates], kind="stable")][:TOP_VALUES]
    values = dictionary.take(pa.array(order)).to_pylist()
    return [{"value": _plain(v), "count": int(counts[i])} for v, i in zip(values, order)]


def _grouped_auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """Return max(AUC, 1 - AUC) of scoring each row by its category's positive rate."""
    total_positive = positives.sum()
    total_negative = negatives.sum()
    if total_positive == 0 or total_negative == 0:
        return None
    sizes = positives + negatives
    rare = sizes < MIN_CATEGORY_ROWS
    if rare.any():
        positives = np.append(positives[~rare], positives[rare].sum())
        negatives = np.append(negatives[~rare], negatives[rare].sum())
        sizes = positives + negatives
    keep = sizes > 0
    positives, negatives, sizes = positives[keep], negatives[keep], sizes[keep]
    rates, group = np.unique(positives / sizes, return_inverse=True)
    positives = np.bincount(group, weights=positives, minlength=rates.size)
    negatives = np.bincount(group, weights=negatives, minlength=rates.size)
    negatives_below = np.cumsum(negatives) - negatives
    auc = float((positives * (negatives_below + negatives / 2)).sum() / (total_positive * total_negative))
    return max(auc, 1.0 - auc)


# --------------------------------------------------------------------------
# Duplicate rows


class _RowHashes:
    """Accumulate a 64-bit hash per row, one column at a time, in any column order.

    Each column contributes mix(code + salt(column)) by addition, which
    commutes, so worker threads can add columns as they finish. Two rows
    collide by chance with probability about 2**-64 per pair.
    """

    def __init__(self, n_rows: int) -> None:
        self._hashes = np.zeros(n_rows, dtype=np.uint64)
        self._lock = threading.Lock()

    def add(self, index: int, codes: np.ndarray) -> None:
        """Fold one column's uint64 codes (modified in place) into the row hashes."""
        # splitmix64's finaliser, in place with one scratch array.
        scratch = np.empty_like(codes)
        codes += np.uint64((_GOLDEN * (index + 1)) % (1 << 64))
        for shift, multiplier in ((30, _MIX_1), (27, _MIX_2), (31, None)):
            np.right_shift(codes, np.uint64(shift), out=scratch)
            codes ^= scratch
            if multiplier is not None:
                codes *= multiplier
        del scratch
        with self._lock:
            self._hashes += codes

    def duplicates(self) -> int:
        """Return how many rows repeat an earlier row exactly."""
        # Sort and compare neighbours: np.unique is many times slower on uint64.
        ordered = np.sort(self._hashes)
        return int(np.count_nonzero(ordered[1:] == ordered[:-1]))


# --------------------------------------------------------------------------
# Helpers


def _is_numeric(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)


def _is_text(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
    )


def _is_temporal(data_type: pa.DataType) -> bool:
    return pa.types.is_temporal(data_type)


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.integer, np.floating))


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """Return ``value`` as a JSON-ready scalar."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _finite(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def class_key(value: Any) -> str:
    """Return the key under which a target value appears in the profile's "classes".

    JSON object keys are strings, so a 0/1 target is counted under "0" and "1"
    while "positive_class" keeps the value itself (1): look classes up with
    ``classes[class_key(profile["target"]["positive_class"])]``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

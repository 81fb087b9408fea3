"""Build global SHAP reports, in chunks that separate workers can compute and one merge joins.

The flow a Celery chord follows, and :func:`explain_global` runs in one process::

    selection = select_rows(len(rows), max_rows=..., seed=...)         # which rows, recorded
    explainer = make_explainer(pipeline, spec, background=..., options=...)
    chunks = [explain_chunk(explainer, rows.iloc[selection.positions_between(a, b)], start=a, ...)
              for a, b in plan_chunks(selection.n_selected, chunk_size)]   # one task each
    merged = merge_chunks_to_parquet(chunks, selection=selection, sink=sink)  # one chunk held at a time

A chunk holds only its own rows' values, and every row's values are computed independently of
the other rows, so the merged report is bit-for-bit the single-process one (:func:`explain_global`
merges through the same :func:`merge_chunks_to_parquet`). Chunks and reports
travel as Parquet (zstd) with their fingerprint in the file's metadata (:mod:`.parquet`).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from riskmodels.ml.explain.base import ExplainerFingerprint, ExplainOptions, ExplanationError, ModelExplainer
from riskmodels.ml.explain.explainers import make_explainer
from riskmodels.ml.explain.parquet import ValuesWriter, read_values, row_id_array, write_values
from riskmodels.ml.pipelines import TrainingSpec

__all__ = [
    "ADDITIVITY_TOLERANCE",
    "STATUS_FAILED",
    "STATUS_OK",
    "ChunkResult",
    "FeatureImportance",
    "GlobalReport",
    "MergedReport",
    "RowSelection",
    "additivity_error",
    "chunk_rows_for",
    "explain_chunk",
    "explain_global",
    "merge_chunks_to_parquet",
    "plan_chunks",
    "select_rows",
]

STATUS_OK = "ok"
STATUS_FAILED = "failed"
# Exact explainers reproduce the model output up to floating-point rounding (about 1e-14 here);
# anything near 1e-6 means the explainer is not explaining the model that scores applicants.
# Permutation values are sampled, but antithetic permutations telescope, so their sum is exact
# too: the same bound is a sanity check on them.
ADDITIVITY_TOLERANCE = 1e-6
_ERROR_BLOCK_ROWS = 4_096


@dataclass(frozen=True)
class RowSelection:
    """Record which rows of a dataset a report explains and how they were chosen.

    ``positions`` are sorted row positions in the frame given to the report, or None for every
    row (``0 .. n_available - 1``, not held: a million-row report's selection costs nothing).
    ``method`` is ``"all"`` or ``"sample"`` (uniform without replacement, seeded by ``seed``).
    """

    positions: npt.NDArray[np.int64] | None
    n_available: int
    method: str
    seed: int | None

    @property
    def n_selected(self) -> int:
        """Return the number of rows selected."""
        return self.n_available if self.positions is None else len(self.positions)

    def positions_between(self, start: int, stop: int) -> npt.NDArray[np.int64]:
        """Return the positions of selected rows ``start:stop`` (a chunk's rows)."""
        if self.positions is None:
            return np.arange(start, min(stop, self.n_available), dtype=np.int64)
        return self.positions[start:stop]

    def to_dict(self, *, positions: bool = True) -> dict[str, Any]:
        """Return a JSON-serialisable description; positions are listed only for samples, if asked."""
        out: dict[str, Any] = {
            "method": self.method,
            "n_available": self.n_available,
            "n_selected": self.n_selected,
            "seed": self.seed,
        }
        if positions and self.method != "all":
            out["positions"] = [int(p) for p in self.positions_between(0, self.n_selected)]
        return out


def select_rows(n_rows: int, *, max_rows: int | None, seed: int) -> RowSelection:
    """Return all ``n_rows`` positions, or a seeded sample of ``max_rows`` when there are more."""
    if n_rows < 1:
        raise ExplanationError("there are no rows to explain")
    if max_rows is None or n_rows <= max_rows:
        return RowSelection(None, n_rows, "all", None)
    rng = np.random.default_rng([seed, 0])
    positions = np.sort(rng.choice(n_rows, size=max_rows, replace=False)).astype(np.int64)
    return RowSelection(positions, n_rows, "sample", seed)


def plan_chunks(n_rows: int, chunk_size: int) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` covering ``range(n_rows)`` in chunks of ``chunk_size``."""
    if n_rows < 0 or chunk_size < 1:
        raise ExplanationError(f"cannot plan {n_rows} rows in chunks of {chunk_size}")
    return [(start, min(start + chunk_size, n_rows)) for start in range(0, n_rows, chunk_size)]


def chunk_rows_for(n_rows: int, *, max_rows: int, parallelism: int = 1, min_rows: int = 1) -> int:
    """Return the rows per chunk for a report of ``n_rows`` rows.

    At most ``max_rows`` (a worker's memory), and as many chunks as a multiple of
    ``parallelism`` (the worker processes that share a report), so that a report smaller than
    ``parallelism`` full chunks still keeps every worker busy; but no chunk below ``min_rows``,
    where a task's fixed cost would outweigh what it shares.
    """
    if max_rows < 1 or parallelism < 1:
        raise ExplanationError(f"cannot plan chunks of at most {max_rows} rows over {parallelism} workers")
    if n_rows <= max_rows and parallelism == 1:
        return max_rows
    chunks = max(1, -(-n_rows // max_rows))
    chunks = -(-chunks // parallelism) * parallelism
    size = -(-n_rows // chunks) if n_rows else max_rows
    return min(max_rows, max(size, min(min_rows, max_rows)))


def additivity_error(values: npt.NDArray[np.float64], base: float, output: npt.NDArray[np.float64]) -> float:
    """Return max |base + sum of SHAP values - output| over the rows (inf if any is not finite).

    Each row is summed left to right from the base, so its error never depends on the other
    rows; blocks of rows keep the column-by-column passes in cache on million-row reports.
    """
    worst = 0.0
    for start in range(0, len(values), _ERROR_BLOCK_ROWS):
        block = values[start : start + _ERROR_BLOCK_ROWS]
        total = np.full(len(block), base, dtype=np.float64)
        for j in range(block.shape[1]):
            total += block[:, j]
        errors = np.abs(total - output[start : start + _ERROR_BLOCK_ROWS])
        if not np.all(np.isfinite(errors)):
            return float("inf")
        worst = max(worst, float(errors.max()))
    return worst


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class ChunkResult:
    """Hold the SHAP values of one chunk of a report: rows ``start:stop`` of the selection."""

    fingerprint: ExplainerFingerprint
    features: tuple[str, ...]
    start: int
    stop: int
    row_ids: npt.NDArray[Any]
    positions: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    base_value: float
    output: npt.NDArray[np.float64]
    seconds: float = 0.0

    def to_parquet_bytes(self) -> bytes:
        """Serialise the chunk (Parquet, zstd), e.g. to hand it from a worker to the merge."""
        meta = {
            "kind": "chunk",
            "fingerprint": self.fingerprint.to_dict(),
            "features": list(self.features),
            "start": self.start,
            "stop": self.stop,
            "base_value": self.base_value,
            "seconds": self.seconds,
        }
        return write_values(self.features, self.row_ids, self.positions, self.values, self.output, meta)

    @classmethod
    def from_parquet_bytes(cls, data: bytes) -> ChunkResult:
        """Read a chunk written by :meth:`to_parquet_bytes`."""
        meta, positions, shared = _read_values_file(data, "chunk")
        return cls(start=int(meta["start"]), stop=int(meta["stop"]), positions=positions, **shared)


def _read_values_file(
    source: Any, kind: str, rows: npt.NDArray[np.int64] | None = None
) -> tuple[dict[str, Any], npt.NDArray[np.int64], dict[str, Any]]:
    """Read a chunk's or a report's values file: its metadata, row positions and the fields both hold."""
    meta, ids, positions, output, values, features = read_values(source, rows)
    if meta.get("kind") != kind:
        other = "report" if kind == "chunk" else "chunk"
        raise ExplanationError(f"this file holds a {other}, not a {kind}")
    shared = {
        "fingerprint": ExplainerFingerprint.from_dict(meta["fingerprint"]),
        "features": tuple(features),
        "row_ids": ids,
        "values": values,
        "base_value": float(meta["base_value"]),
        "output": output,
        "seconds": float(meta["seconds"]),
    }
    return meta, positions, shared


def explain_chunk(
    explainer: ModelExplainer,
    rows: pd.DataFrame,
    *,
    start: int,
    positions: npt.NDArray[np.int64] | Sequence[int] | None = None,
    row_ids: Sequence[Any] | None = None,
) -> ChunkResult:
    """Explain one chunk: ``rows`` are the raw rows at selection positions ``start:start+len``.

    Only these rows are held in memory. ``positions`` are their positions in the source frame
    (default ``start, start+1, ...``) and ``row_ids`` their ids (default ``rows.index``).
    """
    started = time.perf_counter()
    n = len(rows)
    if n == 0:
        raise ExplanationError("a chunk needs at least one row")
    attributions = explainer.explain(rows)
    position_array = (
        np.arange(start, start + n, dtype=np.int64)
        if positions is None
        else np.asarray(positions, dtype=np.int64)
    )
    ids = row_id_array(rows.index.to_numpy() if row_ids is None else list(row_ids))
    if len(position_array) != n or len(ids) != n:
        raise ExplanationError("positions and row ids must have one entry per row")
    return ChunkResult(
        fingerprint=explainer.fingerprint,
        features=explainer.features,
        start=start,
        stop=start + n,
        row_ids=ids,
        positions=position_array,
        values=attributions.values,
        base_value=attributions.base_value,
        output=attributions.output,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class FeatureImportance:
    """Rank one original feature by its mean absolute SHAP value over the report's rows."""

    feature: str
    mean_abs: float
    mean: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as a JSON-serialisable dict."""
        return {"feature": self.feature, "mean_abs": _json_float(self.mean_abs),
                "mean": _json_float(self.mean), "rank": self.rank}


def _verdict(error: float, fingerprint: ExplainerFingerprint) -> tuple[str, str]:
    """Return a report's status and message for its additivity error."""
    kind = "exact" if fingerprint.exact else "sampled (permutation)"
    if not error <= ADDITIVITY_TOLERANCE:
        return STATUS_FAILED, (
            f"additivity check failed: base value + SHAP values differ from the model output "
            f"by up to {error:.3g} ({fingerprint.output_space}), above {ADDITIVITY_TOLERANCE:g}; "
            f"the {kind} explainer does not reproduce this model"
        )
    message = f"{kind} SHAP values; additivity error {error:.3g} ({fingerprint.output_space})"
    if not fingerprint.exact:
        message += f"; {fingerprint.permutations} permutations per row"
    return STATUS_OK, message


def _ranked(features: Sequence[str], mean_abs: npt.NDArray[np.float64],
            mean: npt.NDArray[np.float64]) -> list[FeatureImportance]:
    order = sorted(range(len(features)), key=lambda j: (-mean_abs[j], features[j]))
    return [FeatureImportance(features[j], float(mean_abs[j]), float(mean[j]), rank)
            for rank, j in enumerate(order, start=1)]


@dataclass(frozen=True)
class GlobalReport:
    """Hold per-row SHAP values per original feature for a set of rows, with their checks.

    ``values`` is ``(n_rows, n_features)`` float64 in the fingerprint's output space;
    ``base_value + values[i].sum()`` reproduces ``output[i]``. ``status`` is ``"failed"``
    (with ``message`` saying why) when that does not hold within
    :data:`ADDITIVITY_TOLERANCE`: such a report must not be presented as an explanation.
    """

    fingerprint: ExplainerFingerprint
    features: tuple[str, ...]
    selection: RowSelection
    row_ids: npt.NDArray[Any]
    values: npt.NDArray[np.float64]
    base_value: float
    output: npt.NDArray[np.float64]
    additivity_error: float
    status: str
    message: str
    seconds: float = 0.0

    @classmethod
    def build(
        cls,
        *,
        fingerprint: ExplainerFingerprint,
        features: tuple[str, ...],
        selection: RowSelection,
        row_ids: npt.NDArray[Any],
        values: npt.NDArray[np.float64],
        base_value: float,
        output: npt.NDArray[np.float64],
        seconds: float = 0.0,
    ) -> GlobalReport:
        """Return a report with its additivity error measured and its status decided."""
        error = additivity_error(values, base_value, output)
        status, message = _verdict(error, fingerprint)
        return cls(
            fingerprint=fingerprint,
            features=features,
            selection=selection,
            row_ids=row_ids,
            values=values,
            base_value=base_value,
            output=output,
            additivity_error=error,
            status=status,
            message=message,
            seconds=seconds,
        )

    @property
    def ok(self) -> bool:
        """Return whether the report passed its additivity check."""
        return self.status == STATUS_OK

    def importance(self) -> list[FeatureImportance]:
        """Return features ranked by mean |SHAP| (ties by name), with their signed mean."""
        mean_abs = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.features))
        mean = self.values.mean(axis=0) if len(self.values) else np.zeros(len(self.features))
        return _ranked(self.features, mean_abs, mean)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-safe summary: status, fingerprint, rows, base value and the ranking."""
        return {
            "status": self.status,
            "message": self.message,
            "fingerprint": self.fingerprint.to_dict(),
            "rows": self.selection.to_dict(),
            "n_rows": len(self.values),
            "features": list(self.features),
            "output_space": self.fingerprint.output_space,
            "base_value": _json_float(self.base_value),
            "additivity_error": _json_float(self.additivity_error),
            "additivity_tolerance": ADDITIVITY_TOLERANCE,
            "output": {
                "mean": _json_float(float(np.mean(self.output))) if len(self.output) else None,
                "min": _json_float(float(np.min(self.output))) if len(self.output) else None,
                "max": _json_float(float(np.max(self.output))) if len(self.output) else None,
            },
            "importance": [entry.to_dict() for entry in self.importance()],
            "seconds": round(self.seconds, 3),
        }

    def to_parquet_bytes(self) -> bytes:
        """Serialise the per-row values (Parquet, zstd) with the fingerprint in the metadata.

        Columns: ``__row_id__``, ``__position__`` (row position in the source frame),
        ``__output__`` and one float64 column of SHAP values per original feature.
        """
        meta = {
            "kind": "report",
            "fingerprint": self.fingerprint.to_dict(),
            "features": list(self.features),
            "selection": self.selection.to_dict(positions=False),
            "base_value": self.base_value,
            "seconds": self.seconds,
        }
        return write_values(
            self.features, self.row_ids, self.selection.positions_between(0, len(self.values)), self.values,
            self.output, meta,
        )

    @classmethod
    def from_parquet_bytes(cls, data: bytes) -> GlobalReport:
        """Read a report written by :meth:`to_parquet_bytes`, re-running its additivity check."""
        return cls.from_parquet(data)

    @classmethod
    def from_parquet(cls, source: Any, *, rows: npt.NDArray[np.int64] | None = None) -> GlobalReport:
        """Read a report's values file (bytes or a binary file), or only ``rows`` of it (sorted).

        With ``rows``, the result holds just those rows (checked for additivity in turn): a
        sample for plotting a report too large to hold.
        """
        meta, positions, shared = _read_values_file(source, "report", rows)
        selection_meta = meta["selection"]
        selection = RowSelection(
            positions, int(selection_meta["n_available"]), selection_meta["method"], selection_meta["seed"]
        )
        return cls.build(selection=selection, **shared)


def _check_next(first: ChunkResult, chunk: ChunkResult, expected: int) -> None:
    """Check that ``chunk`` comes from ``first``'s explainer and starts at row ``expected``."""
    if chunk.fingerprint != first.fingerprint or chunk.features != first.features:
        raise ExplanationError(f"chunk {chunk.start}:{chunk.stop} was computed by a different explainer or model")
    if chunk.base_value != first.base_value:
        raise ExplanationError(f"chunk {chunk.start}:{chunk.stop} has a different base value")
    if chunk.start != expected:
        problem = "missing" if chunk.start > expected else "overlapping"
        raise ExplanationError(f"rows {min(expected, chunk.start)}:{max(expected, chunk.start)} are {problem}")


def explain_global(
    pipeline: Pipeline,
    spec: TrainingSpec,
    rows: pd.DataFrame,
    *,
    options: ExplainOptions | None = None,
    background: pd.DataFrame | None = None,
    explainer: ModelExplainer | None = None,
) -> GlobalReport:
    """Explain up to ``options.max_rows`` of ``rows`` in one process, chunk by chunk.

    ``background`` (raw rows, ideally the training rows) defaults to a seeded sample of
    ``rows``; tree models do not use it. Pass a prebuilt ``explainer`` to reuse one.
    """
    options = options or ExplainOptions()
    selection = select_rows(len(rows), max_rows=options.max_rows, seed=options.seed)
    if explainer is None:
        explainer = make_explainer(
            pipeline, spec, background=rows if background is None else background, options=options
        )
    chunks = (
        explain_chunk(
            explainer,
            rows.iloc[selection.positions_between(start, stop)],
            start=start,
            positions=selection.positions_between(start, stop),
        )
        for start, stop in plan_chunks(selection.n_selected, options.chunk_size)
    )
    # The same merge the workers' chord runs, so one process and many give the same report.
    sink = io.BytesIO()
    merge_chunks_to_parquet(chunks, selection=selection, sink=sink)
    return GlobalReport.from_parquet_bytes(sink.getvalue())


@dataclass(frozen=True)
class MergedReport:
    """What :func:`merge_chunks_to_parquet` learned while writing a report: all but the values.

    Its importance ranking, additivity error, status and message are exactly those of the
    :class:`GlobalReport` read back from the file it wrote.
    """

    fingerprint: ExplainerFingerprint
    features: tuple[str, ...]
    selection: RowSelection
    base_value: float
    n_rows: int
    additivity_error: float
    status: str
    message: str
    ranking: tuple[FeatureImportance, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """Return whether the report passed its additivity check."""
        return self.status == STATUS_OK

    def importance(self) -> list[FeatureImportance]:
        """Return features ranked by mean |SHAP| (ties by name), with their signed mean."""
        return list(self.ranking)


def merge_chunks_to_parquet(chunks: Iterable[ChunkResult], *, selection: RowSelection, sink: Any) -> MergedReport:
    """Write chunks, given in row order, as one report's values file to ``sink``, one at a time.

    Only one chunk is held at a time, so a report of any length merges in bounded memory. Chunks must
    come from one explainer, start where the previous one stopped and match ``selection``'s
    positions. Column sums run row after row, as numpy's own column means do, so the
    importances equal those of the report read back, to the bit.
    """
    first: ChunkResult | None = None
    writer: ValuesWriter | None = None
    expected, error, seconds = 0, 0.0, 0.0
    abs_sums = sums = np.zeros(0)
    for chunk in chunks:
        if first is None:
            first, writer = chunk, ValuesWriter(sink, chunk.features)
            abs_sums, sums = np.zeros(len(chunk.features)), np.zeros(len(chunk.features))
        _check_next(first, chunk, expected)
        if chunk.stop > selection.n_selected or not np.array_equal(
                selection.positions_between(chunk.start, chunk.stop), chunk.positions):
            raise ExplanationError("the chunks' row positions differ from the selection's")
        assert writer is not None
        writer.write(row_id_array(chunk.row_ids), chunk.positions, chunk.values, chunk.output)
        abs_sums = np.add.reduce(np.vstack([abs_sums[None], np.abs(chunk.values)]), axis=0)
        sums = np.add.reduce(np.vstack([sums[None], chunk.values]), axis=0)
        error = max(error, additivity_error(chunk.values, chunk.base_value, chunk.output))
        expected, seconds = chunk.stop, seconds + chunk.seconds
    if first is None or writer is None:
        raise ExplanationError("there are no chunks to merge")
    if expected != selection.n_selected:
        raise ExplanationError(f"the chunks cover {expected} rows but the selection has {selection.n_selected}")
    status, message = _verdict(error, first.fingerprint)
    writer.close({
        "kind": "report",
        "fingerprint": first.fingerprint.to_dict(),
        "features": list(first.features),
        "selection": selection.to_dict(positions=False),
        "base_value": first.base_value,
        "seconds": seconds,
    })
    return MergedReport(
        fingerprint=first.fingerprint, features=first.features, selection=selection, base_value=first.base_value,
        n_rows=expected, additivity_error=error, status=status, message=message,
        ranking=tuple(_ranked(first.features, abs_sums / expected, sums / expected)), seconds=seconds,
    )

"""Store per-row SHAP values as Parquet, with the explainer fingerprint in the metadata.

Floats are zstd-compressed and byte-stream-split, without dictionaries.

Columns: ``__row_id__``, ``__position__`` (row position in the source frame), ``__output__``
and one float64 column of SHAP values per original feature, in report order. The file's
``riskmodels.explain`` metadata key holds a JSON object with the format version and whatever
the report or chunk needs to rebuild itself (fingerprint, features, base value, selection).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from riskmodels.ml.explain.base import ExplanationError
from riskmodels.ml.rowgroups import open_parquet, take_rows

__all__ = ["ValuesWriter", "read_values", "row_id_array", "write_values"]

_META_KEY = b"riskmodels.explain"
_FORMAT = 1
_ROW_ID = "__row_id__"
_POSITION = "__position__"
_OUTPUT = "__output__"
_RESERVED = (_ROW_ID, _POSITION, _OUTPUT)


def row_id_array(ids: Any) -> npt.NDArray[Any]:
    """Return row ids as int64 when they are all integers, else as strings (Parquet-friendly)."""
    array = np.asarray(ids)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "O" and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in array):
        return array.astype(np.int64)
    return np.array([str(v) for v in array], dtype=object)


class ValuesWriter:
    """Write SHAP values to a Parquet sink a block of rows at a time (a row group each).

    Only the block being written is held, so a report of any length can be written from its
    chunks. ``close(meta)`` stores ``meta`` as JSON in the file's key-value metadata, so what
    is only known at the end (e.g. the total seconds) can go in it.
    """

    def __init__(self, sink: Any, features: Sequence[str]) -> None:
        clash = sorted(set(features) & set(_RESERVED))
        if clash:
            raise ExplanationError(f"feature names reserved by the report format: {', '.join(clash)}")
        self.sink, self.features = sink, list(features)
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, row_ids: npt.NDArray[Any], positions: npt.NDArray[np.int64], values: npt.NDArray[np.float64],
              output: npt.NDArray[np.float64]) -> None:
        """Append rows: their ids, positions, SHAP values (one column per feature) and model output."""
        arrays = [pa.array(row_ids), pa.array(positions, type=pa.int64()), pa.array(output, type=pa.float64())]
        arrays += [pa.array(values[:, j], type=pa.float64()) for j in range(len(self.features))]
        table = pa.Table.from_arrays(arrays, names=[*_RESERVED, *self.features])
        if self._writer is None:
            # SHAP values are nearly all distinct: a dictionary would be built and thrown away
            # for every column. Byte-stream-split floats compress better with zstd and read
            # back faster.
            self._writer = pq.ParquetWriter(
                self.sink, table.schema, compression="zstd", use_dictionary=False,
                column_encoding={name: "BYTE_STREAM_SPLIT" for name in (_OUTPUT, *self.features)})
        elif table.schema != self._writer.schema:
            raise ExplanationError("row ids of one report must all be integers or all be text")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, meta: dict[str, Any]) -> None:
        """Store ``meta`` and finish the file (an empty report cannot be written)."""
        if self._writer is None:
            raise ExplanationError("a values file needs at least one row")
        self._writer.add_key_value_metadata({_META_KEY: json.dumps({"format": _FORMAT, **meta}).encode()})
        self._writer.close()


def write_values(
    features: Sequence[str],
    row_ids: npt.NDArray[Any],
    positions: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    output: npt.NDArray[np.float64],
    meta: dict[str, Any],
) -> bytes:
    """Return the values as Parquet bytes with ``meta`` stored as JSON in the metadata."""
    buffer = io.BytesIO()
    writer = ValuesWriter(buffer, features)
    writer.write(row_ids, positions, values, output)
    writer.close(meta)
    return buffer.getvalue()


def read_values(
    data: Any, rows: npt.NDArray[np.int64] | None = None
) -> tuple[dict[str, Any], Any, npt.NDArray[np.int64], Any, Any, list[str]]:
    """Return (meta, row ids, positions, output, values, features) read from Parquet.

    ``data`` is the file's bytes or a binary file. ``rows`` (sorted row numbers of the file)
    reads only those rows, a row group at a time, so a sample of a large file costs memory in
    proportion to the sample.
    """
    parquet = open_parquet(io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data)
    raw = (parquet.metadata.metadata or {}).get(_META_KEY)
    if raw is None:
        raise ExplanationError("not a SHAP values file: the report metadata is missing")
    meta = json.loads(raw)
    if meta.get("format") != _FORMAT:
        raise ExplanationError(f"unsupported SHAP values format {meta.get('format')!r}")
    features = list(meta["features"])
    if rows is None:
        table = parquet.read()
    else:
        try:
            table = take_rows(parquet, rows)
        except IndexError as exc:
            raise ExplanationError(f"{exc} of the values file") from None
    ids = table.column(_ROW_ID).to_numpy(zero_copy_only=False)
    positions = table.column(_POSITION).to_numpy().astype(np.int64)
    output = table.column(_OUTPUT).to_numpy().astype(np.float64)
    values = np.empty((table.num_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        values[:, j] = table.column(name).to_numpy()
    return meta, row_id_array(ids), positions, output, values, features

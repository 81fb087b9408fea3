"""Read chosen rows of a Parquet file in one front-to-back pass, a batch of rows at a time.

Memory follows the rows wanted and the batch, not the file: a row group is read only if it
holds a wanted row, and then a batch at a time through a buffered stream (``open_parquet``),
instead of whole (a row group of the ingest holds up to 262,144 rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["BATCH_ROWS", "open_parquet", "take_blocks", "take_rows"]

# Rows decoded at a time, and bytes read from the file at a time per column. Without a read
# buffer pyarrow reads each column's whole chunk of a row group before decoding any of it; the
# buffer is held once per column, so it is kept small. What a batched read still holds is a
# page of each column, read and decompressed (figures in bench/README.md, SHAP memory).
BATCH_ROWS = 4096
READ_BUFFER_BYTES = 1 << 16


def open_parquet(source: Any) -> pq.ParquetFile:
    """Open a Parquet file (a path or a binary file) for reading a batch at a time.

    A buffered stream and no pre-buffering: the reader holds about a page per column, not the
    row group's column chunks.
    """
    return pq.ParquetFile(source, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)


class _Batches:
    """Walk a file's batches forward, jumping over row groups that hold no wanted row."""

    def __init__(self, parquet: pq.ParquetFile, columns: list[str] | None, batch_rows: int) -> None:
        self.parquet, self.columns, self.batch_rows = parquet, columns, batch_rows
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        self.bounds = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.group = -1
        self.batches: Iterator[pa.RecordBatch] = iter(())
        self.start, self.batch = 0, None  # the current batch and its first file row

    def holding(self, row: int) -> tuple[int, pa.RecordBatch]:
        """Return (first file row, batch) of the batch holding ``row``; rows only go forward."""
        while self.batch is None or row >= self.start + self.batch.num_rows:
            if self.batch is not None and row < self.bounds[self.group + 1]:
                self.start += self.batch.num_rows
                self.batch = next(self.batches)
                continue
            self.group = int(np.searchsorted(self.bounds, row, side="right")) - 1
            self.batches = self.parquet.iter_batches(batch_size=self.batch_rows, row_groups=[self.group],
                                                     columns=self.columns)
            self.start, self.batch = int(self.bounds[self.group]), next(self.batches)
        return self.start, self.batch


def take_blocks(
    parquet: pq.ParquetFile,
    blocks: Iterable[npt.NDArray[np.int64]],
    columns: Sequence[str] | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.Table]:
    """Yield, for each block of file row numbers, those rows of the file as a table, in order.

    Each block is sorted, and each starts after the previous one ends: the file is read once,
    front to back. A run of consecutive rows comes as a slice of its batch (no copy); other
    rows are taken. A block's table holds only its own rows' batches, so memory follows the
    largest block, not the file. Raises IndexError for a row number outside the file.
    """
    n_rows = parquet.metadata.num_rows
    reader = _Batches(parquet, None if columns is None else list(columns), batch_rows)
    empty = parquet.schema_arrow.empty_table()
    schema = (empty if columns is None else empty.select(list(columns))).schema
    last = -1
    for block in blocks:
        if len(block) and (block[0] <= last or block[-1] >= n_rows or block[0] < 0):
            raise IndexError(f"rows outside 0..{n_rows - 1}, or not after row {last}, were asked for")
        pieces: list[pa.RecordBatch] = []
        i = 0
        while i < len(block):
            start, batch = reader.holding(int(block[i]))
            j = int(np.searchsorted(block, start + batch.num_rows, side="left"))
            first = int(block[i]) - start
            if int(block[j - 1]) - int(block[i]) == j - 1 - i:  # consecutive rows
                pieces.append(batch.slice(first, j - i))
            else:
                pieces.append(batch.take(pa.array(block[i:j] - start)))
            i = j
        if len(block):
            last = int(block[-1])
        yield pa.Table.from_batches(pieces, schema=schema)


def take_rows(parquet: pq.ParquetFile, rows: npt.NDArray[np.int64], columns: Sequence[str] | None = None) -> pa.Table:
    """Return ``rows`` (sorted file row numbers) of the file, reading only the row groups holding them.

    Raises IndexError if a row number is outside the file.
    """
    return next(take_blocks(parquet, [np.asarray(rows, dtype=np.int64)], columns))

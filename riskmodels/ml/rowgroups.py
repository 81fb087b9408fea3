"""Read chosen rows of a Parquet file one row group at a time, so memory follows the rows wanted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["take_by_row_group", "take_rows"]


def take_by_row_group(
    parquet: pq.ParquetFile, row_sets: Sequence[npt.NDArray[np.int64]], columns: Sequence[str] | None = None
) -> Iterator[list[pa.Table | None]]:
    """Yield, for each row group holding any wanted row, the rows of each set it holds.

    ``row_sets`` are sorted file row numbers. Each yield is a list with one entry per set: the
    taken rows as a table, or None when the group holds none of that set's rows. A row group is
    read only if some set wants a row of it, with only ``columns``. Row numbers past the end of
    the file are never yielded; callers check counts.
    """
    start = 0
    for group in range(parquet.num_row_groups):
        stop = start + parquet.metadata.row_group(group).num_rows
        wanted = [rows[np.searchsorted(rows, start):np.searchsorted(rows, stop)] - start for rows in row_sets]
        if any(len(w) for w in wanted):
            table = parquet.read_row_group(group, columns=None if columns is None else list(columns))
            # All of a group's rows: the table itself, not a copy (a whole dataset explained).
            yield [None if not len(w) else table if len(w) == table.num_rows else table.take(pa.array(w))
                   for w in wanted]
        start = stop


def take_rows(parquet: pq.ParquetFile, rows: npt.NDArray[np.int64], columns: Sequence[str] | None = None) -> pa.Table:
    """Return ``rows`` (sorted file row numbers) of the file, reading only the row groups holding them.

    Raises IndexError if a row number is outside the file.
    """
    n_rows = parquet.metadata.num_rows
    if len(rows) and (rows[0] < 0 or rows[-1] >= n_rows):
        raise IndexError(f"rows outside 0..{n_rows - 1} were asked for")
    pieces = [taken[0] for taken in take_by_row_group(parquet, [rows], columns)]
    if not pieces:
        return parquet.schema_arrow.empty_table() if columns is None else \
            parquet.schema_arrow.empty_table().select(list(columns))
    return pa.concat_tables(pieces)

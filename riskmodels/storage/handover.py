"""Hand-over files of chunked jobs: what a coordinating task writes once and each chunk task reads a slice of.

Two formats, both chosen so that a chunk task seeks to its own part and reads nothing else,
and so that no task's memory grows with the job's length:

- a **plan**: an ``.npy`` file of shape (2, n), int64, written a chunk at a time: the
  positions of the selected rows in their source, then their dataset row numbers;
- **staged rows**: an Arrow IPC file holding one record batch per chunk, copied from the
  dataset in one pass, a batch of rows at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from django.core.files.storage import default_storage

from riskmodels.ml.rowgroups import open_parquet, take_blocks
from riskmodels.models import DatasetVersion
from riskmodels.storage.files import save_stream


class HandoverError(ValueError):
    """A hand-over file is not what its reader expects, or cannot be written from what was asked."""


def plan_save(path: str, plan: list[tuple[int, int]], positions: Callable[[int, int], np.ndarray],
              rows: Callable[[int, int], np.ndarray]) -> str:
    """Store a plan (see the module docstring) for the chunks ``plan``; return the path used.

    ``positions(start, stop)`` and ``rows(start, stop)`` give those of selected rows
    ``start:stop``; the file is written a chunk at a time, so the writer never holds a whole
    index array.
    """
    def fill(handle: Any) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<i8")), "fortran_order": False,
                  "shape": (2, plan[-1][1])}
        np.lib.format.write_array_header_1_0(handle, header)
        for between in (positions, rows):
            for start, stop in plan:
                handle.write(np.ascontiguousarray(between(start, stop), dtype="<i8").data)

    return save_stream(path, fill)


def plan_slice(path: str, start: int, stop: int, *, rows: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Read (positions, dataset rows) ``start:stop`` of a plan, and nothing else.

    ``rows=False`` reads the positions only.
    """
    with default_storage.open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if (len(shape) != 2 or shape[0] != 2 or fortran or dtype != np.dtype("<i8")
                or not 0 <= start <= stop <= shape[1]):
            raise HandoverError(f"{path} is not this job's plan (shape {shape}, {dtype})")
        header, count, out = handle.tell(), stop - start, []
        for row in range(2 if rows else 1):
            handle.seek(header + (row * shape[1] + start) * 8)
            data = bytearray(count * 8)
            if handle.readinto(data) != len(data):
                raise HandoverError(f"{path} is shorter than its header says")
            out.append(np.frombuffer(data, dtype=np.int64))
        return out[0], out[1] if rows else None


def rows_stage(source: DatasetVersion, columns: list[str], blocks: Iterable[np.ndarray], path: str) -> str:
    """Copy each block of dataset rows (sorted, in order) into an Arrow file as one record batch.

    One pass over the dataset, holding one block's rows at a time. Written without fsync: a
    hand-over that a crash makes the job redo anyway (the reaper requeues it and the retry
    discards it).
    """
    def fill(handle: Any) -> None:
        with default_storage.open(source.storage_path, "rb") as data:
            writer: pa.ipc.RecordBatchFileWriter | None = None
            try:
                for table in take_blocks(open_parquet(data), blocks, columns):
                    batch = table.combine_chunks().to_batches()[0]
                    if writer is None:
                        writer = pa.ipc.new_file(handle, batch.schema)
                    writer.write_batch(batch)
            except IndexError:
                raise HandoverError(f"the dataset has {source.n_rows} rows; some of the rows asked for are "
                                    "not in it") from None
            if writer is None:
                raise HandoverError("there are no rows to stage")
            writer.close()

    return save_stream(path, fill, durable=False)


def staged_rows(path: str, index: int, rows: np.ndarray) -> pd.DataFrame:
    """Read chunk ``index``'s record batch of a staged-rows file; the index is ``rows`` (its dataset rows)."""
    with default_storage.open(path, "rb") as handle:
        batch = pa.ipc.open_file(handle).get_batch(index)
    if batch.num_rows != len(rows):
        raise HandoverError(f"chunk {index} holds {batch.num_rows} staged rows, its plan {len(rows)}")
    frame = batch.to_pandas()
    frame.index = pd.Index(rows, name="row_id")
    return frame

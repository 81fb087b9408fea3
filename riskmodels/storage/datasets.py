"""Reading stored dataset versions: whole columns into pandas, or chosen rows a batch at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from riskmodels.ml.rowgroups import open_parquet, take_rows
from riskmodels.models import DatasetVersion
from riskmodels.storage.files import verified_in_background


class RowsOutOfRange(ValueError):
    """Rows were asked for that the dataset version does not have."""


def dataset_frame(version: DatasetVersion, columns: list[str] | None = None,
                  categories: list[str] | None = None) -> pd.DataFrame:
    """Load a dataset version (or some of its columns) into pandas, verifying its hash meanwhile.

    Text columns named in ``categories`` come as pandas categoricals, straight from the
    Parquet dictionary pages, so no string is decoded per row and factorizing them is free.
    """
    with verified_in_background(version.storage_path, version.sha256), \
            default_storage.open(version.storage_path, "rb") as handle:
        dictionary = None
        if categories:
            schema = pq.read_schema(handle)
            wanted = set(categories)
            dictionary = [f.name for f in schema if f.name in wanted and
                          (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
            handle.seek(0)
        # One block per column: pandas would otherwise copy the columns into consolidated 2-D blocks.
        table = pq.read_table(handle, columns=columns, read_dictionary=dictionary or None)
        return table.to_pandas(split_blocks=True)


def dataset_rows(version: DatasetVersion, rows: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """Read only ``rows`` (sorted dataset row numbers), a batch at a time; the index is the row numbers."""
    with default_storage.open(version.storage_path, "rb") as handle:
        try:
            table = take_rows(open_parquet(handle), rows, columns)
        except IndexError:
            raise RowsOutOfRange(f"rows outside the dataset's {version.n_rows} rows were asked for") from None
    frame = table.to_pandas()
    frame.index = pd.Index(rows, name="row_id")
    return frame

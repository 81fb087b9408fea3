"""Storage infrastructure: hash-checked reads, atomic writes, dataset reads and chunked jobs' hand-over files."""

from riskmodels.storage.datasets import RowsOutOfRange, dataset_frame, dataset_rows
from riskmodels.storage.files import (
    HashingWriter,
    StoredFileCorrupt,
    delete_quietly,
    read_verified,
    save_bytes,
    save_stream,
    verified_in_background,
)
from riskmodels.storage.handover import HandoverError, plan_save, plan_slice, rows_stage, staged_rows

__all__ = [
    "HandoverError", "HashingWriter", "RowsOutOfRange", "StoredFileCorrupt", "dataset_frame", "dataset_rows",
    "delete_quietly", "plan_save", "plan_slice", "read_verified", "rows_stage", "save_bytes", "save_stream",
    "staged_rows", "verified_in_background",
]

"""Turn an uploaded CSV or Parquet file into a validated, deterministic Parquet dataset.

The service calls :func:`ingest` once per upload. It streams the source in
blocks, writes zstd-compressed Parquet beside the destination, validates the
schema and the roles, profiles the result one column at a time and only then
moves the file into place, so a failed upload never leaves a file behind.

Everything here is plain Python on top of pyarrow and numpy: no Django.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from riskmodels.ml.arrow_messages import CsvMessage, read_csv_message
from riskmodels.ml.profiling import profile_parquet

__all__ = [
    "ERROR_CODES",
    "ROLES",
    "ColumnSchema",
    "IngestError",
    "IngestResult",
    "detect_format",
    "ingest",
    "row_group_rows",
]

ROLES = ("feature", "target", "protected", "identifier", "excluded")

ERROR_CODES = (
    "empty_file",
    "not_tabular",
    "undecodable",
    "ragged_rows",
    "duplicate_columns",
    "empty_column_name",
    "unknown_column",
    "target_not_binary",
    "invalid_role",
    "too_few_columns",
    "too_large",
)

# Row groups are cut at a row count fixed by the number of columns, not at
# whatever block the reader happened to return, so the output bytes (and the
# dataset hash) depend only on the data. A row group is buffered whole before
# it is written, so its size is bounded in cells (about 8 Mi: 128 Ki rows of
# 36 columns, 256 Ki rows at most), which bounds memory for wide files too.
ROW_GROUP_CELLS = 1 << 23
MAX_ROW_GROUP_ROWS = 1 << 18
MIN_ROW_GROUP_ROWS = 1 << 10


def row_group_rows(n_columns: int) -> int:
    """Return the rows per Parquet row group for a dataset with ``n_columns`` columns."""
    rows = MAX_ROW_GROUP_ROWS
    while rows > MIN_ROW_GROUP_ROWS and rows * n_columns > ROW_GROUP_CELLS:
        rows //= 2
    return rows

# The same markers pandas.read_csv treats as missing, so the profile agrees
# with what an analyst sees when opening the file in pandas.
NULL_MARKERS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

_HEAD_BYTES = 1 << 20
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_RECORDS = 50
# Inside one block handed to read_csv, Arrow splits work into sub-blocks of
# this size and parses them on its thread pool.
_PARSE_BLOCK = 1 << 20
_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one); export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "a legacy Excel (.xls) workbook; export the sheet as CSV"),
    (b"\x1f\x8b", "a gzip archive; decompress it first"),
    (b"BZh", "a bzip2 archive; decompress it first"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive; decompress it first"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"ARROW1", "an Arrow IPC file; convert it to Parquet"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


class IngestError(ValueError):
    """Report input the service must reject; str(error) is a message for the uploader."""

    def __init__(self, code: str, message: str, *, column: str | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown ingest error code {code!r}")
        super().__init__(message)
        self.code = code
        self.column = column


@dataclass(frozen=True)
class ColumnSchema:
    """Describe one column of an ingested dataset: its name, Arrow type and role."""

    name: str
    dtype: str
    role: str

    def to_dict(self) -> dict[str, str]:
        """Return the column as a JSON-ready dict."""
        return {"name": self.name, "dtype": self.dtype, "role": self.role}


@dataclass(frozen=True)
class IngestResult:
    """Describe an ingested dataset: file hash and size, schema with roles, and its profile."""

    sha256: str
    size_bytes: int
    n_rows: int
    n_columns: int
    columns: tuple[ColumnSchema, ...]
    profile: dict[str, Any] = field(repr=False, hash=False)
    source_format: str


# --------------------------------------------------------------------------
# Public entry points


def detect_format(head: bytes, filename: str | None = None) -> str:
    """Return "csv" or "parquet" for a file starting with ``head``.

    Raise IngestError("empty_file") for no bytes and IngestError("not_tabular")
    for anything that is clearly neither Parquet nor delimited text. Text that
    is merely not UTF-8 is returned as "csv"; :func:`ingest` then reports it as
    ``undecodable`` with the byte offset.
    """
    if not head:
        raise IngestError("empty_file", "The file is empty (0 bytes).")
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, what in _BINARY_SIGNATURES:
        if head.startswith(magic):
            raise IngestError("not_tabular", f"The file looks like {what}, not CSV or Parquet.")
    name = (filename or "").lower()
    if name.endswith((".parquet", ".pq")):
        raise IngestError(
            "not_tabular", f"{filename} is named like a Parquet file but does not start with the Parquet magic bytes."
        )
    if head.startswith(_UTF16_BOMS):
        return "csv"  # Text in the wrong encoding: ingest names the encoding problem.
    if b"\x00" in head:
        raise IngestError("not_tabular", "The file contains NUL bytes: it is binary data, not CSV or Parquet.")
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls > max(8, len(head) // 100):
        raise IngestError("not_tabular", "The file contains binary control characters: it is not CSV or Parquet.")
    text_start = head.removeprefix(_UTF8_BOM).lstrip()
    if text_start.startswith((b"{", b"[")):
        raise IngestError("not_tabular", "The file looks like JSON, not CSV or Parquet.")
    if text_start.startswith(b"<"):
        raise IngestError("not_tabular", "The file looks like HTML or XML, not CSV or Parquet.")
    return "csv"


def ingest(
    source: str | Path | BinaryIO,
    destination: str | Path,
    *,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
    filename: str | None = None,
    block_size: int = 8 << 20,
    max_decoded_bytes: int | None = None,
) -> IngestResult:
    """Convert a CSV or Parquet upload to zstd Parquet at ``destination`` and profile it.

    ``source`` is a path or a binary file object (read from its current
    position; a non-seekable stream is first spooled to a temporary file).
    ``block_size`` is how many bytes of CSV are parsed per step. On any error
    nothing is left at ``destination`` by this call; on success the file is
    moved into place atomically (replacing any file already there).
    ``max_decoded_bytes`` caps what a compressed (Parquet) input may decode to:
    past it, IngestError("too_large") is raised while the file is read.
    """
    if block_size < 1:
        raise ValueError("block_size must be positive")
    destination = Path(destination)
    if filename is None:
        name = source if isinstance(source, (str, Path)) else getattr(source, "name", None)
        filename = Path(name).name if isinstance(name, (str, Path)) else None
    with ExitStack() as stack:
        stream = stack.enter_context(_seekable(source, spool_dir=destination.parent))
        start = stream.tell()
        head = _read_exactly(stream, _HEAD_BYTES)
        stream.seek(start)
        source_format = detect_format(head, filename)
        staged = stack.enter_context(_staged(destination))
        if source_format == "parquet":
            schema, n_rows = _convert_parquet(stream, staged, target=target, roles=roles,
                                              max_decoded_bytes=max_decoded_bytes)
        else:
            schema, n_rows = _convert_csv(
                stream, start, head, staged, target=target, roles=roles, block_size=block_size
            )
        column_roles = _resolve_roles(schema.names, target=target, roles=roles)
        if n_rows == 0:
            what = "a header row" if source_format == "csv" else "columns"
            raise IngestError("empty_file", f"The file has {what} but no data rows.")
        target_column = next((n for n, r in column_roles.items() if r == "target"), None)
        if target_column is not None:
            _check_binary_target(staged, target_column)
        columns = tuple(ColumnSchema(f.name, str(f.type), column_roles[f.name]) for f in schema)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
            digest = hasher.submit(_sha256, staged)  # hashlib releases the GIL: hash while profiling
            # Profiled before the move into place, so a file that cannot be profiled is not kept.
            profile = profile_parquet(staged, roles=column_roles)
        return IngestResult(
            sha256=digest.result(),
            size_bytes=staged.stat().st_size,
            n_rows=n_rows,
            n_columns=len(columns),
            columns=columns,
            profile=profile,
            source_format=source_format,
        )


# --------------------------------------------------------------------------
# Streams and staged files


@contextmanager
def _seekable(source: str | Path | BinaryIO, *, spool_dir: Path) -> Iterator[BinaryIO]:
    """Yield a seekable binary stream over ``source``; close only what this opened."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            yield handle
        return
    seekable = getattr(source, "seekable", None)
    if seekable is not None and seekable():
        yield source
        return
    # Type widening re-reads the input from the start, so a pipe or socket is
    # copied to disk first rather than held in memory.
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        shutil.copyfileobj(source, spool, 1 << 20)
        spool.seek(0)
        yield spool


@contextmanager
def _staged(destination: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; move it into place only on success."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    os.close(handle)
    staged = Path(name)
    try:
        yield staged
        # Same directory, so the rename is atomic: readers see no file or the whole file.
        os.replace(staged, destination)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at end of file, whatever the stream returns per call."""
    data = stream.read(size)
    if data is None:
        data = b""
    if len(data) >= size or not data:
        return data
    parts = [data]
    missing = size - len(data)
    while missing > 0:
        more = stream.read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


def _read_into(stream: BinaryIO, target: memoryview) -> int:
    """Fill ``target`` from ``stream``; return the byte count, short only at end of file."""
    readinto = getattr(stream, "readinto", None)
    total = 0
    while total < len(target):
        if readinto is not None:
            count = readinto(target[total:])
        else:
            data = stream.read(len(target) - total)
            count = len(data) if data else 0
            target[total : total + count] = data or b""
        if not count:
            break
        total += count
    return total


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# --------------------------------------------------------------------------
# Schema and role validation


def _check_names(names: list[str]) -> None:
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise IngestError(
                "empty_column_name", f"Column {position} has an empty name; every column needs a header.", column=name
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise IngestError("duplicate_columns", f"The column name {name!r} appears more than once.", column=name)
        seen.add(name)
    if len(names) < 2:
        only = f" ({names[0]!r})" if names else ""
        raise IngestError(
            "too_few_columns",
            f"The file has only {len(names)} column{only}; a dataset needs at least two "
            "(were the values separated by comma, semicolon, tab or |?).",
        )


def _resolve_roles(names: list[str], *, target: str | None, roles: Mapping[str, str] | None) -> dict[str, str]:
    """Return every column's role: "feature" unless ``target`` or ``roles`` say otherwise."""
    known = set(names)
    roles = dict(roles or {})
    for column, role in roles.items():
        if column not in known:
            raise IngestError(
                "unknown_column", f"Roles name the column {column!r}, which is not in the file.", column=column
            )
        if role not in ROLES:
            raise IngestError(
                "invalid_role",
                f"Column {column!r} has the role {role!r}; valid roles are {', '.join(ROLES)}.",
                column=column,
            )
    if target is not None:
        if target not in known:
            raise IngestError("unknown_column", f"The target column {target!r} is not in the file.", column=target)
        if roles.get(target, "target") != "target":
            raise IngestError(
                "invalid_role",
                f"Column {target!r} is the target but its role is given as {roles[target]!r}.",
                column=target,
            )
        roles[target] = "target"
    targets = [column for column, role in roles.items() if role == "target"]
    if len(targets) > 1:
        raise IngestError(
            "invalid_role",
            f"Only one column can be the target; got {', '.join(map(repr, targets))}.",
            column=targets[1],
        )
    return {name: roles.get(name, "feature") for name in names}


def _check_binary_target(path: Path, column: str) -> None:
    values = pq.ParquetFile(path).read(columns=[column]).column(0)
    missing = values.null_count
    if pa.types.is_floating(values.type):
        missing += pc.sum(pc.is_nan(values)).as_py() or 0
    if missing:
        raise IngestError(
            "target_not_binary",
            f"The target column {column!r} has {missing} missing value{'s' if missing != 1 else ''}; "
            "every row needs a label.",
            column=column,
        )
    distinct = pc.unique(values)
    if len(distinct) != 2:
        examples = ", ".join(repr(v) for v in distinct.slice(0, 5).to_pylist())
        more = ", ..." if len(distinct) > 5 else ""
        raise IngestError(
            "target_not_binary",
            f"The target column {column!r} has {len(distinct)} distinct value{'s' if len(distinct) != 1 else ''} "
            f"({examples}{more}); a binary target needs exactly 2.",
            column=column,
        )


# --------------------------------------------------------------------------
# Writing


def _writer_schema(schema: pa.Schema) -> pa.Schema:
    # Nullable fields and no metadata: the bytes must not depend on which tool
    # wrote the source file.
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


class _RowGroupWriter:
    """Cut incoming tables into fixed-size row groups and write them on a background thread.

    Parsing (Arrow's thread pool) and Parquet encoding (this writer's thread)
    then overlap. At most one row group waits in the queue, which bounds memory.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = _writer_schema(schema)
        self.rows_per_group = row_group_rows(len(self.schema))
        # Dictionary-encode only text: for numbers it slows the write and,
        # at this row-group size, makes the file larger.
        text = [f.name for f in self.schema if _is_text(f.type)]
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd", use_dictionary=text or False)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.n_rows = 0
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        self._thread.start()

    def append(self, table: pa.Table) -> None:
        """Buffer ``table`` and hand every complete row group to the writer thread."""
        if table.num_rows == 0:
            return
        if table.schema != self.schema:
            table = table.cast(self.schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_group:
            buffered = pa.concat_tables(self._pending)
            self._emit(buffered.slice(0, self.rows_per_group))
            rest = buffered.slice(self.rows_per_group)
            self._pending = [rest] if rest.num_rows else []
            self._pending_rows = rest.num_rows

    def close(self) -> None:
        """Write the last, partial row group and finish the file."""
        try:
            if self._pending_rows:
                self._emit(pa.concat_tables(self._pending))
                self._pending = []
        finally:
            self._stop()
        self._writer.close()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the writer thread and close the file; the caller discards it."""
        self._pending = []
        self._stop()
        with contextlib.suppress(Exception):  # the file is being thrown away anyway
            self._writer.close()

    def _stop(self) -> None:
        """Let the writer thread finish what it holds, then end it."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:  # it is still writing a row group
                continue
        self._thread.join()

    def _emit(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self.n_rows += table.num_rows
        self._queue.put(table)

    def _drain(self) -> None:
        while True:
            table = self._queue.get()
            if table is None:
                return
            if self._error is not None:
                continue
            try:
                # One contiguous chunk per column, so page boundaries (and the
                # hash) do not depend on how the reader split the input.
                self._writer.write_table(table.combine_chunks(), row_group_size=self.rows_per_group)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = error


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_binary(data_type)


# --------------------------------------------------------------------------
# Parquet input


def _too_large(limit: int) -> IngestError:
    return IngestError("too_large", f"The Parquet file decodes to more than {limit} bytes of data; the limit is "
                                    f"{limit} bytes.")


def _convert_parquet(
    stream: BinaryIO, staged: Path, *, target: str | None, roles: Mapping[str, str] | None,
    max_decoded_bytes: int | None = None,
) -> tuple[pa.Schema, int]:
    try:
        parquet = pq.ParquetFile(stream)
        source_schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as error:
        raise IngestError("not_tabular", f"The file starts like Parquet but cannot be read: {error}") from error
    kept = [f for f in source_schema if not _is_pandas_index(f.name, source_schema)]
    names = [f.name for f in kept]
    _check_names(names)
    _resolve_roles(names, target=target, roles=roles)
    schema = pa.schema([pa.field(f.name, _flat_type(f.name, f.type)) for f in kept])
    # Parquet pages are compressed and run-length encoded, so a small file can decode to gigabytes.
    # The footer's own figure refuses the honest bomb at once; counting what is decoded, batch by
    # batch, refuses one whose footer lies, before the rest of it is read.
    metadata = parquet.metadata
    declared = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if max_decoded_bytes is not None and declared > max_decoded_bytes:
        raise _too_large(max_decoded_bytes)
    decoded = 0
    writer = _RowGroupWriter(staged, schema)
    try:
        selected = names if len(names) < len(source_schema) else None
        for batch in parquet.iter_batches(batch_size=1 << 16, columns=selected):
            decoded += batch.nbytes
            if max_decoded_bytes is not None and decoded > max_decoded_bytes:
                raise _too_large(max_decoded_bytes)
            columns = [_flatten_array(batch.column(i), schema.field(i).type) for i in range(len(names))]
            writer.append(pa.Table.from_arrays(columns, schema=writer.schema))
    except pa.ArrowException as error:
        writer.abort()
        raise IngestError("not_tabular", f"The Parquet file is damaged: {error}") from error
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.schema, writer.n_rows


def _is_pandas_index(name: str, schema: pa.Schema) -> bool:
    # pandas stores an unnamed index as "__index_level_0__": an artefact of how
    # the file was saved, not data. A named index is kept as a column.
    if not _PANDAS_INDEX.fullmatch(name):
        return False
    metadata = schema.metadata or {}
    return b"pandas" in metadata and name.encode() in metadata[b"pandas"]


def _flat_type(name: str, data_type: pa.DataType) -> pa.DataType:
    """Map a Parquet column type onto the plain type the dataset stores."""
    if pa.types.is_dictionary(data_type):
        return _flat_type(name, data_type.value_type)
    if isinstance(data_type, pa.ExtensionType):
        return _flat_type(name, data_type.storage_type)
    if pa.types.is_large_string(data_type) or pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_large_binary(data_type) or pa.types.is_binary_view(data_type):
        return pa.binary()
    if pa.types.is_nested(data_type):
        raise IngestError(
            "not_tabular",
            f"Column {name!r} holds nested values ({data_type}); a dataset needs one plain value per cell.",
            column=name,
        )
    return data_type


def _flatten_array(array: pa.Array, data_type: pa.DataType) -> pa.Array:
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array if array.type == data_type else array.cast(data_type)


# --------------------------------------------------------------------------
# CSV input


class _Restart(Exception):
    """Signal that the CSV pass must start over, with wider types or another reader."""


def _convert_csv(
    stream: BinaryIO,
    start: int,
    head: bytes,
    staged: Path,
    *,
    target: str | None,
    roles: Mapping[str, str] | None,
    block_size: int,
) -> tuple[pa.Schema, int]:
    text = _decode_head(stream, start, head)
    if not text.strip():
        raise IngestError("empty_file", "The file contains only blank lines.")
    delimiter = _sniff_delimiter(text, truncated=len(head) >= _HEAD_BYTES)
    names = _header_names(head, delimiter)
    _check_names(names)
    _resolve_roles(names, target=target, roles=roles)
    reader = _CsvReader(stream, start, names, delimiter, block_size)
    # Each restart widens at least one column along null < int < double <
    # string (or switches reader once), so this bound is never the reason to stop.
    for _ in range(4 * len(names) + 4):
        stream.seek(start)
        try:
            return reader.write(staged)
        except _Restart:
            continue
    raise IngestError("not_tabular", "The column types of the file could not be settled.")  # pragma: no cover


def _decode_head(stream: BinaryIO, start: int, head: bytes) -> str:
    if head.startswith(_UTF16_BOMS):
        raise IngestError(
            "undecodable",
            "The file is UTF-16 encoded (it starts with a UTF-16 byte-order mark); save it as UTF-8 CSV.",
        )
    try:
        text, _ = codecs.utf_8_decode(head, "strict", False)
    except UnicodeDecodeError as error:
        raise _undecodable(stream, start, error.start, head[error.start : error.start + 4]) from None
    return text.removeprefix("\ufeff")


def _undecodable(stream: BinaryIO, start: int, offset: int, sample: bytes) -> IngestError:
    line = _line_at(stream, start, offset)
    return IngestError(
        "undecodable",
        f"The file is not valid UTF-8: byte offset {offset} (line {line}) starts with {sample.hex(' ')}. "
        "Save the file as UTF-8 (for instance \"CSV UTF-8\" in Excel).",
    )


def _line_at(stream: BinaryIO, start: int, offset: int) -> int:
    """Return the 1-based line number of byte ``offset`` (error path only: it rereads)."""
    stream.seek(start)
    newlines = 0
    remaining = offset
    while remaining > 0:
        block = stream.read(min(remaining, 1 << 20))
        if not block:
            break
        newlines += block.count(b"\n")
        remaining -= len(block)
    return newlines + 1


def _sniff_delimiter(text: str, *, truncated: bool) -> str:
    """Return the delimiter that splits the first records into the most consistent columns."""
    lines = text[: 1 << 16].splitlines(keepends=True)
    if (truncated or len(text) > 1 << 16) and len(lines) > 1:
        lines = lines[:-1]  # the last line of a cut sample is partial
    sample = "".join(lines[: _SNIFF_RECORDS * 4])
    best: tuple[float, int, int] | None = None
    chosen = ","
    for preference, delimiter in enumerate(_DELIMITERS):
        records = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r][:_SNIFF_RECORDS]
        if not records:
            continue
        width = len(records[0])
        consistent = sum(len(r) == width for r in records) / len(records)
        score = (consistent if width > 1 else -1.0, width, -preference)
        if best is None or score > best:
            best, chosen = score, delimiter
    if best is None:
        raise IngestError("empty_file", "The file contains only blank lines.")
    return chosen


def _header_names(head: bytes, delimiter: str) -> list[str]:
    """Return the column names exactly as Arrow will read them."""
    # The header plus a few rows is enough; parse no more than that.
    end = head.rfind(b"\n", 0, 1 << 16)
    sample = head[: end + 1] if end >= 0 and len(head) > 1 << 16 else head
    if not sample.removeprefix(_UTF8_BOM).strip(b"\r\n"):  # Arrow skips empty lines: nothing to read
        raise IngestError("empty_file", "The file contains only blank lines.")
    try:
        reader = pcsv.open_csv(
            pa.BufferReader(sample),
            read_options=pcsv.ReadOptions(block_size=len(sample) + 1),
            # Skip bad rows here: only the header matters, and ragged rows are
            # reported with their line number by the real pass.
            parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda row: "skip"),
            convert_options=_convert_options(None),
        )
    except pa.ArrowInvalid as error:
        raise IngestError("not_tabular", f"The header row cannot be read: {error}") from error
    return list(reader.schema.names)


def _convert_options(column_types: Mapping[str, pa.DataType] | None) -> pcsv.ConvertOptions:
    return pcsv.ConvertOptions(
        column_types=dict(column_types or {}),
        null_values=list(NULL_MARKERS),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


class _CsvReader:
    """Read a CSV in blocks, settling column types and writing row groups as it goes.

    The fast path cuts the file into ``block_size`` pieces at line ends and
    hands each to ``pyarrow.csv.read_csv``, which parses a piece on all cores;
    ``open_csv`` would parse on one. Cutting at a line end is only safe when no
    quoted value spans lines, so a piece with an odd number of quotes on a line
    switches to the exact path: Arrow's own streaming reader, single-threaded.

    Arrow infers types from the first piece only. When a later piece does not
    fit (an int column that turns out to hold 1.5 or "n/k"), the column is
    widened and the pass starts again: rare, and far cheaper than a separate
    typing pass over every file.
    """

    def __init__(self, stream: BinaryIO, start: int, names: list[str], delimiter: str, block_size: int) -> None:
        self.stream = stream
        self.start = start
        self.names = names
        self.delimiter = delimiter
        self.block_size = block_size
        self.types: dict[str, pa.DataType] = {}  # settled overrides, kept across restarts
        self.schema_types: dict[str, pa.DataType] = {}  # every column's type in the current pass
        self.exact = False
        self.exact_block_size = max(block_size, 1 << 12)

    def write(self, staged: Path) -> tuple[pa.Schema, int]:
        """Write the whole file to ``staged``; raise _Restart to be called again."""
        writer: _RowGroupWriter | None = None
        try:
            for table in self._exact_tables() if self.exact else self._fast_tables():
                if writer is None:
                    writer = _RowGroupWriter(staged, table.schema)
                writer.append(table)
            if writer is None:  # header only: keep the header's names for the error path
                return pa.schema([pa.field(n, pa.null()) for n in self.names]), 0
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        writer.close()
        return writer.schema, writer.n_rows

    # -- fast path --------------------------------------------------------

    def _fast_tables(self) -> Iterator[pa.Table]:
        first = True
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-check") as checker:
            for offset, piece in self._pieces():
                # Check the piece while Arrow parses it (both release the GIL);
                # neither the table nor a parse error is acted on before the
                # check passes, since a bad cut or bad bytes explain both.
                check = checker.submit(_check_piece, piece)
                invalid = _FirstInvalidRow()
                try:
                    table, failure = self._parse_piece(piece, header=first, invalid=invalid), None
                except pa.ArrowInvalid as error:
                    table, failure = None, error
                problem = check.result()
                if problem == _UNBALANCED:
                    self.exact = True
                    raise _Restart
                if problem is not None:
                    raise _undecodable(
                        self.stream, self.start, offset + problem, bytes(piece[problem : problem + 4])
                    )
                if failure is not None:
                    self._parse_failed(str(failure), invalid.row, piece, offset, header=first)
                assert table is not None
                if first:
                    first = False
                    self._settle(table.schema)
                yield table

    def _pieces(self) -> Iterator[tuple[int, memoryview]]:
        """Yield (offset, view) pieces of about block_size bytes that end at a line end.

        One buffer is reused for every piece (Arrow copies what it parses), so
        reading a large file does not churn through fresh memory.
        """
        size = self.block_size
        buffer = bytearray(2 * size)
        filled = 0  # bytes carried over from the previous read
        offset = 0
        while True:
            if filled + size > len(buffer):  # a line longer than the buffer: grow it
                grown = bytearray(2 * (filled + size))
                grown[:filled] = buffer[:filled]
                buffer = grown
            view = memoryview(buffer)
            read = _read_into(self.stream, view[filled : filled + size])
            end = filled + read
            if read < size:  # end of file
                if buffer[:end].strip():
                    yield offset, view[:end]
                return
            cut = buffer.rfind(b"\n", filled, end)  # the carried bytes hold no line end
            if cut < 0:
                if buffer.find(b"\r", 0, end) >= 0:  # old Mac line ends: let Arrow's reader find the rows
                    self.exact = True
                    raise _Restart
                filled = end  # no line end yet: read on
                continue
            yield offset, view[: cut + 1]
            offset += cut + 1
            # Same-size slice assignment: allowed while views of the buffer exist.
            buffer[: end - cut - 1] = buffer[cut + 1 : end]
            filled = end - cut - 1

    def _parse_piece(self, piece: memoryview, *, header: bool, invalid: _FirstInvalidRow) -> pa.Table:
        types = self.types if header else self.schema_types
        read_options = pcsv.ReadOptions(block_size=_PARSE_BLOCK, column_names=None if header else self.names)
        while True:
            try:
                return pcsv.read_csv(
                    pa.py_buffer(piece),
                    read_options=read_options,
                    parse_options=pcsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=invalid),
                    convert_options=_convert_options(types),
                )
            except pa.ArrowInvalid as error:
                straddling = read_csv_message(str(error)).kind == "straddling"
                if straddling and read_options.block_size <= len(piece):
                    read_options.block_size = len(piece) + 1  # a row longer than a parse block
                    continue
                raise

    def _parse_failed(
        self, message: str, invalid_row: Any, piece: memoryview, offset: int, *, header: bool
    ) -> NoReturn:
        """Turn Arrow's complaint about a piece into an IngestError, or widen types and restart."""
        if invalid_row is not None:
            raise self._ragged(invalid_row, message)
        said = read_csv_message(message)
        if said.kind == "conversion":
            self._widen_from_piece(piece, header=header, said=said)
            raise _Restart
        raise IngestError("not_tabular", f"The CSV cannot be parsed near byte {offset}: {message}")

    def _settle(self, schema: pa.Schema) -> None:
        """Fix every column's type from the first piece, so later pieces parse without inferring."""
        self.schema_types = {f.name: f.type for f in schema}

    def _widen_from_piece(self, piece: memoryview, *, header: bool, said: CsvMessage) -> None:
        """Widen every column whose type this piece does not fit, inferring the piece afresh."""
        inferred = pcsv.read_csv(
            pa.py_buffer(piece),
            read_options=pcsv.ReadOptions(column_names=None if header else self.names, block_size=len(piece) + 1),
            parse_options=pcsv.ParseOptions(delimiter=self.delimiter),
            convert_options=_convert_options(None),
        ).schema
        current = self.types if header else self.schema_types
        changed = False
        for f in inferred:
            old = current.get(f.name)
            new = f.type if old is None else _unify(old, f.type)
            if old is not None and new != old:
                self.types[f.name] = new
                changed = True
        if not changed:
            self._widen_for_cell(said)

    def _widen_for_cell(self, said: CsvMessage) -> None:
        """Widen the column of the cell Arrow could not convert to a type that holds it."""
        assert said.column is not None and said.value is not None
        name = self.names[said.column]
        old = self.types.get(name) or self.schema_types.get(name, pa.null())
        new = _unify(old, _scalar_type(said.value, self.delimiter))
        self.types[name] = new if new != old else pa.string()

    # -- exact path -------------------------------------------------------

    def _exact_tables(self) -> Iterator[pa.Table]:
        checked = _Utf8Checked(self.stream)
        invalid = _FirstInvalidRow()
        try:
            reader = pcsv.open_csv(
                checked,
                read_options=pcsv.ReadOptions(block_size=self.exact_block_size),
                parse_options=pcsv.ParseOptions(
                    delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=invalid
                ),
                convert_options=_convert_options(self.types),
            )
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except IngestError:
            raise
        except (ValueError, pa.ArrowException) as error:
            # The checker's ValueError comes back through Arrow as whatever
            # Arrow makes of it; the recorded offset is what counts.
            if checked.error is not None:
                raise _undecodable(self.stream, self.start, *checked.error) from None
            message = str(error)
            if invalid.row is not None:
                raise self._ragged(invalid.row, message) from None
            said = read_csv_message(message)
            if said.kind == "straddling":
                self.exact_block_size *= 4
                raise _Restart from None
            if said.kind == "conversion":
                self._widen_for_cell(said)
                raise _Restart from None
            raise IngestError("not_tabular", f"The CSV cannot be parsed: {message}") from None
        if checked.error is not None:
            raise _undecodable(self.stream, self.start, *checked.error)

    # -- errors -----------------------------------------------------------

    def _ragged(self, row: Any, message: str) -> IngestError:
        """Build the ragged-row error, finding the line by rereading with Python's csv module.

        ``row`` is the ``pyarrow.csv.InvalidRow`` Arrow handed to the invalid-row handler.
        """
        expected = len(self.names)
        self.stream.seek(self.start)
        lines = (line.decode("utf-8", "replace") for line in iter(self.stream.readline, b""))
        records = csv.reader(lines, delimiter=self.delimiter)
        next(records, None)  # the header
        for record in records:
            if record and len(record) != expected:
                return IngestError(
                    "ragged_rows", f"Line {records.line_num} has {len(record)} fields but the header has {expected}."
                )
        return IngestError(
            "ragged_rows",
            f"A row has {row.actual_columns} fields but the header has {row.expected_columns}: {message}",
        )


class _FirstInvalidRow:
    """Keep the first row Arrow finds with the wrong number of fields, and let Arrow fail on it.

    Arrow's ``invalid_row_handler`` hands over the row's expected and actual field counts, so a
    ragged row is told from other parse errors without reading the error's text.
    """

    def __init__(self) -> None:
        self.row: Any = None

    def __call__(self, row: Any) -> str:
        if self.row is None:
            self.row = row
        return "error"


class _Utf8Checked(io.RawIOBase):
    """Pass a stream through while checking it is UTF-8; remember where it is not."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0
        self.error: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size) or b""
        if self.error is None:
            try:
                self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as error:
                # The decoder's buffer may hold up to 3 bytes of an earlier read.
                held = len(error.object) - len(data)
                self.error = (self._offset - held + error.start, bytes(error.object[error.start : error.start + 4]))
                raise ValueError("invalid UTF-8") from error
        self._offset += len(data)
        return data


_UNBALANCED = -1


def _check_piece(piece: memoryview) -> int | None:
    """Return None if ``piece`` is safe to parse alone, else where it is not UTF-8 or _UNBALANCED."""
    data = np.frombuffer(piece, dtype=np.uint8)
    if data.size and data.max() >= 0x80:
        try:
            codecs.utf_8_decode(piece, "strict", True)
        except UnicodeDecodeError as error:
            return error.start
    return None if _quotes_balanced(data) else _UNBALANCED


def _quotes_balanced(data: np.ndarray) -> bool:
    """Return whether every line of ``data`` (bytes as uint8) holds an even number of double quotes."""
    # Keep only quotes and line feeds; the k-th line feed then sits at
    # position k + (quotes before it), so odd "position - k" means a line
    # with an odd number of quotes.
    marks = np.flatnonzero((data == 0x22) | (data == 0x0A))
    if marks.size == 0:
        return True
    newlines = np.flatnonzero(data[marks] == 0x0A)
    if (marks.size - newlines.size) % 2:
        return False
    return not np.any((newlines - np.arange(newlines.size)) & 1)


_LATTICE = {"null": 0, "int64": 1, "double": 2}


def _unify(old: pa.DataType, new: pa.DataType) -> pa.DataType:
    """Return the narrowest type that holds values of both ``old`` and ``new``."""
    if old == new or pa.types.is_null(new):
        return old
    if pa.types.is_null(old):
        return new
    if str(old) in _LATTICE and str(new) in _LATTICE:
        return old if _LATTICE[str(old)] >= _LATTICE[str(new)] else new
    if pa.types.is_timestamp(old) and pa.types.is_timestamp(new) and old.tz == new.tz:
        units = ["s", "ms", "us", "ns"]
        return old if units.index(old.unit) >= units.index(new.unit) else new
    return pa.string()


def _scalar_type(value: str, delimiter: str) -> pa.DataType:
    """Return the type Arrow infers for one CSV cell."""
    cell = io.StringIO()
    csv.writer(cell, delimiter=delimiter, lineterminator="\n").writerow([value])
    try:
        table = pcsv.read_csv(
            io.BytesIO(b"v\n" + cell.getvalue().encode()),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=_convert_options(None),
        )
    except pa.ArrowInvalid:
        return pa.string()
    return table.schema.field(0).type

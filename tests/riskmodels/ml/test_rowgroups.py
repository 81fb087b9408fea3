import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskmodels.ml.rowgroups import open_parquet, take_blocks, take_rows


@pytest.fixture
def parquet():
    frame = pd.DataFrame({"x": np.arange(50, dtype=float), "tag": [f"t{i}" for i in range(50)]})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, row_group_size=8)  # 7 row groups
    return open_parquet(io.BytesIO(sink.getvalue()))


class CountingFile(io.BytesIO):
    """A file that records the byte ranges read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[tuple[int, int]] = []

    def read(self, size: int = -1) -> bytes:
        start = self.tell()
        data = super().read(size)
        self.reads.append((start, start + len(data)))
        return data


def test_take_rows_reads_rows_across_row_groups_and_batches_in_order(parquet):
    rows = np.array([0, 7, 8, 20, 49], dtype=np.int64)

    table = take_rows(parquet, rows, ["tag"])

    assert table.column_names == ["tag"]
    assert table.column("tag").to_pylist() == ["t0", "t7", "t8", "t20", "t49"]


@pytest.mark.parametrize("batch_rows", [1, 3, 8, 100])
def test_each_block_comes_as_its_own_table_whatever_the_batch_size(parquet, batch_rows):
    blocks = [np.array([1, 2, 3, 4, 5, 6, 7, 8, 9]), np.array([10, 17, 41]), np.array([42]), np.arange(43, 50)]

    tables = list(take_blocks(parquet, blocks, ["x", "tag"], batch_rows=batch_rows))

    assert [t.column("x").to_pylist() for t in tables] == [[float(r) for r in b] for b in blocks]
    assert [t.column("tag").to_pylist() for t in tables] == [[f"t{r}" for r in b] for b in blocks]
    assert all(t.schema.names == ["x", "tag"] for t in tables)


def test_row_groups_without_a_wanted_row_are_not_read():
    # 4 row groups of 40,000 random floats (320 kB each): larger than the read buffer.
    frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=160_000)})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, row_group_size=40_000, use_dictionary=False)
    metadata = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata
    spans = [(metadata.row_group(g).column(0).data_page_offset,
              metadata.row_group(g).column(0).data_page_offset + metadata.row_group(g).column(0).total_compressed_size)
             for g in range(4)]
    data = CountingFile(sink.getvalue())

    taken = take_rows(open_parquet(data), np.array([3, 150_000], dtype=np.int64), ["x"])

    assert taken.column("x").to_pylist() == frame["x"].iloc[[3, 150_000]].tolist()
    touched = {g for g, (a, b) in enumerate(spans) for start, stop in data.reads if start < b and stop > a}
    assert touched == {0, 3}


def test_rows_outside_the_file_or_out_of_order_are_refused_and_no_rows_give_an_empty_table(parquet):
    with pytest.raises(IndexError, match="outside 0..49"):
        take_rows(parquet, np.array([3, 50], dtype=np.int64))
    with pytest.raises(IndexError, match="outside 0..49"):
        take_rows(parquet, np.array([-1, 3], dtype=np.int64))
    with pytest.raises(IndexError, match="not after row 9"):
        list(take_blocks(parquet, [np.array([5, 9]), np.array([9, 10])]))
    empty = take_rows(parquet, np.array([], dtype=np.int64), ["x"])
    assert empty.num_rows == 0 and empty.column_names == ["x"]


def test_consecutive_rows_are_slices_of_their_batch_and_the_whole_file_reads_back_equal(parquet):
    whole = take_rows(parquet, np.arange(50, dtype=np.int64))

    assert whole.equals(parquet.read())
    table = next(take_blocks(parquet, [np.arange(9, 14)], ["x"], batch_rows=100))
    # A run of rows inside one batch is a zero-copy slice of that batch, not a taken copy.
    assert table.column("x").chunks[0].offset == 1

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskmodels.ml.rowgroups import take_by_row_group, take_rows


@pytest.fixture
def parquet():
    frame = pd.DataFrame({"x": np.arange(50, dtype=float), "tag": [f"t{i}" for i in range(50)]})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, row_group_size=8)  # 7 row groups
    return pq.ParquetFile(io.BytesIO(sink.getvalue()))


def test_take_rows_reads_rows_across_row_groups_in_order(parquet):
    rows = np.array([0, 7, 8, 20, 49], dtype=np.int64)

    table = take_rows(parquet, rows, ["tag"])

    assert table.column_names == ["tag"]
    assert table.column("tag").to_pylist() == ["t0", "t7", "t8", "t20", "t49"]


def test_only_row_groups_holding_wanted_rows_are_yielded(parquet):
    first = np.array([1, 2, 41], dtype=np.int64)
    second = np.array([3, 17], dtype=np.int64)

    groups = list(take_by_row_group(parquet, [first, second], ["x"]))

    # Row groups 0 (rows 0-7), 2 (16-23) and 5 (40-47) hold wanted rows; the others are not read.
    assert [[None if t is None else t.column("x").to_pylist() for t in g] for g in groups] == [
        [[1.0, 2.0], [3.0]], [None, [17.0]], [[41.0], None]]


def test_rows_outside_the_file_are_refused_and_no_rows_give_an_empty_table(parquet):
    with pytest.raises(IndexError, match="outside 0..49"):
        take_rows(parquet, np.array([3, 50], dtype=np.int64))
    assert take_rows(parquet, np.array([], dtype=np.int64), ["x"]).num_rows == 0


def test_every_row_of_a_group_comes_whole_and_other_groups_are_taken(parquet):
    rows = np.concatenate([np.arange(8, 16), [20, 22]]).astype(np.int64)  # all of group 1, two of group 2

    groups = list(take_by_row_group(parquet, [rows], ["x", "tag"]))

    assert [g[0].column("x").to_pylist() for g in groups] == [[float(i) for i in range(8, 16)], [20.0, 22.0]]
    assert take_rows(parquet, np.arange(50, dtype=np.int64)).equals(parquet.read())

"""Tests for riskmodels.ml.ingest: conversion, validation, hashing and the shipped German Credit data."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from riskmodels.ml.ingest import ROLES, IngestError, detect_format, ingest, row_group_rows

GERMAN_CREDIT = Path(__file__).resolve().parents[3] / "demo" / "german_credit.csv"
PROTECTED = {"personal_status_and_sex": "protected", "age_in_years": "protected", "foreign_worker": "protected"}


@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory):
    """Ingest the shipped German Credit file once for the module."""
    destination = tmp_path_factory.mktemp("german") / "german.parquet"
    return ingest(GERMAN_CREDIT, destination, target="creditability", roles=PROTECTED), destination


@pytest.fixture(scope="module")
def german_frame() -> pd.DataFrame:
    return pd.read_csv(GERMAN_CREDIT)


def write(tmp_path: Path, content: bytes | str, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def leftovers(directory: Path) -> list[str]:
    """List hidden (temporary) files an ingest left in ``directory``."""
    return sorted(p.name for p in directory.glob(".*"))


# --------------------------------------------------------------------------
# The shipped dataset


def test_it_ingests_german_credit_with_its_schema_and_roles(german):
    result, destination = german

    assert (result.n_rows, result.n_columns, result.source_format) == (1000, 21, "csv")
    columns = {c.name: c for c in result.columns}
    assert [c.name for c in result.columns] == list(pd.read_csv(GERMAN_CREDIT, nrows=0).columns)
    assert columns["duration_in_month"].dtype == "int64"
    assert columns["credit_amount"].dtype == "int64"
    assert columns["purpose"].dtype == "string"
    assert columns["creditability"].to_dict() == {"name": "creditability", "dtype": "string", "role": "target"}
    assert columns["age_in_years"].role == "protected"
    assert columns["foreign_worker"].role == "protected"
    assert columns["duration_in_month"].role == "feature"
    assert {c.role for c in result.columns} <= set(ROLES)


def test_it_reports_the_hash_and_size_of_the_written_parquet(german):
    result, destination = german

    assert result.sha256 == hashlib.sha256(destination.read_bytes()).hexdigest()
    assert result.size_bytes == destination.stat().st_size
    metadata = pq.ParquetFile(destination).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert leftovers(destination.parent) == []


def test_the_parquet_holds_exactly_the_csv_data(german):
    _, destination = german

    assert pq.read_table(destination).equals(pcsv.read_csv(GERMAN_CREDIT))


def test_the_german_credit_profile_matches_pandas(german, german_frame):
    profile = german[0].profile
    df = german_frame

    assert (profile["n_rows"], profile["n_columns"]) == (1000, 21)
    assert profile["duplicate_rows"] == int(df.duplicated().sum()) == 0
    for name, column in profile["columns"].items():
        assert column["missing"] == int(df[name].isna().sum()), name
        assert column["distinct"] == df[name].nunique(), name
        assert column["constant"] is False
    amount = profile["columns"]["credit_amount"]
    assert amount["min"] == df.credit_amount.min() and amount["max"] == df.credit_amount.max()
    assert amount["mean"] == pytest.approx(df.credit_amount.mean())
    assert amount["std"] == pytest.approx(df.credit_amount.std())
    assert [amount["q1"], amount["median"], amount["q3"]] == pytest.approx(
        df.credit_amount.quantile([0.25, 0.5, 0.75]).tolist()
    )
    purpose = profile["columns"]["purpose"]["top"]
    expected = df.purpose.value_counts().head(5)
    assert [(t["value"], t["count"]) for t in purpose] == list(zip(expected.index, expected.tolist()))


def test_the_german_credit_target_is_700_good_to_300_bad(german):
    target = german[0].profile["target"]

    assert target == {
        "column": "creditability",
        "classes": {"bad": 300, "good": 700},
        "positive_class": "bad",
        "positive_rate": 0.3,
    }


def test_german_credit_raises_no_leakage_or_quality_warning(german):
    profile = german[0].profile

    assert profile["leakage"] == []
    assert profile["constant_columns"] == []
    assert profile["warnings"] == []
    assert max(c["univariate_auc"] for c in profile["columns"].values() if "univariate_auc" in c) < 0.75


def test_the_profile_is_plain_json(german):
    profile = german[0].profile

    assert json.loads(json.dumps(profile, allow_nan=False)) == profile


# --------------------------------------------------------------------------
# Formats and determinism


def test_a_csv_and_the_parquet_of_the_same_data_give_the_same_profile_and_hash(tmp_path, german, german_frame):
    source = tmp_path / "german.parquet"
    german_frame.to_parquet(source, index=False)  # pandas writes large_string and its own metadata

    result = ingest(source, tmp_path / "out.parquet", target="creditability", roles=PROTECTED)

    assert result.source_format == "parquet"
    assert result.profile == german[0].profile
    assert result.columns == german[0].columns
    assert result.sha256 == german[0].sha256


def test_an_unnamed_pandas_index_is_not_taken_for_a_column(tmp_path, german_frame):
    source = tmp_path / "shuffled.parquet"
    german_frame.sample(frac=1.0, random_state=3).to_parquet(source)  # stores __index_level_0__

    result = ingest(source, tmp_path / "out.parquet", target="creditability")

    assert "__index_level_0__" in pq.read_schema(source).names
    assert result.n_columns == 21


def test_ingesting_the_same_file_twice_gives_the_same_hash(tmp_path, german):
    again = ingest(GERMAN_CREDIT, tmp_path / "again.parquet", target="creditability", roles=PROTECTED)

    assert again.sha256 == german[0].sha256
    assert (tmp_path / "again.parquet").read_bytes() == german[1].read_bytes()


def test_changing_one_cell_changes_the_hash(tmp_path, german):
    lines = GERMAN_CREDIT.read_text().splitlines(keepends=True)
    lines[500] = lines[500].replace(",good", ",bad") if ",good" in lines[500] else lines[500].replace(",bad", ",good")
    edited = write(tmp_path, "".join(lines))

    result = ingest(edited, tmp_path / "edited.parquet", target="creditability", roles=PROTECTED)

    assert result.sha256 != german[0].sha256


@pytest.mark.parametrize("block_size", [256, 4096])
def test_the_hash_does_not_depend_on_the_block_size(tmp_path, german, block_size):
    result = ingest(
        GERMAN_CREDIT, tmp_path / "small.parquet", target="creditability", roles=PROTECTED, block_size=block_size
    )

    assert result.sha256 == german[0].sha256
    assert result.profile == german[0].profile


def test_row_groups_hold_a_fixed_number_of_rows_that_shrinks_for_wide_files(tmp_path, monkeypatch):
    monkeypatch.setattr("riskmodels.ml.ingest.row_group_rows", lambda n_columns: 1000)
    text = "a,b\n" + "".join(f"{i},{i % 2}\n" for i in range(3500))

    ingest(write(tmp_path, text), tmp_path / "out.parquet", block_size=777)

    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [1000, 1000, 1000, 500]
    monkeypatch.undo()
    assert (row_group_rows(2), row_group_rows(36), row_group_rows(5000)) == (1 << 18, 1 << 17, 1 << 10)


def test_it_reads_a_file_object_from_its_current_position(tmp_path, german):
    stream = io.BytesIO(b"junk before the upload" + GERMAN_CREDIT.read_bytes())
    stream.seek(len(b"junk before the upload"))

    result = ingest(stream, tmp_path / "stream.parquet", target="creditability", roles=PROTECTED)

    assert result.sha256 == german[0].sha256
    assert not stream.closed


def test_it_reads_a_non_seekable_stream(tmp_path, german):
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer) -> int:  # noqa: ANN001
            chunk = self._data.read(min(len(buffer), 1000))  # short reads, like a socket
            buffer[: len(chunk)] = chunk
            return len(chunk)

    pipe = Pipe(GERMAN_CREDIT.read_bytes())

    result = ingest(pipe, tmp_path / "pipe.parquet", target="creditability", roles=PROTECTED)

    assert result.sha256 == german[0].sha256
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_it_sniffs_other_delimiters(tmp_path, delimiter):
    text = delimiter.join(["id", "amount", "label"]) + "\n"
    text += "".join(delimiter.join([str(i), f"{i * 1.5}", "yes" if i % 3 else "no"]) + "\n" for i in range(30))

    result = ingest(write(tmp_path, text), tmp_path / "out.parquet", target="label")

    assert [(c.name, c.dtype) for c in result.columns] == [("id", "int64"), ("amount", "double"), ("label", "string")]
    assert result.profile["target"]["positive_class"] == "yes"


def test_it_reads_crlf_line_ends_and_a_byte_order_mark(tmp_path):
    text = "\ufeffname,score\r\n" + "".join(f"n{i},{i}\r\n" for i in range(10))

    result = ingest(write(tmp_path, text.encode("utf-8")), tmp_path / "out.parquet")

    assert [c.name for c in result.columns] == ["name", "score"]
    assert pq.read_table(tmp_path / "out.parquet").column("name").to_pylist()[-1] == "n9"


def test_column_names_are_kept_exactly_as_written(tmp_path):
    result = ingest(write(tmp_path, ' id ,"Amount (EUR)",näme\n1,2,x\n'), tmp_path / "out.parquet")

    assert [c.name for c in result.columns] == [" id ", "Amount (EUR)", "näme"]


def test_missing_markers_are_read_as_missing_as_pandas_reads_them(tmp_path):
    text = "a,b,c\n1,x,\nNA,,y\nnull,None,z\n4,N/A,w\n"
    path = write(tmp_path, text)

    profile = ingest(path, tmp_path / "out.parquet").profile

    expected = pd.read_csv(path).isna().sum()
    assert {name: c["missing"] for name, c in profile["columns"].items()} == expected.to_dict()


def test_multibyte_text_survives(tmp_path):
    text = "city,flag\n" + "".join(f"{city},{i % 2}\n" for i, city in enumerate(["Zürich", "Kraków", "東京"] * 5))

    result = ingest(write(tmp_path, text), tmp_path / "out.parquet", target="flag", block_size=16)

    assert pq.read_table(tmp_path / "out.parquet").column("city").to_pylist()[:3] == ["Zürich", "Kraków", "東京"]
    assert result.profile["target"]["positive_class"] == 1


# --------------------------------------------------------------------------
# Types settled after the first block


def test_a_column_that_changes_type_after_the_first_block_is_widened(tmp_path):
    rows = ["id,amount,code,late,label"]
    rows += [f"{i},{i},{i:03d},,{i % 2}" for i in range(200)]
    rows += ["200,2.5,n/k,7,1"]  # amount turns float, code turns text, late appears only now
    rows += [f"{i},{i},{i:03d},,{i % 2}" for i in range(201, 260)]

    result = ingest(write(tmp_path, "\n".join(rows) + "\n"), tmp_path / "out.parquet", target="label", block_size=256)

    dtypes = {c.name: c.dtype for c in result.columns}
    assert dtypes == {"id": "int64", "amount": "double", "code": "string", "late": "int64", "label": "int64"}
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("code").to_pylist()[:3] == ["000", "001", "002"]  # reread as text, zeros kept
    assert sum(table.column("amount").to_pylist()) == pytest.approx(sum(range(260)) - 200 + 2.5)
    assert table.column("late").null_count == 259
    assert result.n_rows == 260


def test_the_widened_file_equals_one_read_in_a_single_block(tmp_path):
    rows = ["x,y"] + [f"{i},{i % 2}" for i in range(300)] + ["1e3,1"] + [f"{i},{i % 2}" for i in range(50)]
    path = write(tmp_path, "\n".join(rows) + "\n")

    small = ingest(path, tmp_path / "small.parquet", block_size=64)
    whole = ingest(path, tmp_path / "whole.parquet")

    assert [c.dtype for c in small.columns] == ["double", "int64"]
    assert small.sha256 == whole.sha256


def test_a_quoted_value_spanning_lines_is_read_intact(tmp_path):
    rows = ["id,note,label"]
    rows += [f'{i},"plain {i}",{i % 2}' for i in range(100)]
    rows += ['100,"first line\nsecond line, with a comma",1']
    rows += [f'{i},"plain {i}",{i % 2}' for i in range(101, 150)]
    rows += ["150,late text,0"]

    result = ingest(write(tmp_path, "\n".join(rows) + "\n"), tmp_path / "out.parquet", target="label", block_size=128)

    notes = pq.read_table(tmp_path / "out.parquet").column("note").to_pylist()
    assert notes[100] == "first line\nsecond line, with a comma"
    assert result.n_rows == 151
    assert result.profile["columns"]["id"]["distinct"] == 151


def test_a_multiline_file_with_a_late_type_change_is_widened(tmp_path):
    rows = ["id,note,amount"]
    rows += [f'{i},"a\nb",{i}' for i in range(100)] + ['100,"c",oops'] + [f'{i},"d",{i}' for i in range(101, 120)]

    result = ingest(write(tmp_path, "\n".join(rows) + "\n"), tmp_path / "out.parquet", block_size=64)

    assert {c.name: c.dtype for c in result.columns}["amount"] == "string"
    assert pq.read_table(tmp_path / "out.parquet").column("amount").to_pylist()[100] == "oops"


# --------------------------------------------------------------------------
# Rejected input


HEADER = "a,b,label\n"
GOOD_ROWS = "".join(f"{i},{i * 2},{'yes' if i % 2 else 'no'}\n" for i in range(10))


def _ragged_late() -> str:
    rows = [f"{i},{i},yes" for i in range(2000)]
    rows[1499] = "1499,only two"
    return HEADER + "\n".join(rows) + "\n"


def _latin1_late() -> bytes:
    rows = [f"{i},{i},yes" for i in range(2000)]
    before, after = (HEADER + "\n".join(rows[:999]) + "\n").encode(), ("\n".join(rows[999:]) + "\n").encode()
    return before + "naïve,1,no\n".encode("latin-1") + after


BAD_INPUTS = [
    pytest.param(b"", {}, "empty_file", None, "0 bytes", id="zero-bytes"),
    pytest.param(HEADER, {}, "empty_file", None, "no data rows", id="header-only"),
    pytest.param("\n\n  \n", {}, "empty_file", None, "blank lines", id="blank-lines"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), {}, "not_tabular", None, "PNG", id="png"),
    pytest.param(b"PK\x03\x04" + bytes(100), {}, "not_tabular", None, "xlsx", id="workbook"),
    pytest.param(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)), {}, "not_tabular", None,
                 "binary", id="random-bytes"),
    pytest.param('[{"a": 1, "b": 2}]', {}, "not_tabular", None, "JSON", id="json"),
    pytest.param("<html><body>a,b</body></html>", {}, "not_tabular", None, "HTML", id="html"),
    pytest.param(HEADER.encode() + "caf\xe9,1,yes\n".encode("latin-1"), {}, "undecodable", None, "line 2",
                 id="latin-1"),
    pytest.param(_latin1_late(), {"block_size": 1024}, "undecodable", None, "line 1001", id="latin-1-late"),
    pytest.param((HEADER + GOOD_ROWS).encode("utf-16"), {}, "undecodable", None, "UTF-16", id="utf-16"),
    pytest.param(HEADER + "1,2,yes\n3,4,no\n5,6\n7,8,yes\n", {}, "ragged_rows", None, "Line 4 has 2 fields",
                 id="ragged"),
    pytest.param(HEADER + "1,2,yes,extra\n", {}, "ragged_rows", None, "Line 2 has 4 fields", id="ragged-long"),
    pytest.param(_ragged_late(), {"block_size": 1024}, "ragged_rows", None, "Line 1501", id="ragged-late"),
    pytest.param("a,a,label\n" + GOOD_ROWS, {}, "duplicate_columns", "a", "more than once", id="duplicate"),
    pytest.param("a,,label\n" + GOOD_ROWS, {}, "empty_column_name", "", "Column 2", id="empty-name"),
    pytest.param("a,  ,label\n" + GOOD_ROWS, {}, "empty_column_name", "  ", "Column 2", id="blank-name"),
    pytest.param("only\n1\n2\n3\n", {}, "too_few_columns", None, "only 1 column", id="one-column"),
    pytest.param(HEADER + GOOD_ROWS, {"target": "default"}, "unknown_column", "default", "'default'",
                 id="unknown-target"),
    pytest.param(HEADER + GOOD_ROWS, {"roles": {"age": "protected"}}, "unknown_column", "age", "'age'",
                 id="unknown-role-column"),
    pytest.param(HEADER + GOOD_ROWS, {"roles": {"a": "sensitive"}}, "invalid_role", "a", "'sensitive'",
                 id="invalid-role"),
    pytest.param(HEADER + GOOD_ROWS, {"target": "label", "roles": {"b": "target"}}, "invalid_role", None,
                 "one column", id="two-targets"),
    pytest.param(HEADER + GOOD_ROWS, {"target": "label", "roles": {"label": "feature"}}, "invalid_role", "label",
                 "is the target", id="target-given-another-role"),
    pytest.param(HEADER + GOOD_ROWS, {"target": "a"}, "target_not_binary", "a", "10 distinct values",
                 id="continuous-target"),
    pytest.param(HEADER + "1,2,yes\n3,4,yes\n", {"target": "label"}, "target_not_binary", "label",
                 "1 distinct value", id="constant-target"),
    pytest.param(HEADER + GOOD_ROWS + "11,22,\n", {"target": "label"}, "target_not_binary", "label",
                 "1 missing value", id="target-with-missing"),
]


@pytest.mark.parametrize(("content", "kwargs", "code", "column", "fragment"), BAD_INPUTS)
def test_it_rejects_bad_input_and_leaves_nothing_behind(tmp_path, content, kwargs, code, column, fragment):
    source = write(tmp_path, content)
    destination = tmp_path / "out" / "dataset.parquet"

    with pytest.raises(IngestError) as raised:
        ingest(source, destination, **kwargs)

    assert raised.value.code == code
    assert fragment in str(raised.value)
    if column is not None:
        assert raised.value.column == column
    assert not destination.exists()
    assert leftovers(destination.parent) == []


def test_a_workbook_is_named_as_such(tmp_path):
    with pytest.raises(IngestError, match="xlsx"):
        ingest(write(tmp_path, b"PK\x03\x04" + bytes(100), "book.xlsx"), tmp_path / "out.parquet")


def test_the_undecodable_error_gives_the_byte_offset(tmp_path):
    content = HEADER.encode() + b"1,2,yes\n" + "caf\xe9,1,yes\n".encode("latin-1")

    with pytest.raises(IngestError) as raised:
        ingest(write(tmp_path, content), tmp_path / "out.parquet")

    offset = content.index(b"\xe9")
    assert f"byte offset {offset}" in str(raised.value)
    assert "line 3" in str(raised.value)


def test_it_rejects_a_parquet_file_with_one_column(tmp_path):
    source = tmp_path / "one.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), source)

    with pytest.raises(IngestError) as raised:
        ingest(source, tmp_path / "out.parquet")

    assert raised.value.code == "too_few_columns"


def test_it_rejects_a_parquet_file_without_rows_or_with_duplicate_names(tmp_path):
    empty, twice = tmp_path / "empty.parquet", tmp_path / "twice.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int64()), "y": pa.array([], pa.string())}), empty)
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), twice)

    with pytest.raises(IngestError) as no_rows:
        ingest(empty, tmp_path / "out.parquet")
    with pytest.raises(IngestError) as duplicated:
        ingest(twice, tmp_path / "out.parquet")

    assert (no_rows.value.code, duplicated.value.code) == ("empty_file", "duplicate_columns")
    assert not (tmp_path / "out.parquet").exists()


def test_it_rejects_a_damaged_parquet_file(tmp_path):
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}), whole)
    damaged = write(tmp_path, whole.read_bytes()[:-40], "damaged.parquet")

    with pytest.raises(IngestError) as raised:
        ingest(damaged, tmp_path / "out.parquet")

    assert raised.value.code == "not_tabular"
    assert not (tmp_path / "out.parquet").exists()


def test_it_rejects_nested_parquet_columns(tmp_path):
    source = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"x": [1, 2], "tags": [["a"], ["b", "c"]]}), source)

    with pytest.raises(IngestError) as raised:
        ingest(source, tmp_path / "out.parquet")

    assert (raised.value.code, raised.value.column) == ("not_tabular", "tags")


def test_a_failed_ingest_leaves_an_existing_destination_untouched(tmp_path):
    destination = write(tmp_path, b"earlier dataset", "dataset.parquet")

    with pytest.raises(IngestError):
        ingest(write(tmp_path, HEADER), destination)

    assert destination.read_bytes() == b"earlier dataset"
    assert leftovers(tmp_path) == []


def test_detect_format_tells_parquet_from_csv():
    assert detect_format(b"PAR1\x15\x04") == "parquet"
    assert detect_format(b"a,b\n1,2\n") == "csv"
    with pytest.raises(IngestError) as raised:
        detect_format(b"a,b\n1,2\n", "data.parquet")
    assert raised.value.code == "not_tabular"


# --------------------------------------------------------------------------
# Problems beyond the first megabyte (the head is checked separately)


def _big_rows(n: int = 45_000) -> list[str]:
    return [f"{i},{i * 7 % 1000},{'yes' if i % 3 else 'no'},padding-text-{i % 97}" for i in range(n)]


def test_bad_utf8_deep_in_a_large_file_is_reported_with_its_line(tmp_path):
    rows = _big_rows()
    content = ("id,x,label,note\n" + "\n".join(rows[:40_000]) + "\n").encode()
    content += "40000,1,no,caf\xe9\n".encode("latin-1") + ("\n".join(rows[40_001:]) + "\n").encode()
    assert content.index(b"caf") > 1 << 20

    with pytest.raises(IngestError) as raised:
        ingest(write(tmp_path, content), tmp_path / "out.parquet", block_size=64 << 10)

    assert raised.value.code == "undecodable"
    assert "line 40002" in str(raised.value)
    assert f"byte offset {content.index(b'caf') + 3}" in str(raised.value)
    assert not (tmp_path / "out.parquet").exists()


def test_bad_utf8_after_a_multiline_value_is_reported_with_its_line(tmp_path):
    rows = _big_rows()
    rows[10] = '10,1,yes,"two\nlines"'
    content = ("id,x,label,note\n" + "\n".join(rows[:40_000]) + "\n").encode()
    content += "40000,1,no,caf\xe9\n".encode("latin-1") + ("\n".join(rows[40_001:]) + "\n").encode()

    with pytest.raises(IngestError) as raised:
        ingest(write(tmp_path, content), tmp_path / "out.parquet", block_size=64 << 10)

    assert raised.value.code == "undecodable"
    assert "line 40003" in str(raised.value)  # the quoted value spans two lines


def test_a_ragged_row_after_a_multiline_value_is_reported_with_its_line(tmp_path):
    rows = ["id,note,label", '1,"two\nlines",yes', "2,fine,no", "3,short"] + ["4,ok,yes"] * 10

    with pytest.raises(IngestError) as raised:
        ingest(write(tmp_path, "\n".join(rows) + "\n"), tmp_path / "out.parquet", block_size=64)

    assert raised.value.code == "ragged_rows"
    assert "Line 5 has 2 fields" in str(raised.value)


# --------------------------------------------------------------------------
# Decompression bombs: a small Parquet file that decodes to far more


def _bomb(tmp_path: Path, *, dictionary: bool, rows: int = 2_000_000) -> Path:
    """Two int64 columns of zeros and ones: 32 MB decoded, some 30 KB (dictionary) or 380 KB on disk."""
    path = tmp_path / "bomb.parquet"
    table = pa.table({"a": np.zeros(rows, dtype=np.int64), "target": np.arange(rows, dtype=np.int64) % 2})
    pq.write_table(table, path, compression="zstd", use_dictionary=dictionary)
    return path


def test_a_parquet_file_whose_footer_declares_too_much_is_refused_before_it_is_decoded(tmp_path: Path, monkeypatch):
    source = _bomb(tmp_path, dictionary=False)
    decoded = []
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, *a, **k: decoded.append(1) or iter(()))
    out = tmp_path / "out" / "data.parquet"
    with pytest.raises(IngestError) as refused:
        ingest(source, out, target="target", max_decoded_bytes=1_000_000)
    assert refused.value.code == "too_large" and "1000000 bytes" in str(refused.value)
    assert decoded == []  # refused from the footer alone
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_run_length_encoded_bomb_is_refused_while_it_is_decoded(tmp_path: Path, monkeypatch):
    # Its footer declares little (run lengths and a dictionary): only counting the decoded batches sees it.
    source = _bomb(tmp_path, dictionary=True)
    metadata = pq.ParquetFile(source).metadata
    assert sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)) < 1_000_000
    batches = []
    original = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):  # noqa: ANN001,ANN002,ANN003,ANN202
        for batch in original(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    out = tmp_path / "out" / "data.parquet"
    with pytest.raises(IngestError) as refused:
        ingest(source, out, target="target", max_decoded_bytes=1_000_000)
    assert refused.value.code == "too_large"
    assert sum(batches) < 200_000  # stopped within the first batches of two million rows
    assert list(out.parent.iterdir()) == []  # the staged file was removed
    # Without a cap, the same file is an ordinary dataset.
    assert ingest(source, out, target="target").n_rows == 2_000_000

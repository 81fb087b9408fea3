"""riskmodels.ml.arrow_messages reads pyarrow's CSV error text: these tests make pyarrow raise each
message it reads, and fail, saying what to re-check, when a pyarrow release changes one."""

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from riskmodels.ml.arrow_messages import CHECKED_PYARROW_VERSION, CsvMessage, read_csv_message
from tests.pins import pinned

RECHECK = (
    "riskmodels/ml/arrow_messages.py reads pyarrow's CSV errors by their text (a cell that does not "
    "convert: its column and value; a row straddling parse blocks), and riskmodels/ml/ingest.py tells "
    "ragged rows by pyarrow's invalid_row_handler. Re-check both against the new pyarrow, run "
    "tests/riskmodels/ml/test_ingest.py, then update this test and CHECKED_PYARROW_VERSION."
)


def arrow_error(data: bytes, **options: object) -> pa.ArrowInvalid:
    with pytest.raises(pa.ArrowInvalid) as raised:
        pcsv.read_csv(pa.py_buffer(data), **options)
    return raised.value


def test_pyarrow_is_the_release_whose_messages_were_checked():
    assert pa.__version__ == pinned("pyarrow"), (
        f"pyarrow {pa.__version__} is installed but requirements.txt pins {pinned('pyarrow')}. {RECHECK}"
    )
    assert CHECKED_PYARROW_VERSION == pinned("pyarrow"), (
        f"requirements.txt pins pyarrow {pinned('pyarrow')}; the messages were checked against "
        f"{CHECKED_PYARROW_VERSION}. {RECHECK}"
    )


@pytest.mark.parametrize("value", ["n/k", "1.5", "it's: odd"])
def test_a_cell_that_does_not_convert_is_read_with_its_column_and_value(value):
    cell = '"' + value.replace('"', '""') + '"' if "," in value or '"' in value else value
    error = arrow_error(f"a,b\n1,2\n3,{cell}\n".encode(),
                        convert_options=pcsv.ConvertOptions(column_types={"b": pa.int64()}))

    assert read_csv_message(str(error)) == CsvMessage("conversion", column=1, value=value), (
        f"pyarrow's conversion error now reads {str(error)!r}. {RECHECK}"
    )


def test_a_row_longer_than_the_parse_block_is_read_as_straddling():
    error = arrow_error(b"a,b\n1," + b"x" * 200 + b"\n", read_options=pcsv.ReadOptions(block_size=64))

    assert read_csv_message(str(error)).kind == "straddling", f"pyarrow's block error now reads {str(error)!r}. {RECHECK}"


def test_a_ragged_row_reaches_the_invalid_row_handler_with_its_field_counts():
    rows = []

    def keep(row):  # noqa: ANN001,ANN202
        rows.append(row)
        return "error"

    error = arrow_error(b"a,b\n1,2\n3,4,5\n", parse_options=pcsv.ParseOptions(invalid_row_handler=keep))

    assert [(r.expected_columns, r.actual_columns) for r in rows] == [(2, 3)], (
        f"pyarrow's invalid_row_handler no longer reports the ragged row's field counts. {RECHECK}"
    )
    assert read_csv_message(str(error)).kind == "other"

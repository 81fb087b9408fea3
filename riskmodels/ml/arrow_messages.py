"""Read the two pyarrow CSV errors whose meaning is only in their message text.

pyarrow raises ``ArrowInvalid`` for every CSV problem, so its type says nothing about which. Rows
with the wrong number of fields are reported through the public ``invalid_row_handler`` (see
:mod:`riskmodels.ml.ingest`), but two failures have no structured form:

* a cell that does not fit its column's inferred type (the ingest widens that column and reads
  again, so it needs the column and the cell), and
* a row longer than the parse block, "straddling" two blocks (the ingest retries with a larger
  block).

This function is the only place that reads pyarrow's message text. It was written against
:data:`CHECKED_PYARROW_VERSION` (the pin in requirements.txt);
``tests/riskmodels/ml/test_arrow_messages.py`` makes pyarrow raise each message and fails, saying
what to re-check, if the text changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CHECKED_PYARROW_VERSION", "CsvMessage", "read_csv_message"]

CHECKED_PYARROW_VERSION = "26.0.1"

_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+: invalid value '(.*)'", re.S)
_STRADDLING = "straddling"


@dataclass(frozen=True)
class CsvMessage:
    """What a pyarrow CSV error message says: ``kind`` is "conversion", "straddling" or "other".

    For "conversion", ``column`` is the 0-based position of the column and ``value`` the cell
    that did not convert.
    """

    kind: str
    column: int | None = None
    value: str | None = None


def read_csv_message(message: str) -> CsvMessage:
    """Return what pyarrow's CSV error ``message`` says, as far as the ingest needs it."""
    match = _CONVERSION.search(message)
    if match is not None:
        return CsvMessage("conversion", column=int(match.group(1)), value=match.group(2))
    if _STRADDLING in message:
        return CsvMessage("straddling")
    return CsvMessage("other")

"""CSV as a spreadsheet opens it: no cell is read as a formula (OWASP's "CSV injection").

Every CSV file tracer writes (grades.csv, answers.csv) goes through `csv_text`. A cell that starts
with `=`, `+`, `-`, `@`, a tab or a carriage return and is not a number is written with a leading
`'`, which Excel, LibreOffice and Google Sheets read as "this cell is text"; a number such as
`-0.044` stays a number. Student ids and variant codes come from a class file anyone can write, so
`=HYPERLINK(…)` or `@SUM(…)` there must arrive in the instructor's spreadsheet as text.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Iterable, Sequence

#: What a spreadsheet takes as the start of a formula (or of a cell it trims to one).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number, as a spreadsheet reads one: it stays as it is.
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: object) -> str:
    """The cell as text a spreadsheet shows and never runs."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV text (one line each, `\\n` ends), every cell through `safe_cell`."""
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    # With "\n" ending rows, the csv module quotes a cell holding "\n" but not one holding a lone "\r",
    # which a reader then takes for the end of the row: such a row has every cell quoted.
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [safe_cell(cell) for cell in row]
        (quoted if any("\r" in cell for cell in cells) else plain).writerow(cells)
    return buffer.getvalue()

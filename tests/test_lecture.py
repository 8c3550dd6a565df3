"""What the lecture formats share: worked lines set for a slide, and a build of every format, twice."""

from __future__ import annotations

import re

from conftest import bundled_lecture
from tracer.cli import main
from tracer.documents.lecture import NOT_SHOWN, height, line_latex, visible_width
from tracer.documents.slides import LINE_ROWS, LINE_WIDTH


def test_a_long_sum_is_broken_into_rows_that_fit_a_slide():
    lec = bundled_lecture("06-xor-relu-adam")
    cost = next(ln for ln in lec.model.lines if ln.quantity == "cost")
    broken = line_latex(cost, width=LINE_WIDTH, max_rows=LINE_ROWS)
    rows = broken.split(r" \\ ")
    assert len(rows) > 3 and all(visible_width(row) <= LINE_WIDTH for row in rows)  # the sum over several rows
    assert NOT_SHOWN not in broken and broken.count("log") == 2 + 8  # the formula's two, and two for each of 4 examples
    adam = next(ln for ln in lec.model.lines if ln.quantity == "W1_after")
    assert height(adam.expression) > 5
    assert NOT_SHOWN not in line_latex(adam)  # the web page and notebook show every number


def test_a_matrix_update_too_tall_for_a_slide_shows_its_first_entry_worked_and_the_whole_result():
    from decimal import Decimal

    lec = bundled_lecture("06-xor-relu-adam")
    adam = next(ln for ln in lec.model.lines if ln.quantity == "W1_after")
    shown = line_latex(adam, width=LINE_WIDTH, max_rows=LINE_ROWS)
    assert NOT_SHOWN not in shown and r"\left[W_{1}\right]_{1,1}" in shown
    # The entry's line, redone from its own numbers (W1, v and s of entry 1,1 at step 0), gives the result's entry.
    w, v, s = (adam.expression["args"][0][0][0], adam.expression["args"][1]["args"][1]["args"][0]["args"][0][0][0],
               adam.expression["args"][1]["args"][1]["args"][1]["args"][0]["args"][0]["args"][0][0][0])
    for number in (w, v, s):
        assert (number if "e" not in number else number.split("e")[0]) in shown
    alpha, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    exact = float(w) - alpha * (float(v) / (1 - b1)) / ((float(s) / (1 - b2)) ** 0.5 + eps)
    first = adam.result[0][0]
    assert Decimal(repr(exact)).quantize(Decimal(first)) == Decimal(first)
    # No fraction inside a fraction: its numbers would be set below the class size.
    assert r"\frac{\frac" not in shown and re.search(r"\}\s*/", shown)


def test_every_lecture_format_builds_byte_identical_twice(tmp_path, capsys):
    outputs = []
    for run in ("one", "two"):
        out = tmp_path / run
        assert main(["build", "01-or-one-example", "-o", str(out), "--format", "slides,ipynb,html"]) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()})
    assert outputs[0] == outputs[1]
    expected = {"01-or-one-example-slides.tex", "01-or-one-example.ipynb", "01-or-one-example.html"}
    assert expected <= set(outputs[0])


def test_an_unknown_format_is_refused_with_the_list(tmp_path, capsys):
    assert main(["build", "01-or-one-example", "-o", str(tmp_path), "--format", "slide"]) == 2
    err = capsys.readouterr().err
    assert "slides" in err and "ipynb" in err and "html" in err and "Traceback" not in err

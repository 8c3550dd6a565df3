"""What the lecture formats share: worked lines set for a slide, and a build of every format, twice."""

from __future__ import annotations

from conftest import bundled_lecture
from tracer.cli import main
from tracer.documents.lecture import NOT_SHOWN, height, line_latex, visible_width


def test_a_long_sum_is_broken_into_rows_that_fit_and_an_oversized_substitution_is_left_out():
    lec = bundled_lecture("06-xor-relu-adam")
    cost = next(ln for ln in lec.model.lines if ln.quantity == "cost")
    broken = line_latex(cost, width=68, max_rows=5)
    rows = broken.split(r" \\ ")
    assert len(rows) > 3 and all(visible_width(row) <= 68 for row in rows)  # the sum over several rows
    assert NOT_SHOWN not in broken and broken.count("log") == 2 + 8  # the formula's two, and two for each of 4 examples
    adam = next(ln for ln in lec.model.lines if ln.quantity == "W1_after")
    assert height(adam.expression) > 5
    assert NOT_SHOWN in line_latex(adam, width=68, max_rows=5)
    assert NOT_SHOWN not in line_latex(adam)  # the web page and notebook show every number


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

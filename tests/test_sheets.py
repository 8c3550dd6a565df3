"""Exercise variants: readable and distinct, keys that agree with tracer verify, reproducible byte for byte."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
from decimal import Decimal

import numpy as np
import pytest
from conftest import needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracer
from tracer.checks.verify import verify
from tracer.cli import main
from tracer.documents.build import compile_pdf
from tracer.engine.chapter import ChapterError
from tracer.errors import TracerError
from tracer.exercises.sheets import (
    check_answers,
    exercise_spec,
    make_variants,
    sheet_graph,
    variant,
    write_exercises,
)
from tracer.rounding import format_number, round_half_up


@pytest.fixture(scope="module")
def sheets(tmp_path_factory, or_batch):
    out = tmp_path_factory.mktemp("sheets")
    write_exercises(or_batch, out, count=6, seed=2026)
    return out


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def by_hand(W, b, lr, steps):
    """Chapter 02's OR network worked in plain NumPy: the gradients of the last of `steps` steps."""
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
    Y = np.array([[0, 1, 1, 1]], float)
    for _ in range(steps):
        A = sigmoid(W @ X + b)
        dZ = (A - Y) / 4 * A * (1 - A)
        dW, db = dZ @ X.T, dZ.sum(axis=1, keepdims=True)
        W, b = W - lr * dW, b - lr * db
    return dW, db


def test_the_bundled_exercises_read_as_the_article_sets_them(or_batch):
    spec = exercise_spec(or_batch)
    assert (spec.step, spec.ask, spec.decimals) == (1, ("dW1", "db1"), 3)
    one = exercise_spec(tracer.load_chapter("01-or-one-example"))
    assert one.step == 0 and "dW1" in one.ask


def test_the_answer_keys_are_the_hand_calculation_of_each_variant(sheets):
    listing = json.loads((sheets / "secret" / "answers.json").read_text())
    assert listing["seed"] == 2026 and len(listing["variants"]) == 6
    for v in listing["variants"]:
        W, b = np.array(v["start"]["W1"]), np.array(v["start"]["b1"])
        assert all(Decimal(str(x)) == Decimal(str(x)).quantize(Decimal("0.1")) for x in W.ravel())  # nice
        dW, db = by_hand(W, b, v["learning_rate"], steps=2)  # step 1 is the second step
        assert v["answers"]["dW1"]["expected"] == "[" + ", ".join(format_number(x, 3) for x in dW.ravel()) + "]"
        assert v["answers"]["db1"]["expected"] == format_number(db.item(), 3)


def test_answers_csv_lists_every_entry_for_an_lms(sheets):
    rows = list(csv.DictReader((sheets / "secret" / "answers.csv").open()))
    assert rows[0].keys() == {"variant", "quantity", "entry", "expected", "exact"}
    assert len(rows) == 6 * 3  # dW1 has 2 entries, db1 one
    for row in rows:
        assert str(round_half_up(float(row["exact"]), 3)) == row["expected"]


def test_variants_are_readable_and_distinct(or_batch):
    variants = make_variants(or_batch, 40, seed=7)
    keys = set()
    for v in variants:
        values = [x for q in v.spec.ask for x in v.value(q).ravel()]
        assert all(round_half_up(x, 3) != 0 for x in values)
        assert all(abs((abs(Decimal(repr(float(x)))) * 1000) % 1 - Decimal("0.5")) >= Decimal("0.05") for x in values)
        keys.add(tuple(format_number(x, 3) for x in values))
    assert len(keys) == 40


def test_the_same_seed_gives_byte_identical_sheets(tmp_path, or_batch):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_exercises(or_batch, a, count=4, seed=11)
    write_exercises(or_batch, b, count=4, seed=11)
    write_exercises(or_batch, c, count=4, seed=12)
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    # What students get, and what is kept from them, in two folders.
    assert {"handouts/exercise-01.md", "handouts/exercise-01.tex", "secret/answer-key-04.tex", "secret/answers.csv",
            "secret/answers.json", "exercises.json", "chapter.toml"} <= set(files)
    assert not [f for f in files if f.startswith("handouts/") and ("answer" in f or "quiz" in f)]
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "secret" / "answers.csv").read_bytes() != (c / "secret" / "answers.csv").read_bytes()


def test_a_sheet_asks_without_answering_and_its_key_answers(sheets):
    sheet = (sheets / "handouts" / "exercise-03.md").read_text()
    key = (sheets / "secret" / "answer-key-03.md").read_text()
    expected = json.loads((sheets / "secret" / "answers.json").read_text())["variants"][2]["answers"]["dW1"]["expected"]
    typed = f"dW1 = {expected}"
    assert typed not in sheet and typed in key
    assert "tracer check 02-or-batch --seed 2026 --variant 3" in sheet
    assert r"\begin{document}" in (sheets / "handouts" / "exercise-03.tex").read_text()


def test_a_student_checks_a_variant_from_the_folder_or_the_seed(sheets, or_batch, capsys):
    listing = json.loads((sheets / "secret" / "answers.json").read_text())["variants"]
    mine = [f"{q} = {a['expected']}" for q, a in listing[4]["answers"].items()]
    assert main(["check", str(sheets), "--variant", "5", *mine]) == 0
    assert "score: 2/2 right" in capsys.readouterr().out
    report = check_answers(or_batch, mine, variant=5, seed=2026)
    assert (report.right, report.asked, report.variant) == (2, 2, 5)
    theirs = [f"{q} = {a['expected']}" for q, a in listing[0]["answers"].items()]
    assert check_answers(sheets, theirs, variant=5).right < 2


def test_checking_a_variant_without_its_seed_is_refused_clearly(sheets, or_batch, capsys):
    assert main(["check", "02-or-batch", "--variant", "3", "dW1 = [0, 0]"]) == 2
    assert "expected --seed S too" in capsys.readouterr().err
    assert main(["check", str(sheets), "--variant", "99", "dW1 = [0, 0]"]) == 2
    assert "variants 1 to 6" in capsys.readouterr().err


def test_the_cli_writes_a_set(tmp_path, capsys):
    assert main(["exercises", "01-or-one-example", "--variants", "3", "--seed", "5", "-o", str(tmp_path)]) == 0
    assert "wrote 3 variants" in capsys.readouterr().out
    assert (tmp_path / "secret" / "answer-key-03.md").exists() and (tmp_path / "handouts" / "exercise-03.md").exists()


@needs("dot")
def test_a_worksheets_graph_gives_the_data_and_start_and_leaves_the_rest_to_fill_in():
    # Part I's exercise is at step 0: x, y and the starting w and b are given, every other value is a box.
    (v,) = make_variants(tracer.load_chapter("01-or-one-example"), 1, seed=5)
    graph = sheet_graph(v)
    given = {"A0": v.X, "Y": v.chapter.Y, "W1": v.start["W1"], "b1": v.start["b1"]}
    for node in graph.nodes.values():
        name, *index = node.id.split("_")
        if name in given:
            assert not node.value.blank and node.value.value == given[name][tuple(int(i) for i in index)]
            assert node.value.decimals == (1 if name in ("W1", "b1") else 0 if name == "Y" else 1)  # as the sheet
        else:
            assert node.value.blank, node.id
        assert node.gradient is None or node.gradient.blank
    # A sheet at a later step (the OR batch's step 1) is given only the data there: its W₁ is worked out.
    (w,) = make_variants(tracer.load_chapter("02-or-batch"), 1, seed=5)
    later = sheet_graph(w)
    assert later.nodes["W1"].value.blank and not later.nodes["A0"].value.blank


@needs("dot")
@needs("pdflatex")
def test_a_worksheet_with_its_graph_compiles_to_a_readable_page(tmp_path):
    write_exercises(tracer.load_chapter("01-or-one-example"), tmp_path, count=1, seed=5, formats=("tex",))
    pdf = compile_pdf(tmp_path / "handouts" / "exercise-01.tex")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "The computational graph at step 0" in text and "Cost =" in text and "Your answers" in text
    assert "∂Cost/∂w" in text.replace(" ", "")


def test_a_bad_exercise_section_names_the_file_and_key(or_batch):
    raw = {**or_batch.raw, "exercise": {"step": 1, "ask": ["dW9"]}}
    with pytest.raises(ChapterError, match=r"\[exercise\] ask: expected quantities recorded at step 1"):
        make_variants(dataclasses.replace(or_batch, raw=raw), 2, 1)
    raw = {**or_batch.raw, "exercise": {"ask": ["dW1"], "vary": ["wieghts"]}}
    with pytest.raises(ChapterError, match=r"did you mean 'weights'"):
        exercise_spec(dataclasses.replace(or_batch, raw=raw))
    raw = {k: v for k, v in or_batch.raw.items() if k != "exercise"}
    with pytest.raises(ChapterError, match=r"expected an \[exercise\] section"):
        exercise_spec(dataclasses.replace(or_batch, raw=raw))


def test_too_narrow_a_range_is_told_rather_than_looping(or_batch):
    raw = {**or_batch.raw, "exercise": {"step": 1, "ask": ["dW1"], "weights": [0.1, 0.2]}}
    with pytest.raises(TracerError, match="could not draw variant"):
        make_variants(dataclasses.replace(or_batch, raw=raw), 5, 1)


# --------------------------------------------------------------------------- properties


def _with_key_as_article_figures(v) -> tracer.Chapter:
    """The variant's chapter with its answer key written as [[article.figures]], for tracer verify."""
    figures = [{"step": v.spec.step, "quantity": q,
                "value": [format_number(x, v.spec.decimals) for x in v.value(q).ravel()]} for q in v.spec.ask]
    return dataclasses.replace(v.chapter, raw={**v.chapter.raw, "article": {"figures": figures}})


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32), name=st.sampled_from(["01-or-one-example", "02-or-batch"]))
def test_every_answer_key_agrees_with_tracer_verify(seed, name):
    chapter = tracer.load_chapter(name)
    v = variant(chapter, seed, 2)
    report = verify(_with_key_as_article_figures(v), v.trace)
    assert report.ok
    assert report.figures and all(f.verdict == "matches" for f in report.figures)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**40))
def test_a_variants_own_key_is_judged_right_and_the_variant_is_made_again_alike(seed):
    chapter = tracer.load_chapter("01-or-one-example")
    first = make_variants(chapter, 3, seed)
    again = variant(chapter, seed, 3)
    for p in first[2].start:
        np.testing.assert_array_equal(first[2].start[p], again.start[p])
    answers = []
    for q in again.spec.ask:
        value = again.value(q)
        text = ", ".join(format_number(x, again.spec.decimals) for x in value.ravel())
        answers.append(f"{q} = [{text}]" if value.size > 1 else f"{q} = {text}")
    report = check_answers(chapter, answers, variant=3, seed=seed)
    assert report.right == report.asked == len(again.spec.ask)


# --------------------------------------------------------------------------- a changed sheets folder


@pytest.mark.parametrize("change, says", [
    (lambda m: "not json {", "exercises.json: cannot be read"),
    (lambda m: json.dumps([m]), "the whole file: expected a JSON object"),
    (lambda m: json.dumps({k: v for k, v in m.items() if k != "chapter"}), "chapter: expected the chapter's name"),
    (lambda m: json.dumps({**m, "variants": "six"}), "variants: expected a number of variants"),
    (lambda m: json.dumps({**m, "variants": 10**9}), "variants: expected a number of variants"),
    (lambda m: json.dumps({**m, "seed": "2026"}), "seed: expected a whole number"),
    (lambda m: json.dumps({**m, "seed": None}), "codes: expected 6 different variant codes"),
    (lambda m: json.dumps({**m, "format": "tracer-exercises/9"}), "format: expected 'tracer-exercises/1'"),
    (lambda m: json.dumps({**m, "seed": -1}), "seed: expected a whole number"),
])
def test_a_changed_exercises_json_exits_2_with_a_clear_message(sheets, tmp_path, capsys, change, says):
    import shutil

    copy = tmp_path / "sheets"
    shutil.copytree(sheets, copy)
    manifest = json.loads((copy / "exercises.json").read_text())
    (copy / "exercises.json").write_text(change(manifest))
    assert main(["check", str(copy), "--variant", "2", "dW1 = [0.1, 0.1]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracer: ") and "exercises.json" in err and says in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("change, says", [
    (lambda v: {**v, "start": {"W1": [[0.1, "x"]], "b1": [[0.0]]}}, "start.W1: expected numbers in the shape (1, 2)"),
    (lambda v: {**v, "start": {"W1": [[0.1, 0.2, 0.3]], "b1": [[0.0]]}}, "start.W1: expected numbers in the shape"),
    (lambda v: {**v, "start": {"W9": [[0.1, 0.2]]}}, "start: expected the parameters W1, b1"),
    (lambda v: {**v, "learning_rate": -1}, "expected finite numbers and a learning rate above 0"),
    (lambda v: {**v, "X": None}, "expected an input of shape (2, 4)"),
])
def test_a_changed_answers_json_exits_2_with_a_clear_message(sheets, tmp_path, capsys, change, says):
    import shutil

    copy = tmp_path / "sheets"
    shutil.copytree(sheets, copy)
    listing = json.loads((copy / "secret" / "answers.json").read_text())
    listing["variants"][1] = change(listing["variants"][1])
    (copy / "secret" / "answers.json").write_text(json.dumps(listing))
    assert main(["check", str(copy), "--variant", "2", "dW1 = [0.1, 0.1]"]) == 2
    err = capsys.readouterr().err
    assert "answers.json" in err and says in err and "Traceback" not in err, err


@needs("dot")
@needs("pdflatex")
@needs("pdftotext")
def test_format_pdf_compiles_the_sheets_and_keys_that_read_in_order(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["exercises", "02-or-batch", "--variants", "1", "--seed", "7", "--format", "pdf", "-o", str(out)]) == 0
    assert "wrote 1 variants" in capsys.readouterr().out

    def pages(pdf):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        return text.split("\f")

    sheet = pages(out / "handouts" / "exercise-01.pdf")
    # Page 1 is filled: the rounding route and the answers table stand before the graph.
    assert "Rounding as you go" in sheet[0] and "Your answers" in sheet[0]
    assert "The computational graph at step 1" in "".join(sheet)
    key = "".join(pages(out / "secret" / "answer-key-01.pdf"))
    typed = [line.strip() for line in key.splitlines() if "typed:" in line]
    assert [t.split(" = ")[0] for t in typed] == ["typed: dW1", "typed: db1"]  # each on a line of its own


def test_format_pdf_without_pdflatex_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import shutil

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "pdflatex" else which(name))
    assert main(["exercises", "02-or-batch", "--variants", "1", "--seed", "7", "--format", "pdf",
                 "-o", str(tmp_path / "set")]) == 2
    assert "--format pdf: pdflatex is not on the PATH" in capsys.readouterr().err
    assert not (tmp_path / "set").exists()

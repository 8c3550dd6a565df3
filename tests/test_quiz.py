"""Quiz banks: Moodle XML and QTI 1.2 parse, have the structure their importers read, and round-trip every answer."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

import tracer
from tracer.exercises.quiz import QTI_NS, read_moodle, read_qti
from tracer.exercises.sheets import write_exercises
from tracer.errors import TracerError


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiz")
    text = Path(tracer.load_chapter("02-or-batch").path).read_text()
    text = text.replace('ask = ["dW1", "db1"]', 'ask = ["A1", "dW1", "db1"]\npoints = { dW1 = 2 }')
    (folder / "quiz.toml").write_text(text)
    write_exercises(tracer.load_chapter(folder / "quiz.toml"), folder / "sheets", count=5, key=bytes(range(32)),
                    formats=("moodle", "qti"))
    return folder / "sheets"


def expected_questions(sheets):
    """(code, quantity, entry) → (exact value, hand value, points) from answers.json, one per asked number."""
    listing = json.loads((sheets / "secret" / "answers.json").read_text())
    points = dict(zip(listing["asked"], listing["points"]))
    out = {}
    for v in listing["variants"]:
        for q, a in v["answers"].items():
            exact = np.array(a["exact"], dtype=float)
            for index, x in np.ndenumerate(exact):
                entry = ",".join(str(i + 1) for i in index) if exact.size > 1 else ""
                out[(v["code"], q, entry)] = (float(x), points[q] / exact.size)
    return out


@pytest.mark.parametrize("reader", ["moodle", "qti"])
def test_every_answer_and_tolerance_comes_back_from_the_bank(bank, reader):
    questions = read_moodle((bank / "secret" / "quiz-moodle.xml").read_text()) if reader == "moodle" \
        else read_qti((bank / "secret" / "quiz-qti.zip").read_bytes())
    expected = expected_questions(bank)
    assert len(questions) == len(expected) == 5 * (4 + 2 + 1)
    for q in questions:
        exact, points = expected[(q.variant, q.quantity, q.entry)]
        assert abs(Decimal(q.answers[0]) - Decimal(repr(exact))) < Decimal("1e-12")
        assert Decimal(q.tolerance) == Decimal("0.0005")  # the precision rule: half a unit of the 3rd decimal
        assert q.points == pytest.approx(points)
        rounded = Decimal(f"{exact:.12f}").quantize(Decimal("0.001"))
        assert any(abs(rounded - Decimal(c)) <= Decimal(q.tolerance) for c in q.answers)  # the key's answer passes
        assert q.variant in q.text and q.quantity in q.feedback


def test_the_moodle_bank_has_a_category_per_variant_and_numerical_questions(bank):
    root = ET.fromstring((bank / "secret" / "quiz-moodle.xml").read_bytes())
    kinds = [q.get("type") for q in root]
    assert kinds.count("category") == 5 and kinds.count("numerical") == 35
    first = root.find("question[@type='numerical']")
    assert first.find("answer").get("fraction") == "100" and first.find("questiontext").get("format") == "html"


def test_the_qti_zip_is_what_canvas_imports(bank):
    z = zipfile.ZipFile(io.BytesIO((bank / "secret" / "quiz-qti.zip").read_bytes()))
    assert sorted(z.namelist()) == ["imsmanifest.xml", "quiz.xml"]
    root = ET.fromstring(z.read("quiz.xml"))
    assert root.tag == f"{{{QTI_NS}}}questestinterop"
    items = root.findall(f".//{{{QTI_NS}}}item")
    assert len(items) == 35
    fields = {f.findtext(f"{{{QTI_NS}}}fieldlabel"): f.findtext(f"{{{QTI_NS}}}fieldentry")
              for f in items[0].iter(f"{{{QTI_NS}}}qtimetadatafield")}
    assert fields["question_type"] == "numerical_question"


def test_a_broken_bank_is_told_not_traced_back(bank):
    text = (bank / "secret" / "quiz-moodle.xml").read_text()
    with pytest.raises(TracerError, match="not well-formed XML"):
        read_moodle(text[:-20])
    with pytest.raises(TracerError, match="tolerance"):
        read_moodle(text.replace("<tolerance>0.0005</tolerance>", "", 1))
    with pytest.raises(TracerError, match="imsmanifest.xml"):
        read_qti(b"not a zip")

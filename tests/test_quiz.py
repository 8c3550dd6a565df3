"""Quiz banks: a Moodle Cloze question per variant and a Canvas quiz per variant, read back as the LMS imports them.

Moodle's bank is read by `read_moodle`, which follows question/format/xml/format.php's import of a
cloze question and qtype_multianswer_extract_question's grammar; Canvas's zip by `read_qti`, which
follows what QTIMigrationTool converts and canvas-lms's AssessmentTestConverter and NumericInteraction
read. Every accepted value and tolerance must be the precision rule's, computed here from
answers.json's exact values and the variants' hand routes.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

import tracer
from tracer.errors import TracerError
from tracer.exercises import keys
from tracer.exercises.quiz import read_moodle, read_qti
from tracer.exercises.sheets import make_variants, write_exercises

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiz")
    text = Path(tracer.load_chapter("02-or-batch").path).read_text()
    text = text.replace('ask = ["dW1", "db1"]', 'ask = ["A1", "dW1", "db1"]\npoints = { dW1 = 2 }')
    (folder / "quiz.toml").write_text(text)
    chapter = tracer.load_chapter(folder / "quiz.toml")
    write_exercises(chapter, folder / "sheets", count=5, key=KEY, formats=("moodle", "qti"))
    return folder / "sheets", make_variants(chapter, 5, key=KEY)


def rule(v, q):
    """Per entry of q, the accepted values by the rule: the exact value and each hand route's, 12 decimals."""
    exact, hand, product = v.value(q), v.hand_value(q), v.product_value(q)
    out = []
    for i, x in enumerate(exact.ravel()):
        values = []
        for y in (x, hand.ravel()[i], product.ravel()[i]):
            c = Decimal(repr(float(y))).quantize(Decimal("1e-12"))
            if c not in values:
                values.append(c)
        out.append(values)
    return out


def test_moodle_has_one_cloze_question_per_variant_in_one_category_with_the_rules_answers(bank):
    sheets, variants = bank
    questions = read_moodle((sheets / "secret" / "quiz-moodle.xml").read_text())
    assert len(questions) == 5 and {q.category for q in questions} == {
        f"$course$/tracer/quiz/key-{keys.fingerprint(KEY)[:12]}"}
    listing = json.loads((sheets / "secret" / "answers.json").read_text())
    for question, v, entry in zip(questions, variants, listing["variants"]):
        assert v.code in question.name and question.idnumber.endswith(v.code)
        # Every asked number is a NUMERICAL sub-question: A1 (4), dW1 (2), db1 (1), in the sheet's order.
        assert len(question.parts) == 7 and all(p.numerical for p in question.parts)
        expected = [c for q in ("A1", "dW1", "db1") for c in rule(v, q)]
        for part, accepted in zip(question.parts, expected):
            assert [Decimal(a) for a, _, _ in part.answers] == accepted
            assert {Decimal(t) for _, t, _ in part.answers} == {Decimal("0.0005")}  # half a unit of the 3rd decimal
            assert all(f == 1 for _, _, f in part.answers)
        # The weights are the points split over the numbers: A1 1 point over 4, dW1 2 over 2, db1 1.
        weights = [p.weight for p in question.parts]
        assert [Decimal(w) / sum(weights) * 4 for w in weights] == [Decimal("0.25")] * 4 + [1, 1, 1]
        assert question.text.count("{#") == 7 and "NUMERICAL" not in question.text
        # The exact values behind answers.json are the first accepted ones.
        for q, parts in (("A1", question.parts[:4]), ("dW1", question.parts[4:6]), ("db1", question.parts[6:])):
            for part, x in zip(parts, np.ravel(entry["answers"][q]["exact"])):
                assert abs(Decimal(part.answers[0][0]) - Decimal(repr(float(x)))) <= Decimal("5e-13")


def test_the_question_says_everything_the_sheet_does(bank):
    sheets, variants = bank
    for question, v in zip(read_moodle((sheets / "secret" / "quiz-moodle.xml").read_text()), variants):
        text = question.text
        assert r"\frac{1}{2m} \sum_{i=1}^{m}" in text  # the cost with its constant
        assert "Rounding as you go" in text and "one product" in text
        assert "Entry (i, j) of a matrix is the number in row i, column j" in text
        assert r"\begin{bmatrix}" in text and "[[" not in text  # matrices typeset, not Python lists
        assert r"\(W_{1} = \begin{bmatrix}" in text and "within 0.0005" in text
        # The feedback prints numbers as the documents do: at the asked decimals, never float noise.
        assert not re.search(r"\d\.\d{5,}", question.feedback), question.feedback
        assert re.search(r"dW1 = \[-?\d\.\d{3}, -?\d\.\d{3}\]", question.feedback)


def test_another_key_makes_another_category_and_other_ids(tmp_path):
    chapter = tracer.load_chapter("02-or-batch")
    write_exercises(chapter, tmp_path / "a", count=2, key=KEY, formats=("moodle", "qti"))
    write_exercises(chapter, tmp_path / "b", count=2, key=bytes(32), formats=("moodle", "qti"))
    a = read_moodle((tmp_path / "a" / "secret" / "quiz-moodle.xml").read_text())
    b = read_moodle((tmp_path / "b" / "secret" / "quiz-moodle.xml").read_text())
    assert a[0].category != b[0].category and not {q.idnumber for q in a} & {q.idnumber for q in b}
    qa = read_qti((tmp_path / "a" / "secret" / "quiz-qti.zip").read_bytes())
    qb = read_qti((tmp_path / "b" / "secret" / "quiz-qti.zip").read_bytes())
    ids = lambda quizzes: {q.migration_id for quiz in quizzes for q in quiz.questions} | {z.migration_id for z in quizzes}  # noqa: E731
    assert not ids(qa) & ids(qb)
    assert len(ids(qa)) == sum(len(z.questions) + 1 for z in qa)  # unique within a set too


def test_canvas_gets_one_quiz_per_variant_each_with_every_number_and_no_random_draw(bank):
    sheets, variants = bank
    quizzes = read_qti((sheets / "secret" / "quiz-qti.zip").read_bytes())
    assert len(quizzes) == 5
    for quiz, v in zip(quizzes, variants):
        assert v.code in quiz.title and not quiz.groups  # nothing drawn at random: the whole variant
        assert [q.question_type for q in quiz.questions] == ["numerical_question"] * 7
        assert all(v.code in q.title for q in quiz.questions)
        expected = [c for q in ("A1", "dW1", "db1") for c in rule(v, q)]
        for question, accepted in zip(quiz.questions, expected):
            assert [Decimal(repr(a.exact)) for a in question.answers] == accepted
            assert {a.margin for a in question.answers} == {0.0005}
        # Points that sum exactly: 1 + 2 + 1.
        assert sum(Decimal(repr(q.points)) for q in quiz.questions) == 4
        first = quiz.questions[0].text
        assert "<math" in first and "mtable" in first and "Rounding as you go" in first  # MathML matrices
        assert "row 1, column 1" in first


def test_a_broken_bank_is_told_not_traced_back(bank):
    sheets, _ = bank
    text = (sheets / "secret" / "quiz-moodle.xml").read_text()
    with pytest.raises(TracerError, match="not well-formed XML"):
        read_moodle(text[:-20])
    with pytest.raises(TracerError, match="fully right answer"):
        read_moodle(text.replace("%100%", "%50%"))
    with pytest.raises(TracerError, match="imsmanifest.xml"):
        read_qti(b"not a zip")


def test_every_formula_of_the_moodle_bank_typesets(bank):
    """Moodle's MathJax filter sets each \\( … \\); KaTeX, a stricter reader of the same LaTeX, must accept each."""
    import html

    from conftest import katex_failures

    sheets, _ = bank
    text = "".join(q.text + q.feedback for q in read_moodle((sheets / "secret" / "quiz-moodle.xml").read_text()))
    fragments = [{"tex": html.unescape(m), "display": False} for m in re.findall(r"\\\((.*?)\\\)", text, re.S)]
    assert len(fragments) > 50
    assert katex_failures(fragments) == []

"""One judge: `tracer grade` and the exported tolerances, as Moodle and Canvas evaluate them, agree on every answer.

10,000 answers (right, the hand route's figures, rounded differently, with extra decimals, with
fewer, on and just past the ends of the intervals, and the catalogue's mistakes) go through
`tracer grade` and through the quiz banks as each LMS reads and scores them:
- Moodle: each Cloze NUMERICAL sub-question's answers and tolerance (read back by `read_moodle`, as
  Moodle imports them), evaluated as qtype_numerical_answer::get_tolerance_interval does in PHP's
  floats (the tolerance widened by 10^-precision, precision = 14, times the larger of the tolerance
  and the answer), the sub-question weights scaling the question to the sheet's points;
- Canvas: each numerical question's exact value and margin as its import stores them (floats), scored
  as NumericalQuestion#correct_answer_parts does in BigDecimal.
Every answer is one student's only answer, so no error can be carried forward (what only `tracer grade`
does); the points of each answer must be the same in all three, number by number.
"""

from __future__ import annotations

import csv
import json
import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

import tracer
from tracer.cli import main
from tracer.exercises import tolerance
from tracer.exercises.quiz import read_moodle, read_qti
from tracer.exercises.sheets import write_exercises
from tracer.rounding import round_half_up, truncate

ASK = ["Z1", "A1", "dZ1", "dW1", "db1", "W1_after"]
POINTS = {"Z1": 1, "A1": 1, "dZ1": 1, "dW1": 2, "db1": 1, "W1_after": 2}
ANSWERS = 10_000


def moodle_accepts(answer: str, tol: str, response: str) -> bool:
    """qtype_numerical_answer::within_tolerance for a nominal tolerance, in PHP's (IEEE double) floats."""
    epsilon = 10.0 ** -14  # pow(10, -1 * ini_get('precision')), precision 14
    a, t = float(answer), abs(float(tol))
    widened = t + epsilon * max(t, abs(a), epsilon)
    return a - widened <= float(response) <= a + widened


def test_shares_add_up_exactly_and_split_in_hundredths():
    assert tolerance.shares(1, 3) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert tolerance.shares(2, 2) == [1, 1] and tolerance.shares(0.125, 2) == [Decimal("0.063"), Decimal("0.062")]
    for points in (1, 2, 0.5, 3, 7.25):
        for n in range(1, 13):
            assert sum(tolerance.shares(points, n)) == Decimal(repr(float(points)))


def test_the_interval_is_closed_and_the_rule_ignores_how_many_decimals_are_written():
    accepted = tolerance.centres([-0.06724])
    assert tolerance.accepts("-0.0672", accepted, 3) and tolerance.accepts("-0.067", accepted, 3)
    assert tolerance.accepts("-0.06774", accepted, 3) and not tolerance.accepts("-0.06775", accepted, 3)
    assert tolerance.entry_verdict("-0.07", accepted, 3) == "too_few_digits"
    assert tolerance.entry_verdict("-0.08", accepted, 3) == "wrong"


def probes(exact: float, hand: list[float], rng: random.Random) -> list[str]:
    """Answers a class gives for one number: right, hand routes, rounded otherwise, more or fewer decimals,
    the interval's ends and just past them, mistakes, and near misses."""
    x = Decimal(repr(exact))
    c = tolerance.centre(exact)
    half = Decimal("0.0005")
    out = [str(round_half_up(exact, 3)), str(truncate(exact, 3)), str(round_half_up(exact, 2)),
           str(round_half_up(exact, 1)), str(round_half_up(exact, 4)), str(round_half_up(exact, 5)),
           str(round_half_up(exact, 6)), f"{x:.12f}", str(round_half_up(exact, 3) + Decimal("0.001")),
           str(round_half_up(exact, 3) - Decimal("0.001")), str(-round_half_up(exact, 3)),
           str(round_half_up(4 * exact, 3)), str(round_half_up(exact / 4, 3)), str(round_half_up(2 * exact, 3))]
    for h in hand:
        out += [str(round_half_up(h, 3)), str(round_half_up(h, 4))]
    for end in (c - half, c + half):  # the ends, and a hair inside and outside
        out += [f"{end:f}", f"{end - Decimal('1e-9'):f}", f"{end + Decimal('1e-9'):f}", f"{round_half_up(float(end), 4)}"]
    for _ in range(16):
        out.append(f"{round_half_up(exact + rng.uniform(-0.002, 0.002), rng.choice([3, 4, 5])):f}")
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agreement")
    text = Path(tracer.load_chapter("02-or-batch").path).read_text()
    text = text.replace('ask = ["dW1", "db1"]', f"ask = {json.dumps(ASK)}\npoints = {{ dW1 = 2, W1_after = 2 }}")
    (folder / "ws.toml").write_text(text)
    chapter = tracer.load_chapter(folder / "ws.toml")
    write_exercises(chapter, folder / "sheets", count=40, key=bytes(range(32)), formats=("moodle", "qti"))
    listing = json.loads((folder / "sheets" / "secret" / "answers.json").read_text())["variants"]
    from tracer.exercises.sheets import open_sheets

    sheets = open_sheets(folder / "sheets")
    rng = random.Random(21)
    rows, answers = [], []
    for entry in listing:
        v = sheets.variant(entry["code"])
        for q in ASK:
            exact, hand, product = v.value(q), v.hand_value(q), v.product_value(q)
            per_entry = [probes(float(x), [float(hand.ravel()[i]), float(product.ravel()[i])], rng)
                         for i, x in enumerate(exact.ravel())]
            for k in range(max(len(p) for p in per_entry)):
                numbers = [p[(k + 7 * i) % len(p)] for i, p in enumerate(per_entry)]
                answers.append((entry["code"], q, numbers))
    rng.shuffle(answers)
    answers = answers[:ANSWERS]
    assert len(answers) == ANSWERS
    for i, (code, q, numbers) in enumerate(answers):
        cell = numbers[0] if len(numbers) == 1 else "[" + ", ".join(numbers) + "]"
        rows.append([f"s{i:05d}", code] + [cell if a == q else "" for a in ASK])
    with (folder / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "variant", *ASK], *rows])
    assert main(["grade", str(folder / "sheets"), "--answers", str(folder / "class.csv"),
                 "-o", str(folder / "grades.csv")]) == 0
    grades = list(csv.DictReader((folder / "grades.csv").open()))
    return folder, answers, grades


def test_ten_thousand_answers_get_the_same_points_from_tracer_grade_moodle_and_canvas(graded):
    folder, answers, grades = graded
    moodle = {q.name.rsplit(" ", 1)[1]: q for q in read_moodle((folder / "sheets" / "secret" / "quiz-moodle.xml").read_text())}
    canvas = {quiz.title.rsplit(" ", 1)[1].rstrip(")"): quiz
              for quiz in read_qti((folder / "sheets" / "secret" / "quiz-qti.zip").read_bytes())}
    sizes = {"Z1": 4, "A1": 4, "dZ1": 4, "dW1": 2, "db1": 1, "W1_after": 2}
    disagreements = {"moodle": 0, "canvas": 0}
    verdicts = {"right": 0, "other": 0}
    for (code, q, numbers), row in zip(answers, grades):
        assert row["variant"] == code
        got = Fraction(row[f"{q} points"])
        start = sum(sizes[a] for a in ASK[:ASK.index(q)])
        question = moodle[code]
        weights = [p.weight for p in question.parts]
        scale = Fraction(sum(POINTS.values()), sum(weights))  # the quiz's mark set to the sheet's points
        parts = question.parts[start:start + sizes[q]]
        m = sum((scale * p.weight for p, n in zip(parts, numbers)
                 if any(moodle_accepts(a, t, n) for a, t, f in p.answers if f == 1)), Fraction(0))
        items = canvas[code].questions[start:start + sizes[q]]
        assert all(f"{code} {q}" in item.title for item in items)
        c = sum((Fraction(Decimal(repr(item.points))) for item, n in zip(items, numbers)
                 if any(a.accepts(n) for a in item.answers)), Fraction(0))
        disagreements["moodle"] += m != got
        disagreements["canvas"] += c != got
        right = row[f"{q} verdict"] == "right"
        assert right == (got == POINTS[q]), row  # "right" is all the points, and only that
        verdicts["right" if right else "other"] += 1
    print(f"\n{ANSWERS} answers: {verdicts['right']} right, {verdicts['other']} not; disagreements with "
          f"tracer grade: Moodle {disagreements['moodle']}, Canvas {disagreements['canvas']}")
    assert disagreements == {"moodle": 0, "canvas": 0}
    assert verdicts["right"] > 1000 and verdicts["other"] > 1000  # both sides of the rule are probed

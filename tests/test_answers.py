"""Reading and judging a student's answers: the article's exercise, precision, modes, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracer
from tracer.cli import main
from tracer.errors import TracerError
from tracer.exercises.sheets import check_answers
from tracer.exercises.answers import (
    AnswerError,
    Mode,
    check,
    parse_answer,
    resolve_name,
)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# --------------------------------------------------------------------------- the article's exercise


def test_the_articles_exercise_answer_is_judged_right(or_batch):
    # Seed 000: "The result of that should be (rounded to 3 decimal places): ∂Cost/∂W = [-0.044, -0.035]
    # and ∂Cost/∂b = [-0.031]", after the first update (step 1).
    report = check(or_batch, ["dW1 = [-0.044, -0.035]", "db1 = -0.031"], 1)
    assert [j.status for j in report.judgements] == ["right", "right"]
    assert (report.right, report.asked) == (2, 2)


def test_the_cli_judges_the_articles_exercise_right(capsys):
    status = main(["check", "02-or-batch", "--step", "1", "dW1 = [-0.044, -0.035]", "db1 = [-0.031]", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["score"] == {"right": 2, "carried_forward": 0, "asked": 2, "points": 2, "possible": 2, "fraction": 1.0}
    assert "expected" not in out["answers"][0]


def test_a_hand_calculation_carrying_rounded_figures_is_right(or_batch):
    # Step 0 by hand, every figure rounded to 3 decimals before it is used (seed 000's data).
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
    Y = np.array([[0, 1, 1, 1]], float)
    r = lambda a: np.array([[float(f"{x:.3f}") for x in row] for row in a])  # noqa: E731 (no ties here)
    A = r(sigmoid(r(np.array([[0.1, 0.6]]) @ X)))
    dZ = r(r((A - Y) / 4) * r(A * (1 - A)))
    dW = r(dZ @ X.T)
    assert dW.tolist() == [[-0.048, -0.038]]  # exact: [-0.04800…, -0.03865…] → [-0.048, -0.039]
    for text in ("dW1 = [-0.048, -0.038]", "dW1 = [-0.048, -0.039]"):
        assert check(or_batch, [text], 0).judgements[0].right


def test_the_one_product_route_carrying_3_decimals_is_right_and_a_wrong_number_stays_wrong():
    # Public set 7, variant 20 (02-or-batch, step 1): W1 = [-0.3, -0.3], b1 = 0, learning rate 1.
    # The student works dZ = dA·A·(1 − A) as one product (∂A/∂Z never written down), carrying 3 decimals:
    # step 0: Z = [0, -0.3, -0.3, -0.6], A = [0.500, 0.426, 0.426, 0.354], dA = (A − Y)/4 = [0.125, -0.144, -0.144, -0.162]
    #   dZ = [0.125·0.5·0.5, -0.144·0.426·0.574, …, -0.162·0.354·0.646] = [0.031, -0.035, -0.035, -0.037]
    #   dW = [-0.072, -0.072], db = -0.076  →  W1 = [-0.228, -0.228], b1 = 0.076
    # step 1: Z = [0.076, -0.152, -0.152, -0.380], A = [0.519, 0.462, 0.462, 0.406], dA = [0.130, -0.135, -0.135, -0.149]
    #   dZ = [0.130·0.519·0.481, -0.135·0.462·0.538, …, -0.149·0.406·0.594] = [0.032, -0.034, -0.034, -0.036]
    #   dW1 = [-0.034 - 0.036, -0.034 - 0.036] = [-0.070, -0.070], db1 = 0.032 - 0.034 - 0.034 - 0.036 = -0.072
    # (exact db1 = -0.07028 → -0.070; rounding ∂A/∂Z first gives 0.130·0.250 = 0.0325 → 0.033 and db1 = -0.071).
    from decimal import ROUND_HALF_UP, Decimal

    q = lambda x: Decimal(x).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)  # noqa: E731
    A, dA = [Decimal(a) for a in ("0.519", "0.462", "0.462", "0.406")], [Decimal(a) for a in ("0.130", "-0.135", "-0.135", "-0.149")]
    dZ = [q(d * a * (1 - a)) for d, a in zip(dA, A)]
    assert [str(z) for z in dZ] == ["0.032", "-0.034", "-0.034", "-0.036"] and str(sum(dZ)) == "-0.072"
    report = check_answers("02-or-batch", ["dW1 = [-0.070, -0.070]", "db1 = -0.072"], seed=7, variant=20)
    assert [j.status for j in report.judgements] == ["right", "right"]
    wrong = check_answers("02-or-batch", ["dW1 = [-0.070, -0.070]", "db1 = -0.074"], seed=7, variant=20)
    assert [j.status for j in wrong.judgements] == ["right", "wrong"]


def test_a_plainly_wrong_number_with_too_few_digits_is_wrong_and_its_mistake_is_looked_for(or_batch):
    # db1 at step 1 is -0.0313…: -0.5 is wrong at one decimal too (it would be -0.0).
    j = check(or_batch, ["db1 = -0.5"], 1).judgements[0]
    assert j.status == "wrong" and "too" not in j.message
    assert j.message == "no mistake in the catalogue gives these numbers"
    # Without the 1/m (step 1 rerun with the sum in place of the mean): -0.1253 → -0.13 at 2 decimals.
    j = check(or_batch, ["db1 = -0.13"], 1).judgements[0]
    assert j.status == "wrong" and [k for k, _ in j.mistakes] == ["no_mean"]


def test_within_half_a_unit_of_the_last_digit_is_right():
    # 0.0625 is exact in binary: rounded half-up it is 0.063, and 0.062 is within half a unit of it.
    assert Mode().entry_right("0.063", 0.0625)
    assert Mode().entry_right("0.062", 0.0625)
    assert not Mode().entry_right("0.061", 0.0625)
    assert Mode().entry_right("-0.0440", -0.04402)  # more decimals than asked: judged at its own
    assert not Mode().entry_right("-0.0443", -0.04402)


def test_fewer_decimals_than_asked_is_told_not_just_marked_wrong(or_batch):
    report = check(or_batch, ["dW1 = [-0.04, -0.04]", "db1 = -0.03"], 1)
    dW, db = report.judgements
    assert dW.status == db.status == "too_few_digits"
    assert db.message.startswith("you gave 2 decimals; this exercise asks for 3")
    assert "your numbers are right" in db.message
    assert report.right == 0


def test_partial_credit_counts_answers_right_over_quantities_asked(or_batch):
    report = check(or_batch, ["dW1 = [-0.044, -0.036]"], 1, asked=["dW1", "db1"])
    dW, db = report.judgements
    assert (dW.status, dW.numbers_right, dW.numbers) == ("wrong", 1, 2)
    assert db.status == "unanswered"
    assert (report.right, report.asked) == (0, 2)
    report = check(or_batch, ["db1 = -0.031", "dW1 = [0, 0]"], 1)
    assert (report.right, report.asked, report.score) == (1, 2, 0.5)


def test_answers_beyond_what_the_exercise_asks_are_judged_but_not_scored(or_batch):
    report = check(or_batch, ["dW1 = [-0.044, -0.035]", "cost = 0.500"], 1, asked=["dW1", "db1"])
    assert [j.status for j in report.judgements] == ["right", "unanswered", "wrong"]
    assert (report.right, report.asked) == (1, 2)


def test_the_expected_value_is_shown_only_with_reveal(or_batch):
    report = check(or_batch, ["dW1 = [0.100, 0.200]"], 1)
    assert "-0.044" not in report.text() and "-0.044" not in json.dumps(report.to_dict())
    assert "expected dW1 = [-0.044, -0.035]" in report.text(reveal=True)
    assert report.to_dict(reveal=True)["answers"][0]["expected"] == "[-0.044, -0.035]"


def test_the_grader_modes(or_batch):
    # dW1 at step 1 is [-0.04428…, -0.03500…].
    sig = Mode("sigfig", digits=2)
    assert check(or_batch, ["dW1 = [-0.044, -0.035]"], 1, mode=sig).judgements[0].right
    assert check(or_batch, ["dW1 = [-0.0443, -0.0350]"], 1, mode=sig).judgements[0].right
    assert not check(or_batch, ["dW1 = [-0.045, -0.035]"], 1, mode=sig).judgements[0].right
    short = check(or_batch, ["dW1 = [-0.04, -0.04]"], 1, mode=sig).judgements[0]
    assert short.message.startswith("you gave 1 significant digit; this exercise asks for 2")
    # -0.0350044 is -0.04 at 2 decimals: -0.02 is wrong at the precision given, not merely short.
    assert check(or_batch, ["dW1 = [-0.04, -0.02]"], 1, mode=sig).judgements[0].status == "wrong"
    dec = Mode("decimals", digits=2)
    assert check(or_batch, ["dW1 = [-0.04, -0.04]"], 1, mode=dec).judgements[0].right
    assert check(or_batch, ["dW1 = [-0.0443, -0.0350]"], 1, mode=dec).judgements[0].right
    assert not check(or_batch, ["dW1 = [-0.05, -0.03]"], 1, mode=dec).judgements[0].right
    rel = Mode("relabs", rtol=0.05)
    assert check(or_batch, ["dW1 = [-0.045, -0.036]"], 1, mode=rel).judgements[0].right
    assert not check(or_batch, ["dW1 = [-0.05, -0.036]"], 1, mode=rel).judgements[0].right


@pytest.mark.parametrize("mode", [dict(name="sigfig"), dict(name="decimals", digits=-1),
                                  dict(name="relabs"), dict(name="relabs", rtol=float("nan"))])
def test_a_mode_without_its_numbers_is_refused_clearly(mode):
    with pytest.raises(TracerError, match="expected"):
        Mode(**mode)


def test_any_recorded_quantity_can_be_answered_under_friendly_names(or_batch):
    v = tracer.run(or_batch, steps=2).at(1)
    after = v["W1_after"][0]
    for name in ("W1_after", "W1 after", "new W1", "updated W1", "W after"):
        text = f"{name} = [{after[0]:.3f}, {after[1]:.3f}]"
        assert check(or_batch, [text], 1).judgements[0].quantity == "W1_after"
        assert check(or_batch, [text], 1).judgements[0].right
    assert check(or_batch, ["∂Cost/∂W1 = [-0.044, -0.035]"], 1).judgements[0].right
    assert check(or_batch, ["dW = [-0.044, -0.035]"], 1).judgements[0].right
    assert check(or_batch, [f"Cost = {v['cost']:.3f}"], 1).judgements[0].right  # the article's 0.084
    assert check(or_batch, ["Cost = 0.084"], 1).judgements[0].right
    dA0 = v["dA0"]
    rows = "; ".join(", ".join(f"{x:.3f}" for x in row) for row in dA0)
    assert check(or_batch, [f"dA0 = [{rows}]"], 1).judgements[0].right


def test_a_matrix_is_written_row_by_row_as_in_the_document():
    chapter = tracer.load_chapter("04-xor-hidden-layer")
    W1 = tracer.run(chapter, steps=1).at(0)["W1"]  # 3 × 2
    rows = ", ".join("[" + ", ".join(f"{x:.3f}" for x in row) + "]" for row in W1)
    assert check(chapter, [f"W1 = [{rows}]"], 0).judgements[0].right
    transposed = ", ".join("[" + ", ".join(f"{x:.3f}" for x in row) + "]" for row in W1.T)
    with pytest.raises(AnswerError, match=r"W1 is a 3 × 2 matrix, 3 rows of 2 numbers"):
        check(chapter, [f"W1 = [{transposed}]"], 0)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("text, says", [
    ("dW1 = [-0.044, -0.035", "unbalanced brackets: '[' at column 7 is never closed"),
    ("dW1 = -0.044, -0.035]", "unbalanced brackets: ']' at column 21 closes nothing"),
    ("dW1 = [[-0.044], [-0.035, 1]]", "row 2 has 2 numbers but row 1 has 1"),
    ("dW1 = 1e999", "1e999 is not a number a hand calculation gives"),
    ("dW1 = about minus four hundredths", "'about' at column 7 is not a number or a bracket"),
    ("dW1 = __import__('os')", "is not a number or a bracket"),
    ("dW1 = {{ 7*7 }}", "is not a number or a bracket"),
    ("dW1 [-0.044, -0.035]", "expected QUANTITY = VALUE"),
    ("dW1 = ", "no value after the '='"),
    ("dW1 = []", "empty brackets"),
    ("dW1 = [[[1]]]", "nested three deep"),
    ("dW1 = 1.2.3", "'1.2.3' at column 7 is not a number"),
])
def test_an_answer_that_cannot_be_read_says_what_was_expected(text, says):
    with pytest.raises(AnswerError) as exc:
        parse_answer(text)
    assert says in str(exc.value)
    assert "expected" in str(exc.value)


def test_a_wrong_shape_or_an_unknown_quantity_says_what_was_expected(or_batch):
    with pytest.raises(AnswerError, match=r"dW1 is a row of 2 numbers, \[a, b, …\]; got a list of 3 numbers"):
        check(or_batch, ["dW1 = [1, 2, 3]"], 1)
    with pytest.raises(AnswerError, match=r"'dW7' is not a quantity recorded at this step \(did you mean 'dW1'\?\)"):
        check(or_batch, ["dW7 = 1"], 1)
    with pytest.raises(TracerError, match="steps 0 to 4999"):
        check(or_batch, ["dW1 = [1, 2]"], 5000)


def test_resolving_names_is_exact_first():
    known = ["A0", "A1", "W1", "W1_after", "cost", "dW1"]
    graph = tracer.load_chapter("02-or-batch").network
    assert resolve_name("new W1", known, graph) == "W1_after"
    assert resolve_name("dw1", known, graph) == "dW1"
    assert resolve_name("X", known, graph) == "A0"
    assert resolve_name("ŷ", known, graph) == "A1"
    assert resolve_name("W after", known, graph) == "W1_after"  # one layer: W is W1


@pytest.mark.parametrize("args, says", [
    (["dW1 = [1, 2"], "unbalanced brackets"),
    (["dW1 = 1e999"], "1e999"),
    (["nonsense"], "expected QUANTITY = VALUE"),
    (["dW1 = [1, 2, 3]"], "a row of 2 numbers"),
    (["dW1 = 1", "dW1 = 2"], "answered twice"),
    ([], "no answers"),
])
def test_the_cli_refuses_bad_answers_with_exit_status_2_and_no_traceback(capsys, args, says):
    status = main(["check", "02-or-batch", "--step", "1", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("tracer: ") and says in err and "Traceback" not in err


def test_answers_can_come_from_a_file(tmp_path, capsys):
    path = tmp_path / "answers.txt"
    path.write_text("# my answers\ndW1 = [-0.044, -0.035]\n\ndb1 = -0.031\n", encoding="utf-8")
    assert main(["check", "02-or-batch", "--answers", str(path)]) == 0  # the [exercise] step is 1
    assert "score: 2/2 right" in capsys.readouterr().out
    assert main(["check", "02-or-batch", "--answers", str(tmp_path / "missing.txt")]) == 2
    assert "cannot be read" in capsys.readouterr().err


# --------------------------------------------------------------------------- properties

ALPHABET = "0123456789.,;[] =-+eE" + "dWbAZ1_ x" + "−∂/'\"{}()a"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_any_string_is_read_or_refused_with_a_clear_message(text):
    try:
        answer = parse_answer(text)
    except AnswerError as exc:
        message = str(exc)
        assert message.startswith("answer ") or message.startswith("an answer")
        assert "expected" in message
    else:
        assert answer.numbers and all(np.isfinite(float(n)) for n in answer.numbers)


numbers = st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=1, max_size=3))
def test_a_well_formed_matrix_is_read_back_number_for_number(rows):
    text = "W1 = [" + ", ".join("[" + ", ".join(str(x) for x in row) + "]" for row in rows) + "]"
    answer = parse_answer(text)
    assert answer.layout == (len(rows), 2)
    assert [float(n) for n in answer.numbers] == [float(x) for row in rows for x in row]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=ALPHABET, max_size=30))
def test_the_cli_check_never_crashes(capsys, text):
    status = main(["check", "01-or-one-example", "--step", "0", "--", text])
    captured = capsys.readouterr()
    assert status in (0, 2, 3)
    if status == 2:
        assert captured.err.startswith("tracer: ") and "expected" in captured.err


def test_a_value_written_exactly_needs_no_more_digits():
    # Part I: with x = (0, 0) "the derivatives … w₁ & w₂, are ZERO", and ŷ = σ(0) = 0.5 exactly.
    report = check(tracer.load_chapter("01-or-one-example"), ["dW1 = [0, 0]", "A1 = 0.5"], 0)
    assert [j.status for j in report.judgements if j.given] == ["right", "right"]


# --------------------------------------------------------------------------- exit status, points, errors carried forward


@pytest.mark.parametrize("answers, status", [
    (["dW1 = [-0.044, -0.035]", "db1 = -0.031"], 0),  # the article's answers: all right
    (["dW1 = [-0.044, -0.035]", "db1 = -0.030"], 3),  # one wrong
    (["dW1 = [-0.044, -0.035]"], 3),  # one missing
    (["dW1 = [-0.04, -0.04]", "db1 = -0.031"], 3),  # not precise enough
    (["dW1 = [-0.044, -0.035", "db1 = -0.031"], 2),  # cannot be read
])
def test_check_exits_0_when_all_is_right_3_when_any_is_wrong_or_missing_2_when_unreadable(capsys, answers, status):
    assert main(["check", "02-or-batch", *answers]) == status
    captured = capsys.readouterr()
    assert ("score:" in captured.out) == (status != 2)


def test_a_later_answer_that_follows_from_an_earlier_wrong_one_is_carried_forward():
    chapter = tracer.load_chapter("02-or-batch")
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float)
    Y = np.array([[0, 1, 1, 1]], float)
    W, b = np.array([[0.1, 0.6]]), 0.0
    A = sigmoid(W @ X + b)
    dZ = (A - Y) / 4 * A * (1 - A)
    W, b = W - dZ @ X.T, b - dZ.sum()  # step 0's update (α = 1): step 1 starts here
    A = sigmoid(W @ X + b)
    dZ_wrong = (A - Y) * A * (1 - A)  # the 1/m left out
    dZ_written = np.array([[float(f"{x:.3f}") for x in dZ_wrong.ravel()]])
    dW_followed = dZ_written @ X.T  # what the student's own dZ1 gives
    W_after = W - dW_followed
    show = lambda a: "[" + ", ".join(f"{x:.3f}" for x in np.ravel(a)) + "]"  # noqa: E731
    report = check(chapter, [f"dZ1 = {show(dZ_written)}", f"dW1 = {show(dW_followed)}",
                             f"W1_after = {show(W_after)}"], 1,
                   asked=("dZ1", "dW1", "W1_after"), points=(1, 2, 2))
    status = {j.quantity: j.status for j in report.judgements}
    assert status == {"dZ1": "wrong", "dW1": "carried_forward", "W1_after": "carried_forward"}
    assert [k for k, _ in report.judgements[0].mistakes] == ["no_mean"]
    assert report.judgements[1].carried_from == ["dZ1"]
    assert (report.right, report.earned, report.possible) == (0, 4, 5)
    assert report.exit_status == 3
    text = report.text()
    assert "carried forward" in text and "it follows from your own dZ1" in text
    assert "score: 0/3 right, 2 carried forward; points 4 of 5" in text


# --------------------------------------------------------------------------- fuzz: 10,000 answers per run (issue 10)

NAMES = ["dW1", "db1", "W1", "W1_after", "new W1", "Z1", "A1", "dA0", "cost", "∂cost/∂W1", "q"]
EXTREME = [0.0, -0.031, 1e30, -1e30, 1e300, 5e-324, 1.7976931348623157e308, 0.0125, -2.5e-7]
digit_runs = st.text("0123456789", min_size=1, max_size=40)
fuzz_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda sign, whole, frac, exp: f"{sign}{whole}.{frac}{exp}", st.sampled_from(["", "-", "−", "+"]),
              digit_runs, digit_runs, st.sampled_from(["", "e-3", "E+7", "e400", "e-400", "e99999"])),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0x1p3", "1_000", "--1", ".", "1..2", "", "½"]))
SEPARATORS = ["=", "=", "=", ":", "==", ""]
MODES_TO_TRY = [Mode(), Mode("decimals", 3), Mode("sigfig", 2), Mode("relabs", rtol=1e-3, atol=1e-9)]


def fuzzed_answers(numbers: list[str], rng) -> list[str]:
    """20 answers from a pool of fuzzed numbers: a number, a flat list or a matrix (ragged at times)."""
    answers = []
    for _ in range(20):
        shape = rng.choice(["number", "list", "matrix", "matrix"])
        take = lambda k: [rng.choice(numbers) for _ in range(k)]  # noqa: E731
        if shape == "number":
            value = take(1)[0]
        elif shape == "list":
            value = "[" + ", ".join(take(rng.randint(0, 4))) + "]"
        else:
            rows = [take(rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
            value = "[" + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]"
        answers.append(f"{rng.choice(NAMES)} {rng.choice(SEPARATORS)} {value}")
    return answers


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fuzz_numbers, min_size=8, max_size=8), st.randoms(use_true_random=False))
def test_ten_thousand_fuzzed_answers_are_read_and_judged_or_refused_clearly(numbers, rng):
    # 500 examples × 20 answers: 10,000 answers per run, each read and, when read, judged against
    # ordinary and extreme exact values in every mode.
    for text in fuzzed_answers(numbers, rng):
        try:
            answer = parse_answer(text)
        except AnswerError as exc:
            assert str(exc).startswith(("answer ", "an answer")) and "expected" in str(exc)
            continue
        for number in answer.numbers:
            for i, exact in enumerate(EXTREME):
                for mode in (MODES_TO_TRY[0], MODES_TO_TRY[1 + i % 3]):
                    assert mode.entry_right(number, exact, exact) in (True, False)
        assert all(d >= 0 for d in answer.decimals)


def test_reveal_alone_shows_the_exercises_expected_values_and_judges_nothing(capsys):
    assert main(["check", "02-or-batch", "--reveal"]) == 0
    out = capsys.readouterr().out
    # Part I's vectorised exercise, as the article prints it: dW1 ≈ [-0.044, -0.035], db1 ≈ -0.031,
    # printed as a key: no verdicts, no score.
    assert "the answer key" in out and "dW1 = [-0.044, -0.035]" in out and "db1 = -0.031" in out
    assert "not answered" not in out and "score" not in out and "within 0.0005" in out
    # A step no exercise asks about has nothing to reveal.
    assert main(["check", "02-or-batch", "--step", "0", "--reveal"]) == 2
    assert "nothing is asked at step 0" in capsys.readouterr().err

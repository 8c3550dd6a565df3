"""The claim grammar: what it accepts, what SymPy makes of it, and what it refuses without evaluating."""

import builtins
import os

import pytest
import sympy as sp

from tracer.checks.formulas import (
    MAX_DEPTH,
    MAX_LENGTH,
    FormulaError,
    check_claim,
    parse_claim,
    parse_expression,
)


def test_numbers_are_exact_and_precedence_is_pythons():
    x = sp.Symbol("x", real=True)
    assert parse_expression("0.5") == sp.Rational(1, 2)
    assert parse_expression("-x**2", {"x": x}) == -(x ** 2)
    assert parse_expression("2**3**2") == 2 ** 9  # right-associative, as in Python
    assert parse_expression("1 - 2 - 3") == -4
    assert parse_expression("6/3*2") == 4
    assert parse_expression("exp(0) + log(1)") == 1


def test_derivatives_stay_unevaluated_until_checked():
    left, right = parse_claim("diff(x**2, x) == 2*x")
    assert isinstance(left, sp.Derivative)


def test_sigmoid_derivative_claim_is_true():
    result = check_claim("diff(sigma, z) == sigma*(1 - sigma)", {"sigma": "1/(1 + exp(-z))"})
    assert result.holds and result.correct == ""


def test_a_sign_slip_is_false_with_the_correct_right_hand_side():
    # Seed 002: ∂L/∂ŷ = Σ 2(y − ŷ); the derivative of (y − ŷ)² is −2(y − ŷ).
    result = check_claim("diff((y - yhat)**2, yhat) == 2*(y - yhat)")
    assert not result.holds
    assert result.factor == "-1"
    assert result.correct == "-(2*(y - yhat))"


def test_a_wrong_factor_is_named():
    result = check_claim("diff(x**3, x) == x**2")
    assert not result.holds and result.factor == "3" and result.correct == "3*(x**2)"


def test_a_claim_off_by_more_than_a_factor_gets_sympys_right_hand_side():
    result = check_claim("diff(x**3, x) == x + 1")
    assert not result.holds and result.factor == ""
    assert sp.simplify(parse_expression(result.correct) - 3 * sp.Symbol("x", real=True) ** 2) == 0


def test_cost_derivative_with_its_one_over_m_over_indexed_sums():
    assert check_claim("diff(Sum((y[i] - yhat[i])**2, (i, 1, m))/(2*m), yhat[j]) == -(y[j] - yhat[j])/m").holds
    wrong = check_claim("diff(Sum((y[i] - yhat[i])**2, (i, 1, m))/(2*m), yhat[j]) == -(y[j] - yhat[j])")
    assert not wrong.holds


def test_chain_rule_through_definitions():
    where = {"L": "(y - yhat)**2", "yhat": "1/(1 + exp(-W2*z))", "z": "1/(1 + exp(-W1*x))"}
    assert check_claim("diff(L, W1) == diff(L, yhat)*diff(yhat, z)*diff(z, W1)", where).holds


@pytest.mark.parametrize("text, says", [
    ("x.__class__ == 1", "attribute access"),
    ("(x).real == 1", "attribute access"),
    ("__import__('os').system('true') == 0", "not allowed"),
    ("lambda == 1", "Python keyword"),
    ("lambda: 1", "Python keyword"),
    ("import == 1", "Python keyword"),
    ("'x' == 1", "strings"),
    ("eval(1) == 1", "unknown function 'eval'"),
    ("f(x) == 1", "unknown function 'f'"),
    ("x; y == 1", "unexpected character ';'"),
    ("x == y == z", "expected the end of the formula"),
    ("x + 1", "'=='"),
    ("exp == 1", "is a function"),
    ("diff(x**2, 2) == 1", "differentiate by a name"),
    ("x" + " + x" * 200 + " == 1", "too long"),
    ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1) + " == 1", "nested too deeply"),
    ("-" * (MAX_DEPTH + 2) + "x == 1", "nested too deeply"),
    ("9**9**9 == 1", "too large"),
    ("1e999999999 == 1", "too long or too large"),
    ("Sum(y[i], (i, 1, 10**9)) == 1", "too large"),
])
def test_anything_outside_the_grammar_is_refused_with_a_clear_message(text, says):
    with pytest.raises(FormulaError) as info:
        check_claim(text)
    assert says in str(info.value), str(info.value)


def test_long_input_is_refused_before_anything_else():
    with pytest.raises(FormulaError, match=f"at most {MAX_LENGTH}"):
        parse_claim("x" * (MAX_LENGTH + 1))


def test_refused_text_is_never_evaluated(tmp_path):
    canary = tmp_path / "canary"
    with pytest.raises(FormulaError):
        check_claim(f"__import__('os').system('touch {canary}') == 0")
    with pytest.raises(FormulaError):
        check_claim(f"open('{canary}', 'w') == 0")
    assert not os.path.exists(canary)


def test_claims_are_judged_without_eval(monkeypatch):
    def no_eval(*args, **kwargs):
        raise AssertionError("eval called")
    monkeypatch.setattr(builtins, "eval", no_eval)
    assert check_claim("diff(x**2/2, x) == x").holds


def test_where_names_must_be_names():
    with pytest.raises(FormulaError, match="where"):
        check_claim("x == 1", {"__class__": "1"})


def test_a_sign_slip_is_found_at_random_points_without_simplifying():
    # d/dW of (y − σ(W·x))² is −2(y − ŷ)·ŷ(1 − ŷ)·x; the claim drops the minus sign.
    from tracer.checks.formulas import _check_claim
    result = _check_claim("diff((y - yhat)**2, W) == 2*(y - yhat)*yhat*(1 - yhat)*x",
                          (("yhat", "1/(1 + exp(-W*x))"),))
    assert not result.holds and result.factor == "-1" and result.method.startswith("differs at")
    assert result.correct == "-(2*(y - yhat)*yhat*(1 - yhat)*x)"


def test_a_claim_true_at_random_points_is_still_proved_by_sympy():
    from tracer.checks.formulas import _check_claim
    result = _check_claim("diff(s, x) == s*(1 - s)", (("s", "1/(1 + exp(-x))"),))
    assert result.holds and result.method == "symbolic"
    # True at the points but not everywhere would be a coincidence the proof catches; a claim false
    # by a factor that is not a small fraction falls back to SymPy's simplification.
    wrong = _check_claim("diff(x**3, x) == 3*x**2 + x - x**2", ())
    assert not wrong.holds and wrong.correct == "3*x**2"

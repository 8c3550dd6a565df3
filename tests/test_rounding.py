"""Rounding half-up on the decimal value, for any finite float and any decimal string (issue 10)."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.rounding import decimals_in, format_number, round_half_up, truncate

finite = st.floats(allow_nan=False, allow_infinity=False)
places = st.integers(min_value=-350, max_value=400)


def half_up(x: float, decimals: int) -> Fraction:
    """The oracle: exact rational arithmetic on the digits a reader sees (repr), ties away from zero."""
    exact = Fraction(repr(x))
    unit = Fraction(10) ** -decimals
    n = (abs(exact) / unit + Fraction(1, 2)).__floor__()
    return (n if exact >= 0 else -n) * unit


@settings(max_examples=400, deadline=None)
@given(finite, places)
def test_round_half_up_takes_any_finite_float(x, decimals):
    rounded = round_half_up(x, decimals)
    assert Fraction(rounded) == half_up(x, decimals)
    assert not (rounded == 0 and rounded.is_signed())


@settings(max_examples=200, deadline=None)
@given(finite, places)
def test_truncate_takes_any_finite_float(x, decimals):
    exact, unit = Fraction(repr(x)), Fraction(10) ** -decimals
    n = (abs(exact) / unit).__floor__()
    assert Fraction(truncate(x, decimals)) == (n if exact >= 0 else -n) * unit


@settings(max_examples=400, deadline=None)
@given(finite, st.integers(min_value=0, max_value=15), st.sampled_from(["plain", "latex", "unicode"]))
def test_format_number_takes_any_finite_float(x, decimals, style):
    text = format_number(x, decimals, style)
    assert isinstance(text, str) and text and not re.fullmatch(r"-0(\.0*)?", text)  # never -0.000
    if re.fullmatch(r"-?\d+(\.\d+)?", text) and abs(x) >= 1e-12:
        assert Fraction(text) == half_up(x, decimals) and len(text.partition(".")[2]) == decimals


def test_the_issue_figures_round_without_error():
    assert round_half_up(1e30, 3) == Decimal("1000000000000000000000000000000.000")
    assert format_number(-1.7976931348623157e308, 3).endswith(".000")
    assert round_half_up(-0.031, 29) == Decimal("-0.031")
    assert round_half_up(5e-324, 10**12) == Decimal("5E-324")  # more places than any float has: exact
    assert round_half_up(1e308, -10**9) == 0


digits = st.text("0123456789", min_size=1, max_size=60)
decimal_strings = st.builds(lambda sign, whole, point, frac, exp: f"{sign}{whole}{point}{frac}{exp}",
                            st.sampled_from(["", "-", "+"]), digits, st.sampled_from(["", "."]),
                            st.text("0123456789", max_size=60),
                            st.one_of(st.just(""), st.integers(-10**12, 10**12).map(lambda e: f"e{e}")))


def written_decimals(text: str) -> int:
    """The oracle: digits after the point minus the written exponent, never below 0."""
    mantissa, _, exponent = text.lower().partition("e")
    return max(0, len(mantissa.partition(".")[2]) - int(exponent or 0))


@settings(max_examples=300, deadline=None)
@given(st.one_of(decimal_strings, st.decimals(allow_nan=False, allow_infinity=False).map(str)))
def test_decimals_in_takes_any_decimal_string(text):
    assert decimals_in(text) == written_decimals(text)


def test_decimals_in_takes_strings_of_any_length():
    assert decimals_in("0." + "1" * 100_000) == 100_000
    assert decimals_in("-0.03100000000000000000000000001") == 29
    assert decimals_in("1e-999999999999") == 999999999999
    assert decimals_in("Infinity") == decimals_in("nan") == 0
    assert round_half_up(0.1, decimals_in("0." + "1" * 100_000)) == Decimal("0.1")


def test_a_worked_figure_on_a_decimal_tie_rounds_up_as_the_student_does():
    """(1 − 0.9)·0.115 is 0.011499999999999998 in floats; by hand 0.1·0.115 = 0.0115, which rounds to 0.012."""
    from tracer.rounding import round_shown, shown

    product = (1 - 0.9) * 0.115
    assert round_shown([product], 3).tolist() == [0.012] and shown(product, 3) == "0.012"
    assert shown(-product, 3) == "-0.012"
    assert shown(5.0, 8) == "5.00000000" and shown(0.0114999, 3) == "0.011"  # a tie, not a near value


def test_a_chapters_constant_is_written_as_given_and_a_small_one_as_a_power_of_ten():
    from tracer.rounding import constant_tex

    assert [constant_tex(x) for x in (0.75, 0.05, 0.001, 1e-5, 2e-6, 2.5e-4)] == \
        ["0.75", "0.05", "0.001", "10^{-5}", r"2 \times 10^{-6}", r"2.5 \times 10^{-4}"]

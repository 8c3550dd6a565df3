"""Printing whole arrays at once: the same strings as one Decimal per number."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.rounding import format_array, format_number, shown, shown_array

DECIMALS = st.integers(min_value=0, max_value=8)


def ties(decimals):
    """Numbers written with one more decimal ending in 5: exact ties of the decimal a reader sees."""
    return st.integers(min_value=-10**7, max_value=10**7).map(lambda k: float(f"{k}5e-{decimals + 1}"))


def finite():
    return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


@settings(max_examples=300, deadline=None)
@given(st.data(), DECIMALS)
def test_arrays_print_as_one_decimal_per_number(data, decimals):
    values = data.draw(st.lists(st.one_of(finite(), ties(decimals), st.just(0.0), st.just(-0.0),
                                          st.floats(min_value=-1e-11, max_value=1e-11)), min_size=1, max_size=30))
    assert format_array(values, decimals) == [format_number(v, decimals) for v in values]


def test_the_articles_ties_round_up():
    # 0.0125 is 0.01249999… in binary; the reader sees 0.0125, which rounds half-up to 0.013.
    assert format_array([0.0125, 0.0005, -0.0125, 2.5], 3) == ["0.013", "0.001", "-0.013", "2.500"]


def test_small_real_values_noise_and_infinities_print_as_format_number_does():
    values = [2.3e-4, 5.551e-17, -0.0, 1e20, 123456.78951, float("inf"), float("nan")]
    assert format_array(values, 3) == [format_number(v, 3) for v in values]
    assert format_array(values, 3, "latex") == [format_number(v, 3, "latex") for v in values]


@settings(max_examples=300, deadline=None)
@given(st.data(), DECIMALS)
def test_shown_arrays_print_each_figure_as_shown_does(data, decimals):
    values = data.draw(st.lists(st.one_of(finite(), ties(decimals), st.just(0.0), st.just(-0.0),
                                          st.floats(min_value=-1e-3, max_value=1e-3),
                                          st.floats(min_value=-1e-11, max_value=1e-11)), min_size=1, max_size=30))
    assert shown_array(values, decimals) == [shown(v, decimals) for v in values]


def test_shown_arrays_of_huge_and_non_finite_values():
    values = [1e30, -1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), 5.1e-05, 0.00051]
    assert shown_array(values, 3) == [shown(v, 3) for v in values]
    assert shown_array(values, 3)[0] == "1000000000000000000000000000000.000"
    assert shown_array(values, 3)[-2:] == ["5.1e-05", "0.00051"]

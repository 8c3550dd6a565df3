"""Rounding and printing numbers the way the articles do: half-up on the decimal value.

Python's `round` rounds half to even on the binary value (`round(0.0005, 3)` gives 0.001 but
`round(0.0125, 3)` gives 0.012); a reader checking by hand expects half-up on the digits they
see. Every figure the project prints goes through this module.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np

#: Values smaller than this in magnitude are float noise (5.551e-17 from 0.1 + 0.2 - 0.3), shown as 0.
ZERO_FLOOR = 1e-12

#: Significant digits of a non-zero value too small for the fixed decimals (2.3 × 10⁻⁴).
SMALL_SIGNIFICANT = 2


def to_decimal(x: float) -> Decimal:
    """The decimal a reader sees for `x`: the shortest repr that round-trips."""
    return Decimal(repr(float(x)))


def round_half_up(x: float, decimals: int) -> Decimal:
    """`x` rounded half-up to `decimals` places, as an exact Decimal (never -0)."""
    q = to_decimal(x).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return q.copy_abs() if q == 0 else q


def round_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """Every entry of `values` rounded half-up to `decimals` places, as floats."""
    flat = [float(round_half_up(v, decimals)) for v in np.asarray(values, dtype=float).ravel()]
    return np.array(flat, dtype=float).reshape(np.shape(values))


def truncate(x: float, decimals: int) -> Decimal:
    """`x` cut (not rounded) to `decimals` places, the slip of a reader who copies digits."""
    from decimal import ROUND_DOWN

    q = to_decimal(x).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)
    return q.copy_abs() if q == 0 else q


def decimals_in(text: str) -> int:
    """How many decimals a number was written with: '0.084' has 3, '-1' has 0, '2.5e-3' has 4."""
    exponent = Decimal(text.strip()).as_tuple().exponent
    return max(0, -int(exponent))


def is_noise(x: float) -> bool:
    """True for a value that is zero up to float noise."""
    return abs(x) < ZERO_FLOOR


def format_number(x: float, decimals: int, style: str = "plain") -> str:
    """`x` for a reader: half-up to `decimals`, trailing zeros kept, never '-0.000'.

    A value that is float noise prints as zero. A non-zero value that would print as zero
    (a cost of 0.0002 at 3 decimals) prints with SMALL_SIGNIFICANT significant digits in
    scientific notation instead, so a reader never sees a real quantity as 0.000.
    `style` is "plain" (2.3e-04), "latex" (2.3 \\times 10^{-4}) or "unicode" (2.3 × 10⁻⁴).
    """
    x = float(x)
    if x != x:
        return "NaN"
    if np.isinf(x):
        sign = "-" if x < 0 else ""
        return sign + (r"\infty" if style == "latex" else "inf")
    if is_noise(x):
        x = 0.0
    rounded = round_half_up(x, decimals)
    if rounded != 0 or x == 0:
        return f"{rounded:.{decimals}f}"
    mantissa, exponent = f"{x:.{SMALL_SIGNIFICANT - 1}e}".split("e")
    power = int(exponent)
    if style == "latex":
        return rf"{mantissa} \times 10^{{{power}}}"
    if style == "unicode":
        return f"{mantissa} × 10{str(power).translate(_SUPERSCRIPT)}"
    return f"{mantissa}e{power:+03d}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


#: Below this magnitude a worked figure is written in scientific notation (5.1e-05, not 0.000051).
SCIENTIFIC_BELOW = 1e-4


def shown_decimals(x: float, decimals: int, guard: int = 0) -> int:
    """Decimals a worked figure is shown with: `decimals`, or more so that a small value keeps
    SMALL_SIGNIFICANT significant digits (0.00051, not 0.001), plus `guard` extra digits."""
    x = abs(float(x))
    if x == 0 or is_noise(x) or not np.isfinite(x):
        return decimals + guard
    leading = to_decimal(x).adjusted()  # 0.000506 → -4
    return max(decimals, SMALL_SIGNIFICANT - 1 - leading) + guard


def shown(x: float, decimals: int, guard: int = 0) -> str:
    """A worked figure as the document prints it, in Python's float syntax: half-up to
    `shown_decimals`, trailing zeros kept ('-0.044', '0.00051', '5.1e-05'), never '-0'."""
    x = float(x)
    if is_noise(x):
        x = 0.0
    places = shown_decimals(x, decimals, guard)
    rounded = round_half_up(x, places)
    if rounded != 0 and abs(rounded) < Decimal(repr(SCIENTIFIC_BELOW)):
        digits = places + rounded.adjusted()  # significant digits after the first
        mantissa = rounded.scaleb(-rounded.adjusted())
        return f"{mantissa:.{max(digits, 0)}f}e{rounded.adjusted():+03d}"
    return f"{rounded:.{places}f}"


def round_shown(values: np.ndarray, decimals: int) -> np.ndarray:
    """Every entry rounded as `shown` prints it (a hand calculation carries exactly what it wrote)."""
    flat = [float(shown(v, decimals)) for v in np.asarray(values, dtype=float).ravel()]
    return np.array(flat, dtype=float).reshape(np.shape(values))

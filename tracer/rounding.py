"""Rounding and printing numbers the way the articles do: half-up on the decimal value.

Python's `round` rounds half to even on the binary value (`round(0.0005, 3)` gives 0.001 but
`round(0.0125, 3)` gives 0.012); a reader checking by hand expects half-up on the digits they
see. Every figure the project prints goes through this module.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

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
    return _quantize(to_decimal(x), decimals, ROUND_HALF_UP)


#: Beyond this many places either way a float's rounding is trivial: every float has fewer
#: decimals than this (its repr ends by 1e-324), and every float is below half of 10**this.
_PLACES_LIMIT = 400


def _quantize(d: Decimal, decimals: int, rounding: str) -> Decimal:
    """`d` at `decimals` places, in a context wide enough for any float (1e308 to 3 places has
    312 digits; Python's default context has 28)."""
    if not d.is_finite():
        return d
    if decimals > _PLACES_LIMIT and -d.as_tuple().exponent <= decimals:
        return d.copy_abs() if d == 0 else d  # already exact at that many places
    if decimals < -_PLACES_LIMIT and d.adjusted() < -decimals - 1:
        return Decimal(0)
    with localcontext() as context:
        context.prec = max(28, d.adjusted() + decimals + 3)
        context.Emax, context.Emin = max(context.Emax, abs(decimals) + 2), min(context.Emin, -abs(decimals) - 2)
        q = d.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
    return q.copy_abs() if q == 0 else q


#: Below this, |x|·10^d in floating point is within 1e-6 of its decimal value (a few ulps of 1e9).
_FAST_LIMIT = 1e9
_TIE_MARGIN = 1e-6
#: Smaller arrays are quicker entry by entry.
_FEW = 8


def round_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """Every entry of `values` rounded half-up to `decimals` places, as floats.

    Exactly what `round_half_up` gives entry by entry, but in NumPy (hand mode rounds every value
    of a big network at every step): an entry whose |x|·10^d lies farther than 1e-6 from a tie
    rounds the same in floating point as on its decimal value; the rest (ties, huge or
    non-finite values) go through `round_half_up`.
    """
    array = np.asarray(values, dtype=float)
    if array.size < _FEW or not 0 <= decimals <= 15:
        return _round_each(array, decimals)
    scale = 10.0 ** decimals
    with np.errstate(all="ignore"):
        scaled = np.abs(array) * scale
        result = np.copysign(np.floor(scaled + 0.5) / scale, array) + 0.0  # + 0.0: never -0
        unsure = ~(scaled < _FAST_LIMIT) | (np.abs(scaled - np.floor(scaled) - 0.5) < _TIE_MARGIN)
    if unsure.any():
        result[unsure] = _round_each(array[unsure], decimals)
    return result


def _round_each(array: np.ndarray, decimals: int) -> np.ndarray:
    flat = [float(round_half_up(v, decimals)) for v in array.ravel()]
    return np.array(flat, dtype=float).reshape(array.shape)


def truncate(x: float, decimals: int) -> Decimal:
    """`x` cut (not rounded) to `decimals` places, the slip of a reader who copies digits."""
    return _quantize(to_decimal(x), decimals, ROUND_DOWN)


def decimals_in(text: str) -> int:
    """How many decimals a number was written with: '0.084' has 3, '-1' has 0, '2.5e-3' has 4.

    Any decimal string, of any length ('inf' and 'nan' have 0); ValueError if it is not a number.
    """
    try:
        exponent = Decimal(text.strip()).as_tuple().exponent
    except ArithmeticError:
        raise ValueError(f"not a decimal number: {text[:40]!r}") from None
    return max(0, -exponent) if isinstance(exponent, int) else 0


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

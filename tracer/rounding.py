"""Rounding and printing numbers the way the articles do: half-up on the decimal value.

Python's `round` works on the binary value (`round(0.0625, 3)` gives 0.062 and `round(1.0005, 3)`
gives 1.0, where the digits say 0.063 and 1.001); a reader checking by hand expects half-up on the digits they
see. Every figure the project prints goes through this module, by one rule, `shown` (for whole arrays
`shown_array`, for LaTeX and Unicode `shown_styled`): half-up to the decimals asked, and a small value keeps two
significant digits (0.00051, not 0.001; below 10⁻⁴ in scientific notation). The terminal, the documents,
the figures and the web page all print a figure so. `format_number` is the other thing: a value written
with exactly the decimals an exercise asks for, as a student writes the answer.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

import numpy as np

#: Values smaller than this in magnitude are float noise (5.551e-17 from 0.1 + 0.2 - 0.3), shown as 0.
ZERO_FLOOR = 1e-12

#: Relative distance from a decimal tie within which a worked figure is the tie (float error of a
#: few operations on printed figures is ~1e-16); it then rounds half-up, as the student's exact figure
#: does. Only for figures of fewer than TIE_DIGITS significant digits.
TIE = 1e-12
TIE_DIGITS = 10

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


def truncate(x: float, decimals: int) -> Decimal:
    """`x` cut (not rounded) to `decimals` places, the slip of a reader who copies digits."""
    return _quantize(to_decimal(x), decimals, ROUND_DOWN)


def constant_tex(x: float) -> str:
    """A chapter's constant (λ, p, ε) as the chapter gives it, in LaTeX: 0.05, or 10^{-5} and
    2 \\times 10^{-6} for small ones (never Python's 1e-05)."""
    if x >= 1e-3:
        return f"{x:g}"
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \times {power}"


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
    """`x` written with exactly `decimals` places, as an exercise's answer is: half-up, trailing zeros
    kept, never '-0.000'. (A figure the project prints goes through `shown`.)

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
    return _small(x, style)


def _small(x: float, style: str) -> str:
    """A real value too small for the fixed decimals, in scientific notation (format_number's style)."""
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
    return int(_shown_places(np.array([float(x)]), decimals)[0]) + guard


def shown(x: float, decimals: int, guard: int = 0) -> str:
    """A worked figure as the document prints it, in Python's float syntax: half-up to
    `shown_decimals`, trailing zeros kept ('-0.044', '0.00051', '5.1e-05'), never '-0'."""
    x = float(x)
    if is_noise(x):
        x = 0.0
    places = shown_decimals(x, decimals, guard)
    if not math.isfinite(x):
        return repr(x)
    # Half-up as round_shown carries it (a decimal tie in the student's figures goes up).
    with np.errstate(all="ignore"):  # a huge value overflows in floats; _round_places takes it exactly
        rounded = round_half_up(float(_round_places(np.array([x]), np.array([places]), student=True)[0]), places)
    if abs(x) >= SCIENTIFIC_BELOW or x == 0:
        return f"{rounded:.{places}f}"
    return _small_shown(rounded, places)


def _small_shown(rounded: Decimal, places: int) -> str:
    """A value below SCIENTIFIC_BELOW, rounded to `places`, as `shown` prints it: e-notation with its
    significant digits (5.1e-05), or fixed if rounding took it up to the threshold (0.00010)."""
    if rounded != 0 and abs(rounded) < Decimal(repr(SCIENTIFIC_BELOW)):
        digits = places + rounded.adjusted()  # significant digits after the first
        mantissa = rounded.scaleb(-rounded.adjusted())
        return f"{mantissa:.{max(digits, 0)}f}e{rounded.adjusted():+03d}"
    return f"{rounded:.{places}f}"


def shown_styled(x: float, decimals: int, style: str = "plain") -> str:
    """`shown`, with scientific notation written for `style` as `format_number` writes it
    ("latex": 5.1 \\times 10^{-5}, "unicode": 5.1 × 10⁻⁵): a figure beside a worked line prints its digits."""
    if decimals <= 0 and float(x).is_integer():  # whole data written whole: x₁ = 0, y = 1
        return str(int(x))
    text = shown(x, decimals)
    if "e" not in text or style == "plain" or not math.isfinite(float(x)):
        return text
    mantissa, power = text.split("e")
    if style == "latex":
        return rf"{mantissa} \times 10^{{{int(power)}}}"
    return f"{mantissa} × 10{str(int(power)).translate(_SUPERSCRIPT)}"


def _shown_places(a: np.ndarray, decimals: int) -> np.ndarray:
    """The decimals each entry of `a` is shown with (see `shown_decimals`): the leading digit's exponent
    from log10, checked with Decimal next to a power of 10."""
    ax = np.abs(a)
    places = np.full(a.shape, decimals, dtype=np.int64)
    real = (ax >= ZERO_FLOOR) & np.isfinite(ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.log10(np.where(real, ax, 1.0))
    lead = np.floor(power)
    for i in np.flatnonzero(real & (np.abs(power - np.round(power)) < 1e-9)):
        lead.flat[i] = to_decimal(ax.flat[i]).adjusted()
    return np.where(real, np.maximum(decimals, SMALL_SIGNIFICANT - 1 - lead).astype(np.int64), places)


def _round_places(a: np.ndarray, places: np.ndarray, student: bool = False) -> np.ndarray:
    """Each entry of `a` half-up (on its decimal value) to its own number of places, as floats.

    `student`: a value within a relative TIE of a decimal tie is the tie and rounds up, as the
    student's exact figure does: (1 − 0.9) · 0.115 is 0.011499999999999998 in floats, the student's
    0.1 · 0.115 = 0.0115 rounds to 0.012. Otherwise a near tie is rounded on its exact decimal value."""
    scale = 10.0 ** places
    y = np.abs(a) * scale
    out = np.sign(a) * np.floor(y + 0.5) / scale
    off = np.abs(y - np.floor(y) - 0.5)
    exact = (y > 2.0**52) | ~np.isfinite(y)
    if student:  # below TIE_DIGITS significant digits, where float error cannot pass for a tie's distance
        tie = (off <= TIE * np.maximum(y, 1.0)) & (y < 10.0**TIE_DIGITS)
        out = np.where(tie, np.sign(a) * (np.floor(y) + 1) / scale, out)
    else:
        exact |= off <= 1e-9 * np.maximum(y, 1.0)
    for i in np.flatnonzero(exact):
        x = float(a.flat[i])
        out.flat[i] = float(round_half_up(x, int(places.flat[i]))) if math.isfinite(x) else x
    out[out == 0] = 0.0  # never -0
    return out


def round_shown(values: np.ndarray, decimals: int) -> np.ndarray:
    """Every entry rounded as `shown` prints it (a hand calculation carries exactly what it wrote)."""
    a = np.array(values, dtype=float).reshape(-1)
    a[np.abs(a) < ZERO_FLOOR] = 0.0
    return _round_places(a, _shown_places(a, decimals), student=True).reshape(np.shape(values))


def shown_array(values: np.ndarray, decimals: int, guard: int = 0) -> list[str]:
    """`shown` of every entry (flattened, in order); `guard` digits only on entries that `round_shown`
    changes (a value already carried as printed gains nothing from them)."""
    a = np.array(values, dtype=float).ravel()
    a[np.abs(a) < ZERO_FLOOR] = 0.0
    places = _shown_places(a, decimals)
    if guard:
        carried = np.abs(_round_places(a, places, student=True) - a) <= 1e-12 * np.maximum(1.0, np.abs(a))
        places = places + np.where(carried, 0, guard)
    with np.errstate(all="ignore"):  # huge and infinite entries go through `shown` itself below
        rounded = _round_places(a, places, student=True)
        plain = np.isfinite(a) & (np.abs(a) * 10.0 ** places < 2.0**40)  # a float's own digits are the decimal's
    return [(f"{r:.{p}f}" if abs(r) >= SCIENTIFIC_BELOW or r == 0 else _small_shown(round_half_up(r, p), p))
            if ok else shown(x, decimals, int(p) - d0)  # `shown`'s steps, from the entry rounded above
            for r, p, x, d0, ok in zip(rounded.tolist(), places.tolist(), a.tolist(),
                                       _shown_places(a, decimals).tolist(), plain.tolist())]


def format_array(values: np.ndarray, decimals: int, style: str = "plain") -> list[str]:
    """`format_number` of every entry (in row-major order), for whole arrays at once.

    Entries are rounded together by `_round_places` (exact decimal arithmetic only near a tie); a
    rounded float's digits at `decimals` places are exactly the rounded decimal's while it is under
    2**40 units. Noise prints as zero and a real value that rounds to zero in scientific notation, as
    format_number prints them; huge values and what is not finite go through `format_number` itself.
    """
    x = np.asarray(values, dtype=float).ravel()
    with np.errstate(all="ignore"):  # infinities are printed by format_number below
        rounded = _round_places(x, np.full(x.shape, decimals, dtype=np.int64))
        plain = (np.abs(x) * 10.0**decimals < 2.0**40) & ((rounded != 0) | (x == 0))  # a float's own decimals
        small = (rounded == 0) & (np.abs(x) >= ZERO_FLOOR) & (np.abs(x) < 0.5)  # real, yet rounds to 0
        noise = np.abs(x) < ZERO_FLOOR
    spec, zero = f".{decimals}f", format(0.0, f".{decimals}f")
    return [format(r, spec) if ok else zero if tiny else _small(v, style) if low else format_number(v, decimals, style)
            for r, ok, low, tiny, v in zip(rounded.tolist(), plain.tolist(), small.tolist(), noise.tolist(),
                                           x.tolist())]

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


def round_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """Every entry of `values` rounded half-up to `decimals` places, as floats."""
    flat = [float(round_half_up(v, decimals)) for v in np.asarray(values, dtype=float).ravel()]
    return np.array(flat, dtype=float).reshape(np.shape(values))


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


# --------------------------------------------------------------------------- whole arrays at once

#: 10**d is exact in float64 up to d = 22; units up to 2**40 leave room for the tie test below.
_MAX_FAST_DECIMALS = 22
_MAX_FAST_UNITS = 2.0**40


def _units(x: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """(|x| rounded half-up to whole units of 10^-decimals, where that is certain).

    |x|·10^d is computed in float64, within a few units of its last place of the exact product;
    when its fraction is further than that from one half, the half-up direction of the decimal
    value a reader sees is the same as the float's. The rest (near a tie, too large, not finite)
    is marked uncertain, for exact Decimal arithmetic.
    """
    with np.errstate(all="ignore"):
        scaled = np.abs(x) * 10.0**decimals
        whole = np.floor(scaled)
        fraction = scaled - whole
        units = whole + (fraction >= 0.5)
        certain = (np.isfinite(scaled) & (scaled < _MAX_FAST_UNITS)
                   & (np.abs(fraction - 0.5) > 8 * np.spacing(scaled) + 1e-9))
    if decimals > _MAX_FAST_DECIMALS or decimals < 0:
        certain[...] = False
    return units, certain


def round_half_up_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`round_array` for whole arrays at once: the same floats, without a Decimal per entry.

    Entries near a tie, huge or not finite fall back to `round_half_up`, exactly as before.
    """
    x = np.asarray(values, dtype=float).ravel()
    units, certain = _units(x, decimals)
    with np.errstate(all="ignore"):
        out = np.copysign(units, x) / 10.0**decimals + 0.0  # + 0.0: never -0
    for i in np.flatnonzero(~certain):
        out[i] = float(round_half_up(float(x[i]), decimals))
    return out.reshape(np.shape(values))


def format_array(values: np.ndarray, decimals: int, style: str = "plain") -> list[str]:
    """`format_number` of every entry (in row-major order), for whole arrays at once.

    An entry rounded for certain is printed from its rounded float, whose digits at `decimals`
    places are exactly the rounded decimal's; every other entry (near a tie, noise, a real value
    that rounds to zero, huge, not finite) goes through `format_number` itself.
    """
    x = np.asarray(values, dtype=float).ravel()
    units, certain = _units(x, decimals)
    certain &= (units != 0) | (x == 0)
    with np.errstate(all="ignore"):
        rounded = np.copysign(units, x) / 10.0**decimals + 0.0
    spec = f".{decimals}f"
    return [format(r, spec) if ok else format_number(v, decimals, style)
            for r, ok, v in zip(rounded.tolist(), certain.tolist(), x.tolist())]

"""The precision rule, written once: which numbers are accepted for an asked entry, and what an entry is worth.

An asked number is right when it lies within half a unit of the asked last decimal of an accepted
value: the exact value, or what a valid hand route gives (every value rounded as it is written down;
∂Cost/∂Z worked as one product). At 3 decimals that is ±0.0005 around each accepted value, however
many decimals the number is written with: `-0.0672` for an exact `-0.06724` is right, as an LMS with
that tolerance says. A number with fewer decimals than asked that is right only at its own decimals
(`-0.07`) is "not precise enough".

Every consumer reads these intervals from here: `tracer check` and `tracer grade` (answers.py), the
worksheet's wording, the Moodle and Canvas quiz banks (quiz.py), the practice page and the student
notebook. Each accepted value is kept to CENTRE_DECIMALS decimals, so that its interval has the same
ends as decimal text, in Moodle's floats and in Canvas's BigDecimal.

The points of a quantity are split over its entries in exact hundredths (`shares`), so a quiz bank's
entries add up to the sheet's points and a partly right answer earns what an LMS gives it.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from typing import Iterable, Sequence

import numpy as np

from tracer.rounding import decimals_in, round_half_up

#: Decimals an accepted value is kept to: exact for any hand-calculation precision, and few enough
#: (with the tolerance) for the interval's ends to survive a float round trip.
CENTRE_DECIMALS = 12
#: The unit points are split into across a quantity's entries (finer when the points themselves are).
SHARE_DECIMALS = 2


def tolerance(decimals: int) -> Decimal:
    """Half a unit of the asked last decimal: 0.0005 for 3 decimals."""
    return Decimal(5).scaleb(-int(decimals) - 1)


@functools.lru_cache(maxsize=1 << 16)
def centre(x: float) -> Decimal | None:
    """An accepted value as the rule keeps it (CENTRE_DECIMALS decimals), or None if it is not finite."""
    x = float(x)
    if not math.isfinite(x):
        return None
    d = round_half_up(x, CENTRE_DECIMALS)
    return Decimal(0) if d == 0 else d.normalize()


def centres(values: Iterable[float | None]) -> tuple[Decimal, ...]:
    """The distinct accepted values (finite ones), in order: the exact value first, then each route's."""
    out: list[Decimal] = []
    for x in values:
        c = None if x is None else centre(x)
        if c is not None and c not in out:
            out.append(c)
    return tuple(out)


def entry_centres(exact: np.ndarray, routes: Sequence[np.ndarray | None] = ()) -> list[tuple[Decimal, ...]]:
    """Per entry (row-major) of a quantity, its accepted values: the exact one and each route's of the same shape."""
    exact = np.asarray(exact, dtype=float)
    same = [np.asarray(r, dtype=float).ravel() for r in routes if r is not None and np.shape(r) == exact.shape]
    return [centres([float(x)] + [float(r[i]) for r in same]) for i, x in enumerate(exact.ravel())]


def accepts(given: str | Decimal, accepted: Sequence[Decimal], decimals: int) -> bool:
    """Does the number lie within `tolerance(decimals)` of one of the accepted values (ends included)?"""
    g = given if isinstance(given, Decimal) else Decimal(given)
    half = tolerance(decimals)
    return any(abs(g - c) <= half for c in accepted)


def entry_verdict(given: str, accepted: Sequence[Decimal], decimals: int) -> str:
    """One number's verdict: "right", "too_few_digits" (right only at the fewer decimals it has) or "wrong"."""
    if accepts(given, accepted, decimals):
        return "right"
    own = decimals_in(given)
    if own < decimals and accepts(given, accepted, own):
        return "too_few_digits"
    return "wrong"


def bounds(accepted: Sequence[Decimal], decimals: int) -> list[tuple[str, str]]:
    """The accepted intervals as decimal text, (low, high) per accepted value: what an LMS or a page compares with."""
    half = tolerance(decimals)
    return [(_text(c - half), _text(c + half)) for c in accepted]


def _text(d: Decimal) -> str:
    return f"{d.normalize():f}" if d != 0 else "0"


def text(d: Decimal) -> str:
    """An accepted value as plain decimal text (no exponent): what a quiz bank writes."""
    return _text(d)


def shares(points: float, entries: int) -> list[Decimal]:
    return list(_shares(float(points), int(entries)))


@functools.lru_cache(maxsize=1024)
def _shares(points: float, entries: int) -> tuple[Decimal, ...]:
    """`points` split over `entries` numbers in exact hundredths (finer if the points are), the first ones
    taking the remainder: 1 point over 3 numbers is 0.34, 0.33, 0.33. They add up to `points` exactly."""
    total = Decimal(repr(float(points)))
    places = max(SHARE_DECIMALS, decimals_in(str(total)))
    unit = Decimal(1).scaleb(-places)
    units = int((total / unit).to_integral_value())
    base, extra = divmod(units, max(entries, 1))
    return tuple((base + (1 if i < extra else 0)) * unit for i in range(max(entries, 1)))


def earned(points: float, right: Sequence[bool]) -> Decimal:
    """The points a quantity earns when only the entries marked right are."""
    return _earned(float(points), tuple(bool(r) for r in right))


@functools.lru_cache(maxsize=4096)
def _earned(points: float, right: tuple[bool, ...]) -> Decimal:
    return sum((s for s, ok in zip(_shares(points, len(right)), right) if ok), Decimal(0))


def rule_words(decimals: int) -> str:
    """The rule in a student's words ("give …"), for the sheet, the quiz questions, the page and the notebook."""
    return (f"each number rounded half-up to {decimals} decimal place{'s' if decimals != 1 else ''}; "
            f"a number is accepted when it is within {_text(tolerance(decimals))} of the exact value or of what "
            "a calculation that rounds every value as it writes it down gives")

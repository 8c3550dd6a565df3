"""Half-up rounding on the decimal value: the vectorised round_array against Decimal entry by entry."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from tracer.rounding import round_array


def decimal_half_up(x: float, decimals: int) -> float:
    """The oracle: the shortest repr of x as a Decimal, rounded half-up, never -0."""
    q = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return float(q) + 0.0


@pytest.mark.parametrize("decimals", [0, 1, 3, 6])
def test_round_array_is_decimal_half_up_on_every_entry_ties_included(decimals):
    rng = np.random.RandomState(decimals)
    values = [rng.randn(3000) * scale for scale in (1e-7, 1e-3, 1, 1e4, 1e10)]
    ties = (rng.randint(-10**6, 10**6, 3000) + 0.5) / 10**decimals  # 0.0125-like: binary just below the tie
    values += [ties, -ties, np.array([0.0, -0.0, 0.0125, 2.675, 1.005, -0.0005, -1e-9])]
    x = np.concatenate(values).reshape(-1, 7)
    got = round_array(x, decimals)
    want = np.array([decimal_half_up(v, decimals) for v in x.ravel()]).reshape(x.shape)
    assert np.array_equal(got, want) and not np.signbit(got[got == 0]).any()
    assert got.shape == x.shape

"""How an image node writes its worked lines: map by map, entry by entry, in the article's symbols.

An image quantity (channels × height × width × examples) is written as 2-D maps, one per channel
of each example, Z₁⁽ⁿ⁾ (and Z₁⁽ⁿ⁾[c] when there are several channels); one entry is Z₁⁽ⁿ⁾[i, j],
row i and column j counted from 1 as a reader counts. A small map (at most WORKED_ENTRIES entries)
is worked entry by entry; a larger one has its first entry worked in full and the whole map as one
line; of a batch of more than WORKED_EXAMPLES examples, the first example's maps are worked; the step
says which.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: A map of at most this many entries is worked entry by entry; a larger one: its first entry, then the map.
WORKED_ENTRIES = 9
#: A batch of at most this many examples has every example's maps worked; a larger one, the first example's
#: (the others' results stand in the matrices that follow, and the step says so).
WORKED_EXAMPLES = 2
#: A sum of more products than this (a kernel's gradient over a big batch) is written as one operation
#: on the whole quantities, their corners shown, as a dense layer's dW = dZ·A_prevᵀ is.
WORKED_TERMS = 64
#: A flatten writes every example's column up to this many examples, else the first example's.
FLATTENED_EXAMPLES = 8


def examples(m: int) -> range:
    """The examples whose maps are worked: all of a small batch, the first of a larger one."""
    return range(m if m <= WORKED_EXAMPLES else 1)


def columns(m: int) -> list[int]:
    """The examples a node worked example by example (a softmax) writes: all of at most FLATTENED_EXAMPLES,
    else the first three and the last, as a long sum is shown."""
    return list(range(m)) if m <= FLATTENED_EXAMPLES else [0, 1, 2, m - 1]


def map_parts(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (channel, example) of every worked map of an image quantity, example by example."""
    return [(c, n) for n in examples(shape[3]) for c in range(shape[0])]


def index(c: int, n: int, i: int | None = None, j: int | None = None) -> tuple[int | None, ...]:
    """The index of one map (rows and columns all) or one entry of it."""
    return (c, i, j, n)


def map_symbol(sheet: Any, name: str, c: int, n: int, channels: int) -> str:
    """Z_{1}^{(n)} for the map of example n (counted from 0 here, from 1 on the page); [c] with channels."""
    return sheet.example(name, n + 1) + (f"[{c + 1}]" if channels > 1 else "")


def entry_symbol(sheet: Any, name: str, c: int, n: int, i: int | str, j: int | str, channels: int) -> str:
    """Z_{1}^{(n)}[i, j] (or [c, i, j]): one entry, its row and column counted from 1 (or given as letters)."""
    row = i + 1 if isinstance(i, int) else i
    col = j + 1 if isinstance(j, int) else j
    where = f"{c + 1}, {row}, {col}" if channels > 1 else f"{row}, {col}"
    return sheet.example(name, n + 1) + f"[{where}]"


def kernel_symbol(sheet: Any, name: str, f: int, c: int, filters: int, channels: int) -> str:
    """W_{1} for one filter over one channel, with [f, c] when there are several."""
    if filters == 1 and channels == 1:
        return sheet.symbol(name)
    return sheet.symbol(name) + f"[{f + 1}, {c + 1}]"


def worked_in_full(shape: tuple[int, ...]) -> bool:
    """Is every entry of each map of this shape worked out (a small map)?"""
    return int(shape[1]) * int(shape[2]) <= WORKED_ENTRIES


def grid(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """The entries of one map, row by row."""
    return [(i, j) for i in range(shape[1]) for j in range(shape[2])]


def inside(value: np.ndarray, y: int, x: int) -> bool:
    """Is (y, x) inside the image (not in its padding)?"""
    return 0 <= y < value.shape[1] and 0 <= x < value.shape[2]

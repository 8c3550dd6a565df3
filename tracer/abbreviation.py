"""How a big matrix is shown: past LIMIT rows or columns, its top-left corner and its shape.

One rule for every place that prints a matrix for a reader (the terminal's `tracer run`, `trace`
and `check`, the documents, the graphs), so a 64-32-10 network on 1,797 examples stays readable.
Only what is shown is cut: the trace, `--json` and `--full` keep every entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

#: A matrix with more rows or more columns than this is abbreviated.
LIMIT = 8
#: How many rows (columns) of a dimension that is cut are shown (and the first terms of a long sum).
CORNER = 3
#: What stands for the entries left out, in plain text.
MORE = "…"


@dataclass(frozen=True)
class Corner:
    """The entries shown of a matrix (2-D, at most CORNER × CORNER when cut) and what was left out."""

    entries: np.ndarray
    shape: tuple[int, ...]  # the whole matrix's shape, as the trace holds it
    more_rows: bool
    more_columns: bool

    @property
    def cut(self) -> bool:
        return self.more_rows or self.more_columns


def abbreviated(shape: tuple[int, ...]) -> bool:
    """Is a matrix of this shape shown as a corner?"""
    return any(n > LIMIT for n in shape)


def as_matrix(array: np.ndarray) -> np.ndarray:
    """The matrix an array is shown as: a row for fewer than 2 dimensions; an image quantity (channels ×
    height × width × examples, or a kernel's filters × channels × height × width) with its leading
    dimensions stacked into rows, one column per last index (an example's entries down its column)."""
    if array.ndim == 2:
        return array
    return array.reshape(1, -1) if array.ndim < 2 else array.reshape(-1, array.shape[-1])


def corner(value: Any, full: bool = False) -> Corner:
    """The part of `value` to show (a vector as one row); all of it with `full` or when it is small."""
    array = np.asarray(value)
    rows = as_matrix(array)
    more_rows = not full and rows.shape[0] > LIMIT
    more_columns = not full and rows.shape[1] > LIMIT
    shown = rows[:CORNER if more_rows else None, :CORNER if more_columns else None]
    return Corner(shown, tuple(array.shape), more_rows, more_columns)


def shape_text(shape: tuple[int, ...], times: str = "×") -> str:
    """64 × 1797: a matrix's rows and columns as a reader says them."""
    return f" {times} ".join(str(n) for n in shape)


def bracketed(value: Any, numbers: Callable[[np.ndarray], Sequence[str]], full: bool = False,
              flat: bool = False) -> str:
    """A matrix as nested lists in plain text, `[[a, b], [c, d]]`; `numbers` writes the entries
    shown (a 2-D array, all at once) in row-major order.

    `flat`: a single row or column as one list `[a, b, c]`. An abbreviated matrix ends its cut rows
    and columns with "…" and is followed by its shape: `[[a, b, c, d, …], …] (64 × 1797)`.
    """
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return numbers(array.reshape(1, 1))[0]
    vector = flat and (array.ndim < 2 or 1 in array.shape)
    c = corner(array.reshape(1, -1) if vector else array, full)
    if array.ndim > 2 and not c.cut:  # a small kernel (filters × channels × height × width): nested whole
        texts = iter(numbers(as_matrix(array)))
        def nest(shape: tuple[int, ...]) -> str:
            if not shape:
                return next(texts)
            return "[" + ", ".join(nest(shape[1:]) for _ in range(shape[0])) + "]"
        return nest(array.shape)
    texts = iter(numbers(c.entries))
    rows = [[next(texts) for _ in row] + ([MORE] if c.more_columns else []) for row in c.entries]
    if vector:
        text = "[" + ", ".join(rows[0]) + "]"
    else:
        text = "[" + ", ".join(["[" + ", ".join(row) + "]" for row in rows] + ([MORE] if c.more_rows else [])) + "]"
    return f"{text} ({shape_text(array.shape)})" if c.cut else text

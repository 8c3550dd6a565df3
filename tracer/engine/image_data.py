"""Images made by the chapter from fixed patterns: `[data.generate]`, nothing downloaded.

Each class is a pattern of rows drawn with characters ("#" ink, "." background; every row as long as
the first, every pattern the same size). Each class gives `per_class` images: the pattern itself,
then copies moved by one pixel (right, down, left, up, then diagonally, in that order, as many as
asked), each pixel then changed by uniform noise of at most `noise` (seeded by `seed`, so the same
file gives the same images). The images are grouped by copy, one of each class in turn, and the
labels are one-hot, one column per class in the order the patterns are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: How each copy after the first is moved: (rows down, columns right).
SHIFTS = ((0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))
INK, BACKGROUND = "#", "."


@dataclass(frozen=True)
class Patterns:
    """The classes' patterns (name → rows of characters) and how many images each makes."""

    classes: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    per_class: int
    noise: float
    seed: int


def pattern_array(rows: tuple[str, ...]) -> np.ndarray:
    """A pattern as an array: 1 where the row has ink, 0 elsewhere."""
    return np.array([[1.0 if ch == INK else 0.0 for ch in row] for row in rows])


def generate(p: Patterns) -> tuple[np.ndarray, np.ndarray]:
    """(images as examples × 1 × height × width, labels as examples × classes, one-hot)."""
    rng = np.random.RandomState(p.seed)
    base = [pattern_array(rows) for rows in p.rows]
    images, labels = [], []
    for copy in range(p.per_class):
        dy, dx = SHIFTS[copy]
        for k, pattern in enumerate(base):
            moved = np.roll(np.roll(pattern, dy, axis=0), dx, axis=1)
            if p.noise:
                moved = np.clip(moved + rng.uniform(-p.noise, p.noise, size=moved.shape), 0.0, 1.0)
            images.append(np.round(moved, 2))
            labels.append(np.eye(len(base))[k])
    return np.array(images)[:, None], np.array(labels)

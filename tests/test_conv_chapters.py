"""The bundled image chapters against what their sources print, and as a reader reads them.

Chapter 9 reproduces the worked cross-correlation of "Dive into Deep Learning" (Zhang, Lipton, Li
and Smola), section 7.2, "Convolutions for Images": its 3 × 3 input [[0, 1, 2], [3, 4, 5],
[6, 7, 8]] and 2 × 2 kernel [[0, 1], [2, 3]], worked window by window,
    0 × 0 + 1 × 1 + 3 × 2 + 4 × 3 = 19,  1 × 0 + 2 × 1 + 4 × 2 + 5 × 3 = 25,
    3 × 0 + 4 × 1 + 6 × 2 + 7 × 3 = 37,  4 × 0 + 5 × 1 + 7 × 2 + 8 × 3 = 43.
The book's text is not ours to store: its figures are written out here by hand.
"""

from __future__ import annotations

import numpy as np

from conftest import bundled_lecture

#: The book's four windows: (row, column) of the output, the book's products (input, kernel) and its sum.
BOOK = {(0, 0): ([0, 1, 3, 4], 19), (0, 1): ([1, 2, 4, 5], 25), (1, 0): ([3, 4, 6, 7], 37), (1, 1): ([4, 5, 7, 8], 43)}
KERNEL = [0, 1, 2, 3]


def test_chapter_9_works_the_books_cross_correlation_window_by_window():
    lec = bundled_lecture("09-convolution-by-hand")
    lines = {tuple(ln.part): ln for ln in lec.at(0) if ln.quantity == "Z1" and ln.part and ln.part[1] is not None}
    for (i, j), (inputs, total) in BOOK.items():
        line = lines[(0, i, j, 0)]  # the first image's map: the book's input is its top-left corner
        products = line.expression["args"][:4]
        assert [float(p["args"][0]) for p in products] == KERNEL  # the book's kernel, row by row
        assert [float(p["args"][1]) for p in products] == inputs  # the window under it
        assert float(line.result) == total
    figures = {f.index: f for f in lec.model.article.figures}
    assert {(0, i, j, 0) for i, j in BOOK} == set(figures)
    assert all(f.verdict == "matches" for f in figures.values())


def test_chapter_9_says_which_entry_won_each_pool_window_and_routes_the_gradient_there():
    lec = bundled_lecture("09-convolution-by-hand")
    v = lec.hand.at(0)
    A1, dA2, dA1 = v["A1"][0, :, :, 0], v["dA2"][0, :, :, 0], v["dA1"][0, :, :, 0]
    # the window at row 2, column 1 holds 43 twice: the first in row order, at (1, 1), wins
    assert A1[1, 1] == A1[2, 1] == 43
    expected = np.zeros((3, 3))
    for i in range(2):
        for j in range(2):
            window = A1[i:i + 2, j:j + 2].ravel()
            k = int(np.flatnonzero(window == window.max())[0])
            expected[i + k // 2, j + k % 2] += dA2[i, j]
    np.testing.assert_allclose(dA1, expected, atol=1e-12)
    route = [ln for ln in lec.at(0) if ln.quantity == "dA1" and ln.part == (0, None, None, 0)]
    assert route and np.allclose(np.asarray(route[0].result, dtype=float), expected, atol=5e-4)

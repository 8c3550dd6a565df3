"""The figure of a chapter's `[compare]` run beside its own: both learning curves on one axis, and both
trained networks' decision boundaries over the same square, so what the changed keys did is seen.

The second run's trace is trained here, once per build (tracer.engine.compare says what it is); the
figure reads both traces and nothing else.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tracer.documents.figures import (BACKWARD, FEW_STEPS, FORWARD, _figure, _save, _ticks, boundary_grid,
                                      has_boundary, threshold)
from tracer.engine.chapter import Chapter
from tracer.engine.compare import Comparison, comparison
from tracer.engine.trace import Trace
from tracer.engine.train import run

#: The second run's colour (Okabe–Ito bluish green), and its curve's dashes.
OTHER = "#009E73"


def comparison_figure(chapter: Chapter, trace: Trace, compared: Comparison, fmt: str = "svg",
                      other: Trace | None = None) -> bytes:
    """Both runs' learning curves (left) and, when the input has two features, both boundaries (right)."""
    other = other if other is not None else run(compared.chapter)
    labels = compared.labels
    boundaries = has_boundary(chapter)
    fig = _figure(7.0 if boundaries else 5.0, 3.2)
    fig.subplots_adjust(left=0.09 if boundaries else 0.14, right=0.98, bottom=0.3, top=0.95, wspace=0.35)
    ax = fig.add_subplot(1, 2 if boundaries else 1, 1)
    for t, label, colour, style in ((trace, labels[0], FORWARD, "-"), (other, labels[1], OTHER, "--")):
        costs = np.asarray(t.costs, dtype=float)
        ax.plot(np.arange(len(costs)), costs, style, color=colour, linewidth=1.5, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("cost")
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(len(trace.costs) - 1, 1))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8.5, ncol=1)
    if boundaries:
        ax = fig.add_subplot(1, 2, 2)
        cut = threshold(trace)
        for t, label, colour, style in ((trace, labels[0], FORWARD, "solid"), (other, labels[1], OTHER, "dashed")):
            x1, x2, yhat = boundary_grid(chapter, t)
            ax.contour(x1, x2, yhat[0], levels=[cut], colors=colour, linewidths=1.5, linestyles=style)
            ax.plot([], [], linestyle=style, color=colour, label=f"boundary {label}")
        X, Y = trace.X[:2], trace.Y[0]
        ones = Y > cut
        ax.scatter(X[0, ones], X[1, ones], marker="X", s=70, color=FORWARD, edgecolors="black", linewidths=0.6,
                   zorder=3)
        ax.scatter(X[0, ~ones], X[1, ~ones], marker="o", s=55, color=BACKWARD, edgecolors="black", linewidths=0.6,
                   zorder=3)
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_xlim(x1[0], x1[-1])
        ax.set_ylim(x2[0], x2[-1])
        ax.set_xticks(_ticks(x1))
        ax.set_yticks(_ticks(x2))
        ax.set_aspect("equal")
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8.5, ncol=1)
    return _save(fig, fmt)


def comparison_caption(compared: Comparison, boundaries: bool) -> tuple[str, str]:
    """(caption, what a sentence refers to it as)."""
    first, second = compared.labels
    what = "the learning curves" + (" and the decision boundaries" if boundaries else "")
    return (f"Two runs from the same start, {first} (solid) and {second} (dashed): {what} (each run's cost is the one "
             "it minimises)",
            f"{what} of both runs")


def comparison_extra(chapter: Chapter, trace: Trace) -> Callable[[str], tuple[bytes, str, str]] | None:
    """For tracer.documents.figures.document_figures: the comparison figure of a chapter with a
    `[compare]` run (its second run trained once, on first use), else None."""
    compared = comparison(chapter)
    if compared is None or int(trace.meta["steps_run"]) <= FEW_STEPS:
        return None
    runs: dict[str, Trace] = {}

    def draw(fmt: str) -> tuple[bytes, str, str]:
        if "other" not in runs:
            runs["other"] = run(compared.chapter)
        return (comparison_figure(chapter, trace, compared, fmt, runs["other"]),
                *comparison_caption(compared, has_boundary(chapter)))
    return draw

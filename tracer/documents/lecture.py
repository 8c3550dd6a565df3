"""What the lecture formats (slides, notebook, web page) share: the document model, and its worked
lines written as LaTeX.

A worked line of the model (tracer.documents.model) is `formula = expression = result`, its
expression a tree of operations on the numbers as printed. The slides show the lines one by one
beside the graph, the notebook writes them above the NumPy that recomputes them, the web page
lists them. `line_latex` sets a line as one aligned maths block, broken as the documents break it;
given a width (in characters) it leaves out a substitution that would still not fit, so that
slides never need a smaller font.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracer.documents import figures
from tracer.documents.model import Document, Line, document_model
from tracer.documents.render import Calculation, calculation, document_traces, printed_tex, typeset_lines
from tracer.engine.chapter import Chapter
from tracer.engine.trace import Trace

#: The passes of a worked step, in the order a student works them.
PASSES = ("forward", "cost", "backward", "update")
PHASE_TITLES = {"forward": "Forward pass", "cost": "The cost", "backward": "Backward pass", "update": "Update"}


@dataclass(frozen=True)
class Lecture:
    """A chapter's document model with the two traces it was built from (full precision, hand-carried)."""

    model: Document
    full: Trace
    hand: Trace

    def at(self, step: int, phase: str | None = None, node: str | None = None) -> list[Line]:
        return [ln for ln in self.model.lines
                if ln.step == step and (phase is None or ln.phase == phase) and (node is None or ln.node == node)]

    @property
    def shown_steps(self) -> list[int]:
        return [s.step for s in self.model.steps]

    @property
    def worked_steps(self) -> list[int]:
        return [s.step for s in self.model.steps if s.kind == "worked"]

    @property
    def table(self) -> list[dict[str, Any]]:
        return list(self.model.long_run["table"]) if self.model.long_run else []


def lecture(chapter: Chapter, trace: Trace | None = None, hand: Trace | None = None,
            model: Document | None = None) -> Lecture:
    """The chapter's document model and traces (a trace given is reused, never re-trained)."""
    full, hand = document_traces(chapter, trace, hand)
    return Lecture(model or document_model(chapter, full, hand), full, hand)


# --------------------------------------------------------------------------- the long run's figures


def long_run_pictures(chapter: Chapter, trace: Trace) -> dict[str, dict[str, Any] | None]:
    """The long run's figures as the documents show them (learning curve, decision boundaries), as data URIs
    (numbered from 1, with their captions): the page and the notebook show them."""
    shown: dict[str, dict[str, Any] | None] = {"curve": None, "boundary": None, "boundary_shaded": None}
    if int(trace.meta["steps_run"]) <= figures.FEW_STEPS:
        return shown
    scale = figures.curve_scale(np.asarray(trace.costs, dtype=float))
    drawn = [("curve", figures.learning_curve(chapter, trace, "svg"),
              "Learning curve: the cost at every step" + (", on a log scale" if scale == "log" else ""))]
    if figures.has_boundary(chapter):
        boundaries = figures.decision_boundaries(chapter, trace, "svg")
        drawn += [("boundary", boundaries[False],
                   "Decision boundary of the trained network, with the training points by class"),
                  ("boundary_shaded", boundaries[True],
                   "The same decision boundary, the two regions shaded by the class the network gives them")]
    for number, (key, svg, caption) in enumerate(drawn, start=1):
        size = re.search(rb'<svg[^>]*?width="([\d.]+)pt"[^>]*?height="([\d.]+)pt"', svg)
        width, height = (round(float(size[1]) * 4 / 3), round(float(size[2]) * 4 / 3)) if size else (640, 480)
        shown[key] = {"number": number, "caption": caption, "width": width, "height": height,
                      "src": "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")}
    return shown


# --------------------------------------------------------------------------- worked lines as LaTeX


def _is_leaf(tree: Any) -> bool:
    return not isinstance(tree, dict)


def visible_width(latex: str) -> int:
    """A rough count of the characters a LaTeX maths string shows (a matrix counts its widest row)."""
    import re

    def matrix(match: re.Match[str]) -> str:
        rows = match[1].split(r"\\")
        return max(rows, key=lambda r: len(r.replace("&", "  "))).replace("&", "  ") + "  "

    text = re.sub(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", matrix, latex)
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", lambda m: max(m[1], m[2], key=len), text)
    text = re.sub(r"\\times 10\^\{(-?\d+)\}", r"x10\1", text)
    text = re.sub(r"\\(left|right|textstyle|,|operatorname|mathrm|text)", "", text)
    text = re.sub(r"\\[a-zA-Z]+", "x", text)
    return len(re.sub(r"[{}^_ ]", "", text)) + text.count(" ") // 3


def height(tree: Any) -> int:
    """Rows of numbers an expression stacks up when set (a fraction stacks its numerator on its denominator)."""
    if _is_leaf(tree):
        return 1 if isinstance(tree, str) or not isinstance(tree[0], list) else len(tree)
    if tree["op"] == "div":
        return height(tree["args"][0]) + height(tree["args"][1])
    if tree["op"] == "transpose" and _is_leaf(tree["args"][0]) and isinstance(tree["args"][0][0], list):
        return len(tree["args"][0][0])
    return max(height(a) for a in tree["args"])


#: What a slide says instead of numbers that would not fit it at a readable size.
NOT_SHOWN = r"\text{(the numbers are in the worked example)}"


def line_latex(line: Line, width: int | None = None, max_rows: int | None = None) -> str:
    """A worked line as one aligned block: formula, the numbers substituted, the result.

    With `width` (characters) it is broken over rows as the documents break it (render.typeset_lines);
    a substitution still wider than that, or stacking more than `max_rows` rows of numbers, is left out
    (NOT_SHOWN) rather than shrunk.
    """
    result = printed_tex(line.result)
    substituted = typeset_lines(line.expression)
    if width is None:
        return calculation(Calculation(line.formula, substituted, result, line.quantity))
    too_tall = max_rows is not None and height(line.expression) > max_rows
    rows = substituted.split(r" \\ ")
    if too_tall or any(visible_width(r) > width for r in rows) or visible_width(result) > width:
        substituted = NOT_SHOWN
    return calculation(Calculation(line.formula, substituted, result, line.quantity))

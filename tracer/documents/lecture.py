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

from tracer.engine.windows import IMAGE_OPERATIONS, first_entry
from tracer.documents import figures
from tracer.documents.comparison import comparison_extra
from tracer.documents.model import Document, Line, document_model, evaluate
from tracer.documents.render import BREAK, Calculation, calculation, document_traces, printed_tex, typeset_lines
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
    shown: dict[str, dict[str, Any] | None] = {"curve": None, "kernels": None, "boundary": None,
                                               "boundary_shaded": None, "compare": None}
    if int(trace.meta["steps_run"]) <= figures.FEW_STEPS:
        return shown
    scale = figures.curve_scale(np.asarray(trace.costs, dtype=float))
    drawn = [("curve", figures.learning_curve(chapter, trace, "svg"),
              "Learning curve: the cost at every step" + (", on a log scale" if scale == "log" else ""))]
    if figures.has_kernels(chapter):
        drawn.append(("kernels", figures.learned_kernels(chapter, trace, "svg"),
                      "The kernels before training and after the last update, each weight a shaded cell"))
    if figures.has_boundary(chapter):
        boundaries, captions = figures.decision_boundaries(chapter, trace, "svg"), figures.boundary_captions(chapter)
        drawn += [("boundary", boundaries[False], captions[False][0]),
                  ("boundary_shaded", boundaries[True], captions[True][0])]
    extra = comparison_extra(chapter, trace)  # a [compare] run's figure: both runs' curves and boundaries
    if extra is not None:
        svg, caption, _ = extra("svg")
        drawn.append(("compare", svg, caption))
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
    def matrix(match: re.Match[str]) -> str:
        rows = match[1].split(r"\\")
        return max(rows, key=lambda r: len(r.replace("&", "  "))).replace("&", "  ") + "  "

    text = re.sub(r"\\rule\{[^{}]*\}\{[^{}]*\}", "", latex)  # a strut shows nothing
    text = re.sub(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", matrix, text)
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


#: What a slide says instead of numbers that would not fit it at a readable size (no bundled chapter needs it).
NOT_SHOWN = r"\text{(the numbers are in the worked example)}"


def _rows_of(latex: str) -> int:
    """Rows of text a row of maths takes when set: its tallest matrix, doubled inside a fraction."""
    import re

    matrices = [m.count(r"\\") + 1 for m in re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", latex)]
    tall = max(matrices, default=1) + (1 if r"\Big|" in latex else 0)  # a part's bar reaches below its fraction
    stacked = 2 ** _frac_depth(latex)  # a fraction stacks two rows; a fraction in it, four
    return 2 * tall + stacked - 1 if matrices and _in_fraction_matrix(latex) else max(tall, stacked)


def _in_fraction_matrix(latex: str) -> bool:
    import re

    return bool(re.search(r"\\d?frac\{[^{}]*\\begin\{bmatrix\}", latex))


def _frac_depth(latex: str) -> int:
    """How deeply fractions nest in a LaTeX string (a fraction of fractions: 2)."""
    import re

    stack: list[tuple[bool, int]] = []
    pending, deepest = 0, 0
    for token in re.findall(r"\\d?frac|\\.|[{}]|[^\\{}]+", latex):
        if token in (r"\frac", r"\dfrac"):
            pending = 2
        elif token == "{":
            stack.append((pending > 0, max(pending - 1, 0)))
            pending = 0
            deepest = max(deepest, sum(f for f, _ in stack))
        elif token == "}" and stack:
            pending = stack.pop()[1]
    return deepest


def block_rows(rows: list[str]) -> int:
    """Rows of text the rows of an aligned block take together."""
    return sum(_rows_of(r) for r in rows)


def _entry(tree: Any, i: int, j: int) -> Any:
    """The expression of one entry of an expression: each matrix replaced by its (i, j) entry, a transpose
    by the (j, i) entry of what it transposes, a product of matrices by row i times column j written out."""
    if _is_leaf(tree):
        if isinstance(tree, str):
            return tree
        return tree[i][j] if isinstance(tree[0], list) else tree[j]
    if tree["op"] == "transpose":
        return _entry(tree["args"][0], j, i)
    if tree["op"] == "matmul":
        inner = np.shape(evaluate(tree["args"][0]))[-1]
        terms = [{"op": "mul", "args": [_entry(tree["args"][0], i, k), _entry(tree["args"][1], k, j)]}
                 for k in range(inner)]
        return terms[0] if inner == 1 else {"op": "add", "args": terms}
    return {**tree, "args": [_entry(a, i, j) for a in tree["args"]]}


def _entrywise(tree: Any) -> bool:
    """Whether one entry of the tree can be written out: element-wise operations, transposes and products
    of matrices (not a sum along rows, a column of entries or a product of each example's Jacobian)."""
    return _is_leaf(tree) or (tree["op"] not in ("sum", "entries", "vjp") + IMAGE_OPERATIONS
                              and all(_entrywise(a) for a in tree["args"]))


def line_latex(line: Line, width: int | None = None, max_rows: int | None = None) -> str:
    """A worked line as one aligned block: formula, the numbers substituted, the result.

    With `width` (characters) and `max_rows` (rows of text) it fits a slide without a smaller font: broken
    over rows as the documents break it (render.typeset_lines); then, if still too tall, the result
    on the row of the last substitution, or the formula on the row of the first; then the substitution
    of its first entry (Adam's update of a matrix; a row times a column of a product) and the whole result.
    """
    result = printed_tex(line.result)
    substituted = typeset_lines(line.expression)
    stages = [typeset_lines(t) for t in line.stages]
    if width is None:
        return calculation(Calculation(line.formula, substituted, result, line.quantity, stages))
    whole = calculation(Calculation(line.formula, substituted, result, line.quantity))
    rows = max_rows if max_rows is not None else 10 ** 6
    def fits(text: str) -> bool:
        # every row sits right of the widest left-hand side (the aligned block's first column)
        block = aligned_rows(text)
        left = max(visible_width(r.split("&", 1)[0]) for r in block if "&" in r)
        return (all(left + visible_width(r.split("&", 1)[-1]) <= width for r in block)
                and block_rows(block) <= rows)

    staged = calculation(Calculation(line.formula, substituted, result, line.quantity, stages))
    if stages and fits(staged):  # the inner operations worked out, when the slide holds them
        return staged
    if fits(whole):
        return whole
    last = substituted.split(BREAK)[-1]
    if visible_width(last) + visible_width(result) + 2 <= width:
        joined = calculation(Calculation(line.formula, f"{substituted} = {result}", "", line.quantity))
        if fits(joined):
            return joined
    formula_joined = calculation(Calculation(f"{line.formula} = {substituted}", None, result, line.quantity))
    if fits(formula_joined):  # the formula and its numbers on one row
        return formula_joined
    values = line.result
    entrywise = _entrywise(line.expression)
    image = None if entrywise else first_entry(line.expression)  # a map's line: its first window's numbers
    if (entrywise or image is not None) and isinstance(values, list) and values and isinstance(values[0], list):
        lhs, sign = line.formula, "="
        for candidate in (" := ", " = "):
            if candidate in line.formula:
                lhs, sign = line.formula.split(candidate, 1)[0], candidate.strip()
                break
        entry = rf"\left[{lhs}\right]_{{1,1}}"
        first = _terms_in_rows(_entry(line.expression, 0, 0) if entrywise else image, width - visible_width(entry) - 4)
        text = (whole.split(r" \\ ")[0] + rf" \\ {entry} &{sign} {first}"
                + rf" \\ &= {printed_tex(values[0][0])}, \qquad {lhs} = {result} \end{{aligned}}")
        if fits(text):
            return text
    expanded = _expand_sums(line.expression)  # a sum over the examples of one row: its terms, a few to a row
    if expanded is not line.expression:
        left = visible_width(line.formula.split("=", 1)[0])
        for room in (width - left - 4, (width - left) // 2):
            text = calculation(Calculation(line.formula, _terms_in_rows(expanded, room), result, line.quantity))
            if fits(text):
                return text
    return calculation(Calculation(line.formula, NOT_SHOWN, result, line.quantity))


def _elementwise(tree: Any) -> bool:
    """Only operations entry by entry (no product of matrices, transpose or sum)."""
    return _is_leaf(tree) or (tree["op"] not in ("sum", "entries", "vjp", "matmul", "transpose", "spread")
                              and all(_elementwise(a) for a in tree["args"]))


def _column_entry(tree: Any, j: int) -> Any:
    """Example j's entry of a one-row element-wise expression (a single number or column broadcast to every example)."""
    if _is_leaf(tree):
        if isinstance(tree, str):
            return tree
        row = tree[0] if isinstance(tree[0], list) else tree
        return row[j] if len(row) > 1 else row[0]
    return {**tree, "args": [_column_entry(a, j) for a in tree["args"]]}


def _expand_sums(tree: Any) -> Any:
    """The tree with each sum along the examples of a one-row, entry-by-entry expression written as the
    sum of its terms, example by example (the tree itself when it has none)."""
    if _is_leaf(tree):
        return tree
    if tree["op"] == "sum" and tree.get("axis") == 1 and _elementwise(tree["args"][0]):
        shape = np.shape(evaluate(tree["args"][0]))
        if len(shape) == 2 and shape[0] == 1 and shape[1] > 1:
            return {"op": "add", "args": [_column_entry(tree["args"][0], j) for j in range(shape[1])]}
    args = [_expand_sums(a) for a in tree["args"]]
    return tree if all(a is b for a, b in zip(args, tree["args"])) else {**tree, "args": args}


def _terms_in_rows(tree: Any, width: int) -> str:
    """A sum typeset a few terms to a row (rows of the aligned block), each row at most `width` wide."""
    if not (isinstance(tree, dict) and tree["op"] == "add"):
        return typeset_lines(tree)
    rows, row = [], ""
    for i, term in enumerate(tree["args"]):
        text = typeset_lines(term)
        if i:
            text = (" - " + text[1:]) if text.startswith("-") else (" + " + text)
        if row and visible_width(row + text) > width:
            rows.append(row)
            row = text.lstrip()
        else:
            row += text
    return BREAK.join(rows + [row])


def aligned_rows(latex: str) -> list[str]:
    """The rows of an aligned block (a matrix's own rows stay inside their row)."""
    body = latex.removeprefix(r"\begin{aligned} ").removesuffix(r" \end{aligned}")
    matrices = re.findall(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", body)
    masked = re.sub(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", "\0", body)
    rows = []
    for row in masked.split(r"\\"):
        while "\0" in row:
            row = row.replace("\0", matrices.pop(0), 1)
        rows.append(row)
    return rows

"""What the lecture formats (slides, notebook, web page) share: the document model, and its worked
lines written as LaTeX.

A worked line of the model (tracer.documents.model) is `formula = expression = result`, its
expression a tree of operations on the numbers as printed. The slides show the lines one by one
beside the graph, the notebook writes them above the NumPy that recomputes them, the web page
lists them. `line_latex` sets a line as one aligned maths block; given a width (in characters) it
breaks a long sum over several rows, so that slides never need a smaller font.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.documents.model import Document, Line, document_model
from tracer.documents.render import Calculation, calculation, document_traces
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


# --------------------------------------------------------------------------- numbers and trees as LaTeX


def number_latex(text: str) -> str:
    """A printed number as LaTeX: '-0.044' → -0.044, '5.1e-05' → 5.1 \\times 10^{-5}."""
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


def _is_leaf(tree: Any) -> bool:
    return not isinstance(tree, dict)


def _scalar(tree: Any) -> str | None:
    """The number of a scalar leaf (a 1×1 matrix counts), else None."""
    while isinstance(tree, list) and len(tree) == 1:
        tree = tree[0]
    return tree if isinstance(tree, str) else None


def leaf_latex(value: Any, transpose: bool = False) -> str:
    """A printed leaf: a number, or a bmatrix of numbers."""
    one = _scalar(value)
    if one is not None:
        return number_latex(one)
    rows = value if isinstance(value[0], list) else [value]
    if transpose:
        rows = [list(r) for r in zip(*rows)]
    body = r" \\ ".join(" & ".join(number_latex(x) for x in row) for row in rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


def _needs_parens(tree: Any) -> bool:
    if _is_leaf(tree):
        one = _scalar(tree)
        return one is not None and (one.startswith("-") or "e" in one)
    return tree["op"] in ("add", "sub", "mul", "neg", "matmul", "div")


def _wrap(tree: Any) -> str:
    text = expression_latex(tree)
    return rf"\left({text}\right)" if _needs_parens(tree) and not (
        not _is_leaf(tree) and tree["op"] == "div") else text


def _is_matrix(tree: Any) -> bool:
    if _is_leaf(tree):
        return _scalar(tree) is None
    if tree["op"] in ("matmul", "transpose"):
        return True
    return any(_is_matrix(a) for a in tree["args"])


FUNCTIONS = {"exp": None, "log": r"\log", "sigmoid": r"\sigma", "relu": r"\operatorname{ReLU}", "tanh": r"\tanh",
             "sqrt": None, "abs": None, "heaviside": None}


def expression_latex(tree: Any) -> str:
    """An expression tree of printed numbers as LaTeX maths, as a reader writes it."""
    if _is_leaf(tree):
        return leaf_latex(tree)
    name, args = tree["op"], tree["args"]
    if name == "add":
        out = expression_latex(args[0])
        for a in args[1:]:
            one = _scalar(a) if _is_leaf(a) else None
            if one is not None and one.startswith("-") and "e" not in one:
                out += f" - {one[1:]}"
            elif not _is_leaf(a) and a["op"] == "neg":
                inner = a["args"][0]
                grouped = _is_leaf(inner) or inner["op"] in ("add", "sub")
                out += f" - {_wrap(inner) if grouped else expression_latex(inner)}"
            else:
                term = _wrap(a) if _is_leaf(a) else expression_latex(a)
                out += f" - {term[1:]}" if term.startswith("-") else f" + {term}"
        return out
    if name == "sub":
        right = args[1]
        text = _wrap(right) if (_is_leaf(right) or right["op"] in ("add", "sub", "neg")) else expression_latex(right)
        return f"{expression_latex(args[0])} - {text}"
    if name == "mul":
        times = r" \odot " if _is_matrix(args[0]) and _is_matrix(args[1]) else r" \cdot "
        parts = []
        for a in args:
            if not _is_leaf(a) and a["op"] == "add" and len(args) == 2 and a is args[1]:
                parts.append(rf"\left[{expression_latex(a)}\right]")
            else:
                parts.append(_wrap(a))
        return times.join(parts)
    if name == "matmul":
        return r" \, ".join(_wrap(a) for a in args)
    if name == "div":
        return rf"\frac{{{expression_latex(args[0])}}}{{{expression_latex(args[1])}}}"
    if name == "neg":
        inner = args[0]
        plain = not _is_leaf(inner) and inner["op"] in ("mul", "div", "matmul", "log", "exp", "sigmoid", "square")
        return f"-{expression_latex(inner) if plain else _wrap(inner)}"
    if name == "transpose":
        if _is_leaf(args[0]):
            return leaf_latex(args[0], transpose=True)
        return rf"\left({expression_latex(args[0])}\right)^{{T}}"
    if name == "sum":
        where = {0: r"_{\text{rows}}", 1: r"_{\text{columns}}"}.get(tree.get("axis"), "")
        return rf"\textstyle\sum{where} {_wrap(args[0])}"
    if name in ("square", "pow"):
        power = "2" if name == "square" else expression_latex(args[1])
        base = args[0]
        text = _wrap(base) if _is_leaf(base) else rf"\left({expression_latex(base)}\right)"
        return f"{text}^{{{power}}}"
    if name == "exp":
        return f"e^{{{expression_latex(args[0])}}}"
    if name == "sqrt":
        return rf"\sqrt{{{expression_latex(args[0])}}}"
    if name == "abs":
        return rf"\left|{expression_latex(args[0])}\right|"
    if name == "heaviside":
        return rf"\mathbf{{1}}\left[{expression_latex(args[0])} > 0\right]"
    if name == "max":
        return rf"\max\left({expression_latex(args[0])}, {expression_latex(args[1])}\right)"
    if name == "log" and _is_leaf(args[0]) and not _needs_parens(args[0]):
        return rf"\log {expression_latex(args[0])}"
    return rf"{FUNCTIONS.get(name) or name}\left({expression_latex(args[0])}\right)"


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


def _rows(tree: Any, width: int) -> list[str]:
    """The substituted expression as rows of at most about `width` characters, broken between terms of a sum."""
    whole = expression_latex(tree)
    if visible_width(whole) <= width or _is_leaf(tree):
        return [whole]
    scale, body = None, tree
    if tree["op"] == "mul" and len(tree["args"]) == 2 and not _is_leaf(tree["args"][1]) \
            and tree["args"][1]["op"] == "add":
        scale, body = tree["args"]
    if body["op"] != "add":
        return [whole]
    terms = [expression_latex(a) for a in body["args"]]
    rows, current = [], ""
    opening = (expression_latex(scale) + r" \cdot \bigl[") if scale is not None else ""
    for i, term in enumerate(terms):
        piece = term if i == 0 else f" + {term}"
        if current and visible_width(current + piece) > width:
            rows.append(current)
            current = r"\quad " + piece.lstrip()
        else:
            current += piece
    rows.append(current)
    if scale is not None:
        rows[0] = opening + rows[0]
        rows[-1] += r"\bigr]"
    return rows


def height(tree: Any) -> int:
    """Rows of numbers an expression stacks up when set (a fraction stacks its numerator on its denominator)."""
    if _is_leaf(tree):
        return 1 if _scalar(tree) is not None else len(tree) if isinstance(tree[0], list) else 1
    if tree["op"] == "div":
        return height(tree["args"][0]) + height(tree["args"][1])
    if tree["op"] == "transpose" and _is_leaf(tree["args"][0]) and isinstance(tree["args"][0][0], list):
        return len(tree["args"][0][0])
    return max(height(a) for a in tree["args"])


#: What a slide says instead of numbers that would not fit it at a readable size.
NOT_SHOWN = r"\text{(the numbers are in the worked example)}"


def line_latex(line: Line, width: int | None = None, max_rows: int | None = None) -> str:
    """A worked line as one aligned block: formula, the numbers substituted, the result.

    With `width` (characters) a long sum is broken over rows; a substitution still wider than that,
    or stacking more than `max_rows` rows of numbers, is left out (NOT_SHOWN) rather than shrunk.
    """
    result = leaf_latex(line.result)
    if width is None:
        return calculation(Calculation(line.formula, expression_latex(line.expression), result, line.quantity))
    rows = _rows(line.expression, width)
    too_tall = max_rows is not None and height(line.expression) > max_rows
    if too_tall or any(visible_width(r) > width for r in rows) or visible_width(result) > width:
        return calculation(Calculation(line.formula, NOT_SHOWN, result, line.quantity))
    text = calculation(Calculation(line.formula, rows[0], result, line.quantity))
    if len(rows) == 1:
        return text
    head, tail = text.split(r" \\ &= " + result)
    return head + "".join(rf" \\ &\phantom{{=}} {row}" for row in rows[1:]) + r" \\ &= " + result + tail

"""The document model: a chapter's traces turned into typed worked lines, before any layout.

A pure stage. `document_model(chapter, full, hand)` reads the full-precision trace and the
hand-carried one (every value rounded to the figure the document prints as soon as it is
computed, see README "The document model") and returns a `Document`: for each shown step its
worked lines, the teaching commentary the trace calls for, and one comparison with the exact
values. Templates lay a Document out (tracer.documents.render); `Document.to_dict()` is the JSON
that `tracer build --format json` writes, and what slides, notebooks and web pages read.

A worked line is `formula = expression = result`: the expression is a tree of operations
(`{"op": "add", "args": [...]}`) whose leaves are the numbers exactly as printed, as strings in
Python's float syntax ("-0.044", "5.1e-05"), a matrix a nested list of them. Evaluating the tree
from those strings and rounding half-up to the result's decimals gives the printed result: the
calculator invariant, which `check_line` verifies while the model is built and a test audits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from tracer.abbreviation import CORNER
from tracer.abbreviation import LIMIT as ABBREVIATE_PAST  # past this many rows, columns or terms: a corner
from tracer.checks.formulas import parse_expression, reader_latex
from tracer.checks.symbolic import derivation
from tracer.checks.verify import article_citation, article_figures, article_formulas, derivations_used
from tracer.engine.chapter import Chapter, document_spec
from tracer.engine.graph import ACTIVATIONS, COSTS, Layer, fill
from tracer.engine.optimizers import DEFAULTS, HYPER_SYMBOL, OPTIMIZERS
from tracer.engine.trace import AFTER, Trace
from tracer.engine.train import Traces, build_network
from tracer.errors import TracerError
from tracer.rounding import shown, shown_array

FORMAT = "tracer-document/1"
#: Data quantities written as whole numbers when they are whole (the article's x₁ = 0, y = 1).
EXACT_DATA = ("A0", "X", "Y")
#: Operation names of an expression tree (README "The document model" says what each does).
OPS = ("add", "sub", "mul", "matmul", "div", "neg", "sum", "transpose", "exp", "log", "sqrt", "square",
       "pow", "sigmoid", "relu", "tanh", "max", "abs", "heaviside")
#: More guard digits than this on an operand and the line is left as it is (the audit would say so).
MAX_GUARD = 8
#: A local gradient below this is a saturated unit (the commentary says so).
SATURATED = 0.01


# --------------------------------------------------------------------------- the model's types


@dataclass(frozen=True)
class Line:
    """One worked line: `formula` (LaTeX) = `expression` (printed operands) = `result` (printed)."""

    step: int
    phase: str  # "forward", "cost", "backward" or "update"
    node: str  # the graph node it belongs to: Z1, A1, cost, W1, …
    quantity: str  # the trace's name of the result: Z1, dW1, W1_after, …
    formula: str
    expression: Any
    result: Any
    #: Where each trace value sits in `expression`: {"quantity", "path" (argument indices from the
    #: root), "index" (the entry, when the leaf is one entry of the quantity)}.
    operands: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class Comment:
    """A sentence of teaching commentary at a step and node: plain words, maths between $…$."""

    step: int
    node: str
    kind: str  # "zero-input", "bias-sum", "dimensions", "relu-at-zero", "saturated", "adam-first-step",
    #            "natural-log", "big-matrix" or "author" (a chapter's [[document.notes]])
    text: str


@dataclass(frozen=True)
class Change:
    quantity: str
    before: Any
    now: Any


@dataclass(frozen=True)
class Step:
    """A shown step: "worked" (forward, cost, backward, update) or "forward" (forward and cost only)."""

    step: int
    kind: str
    previous: int | None
    changes: tuple[Change, ...]
    lines: tuple[Line, ...]
    comments: tuple[Comment, ...]
    comparison: str | None  # the one sentence comparing the hand-carried figures with the exact ones
    comparison_at: str = "update"  # where it reads best: after the "cost" line it is about, or the "update"


@dataclass(frozen=True)
class Figure:
    """A figure the article printed, against the computed one ("matches" or "article differs")."""

    step: int
    quantity: str
    index: tuple[int, ...] | None
    printed: str
    correct: str
    exact: str
    verdict: str
    explanation: str
    note: str = ""  # the chapter's note on it (what the article's figure is)
    agree: int = 0  # a program's long output: the significant digits it shares with the computed value
    source: str = ""  # the article's sentence that prints it
    shape: tuple[int, ...] = ()  # the quantity's shape, when the figure is one entry of it


@dataclass(frozen=True)
class Formula:
    """A formula the article stated, as SymPy judged it."""

    latex: str
    verdict: str  # "true" or "false"
    correct_latex: str
    factor: str
    note: str
    where: tuple[str, ...] = ()  # the claim's conditions and definitions, LaTeX: y = 1, \hat{y} = …
    source: str = ""  # the article's formula (or sentence) as it writes it


@dataclass(frozen=True)
class Article:
    """The source text and what was checked against it."""

    author: str
    title: str
    link: str
    note: str
    figures: tuple[Figure, ...]
    formulas: tuple[Formula, ...]


@dataclass(frozen=True)
class Document:
    """Everything a chapter's document says, every number printed, before any layout."""

    chapter: str
    title: str
    source: str
    intro: str
    closing: str
    network: dict[str, Any]  # layers, cost, optimizer, their readable names and formulas
    notation: tuple[str, ...]  # the statements made once: A₀ = X, ŷ = A_L, log is natural, …
    decimals: int
    data: dict[str, Any]  # X and Y, printed
    initial: dict[str, Any]  # the parameters before step 0, printed
    derivations: tuple[dict[str, Any], ...]
    steps: tuple[Step, ...]
    long_run: dict[str, Any] | None
    exercise: dict[str, Any] | None
    article: Article

    @property
    def lines(self) -> list[Line]:
        return [line for step in self.steps for line in step.lines]

    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-ready dicts, lists and strings (the `--format json` file)."""
        return {"format": FORMAT, **_plain(self)}


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, tuples as lists; shares the leaves (asdict would deep-copy millions of them)."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], str):
            return list(value)
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- printing operands


@dataclass(frozen=True)
class Operand:
    """A value from a trace waiting to be printed: its quantity decides the decimals."""

    quantity: str
    value: Any
    exact: bool = False  # data and constants: whole numbers stay whole, no guard digits
    index: tuple[int, ...] | None = None  # the entry of `quantity` this is, when it is one entry


def printed(value: Any, quantity: str, decimals: int, guard: int = 0, exact: bool = False) -> Any:
    """`value` as the document prints it: a string in Python's float syntax, or nested lists of them.

    `guard` extra digits go only on entries not already carried as printed (see `shown_array`)."""
    array = np.asarray(value, dtype=float)
    whole = exact or quantity in EXACT_DATA
    if whole and np.all(np.mod(array, 1) == 0):
        texts = [str(int(x)) for x in array.ravel().tolist()]
    else:
        texts = shown_array(array, decimals, 0 if exact else guard)
    if array.ndim == 0:
        return texts[0]
    return np.array(texts, dtype=object).reshape(array.shape).tolist()


def constant(x: Any) -> str:
    """A number the chapter typed (a learning rate, β₁, m) as Python writes it: 1, 0.05, 1e-08."""
    if isinstance(x, str):
        return x
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _print_tree(tree: Any, decimals_of: Any, guard: int) -> Any:
    if isinstance(tree, Operand):
        return printed(tree.value, tree.quantity, decimals_of(tree.quantity), guard, tree.exact)
    if isinstance(tree, dict):
        return {**tree, "args": [_print_tree(a, decimals_of, guard) for a in tree["args"]]}
    return constant(tree)


def _operands(tree: Any, path: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Where each Operand sits in `tree` (see Line.operands)."""
    if isinstance(tree, Operand):
        ref = {"quantity": tree.quantity, "path": list(path)}
        return [ref | {"index": [int(i) for i in tree.index]}] if tree.index is not None else [ref]
    if isinstance(tree, dict):
        return [r for i, a in enumerate(tree["args"]) for r in _operands(a, path + (i,))]
    return []


# --------------------------------------------------------------------------- evaluating a line


def _leaf(value: Any) -> np.ndarray | float:
    if isinstance(value, str):
        return float(value)
    return np.array(value, dtype=float)


def evaluate(tree: Any) -> Any:
    """The value of an expression tree of printed numbers (NumPy semantics; see README)."""
    with np.errstate(all="ignore"):  # a diverging run's figures (1e30 weights) overflow quietly to inf
        return _evaluate(tree)


def _evaluate(tree: Any) -> Any:
    if not isinstance(tree, dict):
        return _leaf(tree)
    args = [_evaluate(a) for a in tree["args"]]
    name = tree["op"]
    if name == "add":
        total = args[0]
        for a in args[1:]:
            total = total + a
        return total
    if name == "sum":
        axis = tree.get("axis")
        return np.sum(args[0], axis=axis, keepdims=axis is not None)
    unary = {"neg": np.negative, "transpose": np.transpose, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
             "square": np.square, "tanh": np.tanh, "abs": np.abs,
             "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0.0),
             "heaviside": lambda z: np.heaviside(z, 0.0)}
    if name in unary:
        return unary[name](args[0])
    binary = {"sub": np.subtract, "mul": np.multiply, "matmul": np.matmul, "div": np.divide, "pow": np.power,
              "max": np.maximum}
    return binary[name](*args)


def reproduces(expression: Any, result: Any) -> bool:
    """The calculator invariant for one line: the evaluated expression, rounded half-up to the printed
    result's decimals, is the printed result (a value within 1e-9 of a rounding tie may go either way)."""
    with np.errstate(all="ignore"):  # a diverging run overflows here as it did in training
        value = np.asarray(evaluate(expression), dtype=float)
    try:
        value = np.broadcast_to(value, np.shape(np.asarray(result, dtype=object)))
    except ValueError:
        return False
    for got, text in zip(value.ravel(), np.asarray(result, dtype=object).ravel()):
        printed_value = float(text)
        if not (math.isfinite(got) and math.isfinite(printed_value)):
            if not (got == printed_value or (math.isnan(got) and math.isnan(printed_value))):
                return False
            continue
        half = Decimal(1).scaleb(Decimal(text).as_tuple().exponent) / 2
        if abs(Decimal(repr(float(got))) - Decimal(text)) > half + Decimal("1e-9"):
            return False
    return True


# --------------------------------------------------------------------------- symbols


def symbol(quantity: str) -> str:
    """The maths symbol of a trace quantity: W1 → W_{1}, dW1 → ∂Cost/∂W_{1}, dA1_dZ1 → ∂A_{1}/∂Z_{1}."""
    quantity = quantity.removesuffix(AFTER)
    if quantity == "cost":
        return r"\mathrm{Cost}"
    if quantity.startswith("d") and "_d" in quantity:
        of, wrt = quantity[1:].split("_d", 1)
        return rf"\frac{{\partial {symbol(of)}}}{{\partial {symbol(wrt)}}}"
    if quantity.startswith("d") and quantity[1:2].isalpha():
        return rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {symbol(quantity[1:])}}}"
    stem = quantity.rstrip("0123456789")
    index = quantity[len(stem):]
    return f"{stem}_{{{index}}}" if index else stem


# --------------------------------------------------------------------------- building the model


class _Builder:
    """Writes the lines and commentary of one chapter's shown steps from its hand-carried trace."""

    def __init__(self, chapter: Chapter, hand: Trace):
        self.chapter, self.hand = chapter, hand
        self.display = chapter.display
        self.net = build_network(chapter)
        self.cost = self.net.cost
        self.optimizer = OPTIMIZERS[chapter.optimizer](chapter.learning_rate, **chapter.hyper)
        self.scalar: dict[int, tuple[Layer, str]] = {}  # layers in the article's scalar form, their input letter

    def decimals(self, quantity: str) -> int:
        return self.display.decimals_of(quantity.removesuffix(AFTER))

    def line(self, step: int, phase: str, node: str, quantity: str, formula: str, tree: Any, value: Any,
             whole: bool = False) -> Line:
        """A line whose operands carry as few guard digits as make it reproduce its printed result
        (`whole`: a result that is whole by definition, e.g. an indicator, printed as 0 and 1)."""
        result = printed(value, quantity, self.decimals(quantity), exact=whole or quantity in EXACT_DATA)
        expression = _print_tree(tree, self.decimals, 0)
        for guard in range(1, MAX_GUARD + 1):
            if reproduces(expression, result):
                break
            expression = _print_tree(tree, self.decimals, guard)
        return Line(step, phase, node, quantity, formula, expression, result, tuple(_operands(tree)))

    # ----------------------------------------------------------------- forward and cost

    def forward(self, step: int, v: dict[str, Any]) -> list[Line]:
        lines = []
        bias = self.chapter.bias
        for layer in self.net.layers:
            W, P = v[layer.W], v[layer.A_prev]
            if W.shape[0] == 1 and P.shape[1] == 1:  # one unit, one example: the article's scalar form
                x = "x" if layer.index == 1 else "a"
                self.scalar[layer.index] = (layer, x)
                formula = f"{symbol(layer.Z)} = " + " + ".join(
                    [f"w_{{{j}}} {x}_{{{j}}}" for j in range(1, W.shape[1] + 1)] + ([symbol(layer.b)] if bias else []))
                terms = [_op("mul", Operand(layer.W, w, index=(0, j)), Operand(layer.A_prev, a, index=(j, 0)))
                         for j, (w, a) in enumerate(zip(W[0], P[:, 0]))]
                tree = _op("add", *terms, *([Operand(layer.b, v[layer.b][0, 0], index=(0, 0))] if bias else []))
            else:
                formula = f"{symbol(layer.Z)} = {symbol(layer.W)} {symbol(layer.A_prev)}" + (
                    f" + {symbol(layer.b)}" if bias else "")
                tree = _op("matmul", Operand(layer.W, W), Operand(layer.A_prev, P))
                if bias:
                    tree = _op("add", tree, Operand(layer.b, v[layer.b]))
            lines.append(self.line(step, "forward", layer.Z, layer.Z, formula, tree, v[layer.Z]))
            act = layer.activation
            tree = act.expression(Operand(layer.Z, v[layer.Z]))
            if isinstance(tree, dict):
                lines.append(self.line(step, "forward", layer.A, layer.A,
                                       rf"{symbol(layer.A)} = {act.symbol}\left({symbol(layer.Z)}\right)",
                                       tree, v[layer.A]))
        return lines

    def cost_line(self, step: int, v: dict[str, Any]) -> Line:
        last = self.net.layers[-1]
        A, Z, Y = v[last.A], v[last.Z], v["Y"]
        where = [tuple(int(i) for i in np.unravel_index(k, A.shape)) for k in range(A.size)]
        terms = [self.cost.term(Operand("Y", y, index=i), Operand(last.A, a, index=i), Operand(last.Z, z, index=i))
                 for y, a, z, i in zip(Y.ravel(), A.ravel(), Z.ravel(), where)]
        body = terms[0] if len(terms) == 1 else _op("add", *terms)
        scale = self.cost.scale(self.hand.meta["batch_size"])
        tree = body if scale is None else _op("mul", scale, body)
        return self.line(step, "cost", "cost", "cost", type(self.cost).formula, tree, v["cost"])

    # ----------------------------------------------------------------- backward

    def backward(self, step: int, v: dict[str, Any]) -> list[Line]:
        last = self.net.layers[-1]
        m = self.hand.meta["batch_size"]
        into = last.dZ if self.cost.from_logits else last.dA
        cost_cls = type(self.cost)
        formula = _scalar(f"{symbol(into)} = " + fill(cost_cls.gradient_tex, A=symbol(last.A), Z=symbol(last.Z),
                                                      Y="Y", m="m"), v[last.A])
        tree = self.cost.gradient_expression(Operand("Y", v["Y"]), Operand(last.A, v[last.A]),
                                             Operand(last.Z, v[last.Z]), m)
        lines = [self.line(step, "backward", "cost", into, formula, tree, v[into])]
        for layer in reversed(self.net.layers):
            if not (self.cost.from_logits and layer is last):
                lines += self._activation(step, v, layer)
            lines += self._linear(step, v, layer)
        return lines

    def _activation(self, step: int, v: dict[str, Any], layer: Layer) -> list[Line]:
        act, local = layer.activation, layer.local
        out = []
        tree = act.local_expression(Operand(layer.Z, v[layer.Z]), Operand(layer.A, v[layer.A]))
        indicator = isinstance(tree, dict) and tree["op"] == "heaviside"  # 0 or 1 by definition
        if tree is not None:
            formula = _scalar(f"{symbol(local)} = " + fill(act.gradient_tex, A=symbol(layer.A), Z=symbol(layer.Z)),
                              v[layer.A])
            out.append(self.line(step, "backward", layer.A, local, formula, tree, v[local], whole=indicator))
        times = r" \odot " if np.size(v[layer.A]) > 1 else r" \cdot "
        out.append(self.line(step, "backward", layer.A, layer.dZ,
                             f"{symbol(layer.dZ)} = {symbol(layer.dA)}{times}{symbol(local)}",
                             _op("mul", Operand(layer.dA, v[layer.dA]), Operand(local, v[local], exact=indicator)),
                             v[layer.dZ]))
        return out

    def _linear(self, step: int, v: dict[str, Any], layer: Layer) -> list[Line]:
        dZ, P = v[layer.dZ], v[layer.A_prev]
        formula = f"{symbol(layer.dW)} = {symbol(layer.dZ)} \\, {symbol(layer.A_prev)}^{{T}}"
        if dZ.shape == (1, 1):  # one unit, one example: each weight's gradient is dz times its input
            tree = _op("mul", Operand(layer.dZ, dZ[0, 0], index=(0, 0)), _op("transpose", Operand(layer.A_prev, P)))
        else:
            tree = _op("matmul", Operand(layer.dZ, dZ), _op("transpose", Operand(layer.A_prev, P)))
        out = [self.line(step, "backward", layer.Z, layer.dW, formula, tree, v[layer.dW])]
        if self.chapter.bias:
            formula = (f"{symbol(layer.db)} = \\sum_{{i=1}}^{{m}} "
                       f"\\frac{{\\partial \\mathrm{{Cost}}}}{{\\partial z_{{{layer.index}}}^{{(i)}}}}")
            out.append(self.line(step, "backward", layer.Z, layer.db, formula,
                                 _op("sum", Operand(layer.dZ, dZ), axis=1), v[layer.db]))
        if layer.index > 1:
            out.append(self.line(step, "backward", layer.Z, layer.dA_prev,
                                 f"{symbol(layer.dA_prev)} = {symbol(layer.W)}^{{T}} {symbol(layer.dZ)}",
                                 _op("matmul", _op("transpose", Operand(layer.W, v[layer.W])),
                                     Operand(layer.dZ, dZ)), v[layer.dA_prev]))
        return out

    # ----------------------------------------------------------------- update

    def update(self, step: int, v: dict[str, Any]) -> list[Line]:
        opt = self.optimizer
        hyper = {k: constant(self.chapter.hyper.get(k, DEFAULTS[k])) for k in opt.uses}
        alpha = constant(self.chapter.learning_rate)
        previous = self._previous_state(step)
        lines = []
        for p in self.chapter.parameter_names:
            if p in self.hand.meta["frozen"]:
                continue
            names = dict(P=symbol(p), dP=symbol("d" + p))
            state = {}
            for s in opt.state:
                state[s] = Operand(s + p, v[s + p])
                if previous is not None:
                    prev = Operand(s + p, previous[s + p]) if isinstance(previous, dict) else "0"
                    formula = _scalar(f"{s}_{{{symbol(p)}}} := " + fill(opt.state_tex[s], **names), v[p])
                    lines.append(self.line(step, "update", p, s + p, formula,
                                           opt.state_expression(s, prev, Operand("d" + p, v["d" + p]), hyper),
                                           v[s + p]))
            tree = opt.expression(Operand(p, v[p]), Operand("d" + p, v["d" + p]), alpha, state, hyper, step + 1)
            formula = _scalar(f"{symbol(p)} := " + fill(type(opt).update_tex, **names), v[p])
            lines.append(self.line(step, "update", p, p + AFTER, formula, tree, v[p + AFTER]))
        return lines

    def _previous_state(self, step: int) -> dict[str, Any] | str | None:
        """The optimizer state before `step`: zero at step 0, the recorded one after step − 1, or unknown."""
        if not self.optimizer.state:
            return None
        if step == 0:
            return "zero"
        if step - 1 in set(self.hand.steps.tolist()):
            return self.hand.at(step - 1)
        return None


def _scalar(formula: str, value: Any) -> str:
    """A formula for one-entry values: products and quotients of numbers, not ⊙ and ⊘ of matrices."""
    if np.size(value) == 1:
        return formula.replace(r"\odot", r"\cdot").replace(r"\oslash", "/")
    return formula


def _op(name: str, *args: Any, **keys: Any) -> dict[str, Any]:
    return {"op": name, "args": list(args), **keys}


# --------------------------------------------------------------------------- commentary


#: The teaching commentary, one template per moment; fields in braces come from the trace.
COMMENTARY = {
    "zero-input": ("{grads} {are} 0 because {inputs} {is_} 0 in every example: changing {those} cannot change "
                   "the cost. A bias, whose input is always 1, can still move; this is why the article adds one."),
    "bias-sum": ("The bias is added to the $z$ of every example, so its gradient is the sum of "
                 "${dz}$ over the {m} examples (one column each)."),
    "dimensions": ("Dimension check: ${dz}$ is ${a} \\times {m}$ and ${prev}^{{T}}$ is ${m} \\times {n}$, so "
                   "${dw}$ is ${a} \\times {n}$, the shape of ${w}$."),
    "relu-at-zero": ("ReLU has no slope at exactly $z = 0$; its derivative there is taken as 0 (the usual "
                     "convention in code) for the entries of ${z}$ that are exactly 0."),
    "saturated": ("Some entries of ${a}$ are close to 0 or 1: there the sigmoid is saturated, its slope "
                  "${local}$ is below {limit}, and almost no gradient passes back through it."),
    "adam-first-step": ("At the first step Adam's corrected averages are the gradient and its square, so "
                        "each parameter with a non-zero gradient moves by about $\\pm\\alpha = \\pm {alpha}$, "
                        "whatever the gradient's size (one with a zero gradient stays put)."),
    "natural-log": "Here $\\log$ is the natural logarithm (base $e$).",
    "big-matrix": ("Matrices with more than {past} rows or columns are shown by their top-left "
                   "${corner} \\times {corner}$ "
                   "corner and their shape, and a sum over more than {past} examples by its first {corner} terms "
                   "and its last: the entries shown are the ones worked here, and every entry is worked the same "
                   "way."),
}


def _commentary(chapter: Chapter, net: Any, step: Step, v: dict[str, Any]) -> list[Comment]:
    out: list[Comment] = []
    s = step.step
    quantities = {line.quantity for line in step.lines}
    for layer in net.layers:
        P = v[layer.A_prev]
        if layer.dW in quantities:
            zero = [j for j in range(P.shape[0])
                    if not np.any(P[j]) and np.any(v[layer.dZ]) and not np.any(v[layer.dW][:, j])]
            if zero:
                x = "x" if layer.index == 1 else "a"
                grads = ", ".join(rf"$\partial \mathrm{{Cost}} / \partial w_{{{j + 1}}}$" for j in zero)
                inputs = ", ".join(f"${x}_{{{j + 1}}}$" for j in zero)
                many = len(zero) > 1
                out.append(Comment(s, layer.Z, "zero-input", COMMENTARY["zero-input"].format(
                    grads=grads, inputs="their inputs " + inputs if many else "its input " + inputs,
                    are="are" if many else "is", is_="are" if many else "is",
                    those="these weights" if many else "this weight")))
            a, m = v[layer.dZ].shape
            if layer is net.layers[-1]:  # once per step: the first layer the backward pass reaches
                out.append(Comment(s, layer.Z, "dimensions", COMMENTARY["dimensions"].format(
                    dz=symbol(layer.dZ), a=a, m=m, prev=symbol(layer.A_prev), n=P.shape[0], dw=symbol(layer.dW),
                    w=symbol(layer.W))))
        if layer.db in quantities and v[layer.dZ].shape[1] > 1 and layer is net.layers[-1]:
            out.append(Comment(s, layer.Z, "bias-sum", COMMENTARY["bias-sum"].format(
                dz=symbol(layer.dZ), m=v[layer.dZ].shape[1])))
        if layer.local in quantities:
            name = layer.activation.name
            if name == "relu" and np.any(v[layer.Z] == 0):
                out.append(Comment(s, layer.A, "relu-at-zero", COMMENTARY["relu-at-zero"].format(z=symbol(layer.Z))))
            if name == "sigmoid" and np.any(v[layer.local] < SATURATED):
                out.append(Comment(s, layer.A, "saturated", COMMENTARY["saturated"].format(
                    a=symbol(layer.A), local=symbol(layer.local), limit=SATURATED)))
    if any(_big(line.expression) or _big(line.result) for line in step.lines):
        first = next(line for line in step.lines if _big(line.expression) or _big(line.result))
        out.insert(0, Comment(s, first.node, "big-matrix", COMMENTARY["big-matrix"].format(
            past=ABBREVIATE_PAST, corner=CORNER)))
    if step.kind == "worked" and chapter.optimizer == "adam" and s == 0:
        out.append(Comment(s, chapter.parameter_names[0], "adam-first-step", COMMENTARY["adam-first-step"].format(
            alpha=constant(chapter.learning_rate))))
    return out


def _big(tree: Any) -> bool:
    """Does the documents' layout abbreviate some matrix or sum of this line?"""
    if isinstance(tree, dict):
        return (tree["op"] == "add" and len(tree["args"]) > ABBREVIATE_PAST) or any(_big(a) for a in tree["args"])
    if isinstance(tree, list):
        shape = np.shape(np.asarray(tree, dtype=object))
        return any(n > ABBREVIATE_PAST for n in shape)
    return False


def _uses_log(tree: Any) -> bool:
    if isinstance(tree, dict):
        return tree["op"] == "log" or any(_uses_log(a) for a in tree["args"])
    return False


# --------------------------------------------------------------------------- the comparison


def _comparison(chapter: Chapter, step: int, kind: str, hand: dict[str, Any],
                full: dict[str, Any]) -> tuple[str | None, str]:
    """One sentence: what carrying every digit would print instead, when it prints something else; and
    where it goes: right after the cost when it names the cost, otherwise after the update."""
    d = chapter.display.decimals_of("cost")
    hand_cost, full_cost = shown(hand["cost"], d), shown(full["cost"], d + 1)
    parts = []
    if shown(full["cost"], d) != hand_cost:
        parts.append(f"the cost would be ${full_cost}$ instead of ${hand_cost}$")
    if kind == "worked":
        worst, decimals = 0.0, chapter.display.decimals
        for p in chapter.parameter_names:
            diff = np.abs(np.asarray(hand[p + AFTER]) - np.asarray(full[p + AFTER]))
            worst = max(worst, float(diff.max()))
        if worst > 0.5 * 10 ** -decimals:
            below = " below" if parts else ""
            parts.append(f"the updated parameters{below} would differ from the printed ones by at most "
                         f"${shown(worst, decimals)}$")
    if not parts:
        return None, "update"
    at = "cost" if shown(full["cost"], d) != hand_cost else "update"
    return ("These figures are carried as printed, as you would with a calculator. Carrying every digit, "
            + ", and ".join(parts) + "."), at


# --------------------------------------------------------------------------- the whole document


def document_model(chapter: Chapter, full: Trace, hand: Trace) -> Document:
    """The document of `chapter`: worked steps from the hand-carried trace `hand`, the long run and
    the article's figures from the full-precision trace `full` (both must record the shown steps)."""
    spec = document_spec(chapter)
    builder = _Builder(chapter, hand)
    decimals = chapter.display.decimals
    shown_steps = sorted(set(spec.worked_steps) | set(spec.forward_steps))
    steps, previous = [], None
    for s in shown_steps:
        v = hand.at(s)
        kind = "worked" if s in spec.worked_steps else "forward"
        lines = builder.forward(s, v) + [builder.cost_line(s, v)]
        if kind == "worked":
            lines += builder.backward(s, v) + builder.update(s, v)
        changes = ()
        if previous is not None:
            before = hand.at(previous)
            changes = tuple(Change(q, printed(before[q], q, builder.decimals(q)), printed(v[q], q, builder.decimals(q)))
                            for q in chapter.parameter_names + ["cost"])
        step = Step(s, kind, previous, changes, tuple(lines), (), *_comparison(chapter, s, kind, v, full.at(s)))
        comments = _commentary(chapter, builder.net, step, v)
        comments += [Comment(s, n.node, "author", n.text) for n in spec.notes if n.step == s]
        step = Step(s, kind, previous, changes, tuple(lines), tuple(comments), step.comparison, step.comparison_at)
        steps.append(step)
        previous = s

    cost_cls = type(builder.cost)
    notation = [r"The input counts as layer 0: $A_{0} = X$, one column per example "
                f"($m = {chapter.m}$).",
                f"The prediction is the last layer's activation: $\\hat{{y}} = A_{{{len(chapter.layers)}}}$."]
    for layer, x in builder.scalar.values():  # w₁ is input 1's weight, b₁ layer 1's bias: say which is which
        notation.append(f"In ${symbol(layer.Z)}$, $w_{{j}}$ is the weight of input ${x}_{{j}}$ (the $j$-th entry "
                        f"of ${symbol(layer.W)}$), while the index of ${symbol(layer.Z)}$, ${symbol(layer.A)}$"
                        + (f" and ${symbol(layer.b)}$" if chapter.bias else "") + " is the layer's.")
    if any(_uses_log(line.expression) for line in steps[0].lines) if steps else False:
        notation.append(COMMENTARY["natural-log"])

    opt = OPTIMIZERS[chapter.optimizer]
    network = {
        "layers": [{"index": i, "units": l.units, "activation": l.activation,
                    "readable": ACTIVATIONS[l.activation].readable, "symbol": ACTIVATIONS[l.activation].symbol,
                    "formula": ACTIVATIONS[l.activation].formula} for i, l in enumerate(chapter.layers, start=1)],
        "n_inputs": chapter.n_inputs, "m": chapter.m, "bias": chapter.bias,
        "cost": cost_cls.name, "cost_readable": cost_cls.readable, "cost_formula": cost_cls.formula,
        "optimizer": chapter.optimizer, "optimizer_readable": opt.readable,
        "learning_rate": constant(chapter.learning_rate),
        "hyper": [{"name": k, "symbol": HYPER_SYMBOL.get(k, k), "value": constant(chapter.hyper.get(k, DEFAULTS[k]))}
                  for k in opt.uses],
        "batch_size": hand.meta["batch_size"], "steps": chapter.steps, "parameters": chapter.parameter_names,
        "frozen": list(chapter.frozen),
    }
    first = hand.steps[0] if len(hand.steps) else None
    initial = ({p: printed(hand.at(0)[p], p, builder.decimals(p)) for p in chapter.parameter_names}
               if first == 0 else {})
    long_run = None
    if spec.table_steps:
        long_run = {"steps": chapter.steps, "decimals": spec.table_decimals,
                    "table": [{"step": s, "cost": shown(full.costs[s], spec.table_decimals)}
                              for s in spec.table_steps],
                    "final": {p: printed(full.final[p], p, builder.decimals(p)) for p in chapter.parameter_names}}
    exercise = None
    if spec.exercise_step is not None:
        v = hand.at(spec.exercise_step)
        for q in spec.exercise_quantities:
            if q not in v:
                raise TracerError(f"{chapter.path or chapter.name}: [exercise] ask: expected names "
                                  f"the trace records ({', '.join(sorted(v))}), got {q!r}")
        exercise = {"step": spec.exercise_step, "prompt": spec.exercise_prompt,
                    "answers": [{"quantity": q, "value": printed(v[q], q, builder.decimals(q))}
                                for q in spec.exercise_quantities]}
    return Document(
        chapter=chapter.name, title=chapter.title, source=chapter.source,
        intro=spec.intro, closing=spec.closing, network=network, notation=tuple(notation), decimals=decimals,
        data={"X": printed(full.X, "X", decimals, exact=True), "Y": printed(full.Y, "Y", decimals, exact=True)},
        initial=initial, derivations=tuple(_derivations(chapter)), steps=tuple(steps), long_run=long_run,
        exercise=exercise, article=_article(chapter, full, hand),
    )


def recorded_needs(chapter: Chapter) -> list[int]:
    """The steps a document shows (worked, forward, exercise): the hand-carried trace must record them."""
    spec = document_spec(chapter)
    steps = set(spec.worked_steps) | set(spec.forward_steps)
    if spec.exercise_step is not None:
        steps.add(spec.exercise_step)
    if OPTIMIZERS[chapter.optimizer].state:  # the state before a worked step
        steps |= {s - 1 for s in spec.worked_steps if s > 0}
    return sorted(steps)


def _derivations(chapter: Chapter) -> list[dict[str, Any]]:
    """The SymPy derivation steps for the chapter's activations and cost."""
    out = []
    for name in derivations_used(chapter):
        parts = [(ACTIVATIONS.get(n) or COSTS[n]).readable for n in name.split("+")]
        steps, said = [], None
        for s in derivation(name):
            right = s.latex.split(" = ", 1)[-1]
            if right != said:  # a "simplified" form SymPy cannot simplify is not shown twice (ReLU′)
                steps.append({"label": str(s.label), "latex": s.latex})
            said = right
        out.append({"name": name, "title": " with ".join(parts), "steps": steps})
    return out


def _article(chapter: Chapter, full: Trace, hand: Trace) -> Article:
    citation = article_citation(chapter)
    figures = []
    for check in article_figures(chapter, Traces(chapter, full, hand)):  # a figure that differs reads `hand`
        printed_text = str(check.printed).replace("−", "-").strip()
        agree = _agreeing_digits(printed_text, check.computed) if "full precision" in getattr(check, "how", ()) else 0
        # A program's long output is set beside the computed float's own digits, not padded with zeros.
        correct = repr(float(check.computed)) if agree else check.correct
        shape = tuple(np.shape(full.at(check.step).get(check.quantity, ()))) if check.index else ()
        figures.append(Figure(check.step, check.quantity, tuple(check.index) if check.index else None,
                              printed_text, correct, _exact(check.computed), check.verdict, check.explanation,
                              getattr(check, "note", ""), agree, getattr(check, "source", ""), shape))
    formulas = [Formula(f.latex, f.verdict, f.correct_latex, f.factor, f.note, _where_latex(f.where), f.source)
                for f in article_formulas(chapter)]
    return Article(citation["author"], citation["title"], citation["link"], citation["note"], tuple(figures),
                   tuple(formulas))


def _agreeing_digits(printed_text: str, computed: float) -> int:
    """How many leading significant digits a long printed figure shares, as written, with the computed
    float's shortest repr: 0.0009210166430616655 and 0.000921016643061665 share 15."""
    p, c = Decimal(printed_text), Decimal(repr(float(computed)))
    if p.is_zero() or c.is_zero() or p.adjusted() != c.adjusted() or (p < 0) != (c < 0):
        return 0
    shared = 0
    for a, b in zip(p.as_tuple().digits, c.as_tuple().digits):
        if a != b:
            break
        shared += 1
    return shared


def _where_latex(where: dict[str, str]) -> tuple[str, ...]:
    """A claim's `where` entries as LaTeX equations, in the notation of the claim itself."""
    symbols: dict[str, Any] = {}
    return tuple(f"{reader_latex(parse_expression(name, symbols))} = {reader_latex(parse_expression(text, symbols))}"
                 for name, text in where.items())


def _exact(x: Any) -> str:
    """A computed value to six significant digits, enough to show how a printed figure came about."""
    array = np.asarray(x, dtype=float).ravel()
    return ", ".join(format(float(v), ".6g") for v in array)


__all__ = ["Document", "Step", "Line", "Comment", "Change", "Article", "Figure", "Formula", "OPS", "FORMAT",
           "document_model", "recorded_needs", "evaluate", "reproduces", "symbol", "printed", "constant",
           "COMMENTARY"]

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
import re
from dataclasses import dataclass, fields, is_dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np

from tracer.abbreviation import CORNER
from tracer.abbreviation import LIMIT as ABBREVIATE_PAST  # past this many rows, columns or terms: a corner
from tracer.checks.formulas import parse_expression, reader_latex
from tracer.checks.symbolic import derivation
from tracer.checks.verify import article_citation, article_figures, article_formulas, derivations_used
from tracer.documents.reading import after_training
from tracer.engine import batchnorm, dropout, keys, penalties
from tracer.engine.chapter import Chapter, document_spec
from tracer.engine.keys import COST, INPUT
from tracer.engine.nodes import NODES, Linear, Node, Worked, fill
from tracer.engine.optimizers import DEFAULTS, HYPER_SYMBOL, OPTIMIZERS
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError, quoted
from tracer.operations import NAMES as OPS
from tracer.operations import evaluate as evaluate_tree
from tracer.rounding import round_shown, shown, shown_array

FORMAT = "tracer-document/1"
#: Data quantities written as whole numbers when they are whole (the article's x₁ = 0, y = 1).
EXACT_DATA = ("A0", "X", "Y")
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
    #: root), "index" (the entry, when the leaf is one entry of the quantity; null in a place: all of it)}.
    operands: tuple[dict[str, Any], ...] = ()
    #: The part of `quantity` the result is (null in a place: all of it; [null, 2] is example 3's column).
    part: tuple[int | None, ...] | None = None
    #: The expression with its inner operations worked out one level at a time, each equal to the result.
    stages: tuple[Any, ...] = ()
    #: The result as carrying every digit from the start gives it, printed by the same rule; only when
    #: it differs from `result` in the printed digits (null otherwise).
    every_digit: Any = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class Comment:
    """A sentence of teaching commentary at a step and node: plain words, maths between $…$."""

    step: int
    node: str
    kind: str  # "zero-input", "bias-sum", "dimensions", "average", "average-one", "no-average", "relu-at-zero",
    #            "saturated", "adam-first-step", "natural-log", "big-matrix", "paths", "column-jacobian" or
    #            "author" ([[document.notes]])
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
    #: Said once, at the first line whose every-digit figures differ: why the two differ and which one a
    #: calculator gives; `rounding_note_at` is that line's index in `lines`.
    rounding_note: str | None = None
    rounding_note_at: int | None = None


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
    index: tuple[int | None, ...] | None = None  # the entry (or column …) of `quantity` this is; None: all


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
        return [ref | {"index": [None if i is None else int(i) for i in tree.index]}] if tree.index is not None \
            else [ref]
    if isinstance(tree, dict):
        return [r for i, a in enumerate(tree["args"]) for r in _operands(a, path + (i,))]
    return []


# --------------------------------------------------------------------------- evaluating a line


def evaluate(tree: Any) -> Any:
    """The value of an expression tree of printed numbers (NumPy semantics; see README)."""
    with np.errstate(all="ignore"):  # a diverging run's figures (1e30 weights) overflow quietly to inf
        return evaluate_tree(tree)


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


def symbol(quantity: str, names: keys.Names | None = None) -> str:
    """The maths symbol of a trace quantity: W1 → W_{1}, dW1 → ∂Cost/∂W_{1}, dA1_dZ1 → ∂A_{1}/∂Z_{1}."""
    return keys.symbol(quantity, names)


# --------------------------------------------------------------------------- building the model


class _Builder:
    """Writes the lines and commentary of one chapter's shown steps from its hand-carried trace, each
    node writing its own lines (tracer.engine.nodes: `worked_forward`, `worked_backward`)."""

    def __init__(self, chapter: Chapter, hand: Trace):
        self.chapter, self.hand = chapter, hand
        self.display = chapter.display
        self.graph = chapter.network
        self.names = self.graph.names()
        self.cost = self.graph.cost
        self.optimizer = penalties.make_optimizer(chapter)
        self.scalar: dict[str, tuple[Linear, str]] = {}  # linear nodes in the article's scalar form, their input letter
        self.full: dict[str, Any] = {}  # the full-precision trace at the step being written

    def decimals(self, quantity: str) -> int:
        return self.display.decimals_of(keys.before_update(quantity))

    def symbol(self, quantity: str) -> str:
        return keys.symbol(quantity, self.names)

    def line(self, step: int, phase: str, node: str, quantity: str, formula: str, tree: Any, value: Any,
             whole: bool = False, part: tuple[int | None, ...] | None = None, stages: bool = False) -> Line:
        """A line whose operands carry as few guard digits as make it reproduce its printed result
        (`whole`: a result that is whole by definition, e.g. an indicator, printed as 0 and 1;
        `stages`: its inner operations worked out level by level, each stage reproducing the result)."""
        if part is not None:
            value = _take(value, part)
        result = printed(value, quantity, self.decimals(quantity), exact=whole or quantity in EXACT_DATA)
        expression = _print_tree(tree, self.decimals, 0)
        for guard in range(1, MAX_GUARD + 1):
            if reproduces(expression, result):
                break
            expression = _print_tree(tree, self.decimals, guard)
        worked = _stages(expression, result, self.decimals(quantity)) if stages else ()
        every = None
        if quantity in self.full:
            exact = self.full[quantity] if part is None else _take(self.full[quantity], part)
            every = _every_digit(value, exact, result, quantity, self.decimals(quantity),
                                 whole or quantity in EXACT_DATA)
        return Line(step, phase, node, quantity, _scalar(formula, value), expression, result,
                    tuple(_operands(tree)), part, worked, every)

    def lines(self, step: int, phase: str, node: str, worked: list[Worked], v: dict[str, Any]) -> list[Line]:
        out = []
        for w in worked:
            if w.form == "scalar":
                self.scalar[node] = (self.graph.node(node), "x" if self.graph.node(node).inputs[0] == INPUT else "a")
            out.append(self.line(step, phase, node, w.quantity, w.formula, w.tree, v[w.quantity], w.whole, w.part,
                                 w.stages))
        return out

    # ----------------------------------------------------------------- forward and cost

    def forward(self, step: int, v: dict[str, Any]) -> list[Line]:
        sheet = _Sheet(self, v)
        return [line for node in self.graph.nodes[:-1]
                for line in self.lines(step, "forward", node.name, node.worked_forward(sheet), v)]

    def cost_line(self, step: int, v: dict[str, Any]) -> Line:
        output, logits = self._ends()
        w = self.cost.worked_cost(_Sheet(self, v), output, logits)
        return self.line(step, "cost", COST, COST, w.formula, w.tree, v[COST])

    def cost_lines(self, step: int, v: dict[str, Any]) -> list[Line]:
        """The cost line; with an L2 penalty, the data term, the penalty and their sum, each its own line."""
        if keys.DATA_COST not in v:
            return [self.cost_line(step, v)]
        output, logits = self._ends()
        w = self.cost.worked_cost(_Sheet(self, v), output, logits)
        data = r"\mathrm{Cost}_{0}"  # the cost without the penalty: its data term
        terms = [(n, self.symbol(n.W)) for n in self.graph.nodes if isinstance(n, penalties.PenalisedLinear)]
        m = _Sheet(self, v).m
        penalty = penalties.penalty_expression(self.graph, lambda W: Operand(W, v[W]), m)
        lam = terms[0][0].l2
        return [
            self.line(step, "cost", COST, keys.DATA_COST, w.formula.replace(r"\mathrm{Cost}", data, 1), w.tree,
                      v[keys.DATA_COST]),
            self.line(step, "cost", COST, keys.PENALTY, r"\mathrm{Penalty} = \frac{\lambda}{2m} \left("
                      + " + ".join(rf"\sum {W}^{{2}}" for _, W in terms) + r"\right)",
                      penalty, v[keys.PENALTY]),
            self.line(step, "cost", COST, COST, rf"\mathrm{{Cost}} = {data} + \mathrm{{Penalty}}",
                      _op("add", Operand(keys.DATA_COST, v[keys.DATA_COST]), Operand(keys.PENALTY, v[keys.PENALTY])),
                      v[COST])]

    def _ends(self) -> tuple[str, str]:
        """The prediction ŷ (the last node before the cost) and what it was computed from (its logits)."""
        output = self.graph.output
        return output.name, output.inputs[0]

    # ----------------------------------------------------------------- backward

    def backward(self, step: int, v: dict[str, Any]) -> list[Line]:
        sheet = _Sheet(self, v)
        output, logits = self._ends()
        w = self.cost.worked_gradient(sheet, output, logits)
        lines = [self.line(step, "backward", COST, w.quantity, w.formula, w.tree, v[w.quantity])]
        for node in reversed(self.graph.nodes[:-1]):
            feeds = self.graph.feeds.get(node.name, [])
            if len(feeds) > 1:  # the article's rule: the gradients from every path, summed
                parts = [keys.part(node.name, u.name) for u in feeds]
                grad = keys.grad(node.name)
                lines.append(self.line(step, "backward", node.name, grad,
                                       f"{self.symbol(grad)} = " + " + ".join(self.symbol(q) for q in parts),
                                       _op("add", *[Operand(q, v[q]) for q in parts]), v[grad]))
            if node.name in self.graph.on_path:
                worked = node.worked_backward(sheet)
                if node.name in self.scalar:  # one unit, one example: the chain along each path, as the article
                    chain = self.chain(step, node, v)
                    worked = [w for w in worked if w.quantity not in {line.quantity for line in chain}]
                    lines += chain
                lines += self.lines(step, "backward", node.name, worked, v)
        return lines

    def chain(self, step: int, node: Linear, v: dict[str, Any]) -> list[Line]:
        """The article's scalar chain along the path to each weight and the bias of a one-unit, one-example
        linear node: ∂Cost/∂w₁ = ∂Cost/∂A₁ · ∂A₁/∂Z₁ · ∂Z₁/∂w₁ = 0.500 · 0.250 · 0 (the upstream product
        written out when the node's one reader records its gradient and local gradient)."""
        S, Z, A = self.symbol, node.name, node.inputs[0]
        readers = self.graph.consumers[Z]
        up, up_tex = Operand(keys.grad(Z), v[keys.grad(Z)][0, 0]), S(keys.grad(Z))
        if len(readers) == 1:
            dA, local = keys.grad(readers[0].name), keys.local(readers[0].name, Z)
            if dA in v and local in v:
                up = _op("mul", Operand(dA, np.asarray(v[dA])[0, 0], index=(0, 0)),
                         Operand(local, np.asarray(v[local])[0, 0], index=(0, 0)))
                up_tex = f"{S(dA)} \\cdot {S(local)}"
        x = "x" if A == INPUT else "a"
        out = []
        targets = [(keys.grad(node.W), (0, j), f"w_{{{j + 1}}}", Operand(A, np.asarray(v[A])[j, 0], True, (j, 0)))
                   for j in range(np.shape(v[A])[0])]
        if node.b:
            targets.append((keys.grad(node.b), None, S(node.b), "1"))  # 1 × 1: the whole of it
        for quantity, part, wrt, local_in in targets:
            lhs = f"\\frac{{\\partial \\mathrm{{Cost}}}}{{\\partial {wrt}}}"
            formula = f"{lhs} = {up_tex} \\cdot \\frac{{\\partial {S(Z)}}}{{\\partial {wrt}}}"
            line = self.line(step, "backward", Z, quantity, formula, _op("mul", up, local_in), v[quantity], part=part)
            if not reproduces(line.expression, line.result):  # the printed ∂Cost/∂Z times the input instead
                line = self.line(step, "backward", Z, quantity,
                                 f"{lhs} = {S(keys.grad(Z))} \\cdot \\frac{{\\partial {S(Z)}}}{{\\partial {wrt}}}",
                                 _op("mul", Operand(keys.grad(Z), v[keys.grad(Z)][0, 0], index=(0, 0)), local_in),
                                 v[quantity], part=part)
            out.append(line)
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
            dp = keys.grad(p)
            names = dict(P=self.symbol(p), dP=self.symbol(dp))
            state = {}
            for s in opt.state:
                q = keys.state(s, p)
                state[s] = Operand(q, v[q])
                if previous is not None:
                    prev = Operand(q, previous[q]) if isinstance(previous, dict) else "0"
                    formula = f"{s}_{{{self.symbol(p)}}} := " + fill(opt.state_tex[s], **names)
                    lines.append(self.line(step, "update", p, q, formula,
                                           opt.state_expression(s, prev, Operand(dp, v[dp]), hyper), v[q]))
            tree = opt.expression(Operand(p, v[p]), Operand(dp, v[dp]), alpha, state, hyper, step + 1)
            formula = f"{self.symbol(p)} := " + fill(type(getattr(opt, "inner", opt)).update_tex, **names)
            if p in getattr(opt, "decayed", ()):  # weight decay: − αλP, apart from the gradient
                tree = opt.with_decay(tree, Operand(p, v[p]), alpha)
                formula += fill(opt.decay_tex, **names)
            lines.append(self.line(step, "update", p, keys.after(p), formula, tree, v[keys.after(p)]))
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


class _Sheet:
    """What a node reads while writing its lines at one step: values as carried by hand, operands, symbols."""

    def __init__(self, builder: _Builder, v: dict[str, Any]):
        self.builder, self.v = builder, v
        self.m = int(builder.hand.meta["batch_size"])

    def value(self, name: str) -> np.ndarray:
        return np.asarray(self.v[name])

    def operand(self, name: str, index: tuple[int | None, ...] | None = None, exact: bool = False) -> Operand:
        return Operand(name, self.v[name] if index is None else _take(self.v[name], index), exact, index)

    def symbol(self, name: str) -> str:
        return self.builder.symbol(name)

    def example(self, name: str, example: int) -> str:
        return keys.symbol(name, self.builder.names, example)

    def target(self, node: Node, wrt: str) -> str:
        return keys.grad(wrt) if wrt in self.builder.graph.owner else self.builder.graph.target(wrt, node)


def _take(value: Any, index: tuple[int | None, ...]) -> Any:
    """The part of `value` at `index` (None in a place takes all of that axis): an entry, a matrix, or
    an example's column, kept a column (n × 1) as the documents write it."""
    part = np.asarray(value)[tuple(slice(None) if i is None else i for i in index)]
    return part.reshape(-1, 1) if part.ndim == 1 and index[0] is None else part


def _every_digit(carried: Any, full: Any, result: Any, quantity: str, decimals: int, whole: bool) -> Any:
    """`full` printed as `result` is (the same rule), or None when every entry prints as `result` does.
    Only the entries that round to another figure are printed anew (a big matrix stays cheap)."""
    c, f = np.asarray(carried, dtype=float), np.asarray(full, dtype=float)
    if whole or c.shape != f.shape:
        every = printed(full, quantity, decimals, exact=whole)
        return None if every == result else every
    with np.errstate(all="ignore"):
        moved = np.flatnonzero(round_shown(f, decimals).ravel() != round_shown(c, decimals).ravel())
    if not moved.size:
        return None
    texts = np.asarray(result, dtype=object).ravel().copy()
    for i, text in zip(moved, shown_array(f.ravel()[moved], decimals)):
        texts[i] = text
    return texts[0] if np.ndim(result) == 0 else texts.reshape(np.shape(result)).tolist()


def _stages(expression: Any, result: Any, decimals: int) -> tuple[Any, ...]:
    """The expression with its innermost operations worked out, then the next ones, …, down to one
    operation on numbers: each stage printed with as many digits as keep it reproducing `result`."""
    stages = []
    tree = expression
    while isinstance(tree, dict) and any(isinstance(a, dict) for a in tree["args"]):
        for guard in range(1, MAX_GUARD + 1):
            stage = _inner_done(tree, decimals + guard)
            if reproduces(stage, result):
                break
        stages.append(stage)
        tree = stage
    return tuple(stages)


def _inner_done(tree: Any, places: int) -> Any:
    """`tree` with each operation whose arguments are all numbers replaced by its printed value."""
    if not isinstance(tree, dict):
        return tree
    if all(not isinstance(a, dict) for a in tree["args"]):
        with np.errstate(all="ignore"):
            value = np.asarray(evaluate(tree), dtype=float)
        texts = shown_array(value, places, 0)
        return texts[0] if value.ndim == 0 else np.array(texts, dtype=object).reshape(value.shape).tolist()
    return {**tree, "args": [_inner_done(a, places) for a in tree["args"]]}


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
    "zero-input": ("Notice something odd? {grads} {are} zero. Why? The local gradient{s} {locals} {are} the "
                   "input{s} {inputs}, {which} 0 in every example: {it_gives} no information, so changing {those} "
                   "cannot change the cost. How, then, can the network learn from this? It needs a parameter whose "
                   "input is never zero: a bias, whose input is always 1.{bias}"),
    "bias-sum": ("Why a sum? ${b}$ is shared by all {m} examples: it reaches the cost along {m} paths, one "
                 "through each example's $z$, and the rule is to sum the gradients coming in from every path. "
                 "Its local gradient $\\partial z / \\partial b$ is 1, so ${db}$ is the sum of the {m} columns of ${dz}$."),
    "dimensions": ("Why ${prev}^{{T}}$? Use dimension analysis: ${dw}$ must have the shape of ${w}$, ${a} \\times {n}$. "
                   "${dz}$ is ${a} \\times {m}$ and ${prev}$ is ${n} \\times {m}$, so the only product of them with "
                   "that shape is ${dz}$ times ${prev}^{{T}}$ (${m} \\times {n}$).{back}"),
    "dimensions-back": (" Likewise ${da}$ must have the shape of ${prev}$, ${n} \\times {m}$: from ${w}$ "
                        "(${a} \\times {n}$) and ${dz}$ (${a} \\times {m}$), the only product of that shape is "
                        "${w}^{{T}}$ (${n} \\times {a}$) times ${dz}$."),
    "average": ("Here the $\\frac{{1}}{{m}}$ of the cost enters the backward pass: each example's gradient is "
                "divided by $m = {m}$, so when the backward pass sums the {m} examples' gradients for {each}, the "
                "sum is their average. The parameters move by the average of what each example asks for."),
    "sum-node": "A sum passes the gradient it receives to each of its inputs unchanged: its local gradient is 1 for each.",
    "changed": "{which} changed since step {previous}, and the cost went {how}, from ${before}$ to ${now}${so}",
    "no-average": ("This cost has no $\\frac{{1}}{{m}}$: when the backward pass sums the {m} examples' gradients "
                   "for {each}, it keeps their sum, not their average, so the steps grow with the number of "
                   "examples."),
    "average-one": ("With one example, $m = 1$, and the $\\frac{{1}}{{m}}$ of the cost changes nothing here."),
    "relu-at-zero": ("ReLU has no slope at exactly $z = 0$; its derivative there is taken as 0 (the usual "
                     "convention in code) for the entries of ${z}$ that are exactly 0."),
    "saturated": ("Some entries of ${a}$ are close to 0 or 1: there the sigmoid is saturated, its slope "
                  "${local}$ is below {limit}, and almost no gradient passes back through it."),
    "adam-first-step": ("At the first step Adam's corrected averages are the gradient and its square, so "
                        "each parameter with a non-zero gradient moves by about $\\pm\\alpha = \\pm {alpha}$, "
                        "whatever the gradient's size (one with a zero gradient stays put)."),
    "natural-log": "Here $\\log$ is the natural logarithm (base $e$).",
    "paths": ("${a}$ feeds {n} nodes, {users}: a change in ${a}$ reaches the cost along each of those paths, "
              "so its gradient is the sum of what each path passes back (the article's rule: sum the incoming "
              "gradients from every path)."),
    "column-jacobian": ("Each output of ${a}$ depends on every entry of its example's column of ${z}$, so its "
                        "local gradient is a ${n} \\times {n}$ matrix for each example (its Jacobian "
                        "${local}$), not one number per entry: the gradient reaching ${z}$ is that matrix, "
                        "transposed, times the example's gradient, and the diagonal and the other entries "
                        "both count."),
    "first-image": "The lines work the first of the {m} images; the others go the same way, their values in the matrices that follow.",
    "first-entry": "Each {rows} × {cols} map of ${z}$ is worked by its first entry in full, then as one line for the whole map.",
    "first-image-entry": ("The lines work the first of the {m} images (the others go the same way, their values in the "
                          "matrices that follow), each {rows} × {cols} map of ${z}$ by its first entry, then as one line."),
    "kernel-gradient": "${dw}$ is the input correlated with ${dz}$: each weight adds its inputs times their outputs' gradients.",
    "input-gradient": ("${da}$ is the full convolution of ${dz}$ with the kernel turned half a turn (${w}$ flipped top to "
                       "bottom and left to right): each output sends its gradient back through its window's weights."),
    "input-gradient-unused": "Passed on to the image, ${dz}$ would be fully convolved with the flipped ${w}$; the image is data.",
    "pool-routing": ("Each window's gradient goes to the entry that won it (on a tie, the first in row order); an entry "
                     "that won several windows adds their gradients. Winners, (row, column) of the pooled map to "
                     "(row, column) of the map it reads: {winners}."),
    "pool-sharing": ("An average pool shares each window's gradient equally among its {area} entries, and an entry in "
                     "several windows adds their shares."),
    "big-matrix": ("Matrices with more than {past} rows or columns are shown by their top-left "
                   "${corner} \\times {corner}$ "
                   "corner and their shape, and a sum over more than {past} examples by its first {corner} terms "
                   "and its last: the entries shown are the ones worked here, and every entry is worked the same "
                   "way."),
}


def _commentary(chapter: Chapter, graph: Any, step: Step, v: dict[str, Any]) -> list[Comment]:
    out: list[Comment] = []
    s = step.step
    quantities = {line.quantity for line in step.lines}
    matrix_form = {line.quantity for line in step.lines if line.part is None}
    last_linear = graph.linear[-1] if graph.linear else None
    cost_lines = [line for line in step.lines if line.phase == "backward" and line.node == COST]
    m = int(np.shape(v[cost_lines[0].quantity])[-1]) if cost_lines else 0
    each = "each weight and bias" if graph.bias else "each weight"
    if cost_lines and any(r"\frac{1}{m}" in line.formula for line in cost_lines):
        out.append(Comment(s, COST, "average", COMMENTARY["average"].format(m=m, each=each)) if m > 1
                   else Comment(s, COST, "average-one", COMMENTARY["average-one"].format()))
    elif cost_lines and m > 1:  # a sum of squares: no 1/m, so sums, not averages
        out.append(Comment(s, COST, "no-average", COMMENTARY["no-average"].format(m=m, each=each)))
    for node in graph.nodes[:-1]:
        if isinstance(node, Linear):
            A, dZ, dW = node.inputs[0], keys.grad(node.name), keys.grad(node.W)
            P = v[A]
            if dW in quantities:
                zero = [j for j in range(P.shape[0])
                        if not np.any(P[j]) and np.any(v[dZ]) and not np.any(v[dW][:, j])]
                if zero:
                    out.append(Comment(s, node.name, "zero-input", _zero_input(node, zero, v, quantities)))
                a, m = v[dZ].shape
                if dW in matrix_form:  # every layer's transposes, derived from the shapes
                    target = keys.grad(A) if A in graph.owner else graph.target(A, node) if A != INPUT else None
                    back = "" if target is None or target not in quantities else COMMENTARY["dimensions-back"].format(
                        da=symbol(target), prev=symbol(A), n=P.shape[0], m=m, w=symbol(node.W), a=a, dz=symbol(dZ))
                    out.append(Comment(s, node.name, "dimensions", COMMENTARY["dimensions"].format(
                        dz=symbol(dZ), a=a, m=m, prev=symbol(A), n=P.shape[0], dw=symbol(dW), w=symbol(node.W),
                        back=back)))
            if node.b and keys.grad(node.b) in quantities and v[dZ].shape[1] > 1 and node is last_linear:
                out.append(Comment(s, node.name, "bias-sum", COMMENTARY["bias-sum"].format(
                    b=symbol(node.b), db=symbol(keys.grad(node.b)), dz=symbol(dZ), m=v[dZ].shape[1])))
        for wrt in node.locals:
            local = keys.local(node.name, wrt)
            if local not in quantities:
                continue
            if node.op == "relu" and np.any(v[wrt] == 0):
                out.append(Comment(s, node.name, "relu-at-zero", COMMENTARY["relu-at-zero"].format(z=symbol(wrt))))
            if node.op == "sigmoid" and np.any(v[local] < SATURATED):
                out.append(Comment(s, node.name, "saturated", COMMENTARY["saturated"].format(
                    a=symbol(node.name), local=symbol(local), limit=SATURATED)))
            if node.kind == "activation" and not node.elementwise:
                out.append(Comment(s, node.name, "column-jacobian", COMMENTARY["column-jacobian"].format(
                    a=symbol(node.name), z=symbol(wrt), local=symbol(local), n=v[wrt].shape[0])))
        for kind, fields in node.commentary(v, quantities) if hasattr(node, "commentary") else ():
            out.append(Comment(s, node.name, kind, COMMENTARY[kind].format(**fields)))
        feeds = graph.feeds.get(node.name, [])
        if len(feeds) > 1 and keys.grad(node.name) in quantities:
            out.append(Comment(s, node.name, "paths", COMMENTARY["paths"].format(
                a=symbol(node.name), n=len(feeds), users=" and ".join(f"${symbol(u.name)}$" for u in feeds))))
        if node.op == "add" and keys.grad(node.name) in quantities:
            out.append(Comment(s, node.name, "sum-node", COMMENTARY["sum-node"]))
    if step.kind == "forward" and step.changes:
        out.append(Comment(s, COST, "changed", _changed(step)))
    if any(_big(line.expression) or _big(line.result) for line in step.lines):
        first = next(line for line in step.lines if _big(line.expression) or _big(line.result))
        out.insert(0, Comment(s, first.node, "big-matrix", COMMENTARY["big-matrix"].format(
            past=ABBREVIATE_PAST, corner=CORNER)))
    if step.kind == "worked" and chapter.optimizer == "adam" and s == 0:
        out.append(Comment(s, chapter.parameter_names[0], "adam-first-step", COMMENTARY["adam-first-step"].format(
            alpha=constant(chapter.learning_rate))))
    return out


def _changed(step: Step) -> str:
    """The article's check after an update: which parameters changed (in their printed figures) and which
    way the cost went."""
    moved = [c.quantity for c in step.changes if c.quantity != COST and c.before != c.now]
    cost = next(c for c in step.changes if c.quantity == COST)
    params = [c.quantity for c in step.changes if c.quantity != COST]
    names = [f"${symbol(q)}$" for q in moved]
    which = ("Every parameter" if len(moved) == len(params) > 1 else f"Only {names[0]}" if len(moved) == 1
             else "No parameter" if not moved else ", ".join(names[:-1]) + " and " + names[-1])
    before, now = float(np.asarray(cost.before, dtype=float)), float(np.asarray(cost.now, dtype=float))
    how, so = (("down", ": moving against the gradient was the right direction.") if now < before else
               ("up", ": the step went too far, past where the cost is lowest.") if now > before else
               ("nowhere", " at the printed decimals."))
    return COMMENTARY["changed"].format(which=which, previous=step.previous, how=how, before=cost.before,
                                        now=cost.now, so=so)


def _zero_input(node: Linear, zero: list[int], v: dict[str, Any], quantities: set[str]) -> str:
    """The article's moment: weight gradients that are zero because their inputs are, asked as a question,
    then answered by the bias (whose gradient is not zero here, when the layer has one)."""
    x = "x" if node.inputs[0] == INPUT else "a"
    many = len(zero) > 1
    both = lambda items: items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]  # noqa: E731
    grads = both([rf"$\partial \mathrm{{Cost}} / \partial w_{{{j + 1}}}$" for j in zero])
    locals_ = both([rf"$\partial {symbol(node.name)} / \partial w_{{{j + 1}}}$" for j in zero])
    inputs = both([f"${x}_{{{j + 1}}}$" for j in zero])
    bias = ""
    db = keys.grad(node.b) if node.b else None
    if db and db in quantities and np.any(v[db]):
        value = np.asarray(v[db]).ravel()[0]
        slash = rf"\partial \mathrm{{Cost}} / \partial {symbol(node.b)}"
        bias = (f" And ${slash}$ is ${shown(float(value), 3)}$, not zero: the bias can move, and the update "
                f"moves it." if np.size(v[db]) == 1 else f" And ${slash}$ is not zero: the bias can move.")
    elif not node.b:
        bias = " This layer has none, so these weights stay where they are on this example."
    return COMMENTARY["zero-input"].format(
        grads=grads, are="are" if many else "is", s="s" if many else "", locals=locals_, inputs=inputs,
        which="both of which are" if len(zero) == 2 else "which are" if many else "which is",
        it_gives="they give" if many else "it gives", those="these weights" if many else "this weight", bias=bias)


_BRACED = r"\\partial [^{}]*(?:\{[^{}]*\}[^{}]*)*"
_FRACTION = re.compile(r"\\frac\{(" + _BRACED + r")\}\{(" + _BRACED + r")\}")


def slashed(text: str) -> str:
    """A sentence's ∂-fractions written on the line, as prose sets them: \\frac{∂Cost}{∂W} → ∂Cost/∂W."""
    return _FRACTION.sub(lambda m: f"{m.group(1)} / {m.group(2)}", text)


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
            diff = np.abs(np.asarray(hand[keys.after(p)]) - np.asarray(full[keys.after(p)]))
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


# --------------------------------------------------------------------------- carried and every digit


ROUNDING_NOTE = (
    "Why two figures? Each line is worked from the figures printed before it, each rounded as soon as it "
    "was computed, so a calculator fed the printed figures gives exactly the printed result. Keeping every "
    "digit from the start, as a program such as NumPy does, gives the figure set under the line instead (in "
    "a matrix, the entries that differ are in bold). {why} Neither is a mistake: redo a line on a calculator "
    "and you get the first; check it with a program and you get the second.")
CANCELS = ("The two drift apart most where numbers nearly cancel: {entry}${symbol}${where} sums {terms}, which "
           "leave ${carried}$ carried but ${every}$ with every digit, because each term's rounding error (up to "
           "half a unit in its last place) is a large part of so small a difference.")
DRIFTS = ("Each carried figure is off by up to half a unit in its last printed place, and each line passes "
          "that error on to the next.")
#: A sum whose terms are this many times larger, in total, than what they leave is a cancellation.
CANCELLATION = 3.0


def _terms(tree: Any, index: tuple[int, ...], ev: Any = None) -> list[float]:
    """The terms whose sum is entry `index` of `tree`'s value (a matrix product's products, a sum's
    arguments), or [] when the line is not a sum. `ev` evaluates a subtree (once, when it caches)."""
    ev = ev or evaluate
    if not isinstance(tree, dict):
        return []
    op, args = tree["op"], tree["args"]

    def at(value: Any) -> float:
        a = np.asarray(value, dtype=float)  # broadcast as NumPy does: a column b is every column's
        return float(a.reshape(-1)[0]) if a.size == 1 else float(a[tuple(i if n > 1 else 0 for i, n in
                                                                         zip(index, a.shape))])

    if op == "matmul" and len(index) == 2:
        a, b = (np.atleast_2d(np.asarray(ev(x), dtype=float)) for x in args)
        if a.shape[1] != b.shape[0]:
            return []
        return [float(x) for x in a[index[0], :] * b[:, index[1]]]
    if op == "add":
        return [t for x in args for t in (_terms(x, index, ev) or [at(ev(x))])]
    if op == "sub" and len(args) == 2:
        return [at(ev(args[0])), -at(ev(args[1]))]
    if op == "sum" and tree.get("axis") == 1 and len(index) == 2:
        row = np.atleast_2d(np.asarray(ev(args[0]), dtype=float))[index[0], :]
        return [float(x) for x in row]
    return []


#: At most this many differing entries of a line are searched for the rounding note's example.
NOTE_SEARCH = 200


def _entry(index: tuple[int, ...], shape: tuple[int, ...]) -> str:
    """An entry named as a reader says it: "the second entry of ", "the entry in row 1, column 2 of "."""
    if len(shape) < 2 or int(np.prod(shape)) == 1:
        return ""
    if 1 in shape:
        k = index[1] if shape[0] == 1 else index[0]
        return f"entry {k + 1} of "
    return f"the entry in row {index[0] + 1}, column {index[1] + 1} of "


def _rounding_note(steps: list[Step], decimals_of: Any) -> tuple[int, str, int] | None:
    """(step, sentence, line index): the sentence said at the first line whose every-digit figures differ,
    with the first such step's clearest cancellation, found in its lines, as its example."""
    for step in steps:
        firsts = [i for i, line in enumerate(step.lines) if line.every_digit is not None]
        if not firsts:
            continue
        best = None
        for i in firsts:
            line = step.lines[i]
            carried = np.asarray(line.result, dtype=object)
            every = np.asarray(line.every_digit, dtype=object)
            values: dict[int, Any] = {}
            ev = lambda x: values[id(x)] if id(x) in values else values.setdefault(id(x), evaluate(x))  # noqa: E731
            for index in [tuple(int(i) for i in ix) for ix in np.argwhere(carried != every)[:NOTE_SEARCH]]:
                if float(every[index]) == 0:
                    continue
                terms = [t for t in _terms(line.expression, index if index else (0, 0), ev) if t != 0]
                left = abs(float(carried[index]))
                if len(terms) < 2 or sum(abs(t) for t in terms) < CANCELLATION * max(left, 1e-300):
                    continue
                drift = abs(float(carried[index]) - float(every[index])) / abs(float(every[index]))
                if best is None or drift > best[0]:
                    best = (drift, i, tuple(index), terms, str(carried[index]), str(every[index]))
        why = DRIFTS
        if best is not None:
            _, i, index, terms, carried_text, every_text = best
            line = step.lines[i]
            d = decimals_of(line.quantity)
            shown_terms = [f"${shown(t, d)}$" for t in terms]
            listed = (" and ".join(shown_terms) if len(terms) == 2
                      else ", ".join(shown_terms[:-1]) + " and " + shown_terms[-1])
            where = " here" if i == firsts[0] else " below" if i > firsts[0] else " above"
            why = CANCELS.format(entry=_entry(index, np.shape(np.asarray(line.result, dtype=object))),
                                 symbol=symbol(line.quantity), where=where, terms=listed, carried=carried_text,
                                 every=every_text)
        return step.step, ROUNDING_NOTE.format(why=why), firsts[0]
    return None


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
        builder.full = full.at(s)
        kind = "worked" if s in spec.worked_steps else "forward"
        lines = builder.forward(s, v) + builder.cost_lines(s, v)
        if kind == "worked":
            lines += builder.backward(s, v) + builder.update(s, v)
        changes = ()
        if previous is not None:
            before = hand.at(previous)
            changes = tuple(Change(q, printed(before[q], q, builder.decimals(q)), printed(v[q], q, builder.decimals(q)))
                            for q in chapter.parameter_names + ["cost"])
        step = Step(s, kind, previous, changes, tuple(lines), (), *_comparison(chapter, s, kind, v, full.at(s)))
        comments = [replace(c, text=slashed(c.text)) for c in _commentary(chapter, builder.graph, step, v)]
        comments += [Comment(s, n.node, "author", n.text) for n in spec.notes if n.step == s]
        step = Step(s, kind, previous, changes, tuple(lines), tuple(comments), step.comparison, step.comparison_at)
        steps.append(step)
        previous = s
    note = _rounding_note(steps, builder.decimals)
    if note is not None:
        at = [i for i, st in enumerate(steps) if st.step == note[0]][0]
        steps[at] = replace(steps[at], rounding_note=slashed(note[1]), rounding_note_at=note[2])

    graph = builder.graph
    cost_node = builder.cost
    notation = [r"The input counts as layer 0: $A_{0} = X$, "
                + ("one image per example" if chapter.X.ndim == 4 else "one column per example")
                + f" ($m = {chapter.m}$).",
                f"The prediction is the last {'layer' if chapter.layers else 'node'}'s "
                f"{'activation' if graph.output.kind == 'activation' else 'value'}: "
                f"$\\hat{{y}} = {symbol(graph.output.name)}$."]
    for node, x in builder.scalar.values():  # w₁ is input 1's weight, b₁ layer 1's bias: say which is which
        after = "".join(f", ${symbol(u.name)}$" for u in graph.consumers[node.name][:1])  # A₁ reads Z₁
        notation.append(f"In ${symbol(node.name)}$, $w_{{j}}$ is the weight of input ${x}_{{j}}$ (the $j$-th entry "
                        f"of ${symbol(node.W)}$), while the index of ${symbol(node.name)}${after}"
                        + (f" and ${symbol(node.b)}$" if node.b else "") + " is the layer's.")
    if any(_uses_log(line.expression) for line in steps[0].lines) if steps else False:
        notation.append(COMMENTARY["natural-log"])
    notation += penalties.conventions(chapter) + batchnorm.conventions(graph) + dropout.conventions(graph)

    opt = OPTIMIZERS[chapter.optimizer]
    network = {
        "layers": network_layers(graph, builder.symbol),
        "kinds": {n.name: "linear" if isinstance(n, Linear) else n.readable for n in graph.nodes},
        "n_inputs": chapter.n_inputs, "m": chapter.m, "bias": graph.bias,
        "cost": cost_node.op, "cost_readable": cost_node.readable, "cost_formula": cost_node.formula,
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
                    "table": [{"step": s, "cost": shown(full.costs[s], spec.table_decimals),
                               **_cost_parts(full, s, spec.table_decimals)} for s in spec.table_steps],
                    "running": [{"symbol": rf"\bar{{{symbol(k.removeprefix('running_'))}}}",
                                 "value": printed(a, k, builder.decimals(k))} for k, a in full.running.items()],
                    "final": {p: printed(full.final[p], p, builder.decimals(p)) for p in chapter.parameter_names},
                    "reading": after_training(chapter, full)}
    exercise = None
    if spec.exercise_step is not None:
        v = hand.at(spec.exercise_step)
        for q in spec.exercise_quantities:
            if q not in v:
                raise TracerError(f"{chapter.path or chapter.name}: [exercise] ask: expected names "
                                  f"the trace records ({', '.join(sorted(v))}), got {quoted(q)}")
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


def _cost_parts(full: Trace, step: int, decimals: int) -> dict[str, str]:
    """The data term and the penalty of the cost at `step`, when the chapter has a penalty and recorded the step."""
    if keys.PENALTY not in full.arrays or step not in set(full.steps.tolist()):
        return {}
    v = full.at(step)
    return {"data": shown(v[keys.DATA_COST], decimals), "penalty": shown(v[keys.PENALTY], decimals)}


def network_layers(graph: Any, S: Any = None) -> list[dict[str, Any]]:
    """The network as the documents describe it, walking the graph: a linear node and the activation
    that reads it are a layer ("Layer 2: 3 units, Z₂ = W₂A₁ + b₂, then A₂ = σ(Z₂)"); any other node
    (a sum of two paths) is described on its own. `S` gives a quantity's symbol (keys.symbol)."""
    S = S or keys.symbol
    out: list[dict[str, Any]] = []
    said: set[str] = set()
    count = 0
    for node in graph.nodes[:-1]:
        if isinstance(node, Linear):
            count += 1
            out.append({"index": count, "units": node.units, "definitions": [node.definition_tex(S)],
                        "activation": "", "readable": "", "symbol": "", "formula": "", "repeat": False,
                        "names": {node.name}})
            continue
        previous = graph.nodes[graph.nodes.index(node) - 1].name
        joins = out and node.kind == "activation" and out[-1]["activation"] == "" and out[-1]["index"] and \
            previous == node.inputs[0]
        # batch normalisation between a layer's Z and its activation, dropout after it: part of the layer
        within = out and out[-1]["index"] and node.inputs[0] in out[-1].setdefault("names", set()) | {previous} and (
            (node.kind == "normalisation" and out[-1]["activation"] == "") or
            (node.kind == "dropout" and out[-1]["activation"] != ""))
        entry = out[-1] if joins or within else {"index": None, "units": None, "definitions": []}
        entry["definitions"].append(node.definition_tex(S))
        entry.setdefault("names", set()).add(node.name)
        if within:
            continue
        entry.update({"activation": node.op, "readable": node.readable, "symbol": getattr(node, "symbol", node.glyph),
                      "formula": node.formula, "repeat": node.op in said})
        said.add(node.op)
        if not joins:
            out.append(entry)
    for entry in out:
        entry.pop("names", None)
    return out


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
        parts = [NODES[n].readable for n in name.split("+")]
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

"""SymPy's witnesses for every gradient the engine records.

Three independent ways of getting a gradient, none of which uses the engine's backward code:

* `derivation(name)`: SymPy differentiates a node's *definition* (the node classes' `definition`
  methods in tracer/engine/nodes.py) and simplifies the result to its textbook form; each step is
  LaTeX for the documents and is checked equal to the one before by SymPy. An element-wise node
  (sigmoid) has a derivative; a column-wise one (softmax) a Jacobian, ∂a_k/∂z_j.
* `local_gradient_checks(trace)`: the lambdified derivative evaluated on every recorded step at
  once (NumPy, vectorised over the step axis), node by node, and the chain rule of every node
  (its `backward_expression`: dW = dZ·A_prevᵀ, dZ = dA ⊙ ∂A/∂Z, …; a node read by several
  others receives the sum of what they pass back) evaluated on the recorded numbers.
* `oracle_checks(trace)`: the whole graph forward and backward at 50 significant digits (mpmath):
  each activation and cost by SymPy's derivative of its definition, every other node by its own
  trees evaluated exactly.
* `finite_difference_checks(trace)`: central differences of the forward pass, a third witness.

Each returns `Comparison`s, in the order a bug would show first (forward values, then gradients in
backward order), each naming the node that computes the quantity. SymPy and mpmath are imported
inside functions: `tracer run` never pays for them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tracer.checks.formulas import reader_latex
from tracer.engine import keys
from tracer.engine.graph import Graph
from tracer.engine.keys import INPUT, TARGET
from tracer.engine.nodes import NODES, Activation, ColumnActivation, Cost, Node
from tracer.errors import TracerError
from tracer.operations import Name, evaluate

#: Relative agreement asked of every float64 gradient against an exact (50-digit) value.
RTOL = 1e-10
#: Absolute floor for values near zero, relative to the scale of the quantity (its largest entry, or 1).
#: The gradients of these networks are sums of at most a few dozen products of numbers of order 1, so
#: float64 leaves an absolute error of a few units of 2.2e-16 times that scale; 1e-14 is ~50 of them.
ATOL = 1e-14
#: Central differences with step h = FD_STEP·max(1, |x|): truncation error ~h²·|f'''|/6 ≈ 1e-13 and
#: round-off ~2.2e-16·|cost|/h ≈ 2e-10·|cost|; so agreement to 1e-6 relative or 1e-8 × cost scale.
FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8
#: One-sided differences of a smooth function differ by about h·|f''| (≈1e-6·|f''|); more than this
#: means the forward pass has a kink there (ReLU at 0) and no derivative for differences to find.
KINK = 1e-5
#: Units of 2⁻⁵² of the cost that central differences may lose to round-off (see `_central`).
FD_ROUNDOFF = 64
#: Finite differences run two forward passes per gradient entry: only up to this many entries per step.
FD_MAX_ENTRIES = 4000
#: Digits mpmath works with in the whole-network oracle.
DIGITS = 50
#: The 50-digit oracle runs only for networks up to this size (mpmath is slow for more).
ORACLE_MAX_PARAMETERS = 40
ORACLE_MAX_EXAMPLES = 16
#: A column-wise node's derivation is shown for this many inputs (its Jacobian is checked at the size used).
SHOWN_COLUMN = 3


# --------------------------------------------------------------------------- derivations


@dataclass
class DerivationStep:
    """One line of a derivation: its role and a complete LaTeX equation."""

    label: str  # "definition", "derivative", "simplified", …
    latex: str
    checked: str = ""  # how SymPy confirmed this step follows from the one before


@dataclass
class _Derived:
    """A derivation's SymPy objects: the variable, the definition, the derivative, the textbook form."""

    steps: list[DerivationStep]
    variables: tuple[Any, ...]  # (z,) for an activation; (y, yhat, m) or (y, z, m) for a cost
    derivative: Any  # as SymPy differentiated it
    textbook: Any  # the simplified form, as an expression of the same variables
    ok: bool


@dataclass
class _Derived:
    """A derivation's SymPy objects: the variables, SymPy's derivative, the textbook form, the verdict.

    An element-wise node's derivative is one expression; a column-wise node's is its Jacobian (a list
    of rows), a column-wise cost's the list of its partial derivatives."""

    steps: list[DerivationStep]
    variables: tuple[Any, ...]  # (z,) for an activation; (y, yhat, m) or (y, z, m) for a cost; lists for columns
    derivative: Any  # as SymPy differentiated it
    textbook: Any  # the simplified form, as an expression of the same variables
    ok: bool


def derivation(name: str) -> list[DerivationStep]:
    """The steps of differentiating `name`: an activation ("sigmoid", "relu", "softmax", …), a cost
    ("squared_error", "binary_cross_entropy", "cross_entropy", "cross_entropy_from_logits", …), or a
    cost meeting the activation it simplifies with ("binary_cross_entropy+sigmoid",
    "cross_entropy+softmax": ŷ − y)."""
    return list(_record(name).steps)


def derivation_ok(name: str) -> bool:
    """True when SymPy confirmed every step of `derivation(name)`."""
    return _record(name).ok


def derivative_expression(name: str, size: int = SHOWN_COLUMN) -> tuple[tuple[Any, ...], Any, Any]:
    """(variables, derivative as SymPy gave it, textbook form) for `name`, for tests and documents
    (a column-wise node's for `size` inputs)."""
    d = _derive(name, size)
    return d.variables, d.derivative, d.textbook


def known_derivations() -> list[str]:
    """Every name `derivation` knows: the activations, the costs, and each cost with the activation it meets."""
    names = [n for n, cls in NODES.items() if issubclass(cls, (Activation, ColumnActivation, Cost))]
    names += [f"{n}+{cls.meets}" for n, cls in NODES.items() if issubclass(cls, Cost) and cls.meets]
    return names


def _parts(name: str) -> tuple[type, ...]:
    """The node classes a derivation reads: one activation or cost, or a cost and the activation it meets."""
    cls = NODES.get(name)
    if cls is not None and issubclass(cls, (Activation, ColumnActivation, Cost)):
        return (cls,)
    if name.count("+") == 1:
        cost, activation = (NODES.get(part) for part in name.split("+"))
        if cost is not None and issubclass(cost, Cost) and cost.meets == name.split("+")[1] and activation:
            return cost, activation
    raise TracerError(f"no derivation named {name!r}; known: {', '.join(known_derivations())}")


def _columns(name: str) -> bool:
    """Does `name` work on a whole example at once (softmax, categorical cross-entropy from logits)?"""
    parts = _parts(name)
    return any(issubclass(p, ColumnActivation) or (issubclass(p, Cost) and not p.elementwise) for p in parts)


def _size(name: str, size: int) -> int:
    """The column size a derivation is keyed by: 1 for an element-wise one."""
    return size if _columns(name) else 1


@functools.lru_cache(maxsize=None)
def _derive(name: str, size: int = SHOWN_COLUMN) -> _Derived:
    parts = _parts(name)
    if len(parts) == 2:
        return _derive_column_composite(name, size) if _columns(name) else _derive_composite(*name.split("+"))
    if issubclass(parts[0], ColumnActivation):
        return _derive_column_activation(name, size)
    if issubclass(parts[0], Cost):
        return _derive_cost(name) if parts[0].elementwise else _derive_column_cost(name, size)
    return _derive_activation(name)


@dataclass(frozen=True)
class _Record:
    """What the verify cache keeps of a derivation: its steps and verdict, and the node's definition,
    derivative and textbook form as expression trees (tracer/checks/expressions.py; lists of them for
    a column-wise node), or None where an expression has no tree."""

    steps: tuple[DerivationStep, ...]
    ok: bool
    variables: tuple[str, ...]
    trees: dict[str, Any] | None  # "value", "derivative", "textbook"


def _trees(expr: Any) -> Any:
    from tracer.checks import expressions

    if isinstance(expr, (list, tuple)):
        return [_trees(e) for e in expr]
    return expressions.tree(expr)


@functools.lru_cache(maxsize=None)
def _record(name: str, size: int = SHOWN_COLUMN) -> _Record:
    """The derivation of `name`, from the verify cache when this code and these definitions were
    derived before with this SymPy (deriving takes SymPy a second; reading the entry, nothing)."""
    import inspect

    from tracer.checks import cache, expressions

    size = _size(name, size)

    def compute() -> _Record:
        d = _derive(name, size)
        variables = tuple(v.name for v in _flat(d.variables))
        try:
            trees = {"value": _trees(_definition(name, size)), "derivative": _trees(d.derivative),
                     "textbook": _trees(d.textbook)}
        except expressions.NoTree:
            trees = None
        return _Record(tuple(d.steps), d.ok, variables, trees)

    def encode(r: _Record) -> dict[str, Any]:
        return {"steps": [[s.label, s.latex, s.checked] for s in r.steps], "ok": r.ok,
                "variables": list(r.variables), "trees": r.trees}

    def decode(value: Any) -> _Record:
        steps = tuple(DerivationStep(*(_text(x) for x in step)) for step in value["steps"])
        variables = tuple(_text(v) for v in value["variables"])
        trees = value["trees"]
        if not steps or len({len(step) for step in value["steps"]} - {3}) or not isinstance(value["ok"], bool):
            raise ValueError("not a derivation")
        if trees is not None:
            if sorted(trees) != ["derivative", "textbook", "value"]:
                raise ValueError("not a derivation")
            for t in trees.values():
                _check_trees(t, list(variables))
        return _Record(steps, value["ok"], variables, trees)

    # The node classes live in nodes.py (or a test's file): their source stands for their definitions.
    key = [name, size, cache.source_of(__file__, expressions.__file__, *{inspect.getfile(c) for c in _parts(name)})]
    return cache.cached("derivation", key, compute, encode, decode)


def _flat(variables: tuple[Any, ...]) -> list[Any]:
    """(y, [z1, z2], m) → [y, z1, z2, m]."""
    return [v for x in variables for v in (x if isinstance(x, (list, tuple)) else [x])]


def _definition(name: str, size: int = SHOWN_COLUMN) -> Any:
    """What `name` computes, in the variables of its derivation: f(z), the cost's scale · loss, or a list."""
    variables, _, pieces = _differentiate(name, _size(name, size))
    if "composed" in pieces:
        return pieces["composed"]
    if "f" in pieces:
        return pieces["f"]
    return pieces["scale"] * pieces["loss"]


@functools.lru_cache(maxsize=None)
def _differentiate(name: str, size: int = 1) -> tuple[tuple[Any, ...], Any, dict[str, Any]]:
    """(variables, SymPy's derivative of the definition, the pieces it was built from), without the
    simplifications a derivation goes on to (those take SymPy a while; the derivative does not)."""
    import sympy as sp

    parts = _parts(name)
    s = _symbols()
    if issubclass(parts[0], Activation):
        z = s["z"]
        f = parts[0]("", ("z",)).definition(z)
        return (z,), sp.diff(f, z), {"f": f}
    if issubclass(parts[0], ColumnActivation):
        zs = _column("z", size)
        f = parts[0]("", ("z",)).definition(zs)
        return (zs,), [[sp.diff(fk, zj) for zj in zs] for fk in f], {"f": f}
    cost = parts[0](keys.COST, ("p", TARGET))
    if cost.elementwise and len(parts) == 1:
        y, v, m, scale, loss = _cost_parts(parts[0])
        return (y, v, m), sp.diff(scale * loss, v), {"y": y, "v": v, "m": m, "scale": scale, "loss": loss}
    m = s["m"]
    if len(parts) == 1:  # a column-wise cost of one example's z's
        ys, zs = _column("y", size), _column("z", size)
        scale, loss = cost.definition(ys, zs, m)
        return (ys, zs, m), [sp.diff(scale * loss, zj) for zj in zs], {"scale": scale, "loss": loss}
    if not _columns(name):
        y, v, m, scale, loss = _cost_parts(parts[0])
        z = s["z"]
        f = parts[1]("", ("z",)).definition(z)
        composed = (scale * loss).subs(v, f)
        return (y, z, m), sp.diff(composed, z), {"y": y, "v": v, "m": m, "scale": scale, "loss": loss, "z": z,
                                                 "f": f, "composed": composed}
    ys, zs = _column("y", size), _column("z", size)
    f = parts[1]("", ("z",)).definition(zs)
    y, v, _, scale, loss = _cost_parts(parts[0])
    composed = sum((scale * loss).subs({y: yk, v: fk}, simultaneous=True) for yk, fk in zip(ys, f))
    return (ys, zs, m), [sp.diff(composed, zj) for zj in zs], {"scale": scale, "loss": loss, "f": f,
                                                                "composed": composed}


def _column(letter: str, size: int) -> list[Any]:
    import sympy as sp

    return [sp.Symbol(f"{letter}_{k}", real=True) for k in range(1, size + 1)]


def _check_trees(trees: Any, variables: list[str]) -> None:
    from tracer.checks import expressions

    if isinstance(trees, list) and trees and isinstance(trees[0], list):
        for t in trees:
            _check_trees(t, variables)
    else:
        expressions.check(trees, variables)


def _nest(fn: Callable[[Any], Any], value: Any) -> Any:
    """`fn` applied to every expression of a nested list of them (or to one expression)."""
    if isinstance(value, (list, tuple)):
        return [_nest(fn, v) for v in value]
    return fn(value)


def _is_tree_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], list)


def _nest_trees(fn: Callable[[Any], Any], trees: Any) -> Any:
    if _is_tree_list(trees):
        return [_nest_trees(fn, t) for t in trees]
    return fn(trees)


@functools.lru_cache(maxsize=None)
def _numeric(name: str, size: int = 1) -> Callable[..., np.ndarray]:
    """SymPy's derivative of `name` for NumPy; where it is not finite (e^z overflowing in a quotient
    that is finite), the textbook form, which SymPy proved equal to it, fills in. A column-wise node's
    is an array with its Jacobian's (or gradient's) axes first."""
    raw, textbook = _functions(name, "numpy", size)[1:]

    def evaluate_(*args: Any) -> np.ndarray:
        shape = np.broadcast(*args).shape
        with np.errstate(all="ignore"):
            value = _stack(raw(*args), shape)
            bad = ~np.isfinite(value)
            if bad.any():
                value[bad] = _stack(textbook(*args), shape)[bad]
        return value
    return evaluate_


def _stack(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Nested lists of arrays (or numbers) as one float array, the nesting's axes first."""
    if isinstance(value, (list, tuple)):
        return np.stack([_stack(v, shape) for v in value])
    return np.array(np.broadcast_to(np.asarray(value, dtype=float), shape))


@functools.lru_cache(maxsize=None)
def _functions(name: str, kind: str, size: int = 1) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """(definition, derivative, textbook form) of `name` as NumPy or mpmath functions of its variables
    (flattened: y₁, …, z₁, …, m): from the cached expression trees when there are some (no SymPy
    needed), else lambdified by SymPy (the textbook form only when first called: it takes the whole
    derivation). A column-wise node's functions return nested lists."""
    from tracer.checks import expressions

    record = _record(name, size)
    if record.trees is not None:
        build = expressions.numpy_function if kind == "numpy" else expressions.mpmath_function
        made = []
        for k in ("value", "derivative", "textbook"):
            fns = _nest_trees(lambda t: build(t, list(record.variables)), record.trees[k])
            made.append(lambda *args, fns=fns: _nest(lambda f: f(*args), fns))
        return tuple(made)  # type: ignore[return-value]
    import sympy as sp

    variables, derivative, _ = _differentiate(name, _size(name, size))
    flat = _flat(variables)
    lam = (lambda e: _for_numpy(flat, e)) if kind == "numpy" else (lambda e: sp.lambdify(flat, e, modules="mpmath"))

    def make(expr: Any) -> Callable[..., Any]:
        fns = _nest(lam, expr)
        return lambda *args: _nest(lambda f: f(*args), fns)

    @functools.lru_cache(maxsize=1)
    def textbook_function() -> Callable[..., Any]:
        return make(_derive(name, _size(name, size)).textbook)
    return (make(_definition(name, size)), make(derivative), lambda *args: textbook_function()(*args))


def _lhs(formula: str) -> str:
    """'\\sigma(z)' from the class's LaTeX formula '\\sigma(z) = …'."""
    return formula.split(" = ", 1)[0].strip()


def _equal(a: Any, b: Any) -> bool:
    import sympy as sp

    return sp.simplify(a - b) == 0


def _sigmoid_split(z: Any) -> Any:
    import sympy as sp

    return 1 / (1 + sp.exp(-z)) * (sp.exp(-z) / (1 + sp.exp(-z)))


def _sigmoid_one_minus(z: Any) -> Any:
    import sympy as sp

    return 1 / (1 + sp.exp(-z)) * (1 - 1 / (1 + sp.exp(-z)))


#: Steps written by hand between SymPy's derivative of an activation and its textbook form, each checked
#: equal to the derivative by SymPy: (label, right-hand side in LaTeX, the same as a SymPy expression of z).
REWRITES: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "sigmoid": (
        ("split into two factors", r"\frac{1}{1 + e^{- z}} \cdot \frac{e^{- z}}{1 + e^{- z}}", _sigmoid_split),
        ("the second factor is one minus the first",
         r"\frac{1}{1 + e^{- z}} \left(1 - \frac{1}{1 + e^{- z}}\right)", _sigmoid_one_minus),
    ),
}


def _derive_activation(name: str) -> _Derived:
    import sympy as sp

    (z,), d, pieces = _differentiate(name)
    f = pieces["f"]
    lhs = _lhs(NODES[name].formula)  # \sigma(z)
    fname = lhs[:-3] if lhs.endswith("(z)") else lhs
    dl = rf"\frac{{d{fname}}}{{dz}}" if not fname.startswith(r"\operatorname") else rf"{fname}'(z)"
    steps = [DerivationStep("definition", f"{lhs} = {sp.latex(f)}", "the node's definition"),
             DerivationStep("derivative", f"{dl} = {sp.latex(d)}", "SymPy's diff of the definition")]
    ok = True
    for label, latex, form in REWRITES.get(name, ()):  # the hand steps from SymPy's form to the textbook's
        same = _equal(d, form(z))
        ok = ok and same
        steps.append(DerivationStep(label, f"{dl} = {latex}",
                                    "SymPy: simplify(derivative − this) = 0" if same else "NOT EQUAL"))
    textbook, shown = _in_terms_of_itself(f, d, z, lhs)
    ok = ok and _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (z,), d, textbook, ok)


def _derive_column_activation(name: str, size: int) -> _Derived:
    """a = f(z) for one example's z's: the Jacobian ∂a_k/∂z_j, SymPy's, then the node's textbook form
    (softmax: a_k(δ_kj − a_j)), equal entry by entry for `size` inputs."""
    import sympy as sp

    from tracer.engine.nodes import fill
    from tracer.operations import to_sympy

    (zs,), J, pieces = _differentiate(name, size)
    f = pieces["f"]
    node = NODES[name]("", ("z",))
    names = {z: f"z_{{{k}}}" for k, z in enumerate(zs, start=1)}
    steps = [DerivationStep("definition", f"{node.formula}, \\quad a_{{1}} = {sp.latex(f[0], symbol_names=names)}",
                            f"the node's definition (shown for {size} inputs)"),
             DerivationStep("derivative",
                            rf"\frac{{\partial a_{{1}}}}{{\partial z_{{1}}}} = {sp.latex(J[0][0], symbol_names=names)}, "
                            rf"\quad \frac{{\partial a_{{1}}}}{{\partial z_{{2}}}} = "
                            f"{sp.latex(J[0][1 % size], symbol_names=names)}",
                            "SymPy's diff of the definition")]
    textbook = [[to_sympy(node.jacobian_expression(f, zs, k, j), lambda leaf: leaf) for j in range(size)]
                for k in range(size)]
    ok = all(_equal(J[k][j], textbook[k][j]) for k in range(size) for j in range(size))
    shown = fill(node.jacobian_tex, a_k="a_{k}", a_j="a_{j}", k="k", j="j")
    steps.append(DerivationStep("simplified", rf"\frac{{\partial a_{{k}}}}{{\partial z_{{j}}}} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0 for every k, j" if ok else "NOT EQUAL"))
    return _Derived(steps, (zs,), J, textbook, ok)


def _in_terms_of_itself(f: Any, d: Any, z: Any, lhs: str) -> tuple[Any, str]:
    """The derivative written with the function's own value (σ(1 − σ), 1 − tanh²) when SymPy can invert
    the function; otherwise SymPy's simplified derivative. Returns (expression of z, LaTeX)."""
    import sympy as sp

    if d.has(sp.Piecewise) or not d.free_symbols:
        simple = sp.simplify(d)
        return simple, sp.latex(simple)
    s = sp.Symbol("s", real=True)
    try:
        inverses = sp.solve(sp.Eq(f, s), z)
    except NotImplementedError:
        inverses = []
    for inverse in inverses:
        in_s = sp.simplify(d.subs(z, inverse))
        if in_s.free_symbols <= {s} and in_s.is_polynomial(s):
            shown = sp.Symbol(lhs)
            poly = sp.expand(in_s)
            if poly.subs(s, 0) == 0 and sp.degree(poly, s) > 1:  # a root at 0: s·(…), as σ(1 − σ)
                rest = sp.expand(poly / s)
                latex = sp.latex(sp.Mul(shown, _flip(rest.subs(s, shown)), evaluate=False), order="none")
            else:
                latex = sp.latex(poly.subs(s, shown))
            return poly.subs(s, f), latex
    simple = sp.simplify(d)
    return simple, sp.latex(simple)


def _flip(expr: Any) -> Any:
    """1 - s rather than -s + 1: an Add with its positive constant first (display only)."""
    import sympy as sp

    if expr.is_Add:
        terms = sorted(expr.args, key=lambda t: (not t.is_number, t.could_extract_minus_sign()))
        return sp.Add(*terms, evaluate=False)
    return expr


def _cost_parts(cls: type[Cost]) -> tuple[Any, Any, Any, Any, Any]:
    """(y, variable, m, scale, loss) of an element-wise cost's definition; the variable is ŷ, or z from logits."""
    s = _symbols()
    variable = s["z"] if cls.from_logits else s["yhat"]
    scale, loss = cls(keys.COST, ("p", TARGET)).definition(s["y"], variable, s["m"])
    return s["y"], variable, s["m"], scale, loss


def _cost_definition_latex(name: str, scale: Any, loss: Any, y: Any, variable: Any) -> str:
    import sympy as sp

    i, m = _symbols()["i"], _symbols()["m"]
    yi, vi = sp.Symbol("y_i", real=True), sp.Symbol(r"\hat{y}_i" if variable.name == "yhat" else "z_i", real=True)
    total = sp.Sum(loss.subs({y: yi, variable: vi}), (i, 1, m))
    shown = total if scale == 1 else sp.Mul(scale, total, evaluate=False)
    return rf"\mathrm{{Cost}} = {sp.latex(shown, order='none')}"


def _derive_cost(name: str) -> _Derived:
    import sympy as sp

    (y, v, m), d, pieces = _differentiate(name)
    scale, loss = pieces["scale"], pieces["loss"]
    wrt = r"\hat{y}_i" if v.name == "yhat" else "z_i"
    dl = rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {wrt}}}"
    # Shown with the i-th example's y_i and ŷ_i, as the left-hand side ∂Cost/∂ŷ_i says.
    indexed = {y: sp.Symbol("y_i", real=True), v: sp.Symbol(wrt, real=True)}
    steps = [DerivationStep("definition", _cost_definition_latex(name, scale, loss, y, v), "the node's definition"),
             DerivationStep("derivative", f"{dl} = {reader_latex(d.subs(indexed))}",
                            "SymPy's diff of the definition (only the i-th term depends on the i-th prediction)")]
    chained = True
    if isinstance(loss, sp.Pow) and loss.exp == 2:  # a square: the chain rule, outer then inner, written out
        inner, scale = loss.base, sp.sympify(scale)
        outer = scale * 2 * inner * sp.diff(inner, v)
        chained = _equal(d, outer)
        factor = "" if scale == 1 else f"{reader_latex(scale.subs(indexed))} \\cdot "
        steps.insert(1, DerivationStep(
            "by the chain rule (only the i-th term depends on the i-th prediction)",
            f"{dl} = {factor}2\\left({reader_latex(inner.subs(indexed))}\\right) "
            f"\\cdot \\left({reader_latex(sp.diff(inner, v).subs(indexed))}\\right)",
            "SymPy: simplify(derivative − this) = 0" if chained else "NOT EQUAL"))
    if v.name == "z":  # from logits: written with ŷ = σ(z)
        textbook, shown = _with_prediction(d, v, y, indexed=True)
    else:
        textbook, shown = _residual_form(d, loss, y, v, indexed)
    ok = chained and _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (y, v, m), d, textbook, ok)


def _derive_column_cost(name: str, size: int) -> _Derived:
    """A cost of one example's logits (categorical cross-entropy from z): ∂Cost/∂z_j = (ŷ_j − y_j)/m,
    ŷ the activation whose logits it reads."""
    import sympy as sp

    from tracer.operations import to_sympy

    (ys, zs, m), d, pieces = _differentiate(name, size)
    cls = NODES[name]
    yhat = NODES[cls.logits_of]("", ("z",)).definition(zs)
    cost = cls(keys.COST, ("p", TARGET))
    textbook = [to_sympy(cost.gradient_expression(y, a, z, m), lambda leaf: leaf) for y, a, z in zip(ys, yhat, zs)]
    ok = all(_equal(a, b) for a, b in zip(d, textbook))
    names = {**{z: f"z_{{{k}}}" for k, z in enumerate(zs, start=1)}, **{y: f"y_{{{k}}}" for k, y in enumerate(ys, start=1)}}
    steps = [DerivationStep("definition", cls.formula, "the node's definition"),
             DerivationStep("derivative", rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial z_{{1}}^{{(i)}}}} = "
                            f"{sp.latex(sp.simplify(d[0] * m) / m, symbol_names=names)}",
                            f"SymPy's diff of the definition (shown for {size} classes)"),
             DerivationStep("simplified", rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial z_{{j}}^{{(i)}}}} = "
                            rf"\frac{{\hat{{y}}_{{j}}^{{(i)}} - y_{{j}}^{{(i)}}}}{{m}}, \quad \hat{{y}}^{{(i)}} = "
                            rf"{NODES[cls.logits_of].symbol}\left(z^{{(i)}}\right)",
                            "SymPy: simplify(derivative − simplified) = 0 for every j" if ok else "NOT EQUAL")]
    return _Derived(steps, (ys, zs, m), d, textbook, ok)


def _derive_composite(cost: str, activation: str) -> _Derived:
    """A cost of ŷ = f(z), differentiated with respect to z (cross-entropy meeting a sigmoid: ŷ − y)."""
    import sympy as sp

    (y, z, m), d, pieces = _differentiate(f"{cost}+{activation}")
    v, scale, loss, f, composed = (pieces[k] for k in ("v", "scale", "loss", "f", "composed"))
    lhs = _lhs(NODES[activation].formula)
    dl = r"\frac{\partial \mathrm{Cost}}{\partial z_i}"
    names = {y: "y_{i}", z: "z_{i}"}  # example i's label and logit, indexed on both sides as on the left
    steps = [DerivationStep("definition", _cost_definition_latex(cost, scale, loss, y, v) + rf", \quad \hat{{y}} = {lhs}",
                            "the cost's and the activation's definitions"),
             DerivationStep("composed", rf"\mathrm{{Cost}}_i = {sp.latex(composed, symbol_names=names)}",
                            "ŷ replaced by its definition"),
             DerivationStep("derivative", f"{dl} = {sp.latex(d, symbol_names=names)}", "SymPy's diff with respect to z")]
    textbook, shown = _with_prediction(d, z, y, f, indexed=True)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (y, z, m), d, textbook, ok)


def _derive_column_composite(name: str, size: int) -> _Derived:
    """An element-wise cost of ŷ = f(z) for a column-wise f (cross-entropy meeting softmax): the chain
    rule through f's Jacobian, then ŷ_j − y_j, which holds because each example's labels sum to 1."""

    from tracer.operations import to_sympy

    cost_name, activation = name.split("+")
    (ys, zs, m), d, pieces = _differentiate(name, size)
    f = pieces["f"]
    node = NODES[activation]("", ("z",))
    J = [[to_sympy(node.jacobian_expression(f, zs, k, j), lambda leaf: leaf) for j in range(size)] for k in range(size)]
    (y, v, _), per_entry, _ = _differentiate(cost_name)
    chain = [sum(per_entry.subs({y: ys[k], v: f[k]}, simultaneous=True) * J[k][j] for k in range(size))
             for j in range(size)]
    chained = all(_equal(a, b) for a, b in zip(d, chain))
    logits = NODES[NODES[cost_name].with_logits.op](keys.COST, ("p", TARGET))
    textbook = [to_sympy(logits.gradient_expression(ys[j], f[j], zs[j], m), lambda leaf: leaf) for j in range(size)]
    one = {ys[-1]: 1 - sum(ys[:-1])}  # the labels of an example sum to 1
    ok = chained and all(_equal(a.subs(one), b.subs(one)) for a, b in zip(d, textbook))
    gradient = _cost_gradient_tex(NODES[cost_name])
    steps = [DerivationStep("definition", NODES[cost_name].formula + rf", \quad \hat{{y}} = {node.symbol}(z)",
                            "the cost's and the activation's definitions"),
             DerivationStep("chain", r"\frac{\partial \mathrm{Cost}}{\partial z_{j}} = \sum_{k} "
                            r"\frac{\partial \mathrm{Cost}}{\partial \hat{y}_{k}} \frac{\partial \hat{y}_{k}}{\partial z_{j}} = "
                            rf"\sum_{{k}} {gradient} \cdot "
                            + _fill_jacobian(node, r"\hat{y}"),
                            f"SymPy: equal to the diff of the composed cost for every j ({size} classes)"
                            if chained else "NOT EQUAL"),
             DerivationStep("simplified", r"\frac{\partial \mathrm{Cost}}{\partial z_{j}} = "
                            r"\frac{\hat{y}_{j} \sum_{k} y_{k} - y_{j}}{m} = \frac{\hat{y}_{j} - y_{j}}{m}",
                            "SymPy: equal for every j once the labels sum to 1 (Σ_k y_k = 1)" if ok else "NOT EQUAL")]
    return _Derived(steps, (ys, zs, m), d, textbook, ok)


def _cost_gradient_tex(cls: type[Cost]) -> str:
    """An element-wise cost's ∂Cost/∂ŷ_k for one entry, in LaTeX (from its gradient_tex)."""
    from tracer.engine.nodes import fill

    tex = fill(cls.gradient_tex, A=r"\hat{y}_{k}", Y="y_{k}", Z="z_{k}", m="m")
    return "\\left(" + tex.replace(r"\oslash", "/") + "\\right)"


def _fill_jacobian(node: ColumnActivation, letter: str) -> str:
    from tracer.engine.nodes import fill

    return fill(node.jacobian_tex, a_k=f"{letter}_{{k}}", a_j=f"{letter}_{{j}}", k="k", j="j")


def _with_prediction(d: Any, z: Any, y: Any, f: Any = None, indexed: bool = False) -> tuple[Any, str]:
    """A derivative with respect to the logit z written with ŷ = σ(z): (ŷ − y)/m ((ŷᵢ − yᵢ)/m indexed)."""
    import sympy as sp

    f = f if f is not None else NODES["sigmoid"]("", ("z",)).definition(z)
    yhat = _symbols()["yhat"]
    for inverse in sp.solve(sp.Eq(f, yhat), z):
        in_yhat = sp.simplify(d.subs(z, inverse))
        if z not in in_yhat.free_symbols:
            shown = in_yhat.subs({yhat: sp.Symbol(r"\hat{y}_i", real=True), y: sp.Symbol("y_i", real=True)},
                                 simultaneous=True) if indexed else in_yhat
            return in_yhat.subs(yhat, f), _fraction_latex(shown)
    return sp.simplify(d), sp.latex(sp.simplify(d))


def _residual_form(d: Any, loss: Any, y: Any, yhat: Any, indexed: dict[Any, Any] | None = None) -> tuple[Any, str]:
    """(ŷᵢ − yᵢ)/m when the definition is written with the residual y − ŷ (signs as a reader writes
    them: the prediction's error over m); else a tidy fraction."""
    import sympy as sp

    residual = y - yhat
    indexed = indexed or {}
    if loss.has(residual):
        coefficient = sp.simplify(d / residual)
        if not coefficient.free_symbols & {y, yhat}:
            error = sp.Add(indexed.get(yhat, yhat), -indexed.get(y, y), evaluate=False)
            num, den = sp.fraction(-coefficient)
            top = error if num == 1 else sp.Mul(num, error, evaluate=False)
            latex = reader_latex(top) if den == 1 else rf"\frac{{{reader_latex(top)}}}{{{sp.latex(den)}}}"
            return coefficient * residual, latex
    simple = sp.factor(sp.simplify(d))
    return simple, _fraction_latex(simple.subs(indexed))


def _fraction_latex(expr: Any) -> str:
    """A fraction with factors such as (ŷ − 1) turned to (1 − ŷ) and the numerator's sign absorbed."""
    import sympy as sp

    num, den = sp.fraction(sp.factor(expr))
    sign = 1
    factors = []
    for factor in sp.Mul.make_args(den):
        base, exponent = factor.as_base_exp()
        if base.is_Add and base.as_coeff_Add()[0] < 0:
            base = -base
            sign = -sign if exponent % 2 else sign
        factors.append(_flip(base) if exponent == 1 else sp.Pow(_flip(base), exponent, evaluate=False))
    coefficient, rest = num.as_coeff_Mul()
    coefficient *= sign
    if coefficient < 0 and rest.is_Add:
        coefficient, rest = -coefficient, sp.expand(-rest)
    rest = _flip(rest)
    numerator = sp.latex(rest if coefficient == 1 else sp.Mul(coefficient, rest, evaluate=False), order="none")
    if den == 1:
        return numerator
    return rf"\frac{{{numerator}}}{{{sp.latex(sp.Mul(*factors, evaluate=False))}}}"




def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _for_numpy(variables: tuple[Any, ...], expr: Any) -> Callable[..., Any]:
    """`expr` as a NumPy function. NumPy's own namespace is passed in: lambdify's "numpy" module
    runs `from numpy import *`, which loads numpy.f2py and friends (half a second)."""
    import sympy as sp
    from sympy.printing.numpy import NumPyPrinter

    printer = NumPyPrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                            "user_functions": {}})
    return sp.lambdify(variables, expr, modules=[np], printer=printer)


def _symbols() -> dict[str, Any]:
    import sympy as sp

    return {"z": sp.Symbol("z", real=True), "y": sp.Symbol("y", real=True),
            "yhat": sp.Symbol("yhat", real=True), "m": sp.Symbol("m", positive=True, integer=True),
            "i": sp.Symbol("i", positive=True, integer=True)}


def _lhs(formula: str) -> str:
    """'\\sigma(z)' from the class's LaTeX formula '\\sigma(z) = …'."""
    return formula.split(" = ", 1)[0].strip()


def _equal(a: Any, b: Any) -> bool:
    import sympy as sp

    return sp.simplify(a - b) == 0


# --------------------------------------------------------------------------- comparisons


@dataclass
class Comparison:
    """One quantity checked by one witness at one step (or over all recorded steps)."""

    witness: str  # "local gradient", "chain rule", "oracle", "finite differences"
    quantity: str  # dA1_dZ1, dZ1, dW1, cost, …
    node: str  # the node that computes it (A1 for dZ1, Z1 for dW1, "cost" for dA2)
    step: int | None  # the step of the worst (or first wrong) entry
    index: tuple[int, ...] | None  # that entry
    expected: float  # the witness's value there
    computed: float  # the trace's value there
    tolerance: str
    ok: bool
    steps: str = ""  # which steps were compared ("all 5000 recorded steps", "step 0")
    error: float = 0.0  # |computed − expected| there
    detail: str = ""


def _compare(witness: str, quantity: str, node: str, expected: np.ndarray, computed: np.ndarray,
             steps: np.ndarray, rtol: float, atol: float, what: str, detail: str = "",
             slack: np.ndarray | None = None) -> Comparison:
    """Compare arrays with a leading step axis; report the first wrong entry, or the worst one.

    `slack`, per entry, is the witness's own error bound where it can be larger than the tolerance
    (finite differences of a cost of 10⁸ lose digits to round-off)."""
    expected = np.asarray(expected, dtype=float)
    computed = np.asarray(computed, dtype=float)
    scale = max(1.0, float(np.nanmax(np.abs(expected)))) if expected.size and not np.isnan(expected).all() else 1.0
    floor = atol * scale
    skip = np.isnan(expected)  # a witness with nothing to say there (a kink, or beyond its precision)
    error = np.where(skip, 0.0, np.abs(computed - expected))
    bound = rtol * np.abs(np.where(skip, 0.0, expected)) + floor
    if slack is not None:
        bound = bound + np.where(skip, 0.0, slack)
    bad = ~(error <= bound)  # NaN in the trace counts as bad
    if skip.any():
        detail += f" ({int(skip.sum())} entries left out: at a kink or a clip, or beyond the witness's reach)"
    if bad.any():
        flat = int(np.argmax(bad.reshape(-1)))
        ok = False
    else:
        flat = int(np.argmax((error / bound).reshape(-1))) if error.size else 0
        ok = True
    where = np.unravel_index(flat, expected.shape) if expected.size else (0,)
    step = int(steps[where[0]]) if len(steps) else None
    index = tuple(int(i) for i in where[1:]) or None
    tol = f"relative {rtol:g} or absolute {floor:.3g}"
    return Comparison(witness, quantity, node, step, index, float(expected[where]) if expected.size else 0.0,
                      float(computed[where]) if computed.size else 0.0, tol, ok, what,
                      float(error[where]) if error.size else 0.0, detail)


def _step_batches(trace: Any, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A0 and Y of each step in `steps`, stacked on a leading step axis."""
    slots = [trace.slot(int(s)) for s in steps]
    idx = trace.arrays["batch"][slots]  # steps × m
    A0 = np.moveaxis(trace.X[..., idx], -2, 0)
    Y = np.moveaxis(trace.Y[:, idx], 1, 0)
    return A0, Y




def _backward_order(graph: Graph) -> list[tuple[str, str]]:
    return graph.backward_order()


def _forward_order(graph: Graph) -> list[tuple[str, str]]:
    return [(node.name, node.name) for node in graph.nodes[:-1]] + [(keys.COST, keys.COST)]


def _rows(X: np.ndarray) -> list[np.ndarray]:
    """A stack of matrices (steps × rows × columns) as its rows, each steps × columns."""
    return [X[:, k, :] for k in range(X.shape[1])]


def _lookup(arrays: dict[str, np.ndarray], A0: np.ndarray, Y: np.ndarray) -> Callable[[Any], Any]:
    def leaf(x: Any) -> Any:
        if isinstance(x, Name):
            return A0 if x.name == INPUT else Y if x.name == TARGET else arrays[x.name]
        return float(x)
    return leaf


def _names(node: Node) -> dict[str, Name]:
    return {n: Name(n) for n in node.inputs + node.params}


# --------------------------------------------------------------------------- local gradients


def local_gradient_checks(trace: Any) -> list[Comparison]:
    """Every recorded local gradient against SymPy's derivative, and every node's chain rule on the
    recorded numbers, over all recorded steps at once."""
    graph, arrays, steps = trace.network, trace.arrays, trace.steps
    what = f"all {len(steps)} recorded steps"
    A0, Y = _step_batches(trace, steps)
    m = int(trace.meta["batch_size"])
    out: list[Comparison] = []
    cost, into = graph.cost, graph.prediction
    prediction = np.clip(arrays[into], *cost.clip) if cost.clip else arrays[into]  # as the cost node sees it
    if cost.elementwise:
        grad = _numeric(cost.op)(Y, prediction, m)
    else:
        grad = np.moveaxis(_numeric(cost.op, prediction.shape[1])(*_rows(Y), *_rows(prediction), m), 0, 1)
    out.append(_compare("local gradient", keys.grad(into), keys.COST, grad, arrays[keys.grad(into)], steps, RTOL,
                        ATOL, what, f"∂cost/∂{into} = SymPy's derivative of the {cost.op} definition"))
    for node in reversed(graph.nodes[:-1]):
        for wrt in node.locals:
            Z = A0 if wrt == INPUT else arrays[wrt]
            if isinstance(node, ColumnActivation):
                expected = np.moveaxis(_numeric(node.op, Z.shape[1])(*_rows(Z)), (0, 1), (1, 2))
                how = f"the Jacobian ∂{node.name}/∂{wrt} of each example = SymPy's derivative of the {node.op} definition"
            else:
                expected = _numeric(node.op)(Z)
                how = f"∂{node.name}/∂{wrt} = SymPy's derivative of the {node.op} definition at {wrt}"
            local = keys.local(node.name, wrt)
            out.append(_compare("local gradient", local, node.name, expected, arrays[local], steps, RTOL, ATOL, what, how))
    leaf = _lookup(arrays, A0, Y)
    for node in reversed(graph.nodes[:-1]):
        parts = graph.feeds.get(node.name, ())
        if len(parts) > 1:
            names = [keys.part(node.name, u.name) for u in parts]
            out.append(_compare("chain rule", keys.grad(node.name), node.name, sum(arrays[n] for n in names),
                                arrays[keys.grad(node.name)], steps, RTOL, ATOL, what,
                                f"{keys.grad(node.name)} = {' + '.join(names)} (the sum over every path)"))
        if node.name not in graph.on_path:
            continue
        local = {wrt: Name(keys.local(node.name, wrt)) for wrt in node.locals}
        for wrt, target in graph.passes(node.name):
            tree = node.backward_expression(wrt, Name(keys.grad(node.name)), _names(node), local)
            out.append(_compare("chain rule", target, node.name, evaluate(tree, leaf), arrays[target], steps, RTOL,
                                ATOL, what, f"{target} = {_plain(tree)}"))
    return out


def _plain(tree: Any) -> str:
    """A tree as its NumPy code, the quantities by name: 'dZ1 @ A0.T'."""
    from tracer.operations import to_code

    return to_code(tree, lambda x: x.name if isinstance(x, Name) else str(x))


# --------------------------------------------------------------------------- the whole-network oracle


def chosen_steps(trace: Any) -> list[int]:
    """The steps the oracle and finite differences look at: first, middle and last recorded."""
    s = [int(x) for x in trace.steps]
    return sorted({s[0], s[len(s) // 2], s[-1]}) if s else []


def oracle_size(trace: Any) -> tuple[int, int]:
    """(number of parameters, examples per step) of a trace's network."""
    n = sum(int(np.prod(trace.arrays[p].shape[1:])) for p in trace.parameter_names)
    return n, int(trace.meta["batch_size"])


def finite_differences_fit(trace: Any) -> bool:
    """True when a step has at most FD_MAX_ENTRIES gradient entries (parameters, node values and inputs)."""
    names = [g for g, _ in _backward_order(trace.network)]
    return sum(int(np.prod(trace.arrays[g].shape[1:])) for g in names) <= FD_MAX_ENTRIES


def oracle_fits(trace: Any) -> bool:
    n, m = oracle_size(trace)
    return n <= ORACLE_MAX_PARAMETERS and m <= ORACLE_MAX_EXAMPLES


@dataclass
class _Exact:
    """A node's definition and SymPy's derivative of it, lambdified for mpmath.

    `derivatives` holds the derivative as SymPy differentiated it and the textbook form SymPy proved
    equal to it: where one cannot be evaluated (1 − σ(z) is exactly 0 at 50 digits when z = 10⁴, and
    the raw derivative divides by it), the other is.
    """

    value: Callable[..., Any]
    derivatives: tuple[Callable[..., Any], ...]


def _exact(name: str, size: int = 1) -> _Exact:
    value, derivative, textbook = _functions(name, "mpmath", _size(name, size))
    return _Exact(value, (derivative, textbook))


#: Digits the oracle may go up to when 50 are not enough to evaluate a definition (log(1 − σ(z))
#: for z of a few thousand needs about 0.43·z digits); beyond that the entry is left out.
MAX_DIGITS = 5000


def _evaluate(functions: tuple[Callable[..., Any], ...], *args: Any) -> Any:
    """The first finite real value any of `functions` gives at `args`, at DIGITS digits or, failing
    that, at as many as the arguments' size asks (up to MAX_DIGITS); None when none does."""
    import mpmath

    if any(a is None for a in args):
        return None
    size = max((abs(a) for a in args if isinstance(a, mpmath.mpf)), default=mpmath.mpf(0))
    for digits in (DIGITS, min(MAX_DIGITS, DIGITS + int(size * mpmath.mpf("0.4343")) + 10)):
        with mpmath.workdps(digits):
            for fn in functions:
                try:
                    result = fn(*args)
                except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                    continue
                if isinstance(result, (int, mpmath.mpf)) and mpmath.isfinite(result):
                    return +result
        if digits >= MAX_DIGITS:
            break
    return None


def _same_side(exact: Any, computed: float, kinks: tuple[float, ...]) -> bool:
    """Are the exact and the float value on the same side of every kink (neither exactly on one)?"""
    return all((exact > k) == (computed > k) and (exact < k) == (computed < k) for k in kinks)


def _same_side(exact: Any, computed: float, kinks: tuple[float, ...]) -> bool:
    """Are the exact and the float value on the same side of every kink (neither exactly on one)?"""
    return all((exact > k) == (computed > k) and (exact < k) == (computed < k) for k in kinks)


def _nan() -> Any:
    import mpmath

    return mpmath.mpf("nan")


def _entry(functions: tuple[Callable[..., Any], ...], *args: Any) -> Any:
    """`_evaluate` of one entry, NaN (which propagates, and the comparison leaves out) where it has no value."""
    result = _evaluate(functions, *args)
    return _nan() if result is None else result


def _column_entries(functions: tuple[Callable[..., Any], ...], *args: Any) -> list[Any]:
    """A column-wise function's entries (a flat list) at `args`, each the first finite value any of
    `functions` gives, at DIGITS digits; NaN where none does."""
    import mpmath

    with mpmath.workdps(DIGITS):
        for fn in functions:
            try:
                result = _flatten(fn(*args))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                continue
            if all(isinstance(r, (int, mpmath.mpf)) and mpmath.isfinite(r) for r in result):
                return [+r for r in result]
    return [_nan()] * len(_flatten(functions[0](*args))) if functions else []


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [value]


def _exact_array(a: Any) -> np.ndarray:
    import mpmath

    return np.vectorize(lambda x: mpmath.mpf(float(x)), otypes=[object])(np.asarray(a, dtype=float))


def _floats(a: Any) -> np.ndarray:
    return np.vectorize(lambda x: float(x), otypes=[float])(np.asarray(a, dtype=object)) if np.size(a) else \
        np.zeros(np.shape(a))


def oracle_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Every node value and gradient at the chosen steps, recomputed at 50 digits.

    The forward pass runs each activation's and the cost's definition with mpmath and every other node
    (linear, sum) by its own expression tree evaluated exactly; the backward pass multiplies SymPy's
    derivative of each activation's and the cost's definition (never the engine's local gradients) by
    what reaches it, and every other node by its backward trees, as the chain rule says, all at 50
    digits; a node read by several others adds what each passes back. Where an activation has a kink
    (ReLU at 0) and the exact and the float value of z fall on different sides of it, the derivative
    is taken on the float's side: at a kink the derivative is a convention, and the value check of z
    judges z itself.
    """
    import mpmath

    graph = trace.network
    m = int(trace.meta["batch_size"])
    steps = chosen_steps(trace) if steps is None else steps
    found: Found = {}
    cost = graph.cost
    with mpmath.workdps(DIGITS):
        M = mpmath.mpf(m)
        for step in steps:
            v = trace.at(step)
            exact: dict[str, np.ndarray] = {name: _exact_array(v[name]) for name in
                                            [INPUT, TARGET] + graph.parameter_names}

            def leaf(x: Any) -> Any:
                return exact[x.name] if isinstance(x, Name) else mpmath.mpf(x)

            for node in graph.nodes[:-1]:
                args = [exact[n] for n in node.inputs]
                if getattr(node, "drawn", False):  # a dropout mask: drawn, so taken as recorded
                    value = _exact_array(v[node.name])
                elif isinstance(node, Activation):
                    fn = _exact(node.op)
                    value = np.vectorize(lambda z: _entry((fn.value,), z), otypes=[object])(args[0])
                elif isinstance(node, ColumnActivation):
                    fn = _exact(node.op, args[0].shape[0])
                    value = np.empty(args[0].shape, dtype=object)
                    for i in range(args[0].shape[1]):
                        value[:, i] = _column_entries((fn.value,), *args[0][:, i])
                else:
                    value = np.asarray(evaluate(node.expression(*[Name(n) for n in node.inputs + node.params]),
                                                leaf, exact=True), dtype=object)
                exact[node.name] = value
                _keep(found, node.name, step, _floats(value), v[node.name])
            P, Y = exact[cost.prediction], exact[TARGET]
            if cost.clip:
                low, high = (mpmath.mpf(c) for c in cost.clip)
                P = np.vectorize(lambda x: x if mpmath.isnan(x) else min(max(x, low), high), otypes=[object])(P)
            fn = _exact(cost.op, P.shape[0])
            if cost.elementwise:
                terms = [_entry((fn.value,), y, x, M) for y, x in zip(Y.ravel(), P.ravel())]
                upstream = np.array([_entry(fn.derivatives, y, x, M) for y, x in zip(Y.ravel(), P.ravel())],
                                    dtype=object).reshape(P.shape)
            else:
                terms = [_column_entries((fn.value,), *Y[:, i], *P[:, i], M)[0] for i in range(P.shape[1])]
                upstream = np.empty(P.shape, dtype=object)
                for i in range(P.shape[1]):
                    upstream[:, i] = _column_entries(fn.derivatives, *Y[:, i], *P[:, i], M)
            penalties = [evaluate(node.penalty_expression(Name(node.W), M), leaf, exact=True)
                         for node in graph.nodes if hasattr(node, "penalty_expression")]  # L2: (λ/2m)·Σ W²
            _keep(found, keys.COST, step, np.array(float(mpmath.fsum(terms) + mpmath.fsum(penalties))),
                  np.array(v[keys.COST]))
            grads = {keys.grad(cost.prediction): upstream}
            _keep(found, keys.grad(cost.prediction), step, _floats(upstream), v[keys.grad(cost.prediction)])
            for node in reversed(graph.nodes[:-1]):
                feeds = graph.feeds.get(node.name, ())
                if len(feeds) > 1:
                    total = sum(grads[keys.part(node.name, u.name)] for u in feeds)
                    grads[keys.grad(node.name)] = total
                    _keep(found, keys.grad(node.name), step, _floats(total), v[keys.grad(node.name)])
                if node.name not in graph.on_path:
                    continue
                g = grads[keys.grad(node.name)]
                for wrt, target in graph.passes(node.name):
                    if isinstance(node, Activation):
                        fn = _exact(node.op)
                        z, zf = exact[wrt], np.asarray(v[wrt], dtype=float)
                        local = np.empty(z.shape, dtype=object)
                        for ix in np.ndindex(z.shape):
                            point = z[ix] if _same_side(z[ix], zf[ix], node.kinks) else mpmath.mpf(zf[ix])
                            local[ix] = _entry(fn.derivatives, point)
                        passed = g * local
                    elif isinstance(node, ColumnActivation):
                        n = exact[wrt].shape[0]
                        fn = _exact(node.op, n)
                        passed = np.empty(g.shape, dtype=object)
                        for i in range(g.shape[1]):
                            J = np.array(_column_entries(fn.derivatives, *exact[wrt][:, i]), dtype=object).reshape(n, n)
                            passed[:, i] = np.dot(J.T, g[:, i])
                    else:
                        exact[keys.grad(node.name)] = g
                        tree = node.backward_expression(wrt, Name(keys.grad(node.name)), _names(node), {})
                        passed = np.asarray(evaluate(tree, leaf, exact=True), dtype=object)
                    grads[target] = passed
                    _keep(found, target, step, _floats(passed), v[target])
    what = "steps " + ", ".join(map(str, steps))
    return _comparisons("oracle", _forward_order(graph) + _backward_order(graph), found, RTOL, ATOL, what,
                        f"forward and backward pass at {DIGITS} digits (mpmath), each activation's and the cost's "
                        "derivative by SymPy from its definition")


Found = dict[str, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]


def _keep(found: Found, quantity: str, step: int, expected: np.ndarray, computed: np.ndarray,
          slack: np.ndarray | None = None) -> None:
    expected = np.asarray(expected, dtype=float)
    found.setdefault(quantity, {})[step] = (expected, np.asarray(computed, dtype=float),
                                            np.zeros(expected.shape) if slack is None else slack)


def _comparisons(witness: str, order: list[tuple[str, str]], found: Found,
                 rtol: float, atol: float, what: str, detail: str) -> list[Comparison]:
    out = []
    for quantity, node in order:
        if quantity not in found:
            continue
        steps = sorted(found[quantity])
        expected, computed, slack = (np.stack([found[quantity][s][i] for s in steps]) for i in range(3))
        out.append(_compare(witness, quantity, node, expected, computed, np.array(steps), rtol, atol, what, detail,
                            slack))
    return out


# --------------------------------------------------------------------------- finite differences


def finite_difference_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Every gradient at the chosen steps against central differences of the forward pass."""
    graph = trace.network
    steps = chosen_steps(trace) if steps is None else steps
    found: Found = {}
    order = [(q, n) for q, n in _backward_order(graph) if trace.names.key(q) and trace.names.key(q).role == keys.GRAD]
    with np.errstate(all="ignore"):
        for step in steps:
            v = trace.at(step)
            params = {p: np.array(v[p], dtype=float) for p in trace.parameter_names}
            values = {INPUT: np.array(v[INPUT], dtype=float), TARGET: np.asarray(v[TARGET], dtype=float)}
            for node in graph.nodes[:-1]:
                values[node.name] = np.array(v[node.name])
            clipped = _clipped_examples(graph, values)
            for quantity, _ in order:
                target = trace.names.key(quantity).node
                if target in params:
                    base = params[target]
                    blocked = np.full(base.shape, clipped.any())
                else:
                    base = values[target].copy()
                    values[target] = base
                    per_example = base.ndim and base.shape[-1] == clipped.shape[0]  # not a batch mean's column
                    blocked = np.broadcast_to(clipped, base.shape) if per_example else np.full(base.shape, clipped.any())
                f = lambda target=target: _cost_from(graph, params, values, target)  # noqa: E731
                grad, bound = _central(f, base, blocked)
                _keep(found, quantity, step, grad, v[quantity], bound)
    what = "steps " + ", ".join(map(str, steps))
    return _comparisons("finite differences", order, found, FD_RTOL, FD_ATOL, what,
                        f"central differences of the forward pass, h = {FD_STEP:g}·max(1, |x|)")


def _central(f: Callable[[], tuple[float, bytes]], x: np.ndarray,
             blocked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∂f/∂x entry by entry, changing x in place and putting it back; and each entry's error bound.

    Where x ± h puts some node on another side of a kink (ReLU's 0) than x does, or the one-sided
    differences disagree, the function has no derivative there for differences to find: that entry
    is NaN, and the comparison leaves it out; so are the `blocked` entries. The bound is the round-off of differencing a
    cost of that size: a few units of 2⁻⁵² of the largest cost seen, over h.
    """
    grad = np.zeros_like(x)
    bound = np.zeros_like(x)
    f0, branches = f()
    for ix in np.ndindex(x.shape):
        if blocked[ix]:
            grad[ix] = np.nan
            continue
        old = x[ix]
        h = FD_STEP * max(1.0, abs(old))
        x[ix] = old + h
        up, up_branches = f()
        x[ix] = old - h
        down, down_branches = f()
        x[ix] = old
        forward, backward = (up - f0) / h, (f0 - down) / h
        kink = up_branches != branches or down_branches != branches or \
            abs(forward - backward) > KINK * max(1.0, abs(forward), abs(backward))
        grad[ix] = np.nan if kink else (up - down) / (2 * h)
        bound[ix] = FD_ROUNDOFF * np.finfo(float).eps * max(abs(f0), abs(up), abs(down)) / h
    return grad, bound


def _cost_from(graph: Graph, params: dict[str, np.ndarray], values: dict[str, np.ndarray],
               start: str) -> tuple[float, bytes]:
    """The cost computed forward from `start` (a node's value or a parameter, changed in place), with
    the engine's forward nodes only, and on which side of every kink each recomputed node's input lies."""
    changed = {start}
    now = dict(values)
    sides = []
    for node in graph.nodes[:-1]:
        if not changed.intersection(node.inputs + node.params) or getattr(node, "drawn", False):
            continue  # unchanged, or a dropout mask (drawn, not computed: it stays as recorded)
        args = [now[n] for n in node.inputs]
        now[node.name] = node.forward(args, [params[p] for p in node.params])
        sides.append(node.branches(args))
        changed.add(node.name)
    cost = graph.cost.cost(now[TARGET], now[graph.prediction]) + graph.penalty(params, now[TARGET].shape[1])
    return cost, b"".join(sides)


def _clipped_examples(graph: Graph, values: dict[str, np.ndarray]) -> np.ndarray:
    """Which examples have a prediction the cost node clips (ŷ beyond [1e-15, 1 − 1e-15]).

    There the cost uses the clip's value, flat in ŷ, while the gradient is taken at the clip's edge:
    no difference of the cost can find it, so finite differences leave out whatever reaches such ŷ.
    """
    prediction = values[graph.prediction]
    if not graph.cost.clip:
        return np.zeros(prediction.shape[1], dtype=bool)
    low, high = graph.cost.clip
    return ((prediction < low) | (prediction > high)).any(axis=0)

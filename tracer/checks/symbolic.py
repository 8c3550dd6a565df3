"""SymPy's witnesses for every gradient the engine records.

Three independent ways of getting a gradient, none of which uses the engine's backward code:

* `derivation(name)`: SymPy differentiates an activation's or a cost's *definition* (the node
  classes' `definition` methods in graph.py) and simplifies the result to its textbook form; each
  step is LaTeX for the documents and is checked equal to the one before by SymPy.
* `local_gradient_checks(trace)`: the lambdified derivative evaluated on every recorded step at
  once (NumPy, vectorised over the step axis), node by node, plus the chain-rule products of the
  linear nodes (dW = dZ·A_prevᵀ, db = Σ dZ, dA_prev = Wᵀ·dZ).
* `oracle_checks(trace)`: the whole network's cost as one SymPy expression of all parameters (and
  of each node's values), differentiated and evaluated with mpmath at 50 significant digits.
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
from tracer.engine.graph import ACTIVATIONS, COSTS, Network
from tracer.errors import TracerError

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


def derivation(name: str) -> list[DerivationStep]:
    """The steps of differentiating `name`: an activation ("sigmoid", "relu", "tanh", "identity"), a cost
    ("squared_error", "sum_of_squares", "binary_cross_entropy", "binary_cross_entropy_from_logits"), or
    "binary_cross_entropy+sigmoid" (cross-entropy meeting a sigmoid: ŷ − y)."""
    return list(_record(name).steps)


def derivation_ok(name: str) -> bool:
    """True when SymPy confirmed every step of `derivation(name)`."""
    return _record(name).ok


def derivative_expression(name: str) -> tuple[tuple[Any, ...], Any, Any]:
    """(variables, derivative as SymPy gave it, textbook form) for `name`, for tests and documents."""
    d = _derive(name)
    return d.variables, d.derivative, d.textbook


def _parts(name: str) -> tuple[type, ...]:
    """The node classes a derivation reads: one activation or cost, or a cost and an activation."""
    if name in ACTIVATIONS:
        return (ACTIVATIONS[name],)
    if name in COSTS:
        return (COSTS[name],)
    if name.count("+") == 1 and name.split("+")[0] in COSTS and name.split("+")[1] in ACTIVATIONS:
        cost, activation = name.split("+")
        return COSTS[cost], ACTIVATIONS[activation]
    known = list(ACTIVATIONS) + list(COSTS) + ["binary_cross_entropy+sigmoid"]
    raise TracerError(f"no derivation named {name!r}; known: {', '.join(known)}")


@functools.lru_cache(maxsize=None)
def _derive(name: str) -> _Derived:
    parts = _parts(name)
    if len(parts) == 2:
        return _derive_composite(*name.split("+"))
    return _derive_activation(name) if name in ACTIVATIONS else _derive_cost(name)


@dataclass(frozen=True)
class _Record:
    """What the verify cache keeps of a derivation: its steps and verdict, and the node's definition,
    derivative and textbook form as expression trees (tracer/checks/expressions.py), or None where
    an expression has no tree."""

    steps: tuple[DerivationStep, ...]
    ok: bool
    variables: tuple[str, ...]
    trees: dict[str, Any] | None  # "value", "derivative", "textbook"


@functools.lru_cache(maxsize=None)
def _record(name: str) -> _Record:
    """The derivation of `name`, from the verify cache when this code and these definitions were
    derived before with this SymPy (deriving takes SymPy a second; reading the entry, nothing)."""
    import inspect

    from tracer.checks import cache, expressions

    def compute() -> _Record:
        d = _derive(name)
        variables = tuple(v.name for v in d.variables)
        try:
            trees = {"value": expressions.tree(_definition(name)), "derivative": expressions.tree(d.derivative),
                     "textbook": expressions.tree(d.textbook)}
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
                expressions.check(t, list(variables))
        return _Record(steps, value["ok"], variables, trees)

    # The node classes live in graph.py: its source stands for their definitions.
    key = [name, cache.source_of(__file__, expressions.__file__, *{inspect.getfile(c) for c in _parts(name)})]
    return cache.cached("derivation", key, compute, encode, decode)


def _definition(name: str) -> Any:
    """What `name` computes, in the variables of its derivation: f(z), or the cost's scale · loss."""
    variables, _, pieces = _differentiate(name)
    if "composed" in pieces:
        return pieces["composed"]
    return pieces["f"] if name in ACTIVATIONS else pieces["scale"] * pieces["loss"]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


@functools.lru_cache(maxsize=None)
def _differentiate(name: str) -> tuple[tuple[Any, ...], Any, dict[str, Any]]:
    """(variables, SymPy's derivative of the definition, the pieces it was built from), without the
    simplifications a derivation goes on to (those take SymPy a while; the derivative does not)."""
    import sympy as sp

    parts = _parts(name)
    if parts[0] in ACTIVATIONS.values():
        z = _symbols()["z"]
        f = parts[0]().definition(z)
        return (z,), sp.diff(f, z), {"f": f}
    y, v, m, scale, loss = _cost_parts(parts[0].name)
    pieces = {"y": y, "v": v, "m": m, "scale": scale, "loss": loss}
    if len(parts) == 1:
        return (y, v, m), sp.diff(scale * loss, v), pieces
    z = _symbols()["z"]
    f = parts[1]().definition(z)
    composed = (scale * loss).subs(v, f)
    return (y, z, m), sp.diff(composed, z), {**pieces, "z": z, "f": f, "composed": composed}


def _for_numpy(variables: tuple[Any, ...], expr: Any) -> Callable[..., Any]:
    """`expr` as a NumPy function. NumPy's own namespace is passed in: lambdify's "numpy" module
    runs `from numpy import *`, which loads numpy.f2py and friends (half a second)."""
    import sympy as sp
    from sympy.printing.numpy import NumPyPrinter

    printer = NumPyPrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True,
                            "user_functions": {}})
    return sp.lambdify(variables, expr, modules=[np], printer=printer)


@functools.lru_cache(maxsize=None)
def _numeric(name: str) -> Callable[..., np.ndarray]:
    """SymPy's derivative of `name` for NumPy; where it is not finite (e^z overflowing in a quotient
    that is finite), the textbook form, which SymPy proved equal to it, fills in."""
    raw, textbook = _functions(name, "numpy")[1:]

    def evaluate(*args: Any) -> np.ndarray:
        shape = np.broadcast(*args).shape
        with np.errstate(all="ignore"):
            value = np.array(np.broadcast_to(np.asarray(raw(*args), dtype=float), shape))
            bad = ~np.isfinite(value)
            if bad.any():
                value[bad] = np.broadcast_to(np.asarray(textbook(*args), dtype=float), shape)[bad]
        return value
    return evaluate


@functools.lru_cache(maxsize=None)
def _functions(name: str, kind: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """(definition, derivative, textbook form) of `name` as NumPy or mpmath functions: from the cached
    expression trees when there are some (no SymPy needed), else lambdified by SymPy (the textbook
    form only when first called: it takes the whole derivation)."""
    from tracer.checks import expressions

    record = _record(name)
    if record.trees is not None:
        build = expressions.numpy_function if kind == "numpy" else expressions.mpmath_function
        return tuple(build(record.trees[k], list(record.variables))  # type: ignore[return-value]
                     for k in ("value", "derivative", "textbook"))
    import sympy as sp

    variables, derivative, _ = _differentiate(name)
    make = _for_numpy if kind == "numpy" else (lambda v, e: sp.lambdify(v, e, modules="mpmath"))

    @functools.lru_cache(maxsize=1)
    def textbook_function() -> Callable[..., Any]:
        return make(variables, _derive(name).textbook)
    return (make(variables, _definition(name)), make(variables, derivative),
            lambda *args: textbook_function()(*args))


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


def _derive_activation(name: str) -> _Derived:
    import sympy as sp

    (z,), d, pieces = _differentiate(name)
    f = pieces["f"]
    lhs = _lhs(ACTIVATIONS[name].formula)  # \sigma(z)
    fname = lhs[:-3] if lhs.endswith("(z)") else lhs
    dl = rf"\frac{{d{fname}}}{{dz}}" if not fname.startswith(r"\operatorname") else rf"{fname}'(z)"
    steps = [DerivationStep("definition", f"{lhs} = {sp.latex(f)}", "the node's definition"),
             DerivationStep("derivative", f"{dl} = {sp.latex(d)}", "SymPy's diff of the definition")]
    textbook, shown = _in_terms_of_itself(f, d, z, lhs)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (z,), d, textbook, ok)


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


def _cost_parts(name: str) -> tuple[Any, Any, Any, Any, Any]:
    """(y, variable, m, scale, loss) of a cost's definition; the variable is ŷ, or z for from-logits."""
    s = _symbols()
    cls = COSTS[name]
    variable = s["z"] if cls.from_logits else s["yhat"]
    scale, loss = cls().definition(s["y"], variable, s["m"])
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
    if v.name == "z":  # from logits: written with ŷ = σ(z)
        textbook, shown = _with_prediction(d, v, y, indexed=True)
    else:
        textbook, shown = _residual_form(d, loss, y, v, indexed)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (y, v, m), d, textbook, ok)


def _derive_composite(cost: str, activation: str) -> _Derived:
    """A cost of ŷ = f(z), differentiated with respect to z (cross-entropy meeting a sigmoid: ŷ − y)."""
    import sympy as sp

    (y, z, m), d, pieces = _differentiate(f"{cost}+{activation}")
    v, scale, loss, f, composed = (pieces[k] for k in ("v", "scale", "loss", "f", "composed"))
    lhs = _lhs(ACTIVATIONS[activation].formula)
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


def _with_prediction(d: Any, z: Any, y: Any, f: Any = None, indexed: bool = False) -> tuple[Any, str]:
    """A derivative with respect to the logit z written with ŷ = σ(z): (ŷ − y)/m ((ŷᵢ − yᵢ)/m indexed)."""
    import sympy as sp

    f = f if f is not None else ACTIVATIONS["sigmoid"]().definition(z)
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


def _backward_order(net: Network) -> list[tuple[str, str]]:
    """(gradient, node that passes it on) from the cost back to the input."""
    last = net.layers[-1]
    from_logits = net.cost.from_logits
    order = [] if from_logits else [(last.dA, "cost")]
    for layer in reversed(net.layers):
        order.append((layer.dZ, "cost" if (from_logits and layer is last) else layer.A))
        order.append((layer.dW, layer.Z))
        if net.bias:
            order.append((layer.db, layer.Z))
        order.append((layer.dA_prev, layer.Z))
    return order


def _step_batches(trace: Any, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A0 and Y of each step in `steps`, stacked on a leading step axis."""
    slots = [trace.slot(int(s)) for s in steps]
    idx = trace.arrays["batch"][slots]  # steps × m
    A0 = np.moveaxis(trace.X[:, idx], 1, 0)
    Y = np.moveaxis(trace.Y[:, idx], 1, 0)
    return A0, Y


# --------------------------------------------------------------------------- local gradients


def local_gradient_checks(trace: Any) -> list[Comparison]:
    """Every recorded local gradient against SymPy's derivative, and every linear node's products, over
    all recorded steps at once."""
    meta, arrays = trace.meta, trace.arrays
    net = trace.network
    last = net.layers[-1]
    steps = trace.steps
    what = f"all {len(steps)} recorded steps"
    A0, Y = _step_batches(trace, steps)
    m = int(meta["batch_size"])
    out: list[Comparison] = []
    cost = net.cost
    into = last.Z if cost.from_logits else last.A
    prediction = np.clip(arrays[into], *cost.clip) if cost.clip else arrays[into]  # as the cost node sees it
    grad = _numeric(cost.name)(Y, prediction, m)
    out.append(_compare("local gradient", f"d{into}", "cost", grad, arrays[f"d{into}"], steps, RTOL, ATOL, what,
                        f"∂cost/∂{into} = SymPy's derivative of the {cost.name} definition"))
    for layer in reversed(net.layers):
        name = layer.activation.name
        l = layer.index
        expected = _numeric(name)(arrays[layer.Z])
        out.append(_compare("local gradient", layer.local, layer.A, expected, arrays[layer.local], steps, RTOL, ATOL,
                            what, f"∂A{l}/∂Z{l} = SymPy's derivative of the {name} definition at Z{l}"))
    for layer in reversed(net.layers):
        l = layer.index
        A_prev = A0 if l == 1 else arrays[layer.A_prev]
        dZ = arrays[layer.dZ]
        if not (cost.from_logits and layer is last):
            out.append(_compare("chain rule", layer.dZ, layer.A, arrays[layer.dA] * arrays[layer.local], dZ,
                                steps, RTOL, ATOL, what, f"dZ{l} = dA{l} · ∂A{l}/∂Z{l}"))
        out.append(_compare("chain rule", layer.dW, layer.Z, np.einsum("sij,skj->sik", dZ, A_prev), arrays[layer.dW],
                            steps, RTOL, ATOL, what, f"dW{l} = dZ{l} · A{l - 1}ᵀ (∂Z/∂W = A{l - 1}ᵀ)"))
        if net.bias:
            out.append(_compare("chain rule", layer.db, layer.Z, dZ.sum(axis=2, keepdims=True), arrays[layer.db],
                                steps, RTOL, ATOL, what, f"db{l} = Σ dZ{l} over the examples (∂Z/∂b = 1)"))
        out.append(_compare("chain rule", layer.dA_prev, layer.Z, np.einsum("sji,sjk->sik", arrays[layer.W], dZ),
                            arrays[layer.dA_prev], steps, RTOL, ATOL, what,
                            f"dA{l - 1} = W{l}ᵀ · dZ{l} (∂Z/∂A = Wᵀ)"))
    return out


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


def _exact(name: str) -> _Exact:
    value, derivative, textbook = _functions(name, "mpmath")
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


def oracle_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Every node value and gradient at the chosen steps, recomputed at 50 digits.

    The forward pass runs each node's definition with mpmath; the backward pass multiplies SymPy's
    derivative of each node's definition (never the engine's local gradients) by what reaches it, as
    the chain rule says, all at 50 digits. Where an activation has a kink (ReLU at 0) and the exact
    and the float value of z fall on different sides of it, the derivative is taken on the float's
    side: at a kink the derivative is a convention, and the value check of z judges z itself.
    """
    import mpmath

    meta = trace.meta
    net = trace.network
    layers, last = net.layers, net.layers[-1]
    cost = net.cost
    exact_acts = [_exact(layer.activation.name) for layer in layers]
    exact_cost = _exact(cost.name)
    m = int(meta["batch_size"])
    steps = chosen_steps(trace) if steps is None else steps
    found: Found = {}
    nan = float("nan")

    def to_float(x: Any) -> float:
        return nan if x is None else float(x)

    def table(values: list[list[Any]]) -> np.ndarray:
        return np.array([[to_float(x) for x in row] for row in values])

    with mpmath.workdps(DIGITS):
        M = mpmath.mpf(m)
        for step in steps:
            v = trace.at(step)
            mp = lambda a: [[mpmath.mpf(float(x)) for x in row] for row in np.asarray(a, dtype=float)]  # noqa: E731
            W = {layer.index: mp(v[layer.W]) for layer in layers}
            b = {layer.index: mp(v[layer.b]) if net.bias else None for layer in layers}
            Y = mp(v["Y"])
            A = {0: mp(v["A0"])}
            Z: dict[int, list[list[Any]]] = {}
            for layer in layers:
                l = layer.index
                Z[l] = _affine(W[l], A[l - 1], b[l])
                A[l] = [[_evaluate((exact_acts[l - 1].value,), z) for z in row] for row in Z[l]]
                _keep(found, layer.Z, step, table(Z[l]), v[layer.Z])
                _keep(found, layer.A, step, table(A[l]), v[layer.A])
            prediction = Z[last.index] if cost.from_logits else A[last.index]
            if cost.clip:
                low, high = (mpmath.mpf(c) for c in cost.clip)
                prediction = [[None if x is None else min(max(x, low), high) for x in row] for row in prediction]
            terms = [_evaluate((exact_cost.value,), y, x, M) for yr, xr in zip(Y, prediction) for y, x in zip(yr, xr)]
            total = None if any(t is None for t in terms) else mpmath.fsum(terms)
            _keep(found, "cost", step, np.array(to_float(total)), np.array(v["cost"]))
            upstream = [[_evaluate(exact_cost.derivatives, y, x, M) for y, x in zip(yr, xr)]
                        for yr, xr in zip(Y, prediction)]
            into = last.dZ if cost.from_logits else last.dA
            _keep(found, into, step, table(upstream), v[into])
            for layer in reversed(layers):
                l = layer.index
                if layer is not last or not cost.from_logits:
                    kinks = layer.activation.kinks
                    local = [[_evaluate(exact_acts[l - 1].derivatives,
                                        z if _same_side(z, zf, kinks) else mpmath.mpf(zf))
                              for z, zf in zip(row, frow)] for row, frow in zip(Z[l], np.asarray(v[layer.Z]))]
                    upstream = [[None if g is None or d is None else g * d for g, d in zip(grow, drow)]
                                for grow, drow in zip(upstream, local)]
                    _keep(found, layer.dZ, step, table(upstream), v[layer.dZ])
                dZ = upstream
                _keep(found, layer.dW, step, table(_matmul(dZ, _transpose(A[l - 1]))), v[layer.dW])
                if net.bias:
                    _keep(found, layer.db, step, table([[_sum(row)] for row in dZ]), v[layer.db])
                upstream = _matmul(_transpose(W[l]), dZ)
                _keep(found, layer.dA_prev, step, table(upstream), v[layer.dA_prev])
    what = "steps " + ", ".join(map(str, steps))
    order = [(name, name) for layer in layers for name in (layer.Z, layer.A)] + [("cost", "cost")]
    order += _backward_order(net)
    return _comparisons("oracle", order, found, RTOL, ATOL, what,
                        f"forward and backward pass at {DIGITS} digits (mpmath), each node's derivative by SymPy "
                        "from its definition")


def _sum(values: list[Any]) -> Any:
    import mpmath

    return None if any(x is None for x in values) else mpmath.fsum(values)


def _matmul(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
    return [[_sum([a[i][q] * b[q][k] if a[i][q] is not None and b[q][k] is not None else None
                   for q in range(len(b))]) for k in range(len(b[0]))] for i in range(len(a))]


def _transpose(a: list[list[Any]]) -> list[list[Any]]:
    return [list(col) for col in zip(*a)]


def _affine(W: list[list[Any]], A: list[list[Any]], b: list[list[Any]] | None) -> list[list[Any]]:
    Z = _matmul(W, A)
    return Z if b is None else [[None if z is None else z + b[j][0] for z in row] for j, row in enumerate(Z)]


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
    net = trace.network
    steps = chosen_steps(trace) if steps is None else steps
    found: Found = {}
    with np.errstate(all="ignore"):
        for step in steps:
            v = trace.at(step)
            params = {p: np.array(v[p], dtype=float) for p in trace.parameter_names}
            values = {"A0": np.array(v["A0"], dtype=float)}
            for layer in net.layers:
                values[layer.Z], values[layer.A] = np.array(v[layer.Z]), np.array(v[layer.A])
            clipped = _clipped_examples(net, values)
            for quantity, node in _backward_order(net):
                target = quantity[1:]
                if target in params:
                    blocked = np.full(params[target].shape, clipped.any())
                    base = params[target]
                    f = lambda: _cost_from(net, params, "A", 0, values["A0"], v["Y"])  # noqa: E731
                else:
                    base = values[target].copy()
                    values[target] = base
                    blocked = np.broadcast_to(clipped, base.shape)
                    kind, l = target[0], int(target[1:])
                    f = lambda kind=kind, l=l, base=base: _cost_from(net, params, kind, l, base, v["Y"])  # noqa: E731
                grad, bound = _central(f, base, blocked)
                _keep(found, quantity, step, grad, v[quantity], bound)
    what = "steps " + ", ".join(map(str, steps))
    return _comparisons("finite differences", _backward_order(net), found,
                        FD_RTOL, FD_ATOL, what,
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


def _cost_from(net: Network, params: dict[str, np.ndarray], kind: str, l: int, start: np.ndarray,
               Y: np.ndarray) -> tuple[float, bytes]:
    """The cost computed forward from node A_l or Z_l (with the engine's forward nodes only), and on
    which side of every kink each node's value lies."""
    layers = net.layers
    sides = []
    if kind == "Z":
        Z, A = start, layers[l - 1].activation.forward(start)
        sides += [np.sign(Z - k).tobytes() for k in layers[l - 1].activation.kinks]
    else:
        Z, A = None, start
    for layer in layers[l:]:
        Z = layer.linear.forward(params[layer.W], params.get(layer.b), A)
        A = layer.activation.forward(Z)
        sides += [np.sign(Z - k).tobytes() for k in layer.activation.kinks]
    return net.cost.forward(Y, A, Z), b"".join(sides)


def _clipped_examples(net: Network, values: dict[str, np.ndarray]) -> np.ndarray:
    """Which examples have a prediction the cost node clips (ŷ beyond [1e-15, 1 − 1e-15]).

    There the cost uses the clip's value, flat in ŷ, while the gradient is taken at the clip's edge:
    no difference of the cost can find it, so finite differences leave out whatever reaches such ŷ.
    """
    last = values[net.layers[-1].A]
    if not net.cost.clip:
        return np.zeros(last.shape[1], dtype=bool)
    low, high = net.cost.clip
    return ((last < low) | (last > high)).any(axis=0)

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
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tracer.checks.formulas import reader_latex
from tracer.engine.graph import ACTIVATIONS, COSTS, Network, cost_named
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
#: Finite differences run two forward passes per gradient entry: only up to this many entries per step.
FD_MAX_ENTRIES = 4000
#: Digits mpmath works with in the whole-network oracle.
DIGITS = 50
#: The oracle builds the cost symbolically only for networks up to this size.
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
    numeric: Callable[..., np.ndarray]  # the derivative lambdified for NumPy
    ok: bool


def derivation(name: str) -> list[DerivationStep]:
    """The steps of differentiating `name`: an activation ("sigmoid", "relu", "tanh", "identity"), a cost
    ("squared_error", "sum_of_squares", "binary_cross_entropy", "binary_cross_entropy_from_logits"), or
    "binary_cross_entropy+sigmoid" (cross-entropy meeting a sigmoid: ŷ − y)."""
    return list(_derive(name).steps)


def derivation_ok(name: str) -> bool:
    """True when SymPy confirmed every step of `derivation(name)`."""
    return _derive(name).ok


def derivative_expression(name: str) -> tuple[tuple[Any, ...], Any, Any]:
    """(variables, derivative as SymPy gave it, textbook form) for `name`, for tests and documents."""
    d = _derive(name)
    return d.variables, d.derivative, d.textbook


@functools.lru_cache(maxsize=None)
def _derive(name: str) -> _Derived:
    if name in ACTIVATIONS:
        return _derive_activation(name)
    if name in COSTS:
        return _derive_cost(name)
    if name.count("+") == 1 and name.split("+")[0] in COSTS and name.split("+")[1] in ACTIVATIONS:
        return _derive_composite(*name.split("+"))
    known = list(ACTIVATIONS) + list(COSTS) + ["binary_cross_entropy+sigmoid"]
    raise TracerError(f"no derivation named {name!r}; known: {', '.join(known)}")


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

    z = _symbols()["z"]
    cls = ACTIVATIONS[name]
    f = cls().definition(z)
    d = sp.diff(f, z)
    lhs = _lhs(cls.formula)  # \sigma(z)
    fname = lhs[:-3] if lhs.endswith("(z)") else lhs
    dl = rf"\frac{{d{fname}}}{{dz}}" if not fname.startswith(r"\operatorname") else rf"{fname}'(z)"
    steps = [DerivationStep("definition", f"{lhs} = {sp.latex(f)}", "the node's definition"),
             DerivationStep("derivative", f"{dl} = {sp.latex(d)}", "SymPy's diff of the definition")]
    textbook, shown = _in_terms_of_itself(f, d, z, lhs)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    numeric = _lambdify_numpy((z,), d)
    return _Derived(steps, (z,), d, textbook, numeric, ok)


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

    y, v, m, scale, loss = _cost_parts(name)
    d = sp.diff(scale * loss, v)
    wrt = r"\hat{y}_i" if v.name == "yhat" else "z_i"
    dl = rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {wrt}}}"
    # Shown with the i-th example's y_i and ŷ_i, as the left-hand side ∂Cost/∂ŷ_i says.
    indexed = {y: sp.Symbol("y_i", real=True), v: sp.Symbol(wrt, real=True)}
    steps = [DerivationStep("definition", _cost_definition_latex(name, scale, loss, y, v), "the node's definition"),
             DerivationStep("derivative", f"{dl} = {reader_latex(d.subs(indexed))}",
                            "SymPy's diff of the definition (only the i-th term depends on the i-th prediction)")]
    if v.name == "z":  # from logits: written with ŷ = σ(z)
        textbook, shown = _with_prediction(d, v, y)
    else:
        textbook, shown = _residual_form(d, loss, y, v, indexed)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (y, v, m), d, textbook, _lambdify_numpy((y, v, m), d), ok)


def _derive_composite(cost: str, activation: str) -> _Derived:
    """A cost of ŷ = f(z), differentiated with respect to z (cross-entropy meeting a sigmoid: ŷ − y)."""
    import sympy as sp

    y, v, m, scale, loss = _cost_parts(cost)
    z = _symbols()["z"]
    act = ACTIVATIONS[activation]
    f = act().definition(z)
    composed = (scale * loss).subs(v, f)
    d = sp.diff(composed, z)
    lhs = _lhs(act.formula)
    dl = r"\frac{\partial \mathrm{Cost}}{\partial z_i}"
    steps = [DerivationStep("definition", _cost_definition_latex(cost, scale, loss, y, v) + rf", \quad \hat{{y}} = {lhs}",
                            "the cost's and the activation's definitions"),
             DerivationStep("composed", rf"\mathrm{{Cost}}_i = {sp.latex(composed)}", "ŷ replaced by its definition"),
             DerivationStep("derivative", f"{dl} = {sp.latex(d)}", "SymPy's diff with respect to z")]
    textbook, shown = _with_prediction(d, z, y, f)
    ok = _equal(d, textbook)
    steps.append(DerivationStep("simplified", f"{dl} = {shown}",
                                "SymPy: simplify(derivative − simplified) = 0" if ok else "NOT EQUAL"))
    return _Derived(steps, (y, z, m), d, textbook, _lambdify_numpy((y, z, m), d), ok)


def _with_prediction(d: Any, z: Any, y: Any, f: Any = None) -> tuple[Any, str]:
    """A derivative with respect to the logit z written with ŷ = σ(z): (ŷ − y)/m."""
    import sympy as sp

    f = f if f is not None else ACTIVATIONS["sigmoid"]().definition(z)
    yhat = _symbols()["yhat"]
    for inverse in sp.solve(sp.Eq(f, yhat), z):
        in_yhat = sp.simplify(d.subs(z, inverse))
        if z not in in_yhat.free_symbols:
            return in_yhat.subs(yhat, f), _fraction_latex(in_yhat)
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


def _lambdify_numpy(variables: tuple[Any, ...], expr: Any) -> Callable[..., np.ndarray]:
    import sympy as sp

    fn = sp.lambdify(variables, expr, modules="numpy")

    def evaluate(*args: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(fn(*args), dtype=float), np.broadcast(*args).shape)
    return evaluate


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
             steps: np.ndarray, rtol: float, atol: float, what: str, detail: str = "") -> Comparison:
    """Compare arrays with a leading step axis; report the first wrong entry, or the worst one."""
    expected = np.asarray(expected, dtype=float)
    computed = np.asarray(computed, dtype=float)
    scale = max(1.0, float(np.nanmax(np.abs(expected)))) if expected.size and not np.isnan(expected).all() else 1.0
    floor = atol * scale
    skip = np.isnan(expected)  # a witness with nothing to say there (finite differences at a kink)
    error = np.where(skip, 0.0, np.abs(computed - expected))
    bound = rtol * np.abs(np.where(skip, 0.0, expected)) + floor
    bad = ~(error <= bound)  # NaN in the trace counts as bad
    if skip.any():
        detail += f" ({int(skip.sum())} entries at a kink left out)"
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


def _backward_order(L: int, from_logits: bool, bias: bool) -> list[tuple[str, str]]:
    """(gradient, node that passes it on) from the cost back to the input."""
    order = [] if from_logits else [(f"dA{L}", "cost")]
    for l in range(L, 0, -1):
        order.append((f"dZ{l}", "cost" if (from_logits and l == L) else f"A{l}"))
        order.append((f"dW{l}", f"Z{l}"))
        if bias:
            order.append((f"db{l}", f"Z{l}"))
        order.append((f"dA{l - 1}", f"Z{l}"))
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
    L = len(meta["layers"])
    steps = trace.steps
    what = f"all {len(steps)} recorded steps"
    A0, Y = _step_batches(trace, steps)
    m = int(meta["batch_size"])
    out: list[Comparison] = []
    cost = cost_named(meta["cost"], meta["from_logits"])
    into = f"Z{L}" if cost.from_logits else f"A{L}"
    grad = _derive(cost.name).numeric(Y, arrays[into], m)
    out.append(_compare("local gradient", f"d{into}", "cost", grad, arrays[f"d{into}"], steps, RTOL, ATOL, what,
                        f"∂cost/∂{into} = SymPy's derivative of the {cost.name} definition"))
    values = {"A0": A0}
    for l in range(L, 0, -1):
        name = meta["layers"][l - 1]["activation"]
        local = f"dA{l}_dZ{l}"
        expected = _derive(name).numeric(arrays[f"Z{l}"])
        out.append(_compare("local gradient", local, f"A{l}", expected, arrays[local], steps, RTOL, ATOL, what,
                            f"∂A{l}/∂Z{l} = SymPy's derivative of the {name} definition at Z{l}"))
    for l in range(L, 0, -1):
        A_prev = values["A0"] if l == 1 else arrays[f"A{l - 1}"]
        dZ = arrays[f"dZ{l}"]
        if not (cost.from_logits and l == L):
            out.append(_compare("chain rule", f"dZ{l}", f"A{l}", arrays[f"dA{l}"] * arrays[f"dA{l}_dZ{l}"], dZ,
                                steps, RTOL, ATOL, what, f"dZ{l} = dA{l} · ∂A{l}/∂Z{l}"))
        out.append(_compare("chain rule", f"dW{l}", f"Z{l}", np.einsum("sij,skj->sik", dZ, A_prev), arrays[f"dW{l}"],
                            steps, RTOL, ATOL, what, f"dW{l} = dZ{l} · A{l - 1}ᵀ (∂Z/∂W = A{l - 1}ᵀ)"))
        if meta["bias"]:
            out.append(_compare("chain rule", f"db{l}", f"Z{l}", dZ.sum(axis=2, keepdims=True), arrays[f"db{l}"],
                                steps, RTOL, ATOL, what, f"db{l} = Σ dZ{l} over the examples (∂Z/∂b = 1)"))
        out.append(_compare("chain rule", f"dA{l - 1}", f"Z{l}", np.einsum("sji,sjk->sik", arrays[f"W{l}"], dZ),
                            arrays[f"dA{l - 1}"], steps, RTOL, ATOL, what, f"dA{l - 1} = W{l}ᵀ · dZ{l} (∂Z/∂A = Wᵀ)"))
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
    L = len(trace.meta["layers"])
    names = [g for g, _ in _backward_order(L, trace.meta["from_logits"], trace.meta["bias"])]
    return sum(int(np.prod(trace.arrays[g].shape[1:])) for g in names) <= FD_MAX_ENTRIES


def oracle_fits(trace: Any) -> bool:
    n, m = oracle_size(trace)
    return n <= ORACLE_MAX_PARAMETERS and m <= ORACLE_MAX_EXAMPLES


@dataclass
class _Model:
    """The network's cost as SymPy expressions, lambdified for mpmath: one function per entry point."""

    activations: list[Callable[[Any], Any]]  # mpmath f(z) per layer
    entries: list[tuple[str, int, Callable[..., Any], list[tuple[str, tuple[int, int]]]]] = field(default_factory=list)
    cost: Callable[..., Any] | None = None  # cost from A0 (values check)


def _param_symbols(shapes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    import sympy as sp

    return {p: sp.Matrix(r, c, lambda j, k, p=p: sp.Symbol(f"{p}_{j}_{k}", real=True)) for p, (r, c) in shapes.items()}


@functools.lru_cache(maxsize=None)
def _model(layers: tuple[tuple[int, str], ...], cost_name: str, from_logits: bool, bias: bool, n0: int,
           m: int) -> _Model:
    import sympy as sp

    L = len(layers)
    units = [n0] + [u for u, _ in layers]
    shapes = {}
    for l in range(1, L + 1):
        shapes[f"W{l}"] = (units[l], units[l - 1])
        if bias:
            shapes[f"b{l}"] = (units[l], 1)
    P = _param_symbols(shapes)
    param_args = [s for p in shapes for s in P[p]]
    Ysym = sp.Matrix(units[L], m, lambda j, k: sp.Symbol(f"y_{j}_{k}", real=True))
    y_args = list(Ysym)
    acts = [ACTIVATIONS[a]() for _, a in layers]
    cost = cost_named(cost_name, from_logits)
    scale, _ = cost.definition(sp.Symbol("y"), sp.Symbol("v"), sp.Integer(m))

    def per_example(last: Any) -> list[Any]:
        """The cost's terms, one per example: only the k-th depends on the k-th column of any node."""
        return [scale * sp.Add(*[cost.definition(Ysym[j, k], last[j, k], sp.Integer(m))[1] for j in range(units[L])])
                for k in range(m)]

    def cost_from(kind: str, l: int, start: Any) -> list[Any]:
        A = start if kind == "A" else start.applyfunc(acts[l - 1].definition)
        Z = None if kind == "A" else start
        for k in range(l + 1, L + 1):
            Z = P[f"W{k}"] * A
            if bias:
                Z = Z + P[f"b{k}"] * sp.ones(1, m)
            A = Z.applyfunc(acts[k - 1].definition)
        return per_example(Z if from_logits else A)

    model = _Model([sp.lambdify(sp.Symbol("z"), a.definition(sp.Symbol("z")), modules="mpmath") for a in acts])
    entry_points = [("A", l) for l in range(0, L + (0 if from_logits else 1))] + [("Z", l) for l in range(1, L + 1)]
    for kind, l in entry_points:
        node = sp.Matrix(units[l], m, lambda j, k: sp.Symbol(f"{kind}{l}_{j}_{k}", real=True))
        terms = cost_from(kind, l, node)
        targets: list[tuple[str, tuple[int, int], Any]] = []
        grads: list[Any] = []
        for j in range(units[l]):
            for k in range(m):
                targets.append((f"d{kind}{l}", (j, k), node[j, k]))
                grads.append(sp.diff(terms[k], node[j, k]))
        if kind == "A" and l < L:
            for p in (f"W{l + 1}", f"b{l + 1}") if bias else (f"W{l + 1}",):
                r, c = shapes[p]
                for j in range(r):
                    for k in range(c):
                        targets.append((f"d{p}", (j, k), P[p][j, k]))
                        grads.append(sp.Add(*[sp.diff(t, P[p][j, k]) for t in terms]))
        fn = sp.lambdify(list(node) + param_args + y_args, grads, modules="mpmath", cse=True)
        model.entries.append((kind, l, fn, [(q, ix) for q, ix, _ in targets]))
        if kind == "A" and l == 0:
            model.cost = sp.lambdify(list(node) + param_args + y_args, sp.Add(*terms), modules="mpmath", cse=True)
    return model


def oracle_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Every node value and gradient at the chosen steps against SymPy's whole-network cost, at 50 digits."""
    import mpmath

    meta = trace.meta
    L = len(meta["layers"])
    layers = tuple((int(x["units"]), str(x["activation"])) for x in meta["layers"])
    n0, m = trace.X.shape[0], int(meta["batch_size"])
    model = _model(layers, meta["cost"], bool(meta["from_logits"]), bool(meta["bias"]), n0, m)
    steps = chosen_steps(trace) if steps is None else steps
    found: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    with mpmath.workdps(DIGITS):
        for step in steps:
            v = trace.at(step)
            mp = lambda a: [mpmath.mpf(float(x)) for x in np.asarray(a, dtype=float).ravel()]  # noqa: E731
            params = [x for p in trace.parameter_names for x in mp(v[p])]
            ys = mp(v["Y"])
            # The oracle's own forward pass, at 50 digits, for the values and for the entry points.
            exact: dict[str, list[list[Any]]] = {"A0": _rows(mp(v["A0"]), n0, m)}
            A = exact["A0"]
            for l in range(1, L + 1):
                W = _rows(mp(v[f"W{l}"]), *v[f"W{l}"].shape)
                b = _rows(mp(v[f"b{l}"]), *v[f"b{l}"].shape) if meta["bias"] else None
                Z = [[mpmath.fsum(W[j][q] * A[q][k] for q in range(len(A))) + (b[j][0] if b else 0)
                      for k in range(m)] for j in range(len(W))]
                A = [[model.activations[l - 1](z) for z in row] for row in Z]
                exact[f"Z{l}"], exact[f"A{l}"] = Z, A
            for name in [q for l in range(1, L + 1) for q in (f"Z{l}", f"A{l}")]:
                _keep(found, name, step, _floats(exact[name]), v[name])
            cost = model.cost(*[x for row in exact["A0"] for x in row], *params, *ys)
            _keep(found, "cost", step, np.array(float(cost)), np.array(v["cost"]))
            for kind, l, fn, targets in model.entries:
                start = [x for row in exact[f"{kind}{l}"] for x in row]
                grads = fn(*start, *params, *ys)
                by_quantity: dict[str, list[tuple[tuple[int, int], Any]]] = {}
                for (q, ix), g in zip(targets, grads):
                    by_quantity.setdefault(q, []).append((ix, g))
                for q, entries in by_quantity.items():
                    expected = np.zeros(v[q].shape)
                    for ix, g in entries:
                        expected[ix] = float(g)
                    _keep(found, q, step, expected, v[q])
    what = "steps " + ", ".join(map(str, steps))
    order = [(f"{k}{l}", f"{k}{l}") for l in range(1, L + 1) for k in ("Z", "A")] + [("cost", "cost")]
    order += _backward_order(L, meta["from_logits"], meta["bias"])
    return _comparisons("oracle", order, found, RTOL, ATOL, what,
                        f"SymPy's whole-network cost, differentiated, evaluated by mpmath at {DIGITS} digits")


def _rows(flat: list[Any], r: int, c: int) -> list[list[Any]]:
    return [flat[j * c:(j + 1) * c] for j in range(r)]


def _floats(rows: list[list[Any]]) -> np.ndarray:
    return np.array([[float(x) for x in row] for row in rows])


def _keep(found: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], quantity: str, step: int,
          expected: np.ndarray, computed: np.ndarray) -> None:
    found.setdefault(quantity, {})[step] = (np.asarray(expected, dtype=float), np.asarray(computed, dtype=float))


def _comparisons(witness: str, order: list[tuple[str, str]], found: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]],
                 rtol: float, atol: float, what: str, detail: str) -> list[Comparison]:
    out = []
    for quantity, node in order:
        if quantity not in found:
            continue
        steps = sorted(found[quantity])
        expected = np.stack([found[quantity][s][0] for s in steps])
        computed = np.stack([found[quantity][s][1] for s in steps])
        out.append(_compare(witness, quantity, node, expected, computed, np.array(steps), rtol, atol, what, detail))
    return out


# --------------------------------------------------------------------------- finite differences


def finite_difference_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Every gradient at the chosen steps against central differences of the forward pass."""
    meta = trace.meta
    L = len(meta["layers"])
    net = Network.named([(int(x["units"]), x["activation"]) for x in meta["layers"]], meta["cost"],
                        bool(meta["from_logits"]), bool(meta["bias"]))
    steps = chosen_steps(trace) if steps is None else steps
    found: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    with np.errstate(all="ignore"):
        for step in steps:
            v = trace.at(step)
            params = {p: np.array(v[p], dtype=float) for p in trace.parameter_names}
            values = {"A0": np.array(v["A0"], dtype=float)}
            for l in range(1, L + 1):
                values[f"Z{l}"], values[f"A{l}"] = np.array(v[f"Z{l}"]), np.array(v[f"A{l}"])
            for quantity, node in _backward_order(L, meta["from_logits"], meta["bias"]):
                target = quantity[1:]
                if target in params:
                    base = params[target]
                    f = lambda: _cost_from(net, params, "A", 0, values["A0"], v["Y"])  # noqa: E731
                else:
                    base = values[target].copy()
                    values[target] = base
                    kind, l = target[0], int(target[1:])
                    f = lambda kind=kind, l=l, base=base: _cost_from(net, params, kind, l, base, v["Y"])  # noqa: E731
                _keep(found, quantity, step, _central(f, base), v[quantity])
    what = "steps " + ", ".join(map(str, steps))
    return _comparisons("finite differences", _backward_order(L, meta["from_logits"], meta["bias"]), found,
                        FD_RTOL, FD_ATOL, what,
                        f"central differences of the forward pass, h = {FD_STEP:g}·max(1, |x|)")


def _central(f: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """∂f/∂x entry by entry, changing x in place and putting it back.

    Where the one-sided differences disagree (a kink, as ReLU's at 0) the function has no derivative
    to approximate: that entry is NaN, and the comparison leaves it out.
    """
    grad = np.zeros_like(x)
    f0 = f()
    for ix in np.ndindex(x.shape):
        old = x[ix]
        h = FD_STEP * max(1.0, abs(old))
        x[ix] = old + h
        up = f()
        x[ix] = old - h
        down = f()
        x[ix] = old
        forward, backward = (up - f0) / h, (f0 - down) / h
        kink = abs(forward - backward) > KINK * max(1.0, abs(forward), abs(backward))
        grad[ix] = np.nan if kink else (up - down) / (2 * h)
    return grad


def _cost_from(net: Network, params: dict[str, np.ndarray], kind: str, l: int, start: np.ndarray,
               Y: np.ndarray) -> float:
    """The cost computed forward from node A_l or Z_l (with the engine's forward nodes only)."""
    layers = net.layers
    if kind == "Z":
        Z, A = start, layers[l - 1].activation.forward(start)
    else:
        Z, A = None, start
    for layer in layers[l:]:
        Z = layer.linear.forward(params[layer.W], params.get(layer.b), A)
        A = layer.activation.forward(Z)
    return net.cost.forward(Y, A, Z)

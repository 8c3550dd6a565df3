"""The operations of an expression tree, each with every form it is needed in.

A worked line's expression is a tree `{"op": name, "args": [...]}` (see README "The document
model") whose leaves are numbers (the printed operands), the notebook's variable names, or SymPy
symbols. The same tree is evaluated in floats (`evaluate`, the calculator invariant), at 50 digits
(`evaluate(..., exact=True)`), turned into SymPy (`to_sympy`), typeset as LaTeX (the documents,
through `Operation.latex`) and written as NumPy code (`to_code`, the notebook). Each operation is
one `Operation` in `OPERATIONS`, holding all of these; adding an operation is adding one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np


class Typesetter(Protocol):
    """What an operation's LaTeX form can ask about its arguments (tracer.documents.render gives it)."""

    tree: dict[str, Any]

    def part(self, i: int) -> tuple[str, int]:
        """Argument i typeset: (LaTeX, precedence: 0 a sum, 1 a product or negation, 2 an atom)."""

    def operand(self, i: int, first: bool = False, below: int = 1) -> str:
        """Argument i, in parentheses when it binds less than `below` (or is negative and not first)."""

    def is_matrix(self, i: int) -> bool:
        """Does argument i have more than one entry?"""

    def op_of(self, i: int) -> str | None:
        """The operation of argument i (None for a number)."""

    def printed(self, i: int, transpose: bool = False) -> str | None:
        """Argument i as a printed number or matrix when it is one (a leaf), else None."""

    def paren(self, text: str) -> str:
        """Text in parentheses sized to it."""

    def root(self, i: int) -> str:
        """The square root of argument i, its sign sized to what it holds (a matrix, a matrix over a number)."""


@dataclass(frozen=True)
class Operation:
    """One operation: its floats (`numpy`, also the notebook's semantics), its 50-digit form (`exact`, on
    mpmath numbers in object arrays), its SymPy form, its LaTeX (a function of a Typesetter, returning
    text and precedence), its NumPy code (a function of the arguments' code) and that code's binding
    strength (`binds`: 1 a sum, 2 a product, 3 a negation, 4 a power, 5 an atom or a call)."""

    name: str
    numpy: Callable[..., Any]
    exact: Callable[..., Any]
    sympy: Callable[..., Any]
    latex: Callable[[Typesetter], tuple[str, int]]
    code: Callable[..., str]
    binds: int = 5
    arity: int | None = 1  # None: any number of arguments (two or more)


OPERATIONS: dict[str, Operation] = {}


def operation(op: Operation) -> Operation:
    OPERATIONS[op.name] = op
    return op


@dataclass(frozen=True)
class Name:
    """A leaf that names a quantity (W1, dZ1, m, learning_rate): the notebook writes it as a variable,
    the checks look its value up."""

    name: str


def op(name: str, *args: Any, **keys: Any) -> dict[str, Any]:
    """A tree node {"op": name, "args": [...]} (keys such as `axis` ride along)."""
    if name not in OPERATIONS:
        raise KeyError(f"no operation named {name!r}")
    return {"op": name, "args": list(args), **keys}


# --------------------------------------------------------------------------- evaluation


def _mp(fn_name: str) -> Callable[[Any], Any]:
    """An mpmath function applied entry by entry (object arrays hold mpmath numbers)."""
    def apply(x: Any) -> Any:
        import mpmath

        fn = getattr(mpmath, fn_name)
        if isinstance(x, np.ndarray):
            return np.vectorize(fn, otypes=[object])(x)
        return fn(x)
    return apply


def _sp(fn_name: str) -> Callable[[Any], Any]:
    def apply(x: Any) -> Any:
        import sympy as sp

        return getattr(sp, fn_name)(x)
    return apply


def _fold_add(*args: Any) -> Any:
    total = args[0]
    for a in args[1:]:
        total = total + a
    return total


def _sum(x: Any, axis: int | None = None) -> Any:
    """Σ along a matrix's rows (axis 0) or columns (axis 1); a stack of matrices is summed matrix by matrix."""
    if axis is None:
        return np.sum(x)
    return np.sum(x, axis=axis - 2, keepdims=True)


def _transpose(x: Any) -> Any:
    """A matrix's transpose; a stack of matrices (a leading step axis) is transposed matrix by matrix."""
    return np.swapaxes(x, -1, -2) if np.ndim(x) >= 2 else np.asarray(x)


def _exact_sum(x: Any, axis: int | None = None) -> Any:
    import mpmath

    x = np.asarray(x, dtype=object)
    if axis is None:
        return mpmath.fsum(x.ravel().tolist())
    return np.apply_along_axis(lambda v: mpmath.fsum(list(v)), axis, x).reshape(
        [1 if i == axis else n for i, n in enumerate(x.shape)])


def _count(x: Any) -> Any:
    """The number of examples (columns) of a matrix, or of each matrix of a stack."""
    return float(np.shape(x)[-1])


def _exact_count(x: Any) -> Any:
    import mpmath

    return mpmath.mpf(np.shape(x)[-1])


def _mean(x: Any) -> Any:
    """Each row's mean over the examples (columns): units × 1; a stack of matrices matrix by matrix."""
    return np.mean(x, axis=-1, keepdims=True)


def _exact_mean(x: Any) -> Any:
    return _exact_sum(x, axis=1) / _exact_count(x)


def _spread(a: Any, like: Any) -> Any:
    """A column (units × 1) repeated for every example of `like`."""
    return np.broadcast_to(a, np.broadcast_shapes(np.shape(a), np.shape(like))).copy()


def _exact_spread(a: Any, like: Any) -> Any:
    return np.broadcast_to(np.asarray(a, dtype=object), np.shape(like)).copy()


def _sympy_count(x: Any) -> Any:
    return x.shape[1]


def _sympy_mean(x: Any) -> Any:
    import sympy as sp

    return sp.Matrix([[sum(x.row(i)) / x.shape[1]] for i in range(x.shape[0])])


def _sympy_spread(a: Any, like: Any) -> Any:
    import sympy as sp

    return a * sp.ones(1, like.shape[1])


def _entries(*args: Any, shape: tuple[int, ...] = ()) -> Any:
    return np.array([np.asarray(a, dtype=float).reshape(()) for a in args], dtype=float).reshape(shape)


def _exact_entries(*args: Any, shape: tuple[int, ...] = ()) -> Any:
    out = np.empty(len(args), dtype=object)
    out[:] = list(args)
    return out.reshape(shape)


def _vjp(J: Any, G: Any) -> Any:
    """Each example's Jacobian transposed times its gradient: out[:, i] = J[:, :, i]ᵀ · G[:, i]."""
    return np.einsum("...kji,...ki->...ji", J, G)


def _exact_vjp(J: Any, G: Any) -> Any:
    J, G = np.asarray(J, dtype=object), np.asarray(G, dtype=object)
    out = np.empty(G.shape, dtype=object)
    for i in range(G.shape[1]):
        out[:, i] = np.dot(J[:, :, i].T, G[:, i])
    return out


def _exact_max(a: Any, b: Any) -> Any:
    return np.where(np.asarray(a, dtype=object) > np.asarray(b, dtype=object), a, b)


def _exact_sigmoid(z: Any) -> Any:
    exp = _mp("exp")
    return 1 / (1 + exp(-z))


def _heaviside(z: Any) -> Any:
    return np.heaviside(z, 0.0)


def _exact_heaviside(z: Any) -> Any:
    return np.where(np.asarray(z, dtype=object) > 0, 1, 0)


def evaluate(tree: Any, leaf: Callable[[Any], Any] | None = None, exact: bool = False) -> Any:
    """The value of a tree (NumPy semantics; `exact`: mpmath numbers in object arrays, at the working
    precision). `leaf` turns a leaf into a value (default: a printed number or nested list of them)."""
    if not isinstance(tree, dict):
        return (leaf or (_exact_leaf if exact else _float_leaf))(tree)
    args = [evaluate(a, leaf, exact) for a in tree["args"]]
    operation_ = OPERATIONS[tree["op"]]
    keys = {k: v for k, v in tree.items() if k not in ("op", "args")}
    if "shape" in keys:
        keys["shape"] = tuple(keys["shape"])
    return (operation_.exact if exact else operation_.numpy)(*args, **keys)


def _float_leaf(value: Any) -> Any:
    if isinstance(value, str):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return np.array(value, dtype=float)


def _exact_leaf(value: Any) -> Any:
    import mpmath

    if isinstance(value, (str, int, float)):
        return mpmath.mpf(value)
    return np.vectorize(mpmath.mpf, otypes=[object])(np.asarray(value, dtype=object))


def to_sympy(tree: Any, leaf: Callable[[Any], Any]) -> Any:
    """A tree as a SymPy expression, its leaves made SymPy by `leaf`."""
    if not isinstance(tree, dict):
        return leaf(tree)
    args = [to_sympy(a, leaf) for a in tree["args"]]
    keys = {k: v for k, v in tree.items() if k not in ("op", "args")}
    return OPERATIONS[tree["op"]].sympy(*args, **keys)


# --------------------------------------------------------------------------- NumPy code


def to_code(tree: Any, leaf: Callable[[Any], str] = str, parent: str = "", right: bool = False) -> str:
    """A tree as NumPy code, with only the parentheses it needs (`leaf` writes a leaf)."""
    if not isinstance(tree, dict):
        return leaf(tree)
    name, args = tree["op"], tree["args"]
    operation_ = OPERATIONS[name]
    codes = [to_code(a, leaf, name, i > 0) for i, a in enumerate(args)]
    keys = {k: v for k, v in tree.items() if k not in ("op", "args")}
    text = operation_.code(*codes, **keys)
    mine = operation_.binds
    theirs = 5 if parent == "transpose" else (OPERATIONS[parent].binds if parent and OPERATIONS[parent].binds < 5
                                              else 0)
    same_kind = parent == name and name in ("add", "mul")
    if mine < theirs or (mine == theirs and (right or parent == "pow") and not same_kind):
        return f"({text})"
    return text


def _joined(sign: str) -> Callable[..., str]:
    return lambda *codes, **_: sign.join(codes)


# --------------------------------------------------------------------------- LaTeX forms


def _latex_add(t: Typesetter) -> tuple[str, int]:
    from tracer.abbreviation import CORNER, LIMIT

    n = len(t.tree["args"])
    text = t.operand(0, first=True, below=0)
    cut = n > LIMIT
    for i in range(1, n):
        if cut and CORNER <= i < n - 1:
            if i == CORNER:
                text += r" + \cdots"
            continue
        part = t.part(i)[0]
        # a + (−x − y) is a − x − y: a term that starts with a minus sign is written with it
        text += (" - " + part[1:]) if part.startswith("-") else (" + " + part)
    return text, 0


def _latex_mul(t: Typesetter) -> tuple[str, int]:
    times = r" \odot " if t.is_matrix(0) and t.is_matrix(1) else r" \cdot "
    if t.op_of(0) == "div" and t.op_of(1) in ("add", "square"):  # ½·[…], as on paper
        right = t.part(1)[0] if t.op_of(1) == "square" else rf"\left[{t.part(1)[0]}\right]"
        return t.part(0)[0] + right, 1
    return t.operand(0, first=True) + times + t.operand(1), 1


def _has_div(tree: Any) -> bool:
    return isinstance(tree, dict) and (tree["op"] == "div" or any(_has_div(a) for a in tree["args"]))


def _latex_div(t: Typesetter) -> tuple[str, int]:
    if t.is_matrix(1):  # element-wise division by a matrix: ⊘, as in the formula
        return t.operand(0, first=True, below=2) + r" \oslash " + t.operand(1, below=2), 1
    if any(_has_div(a) for a in t.tree["args"]):  # a fraction of fractions would shrink them: a / b
        return t.operand(0, first=True, below=2) + " / " + t.operand(1, below=2), 1
    return rf"\frac{{{t.part(0)[0]}}}{{{t.part(1)[0]}}}", 2


def _latex_neg(t: Typesetter) -> tuple[str, int]:
    text, prec = t.part(0)  # −1·log 0.781, as a reader writes it: a product needs no parentheses
    return "-" + (text if prec >= 1 and not text.startswith("-") else t.paren(text)), 1


def _latex_sum(t: Typesetter) -> tuple[str, int]:
    from tracer.abbreviation import CORNER, LIMIT

    axis = t.tree.get("axis")
    arg = t.tree["args"][0]
    if not isinstance(arg, dict) and np.asarray(arg, dtype=object).ndim == 2 and len(arg) == 1 and axis == 1:
        entries = [_number_tex(str(x)) for x in arg[0]]
        if len(entries) > LIMIT:
            entries = entries[:CORNER] + [r"\cdots"] + entries[-1:]
        text = entries[0] + "".join(f" - {e[1:]}" if e.startswith("-") else f" + {e}" for e in entries[1:])
        return text, 0
    under = {0: r"_{\text{rows}}", 1: r"_{\text{columns}}"}.get(axis, "")
    return rf"\textstyle\sum{under} " + t.operand(0, first=True, below=2), 1


def _latex_transpose(t: Typesetter) -> tuple[str, int]:
    printed = t.printed(0, transpose=True)
    if printed is not None:
        return printed, 2
    return t.operand(0, first=True, below=2) + "^{T}", 2


def _latex_log(t: Typesetter) -> tuple[str, int]:
    text, prec = t.part(0)
    return (rf"\log {text}" if prec == 2 and not t.is_matrix(0) else rf"\log{t.paren(text)}"), 2


def _latex_power(t: Typesetter) -> tuple[str, int]:
    exponent = "2" if t.tree["op"] == "square" else t.part(1)[0]
    text, prec = t.part(0)
    base = text if prec == 2 and not text.startswith("-") else f"({text})"
    return (f"{base}^{exponent}" if len(exponent) == 1 else f"{base}^{{{exponent}}}"), 2


def _latex_function(symbol: str) -> Callable[[Typesetter], tuple[str, int]]:
    return lambda t: (rf"{symbol}{t.paren(t.part(0)[0])}", 2)


def _latex_entries(t: Typesetter) -> tuple[str, int]:
    rows, cols = (list(t.tree["shape"]) + [1])[:2]
    cells = [t.part(i)[0] for i in range(len(t.tree["args"]))]
    body = r" \\ ".join(" & ".join(cells[r * cols:(r + 1) * cols]) for r in range(rows))
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}", 2


def _number_tex(text: str) -> str:
    """A printed number (Python's float syntax) as LaTeX maths: 5.1e-05 → 5.1 \\times 10^{-5}."""
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


def _sympy_sum(x: Any, axis: int | None = None) -> Any:
    import sympy as sp

    if isinstance(x, sp.MatrixBase):
        if axis is None:
            return sum(x)
        return sp.Matrix([[sum(x[i, :])] for i in range(x.rows)]) if axis == 1 else \
            sp.Matrix([[sum(x[:, j]) for j in range(x.cols)]])
    return x


def _sympy_entries(*args: Any, shape: tuple[int, ...] = ()) -> Any:
    import sympy as sp

    rows, cols = (list(shape) + [1])[:2]
    return sp.Matrix(rows, cols, list(args))


def _sympy_max(a: Any, b: Any) -> Any:
    import sympy as sp

    return sp.Max(a, b)


def _sympy_relu(z: Any) -> Any:
    import sympy as sp

    return sp.Piecewise((z, z > 0), (0, True))


def _sympy_heaviside(z: Any) -> Any:
    import sympy as sp

    return sp.Piecewise((1, z > 0), (0, True))


def _sympy_sigmoid(z: Any) -> Any:
    import sympy as sp

    return 1 / (1 + sp.exp(-z))


def _sympy_matmul(a: Any, b: Any) -> Any:
    return a * b


def _sympy_transpose(a: Any) -> Any:
    return a.T if hasattr(a, "T") else a


def _sympy_mul(a: Any, b: Any) -> Any:
    import sympy as sp

    if isinstance(a, sp.MatrixBase) and isinstance(b, sp.MatrixBase):
        return a.multiply_elementwise(b)
    return a * b


def _sympy_div(a: Any, b: Any) -> Any:
    import sympy as sp

    if isinstance(b, sp.MatrixBase):
        return a.multiply_elementwise(b.applyfunc(lambda x: 1 / x)) if isinstance(a, sp.MatrixBase) else \
            b.applyfunc(lambda x: a / x)
    return a / b


for _op in (
    Operation("add", _fold_add, _fold_add, _fold_add, _latex_add, _joined(" + "), binds=1, arity=None),
    Operation("sub", np.subtract, lambda a, b: a - b, lambda a, b: a - b,
              lambda t: (f"{t.operand(0, first=True, below=0)} - {t.operand(1, below=1)}", 0),
              _joined(" - "), binds=1, arity=2),
    Operation("mul", np.multiply, lambda a, b: a * b, _sympy_mul, _latex_mul, _joined(" * "), binds=2, arity=2),
    Operation("matmul", np.matmul, lambda a, b: np.dot(a, b), _sympy_matmul,
              lambda t: (t.operand(0, first=True, below=2) + " " + t.operand(1, below=2), 1),
              _joined(" @ "), binds=2, arity=2),
    Operation("div", np.divide, lambda a, b: a / b, _sympy_div, _latex_div, _joined(" / "), binds=2, arity=2),
    Operation("neg", np.negative, lambda a: -a, lambda a: -a, _latex_neg, lambda a: "-" + a, binds=3),
    Operation("sum", _sum, _exact_sum, _sympy_sum, _latex_sum,
              lambda a, axis=None: f"np.sum({a}" + (f", axis={axis}, keepdims=True)" if axis is not None else ")")),
    Operation("transpose", _transpose, _transpose, _sympy_transpose, _latex_transpose,
              lambda a: a + ".T"),
    Operation("exp", np.exp, _mp("exp"), _sp("exp"), lambda t: (f"e^{{{t.part(0)[0]}}}", 2),
              lambda a: f"np.exp({a})"),
    Operation("log", np.log, _mp("log"), _sp("log"), _latex_log, lambda a: f"np.log({a})"),
    Operation("sqrt", np.sqrt, _mp("sqrt"), _sp("sqrt"), lambda t: (t.root(0), 2),
              lambda a: f"np.sqrt({a})"),
    Operation("square", np.square, lambda a: a * a, lambda a: a ** 2, _latex_power, lambda a: f"np.square({a})"),
    Operation("pow", np.power, lambda a, b: a ** b, lambda a, b: a ** b, _latex_power, _joined(" ** "), binds=4,
              arity=2),
    Operation("sigmoid", lambda z: 1 / (1 + np.exp(-z)), _exact_sigmoid, _sympy_sigmoid,
              _latex_function(r"\sigma"), lambda a: f"1 / (1 + np.exp(-{a}))"),
    Operation("relu", lambda z: np.maximum(z, 0.0), lambda z: _exact_max(z, 0), _sympy_relu,
              _latex_function(r"\operatorname{ReLU}"), lambda a: f"np.maximum({a}, 0)"),
    Operation("tanh", np.tanh, _mp("tanh"), _sp("tanh"), _latex_function(r"\tanh"), lambda a: f"np.tanh({a})"),
    Operation("max", np.maximum, _exact_max, _sympy_max,
              lambda t: (rf"\max{t.paren(t.part(0)[0] + ', ' + t.part(1)[0])}", 2),
              lambda a, b: f"np.maximum({a}, {b})", arity=2),
    Operation("abs", np.abs, lambda a: abs(a) if not isinstance(a, np.ndarray) else np.abs(a), _sp("Abs"),
              lambda t: (rf"\left|{t.part(0)[0]}\right|", 2), lambda a: f"np.abs({a})"),
    Operation("heaviside", _heaviside, _exact_heaviside, _sympy_heaviside,
              lambda t: (rf"\mathbf{{1}}\left[{t.part(0)[0]} > 0\right]", 2),
              lambda a: f"np.heaviside({a}, 0.0)"),
    Operation("vjp", _vjp, _exact_vjp, lambda J, G: J.T * G,
              lambda t: (t.operand(0, first=True, below=2) + "^{T} " + t.operand(1, below=2), 1),
              lambda J, G: f'np.einsum("kji,ki->ji", {J}, {G})', arity=2),
    Operation("count", _count, _exact_count, _sympy_count, lambda t: ("m", 2), lambda a: f"{a}.shape[1]"),
    Operation("mean", _mean, _exact_mean, _sympy_mean,
              lambda t: (rf"\frac{{1}}{{m}} \sum_{{i=1}}^{{m}} {t.operand(0, first=True, below=2)}", 1),
              lambda a: f"np.mean({a}, axis=1, keepdims=True)"),
    Operation("spread", _spread, _exact_spread, _sympy_spread,
              lambda t: (t.operand(0, first=True, below=2) + r" \, \mathbf{1}^{T}", 1),
              lambda a, b: f"np.broadcast_to({a}, {b}.shape)", arity=2),
    Operation("entries", _entries, _exact_entries, _sympy_entries, _latex_entries,
              lambda *codes, shape=(): f"np.array([{', '.join(codes)}]).reshape({tuple(shape)})", arity=None),
):
    operation(_op)

#: Every operation name, in the order the README lists them.
NAMES = tuple(OPERATIONS)

"""The nodes of the network's graph: each operation one class that owns everything about itself.

A node computes its value from its inputs' values (`forward`), and in the backward pass turns the
gradient arriving at its value into the gradient it passes to each input and parameter (`vjp`, a
vector–Jacobian product, as tinygrad's `Function.backward`). It also owns its local derivative as
the documents and the trace show it (`local`: ∂A/∂Z entry by entry for an element-wise node; the
Jacobian of each example for a node such as softmax, whose outputs each depend on all its
inputs), its definition for SymPy (from its expression tree unless it says otherwise), and its
display: readable name, symbol, glyph, LaTeX formula and expression trees for the worked lines.

Shapes follow the article's code: a value is units × examples (one column per example), `W` is
units × inputs, `b` is units × 1; the cost is a number. Every method writes into `out` when given,
so the training loop computes straight into the trace's arrays.

Adding a node kind is one class with `@register`; a class missing a piece of its display is
refused there, not shown as a placeholder later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from tracer.engine import keys, map_lines
from tracer.operations import op

#: op name → node class, for chapter files (`activation = "softmax"`, `op = "add"`) and saved traces.
NODES: dict[str, type["Node"]] = {}

#: exp() overflows above this; sigmoid is exactly 0 or 1 in float64 well before it.
_EXP_LIMIT = 709.0


#: The classes that only say what a node must give (their methods raise NotImplementedError).
_ABSTRACT: list[type] = []


def _lower(symbol: str) -> str:
    """An entry's symbol from its matrix's: Z_{1} → z_{1} (one example's z)."""
    return symbol[:1].lower() + symbol[1:]


def abstract(cls: type) -> type:
    _ABSTRACT.append(cls)
    return cls


def register(cls: type["Node"]) -> type["Node"]:
    """Make a node class available under its `op` name; refuse it when a piece of its display is missing."""
    def given(a: str) -> bool:
        value = getattr(cls, a, None)
        return value is not None and not (callable(value) and any(value is base.__dict__.get(a) for base in _ABSTRACT))
    missing = [a for a in cls.DISPLAY if not given(a)]
    if missing:
        raise TypeError(f"{cls.__name__}: a node must give its display too; missing: {', '.join(missing)}")
    if cls.op in NODES and NODES[cls.op].__qualname__ != cls.__qualname__:  # (a module reloaded is the same class)
        raise TypeError(f"{cls.__name__}: the op name {cls.op!r} is already {NODES[cls.op].__name__}'s")
    NODES[cls.op] = cls
    return cls


def fill(pattern: str, **values: str) -> str:
    """A display pattern with its <A>, <Z>, <Y>, <m>, … placeholders replaced (LaTeX has too many braces for format)."""
    for key, value in values.items():
        pattern = pattern.replace(f"<{key}>", value)
    return pattern


@dataclass(frozen=True)
class Worked:
    """A worked line a node asks the documents for: `formula = tree = result`, the result being the
    trace's `quantity` (or its `part`: (None, i) is example i's column, None every entry). `whole`: a
    result whole by definition (an indicator, 0 or 1); `stages`: show the tree's inner operations
    worked out one level at a time (softmax's exponentials, then their sum, then the quotients);
    `form`: "scalar" for the article's one-unit, one-example form."""

    quantity: str
    formula: str
    tree: Any
    part: tuple[int | None, ...] | None = None
    whole: bool = False
    stages: bool = False
    form: str = ""


class Sheet(Protocol):
    """What a node reads while it writes its worked lines (tracer.documents.model gives one per step)."""

    m: int

    def value(self, name: str) -> np.ndarray:
        """A quantity's value at the step, as carried by hand."""

    def operand(self, name: str, index: tuple[int | None, ...] | None = None, exact: bool = False) -> Any:
        """A leaf for the quantity (or its entry / column at `index`; None in a place takes all of it)."""

    def symbol(self, name: str) -> str:
        """The quantity's LaTeX symbol."""

    def example(self, name: str, example: int) -> str:
        """The quantity's LaTeX symbol for one example (counted from 1): Z_{1}^{(2)}."""

    def target(self, node: "Node", wrt: str) -> str:
        """Where `node` writes the gradient it passes to `wrt`: ∂Cost/∂wrt, or its part through `node`."""


def _maps(sheet: Sheet, name: str) -> list[tuple[Any, tuple[int | None, ...] | None, tuple[int | None, ...] | None]]:
    """How an element-wise node's lines are cut: the whole value at once (a matrix), or for an image
    (channels × height × width × examples) one map per channel of each example. Each: the symbols
    (a function of a quantity's name, for that map), the index of the map, and the part it is."""
    shape = np.shape(sheet.value(name))
    if len(shape) <= 2:
        return [(sheet.symbol, None, None)]
    out = []
    for n in map_lines.examples(shape[-1]):
        for c in range(shape[0]):
            def S(q: str, n: int = n, c: int = c) -> str:
                return sheet.example(q, n + 1) + (f"[{c + 1}]" if shape[0] > 1 else "")
            out.append((S, (c, None, None, n), (c, None, None, n)))
    return out


def _out(like: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    return np.empty_like(like, dtype=float) if out is None else out


# --------------------------------------------------------------------------- the node contract


@abstract
class Node:
    """One operation of the graph, named `name`, on the values of `inputs` (and its `params`).

    `kind` groups nodes for the documents and figures: "linear" (has parameters), "activation"
    (one input, same shape), "merge" (several inputs), "cost". Display: `readable` (the name in
    prose), `glyph` (plain Unicode for a graph's label), `formula` (LaTeX of the definition).
    """

    op: ClassVar[str]
    kind: ClassVar[str]
    readable: ClassVar[str]
    glyph: ClassVar[str]
    formula: ClassVar[str]
    DISPLAY: ClassVar[tuple[str, ...]] = ("op", "readable", "glyph", "formula")
    #: Does the node act on each entry alone (its local gradient is an array the shape of its value)?
    elementwise: ClassVar[bool] = False
    #: Values where the node has no derivative (ReLU's 0): the witnesses do not difference across them.
    kinks: ClassVar[tuple[float, ...]] = ()

    def __init__(self, name: str, inputs: tuple[str, ...], params: tuple[str, ...] = (), **options: Any):
        self.name = name
        self.inputs = tuple(inputs)
        self.params = tuple(params)
        self.options = dict(options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.inputs!r})"

    def branches(self, args: list[np.ndarray]) -> bytes:
        """On which side of every kink the node's input lies (a max-pool: which entry wins each window);
        the finite differences leave out a change that moves it."""
        return b"".join(np.sign(args[0] - k).tobytes() for k in self.kinks)

    def spec(self) -> dict[str, Any]:
        """The node as data (a trace's meta keeps the graph this way): op, name, inputs, parameters, options."""
        return {"op": self.op, "name": self.name, "inputs": list(self.inputs), "params": list(self.params),
                **self.options}

    def renamed(self, **changes: Any) -> "Node":
        """A node of the same kind with some of its spec changed."""
        spec = {**self.spec(), **changes}
        return type(self)(spec.pop("name"), tuple(spec.pop("inputs")), tuple(spec.pop("params")),
                          **{k: v for k, v in spec.items() if k != "op"})

    # ----------------------------------------------------------------- shapes

    def shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The value's shape from the inputs' shapes (the same, unless the node says otherwise)."""
        return shapes[0]

    def parameter_shapes(self, shapes: list[tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        return {}

    @property
    def locals(self) -> tuple[str, ...]:
        """The inputs this node's recorded local gradients are taken with respect to (∂A1/∂Z1: Z1)."""
        return ()

    def local_shapes(self, shapes: list[tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The recorded local gradients, by the input they are taken with respect to, and their shapes."""
        return {}

    # ----------------------------------------------------------------- numbers

    def forward(self, args: list[np.ndarray], params: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def local(self, args: list[np.ndarray], value: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """Write the recorded local gradients (see `local_shapes`) into `out`."""

    def vjp(self, grad: np.ndarray, args: list[np.ndarray], params: list[np.ndarray], value: np.ndarray,
            local: dict[str, np.ndarray], out: dict[str, np.ndarray | None]) -> None:
        """The gradient `grad` reaching this node's value, passed to each input and parameter: write
        ∂Cost/∂x for every name x in `out` that has an array (None: nobody needs it)."""
        raise NotImplementedError

    def receivers(self) -> tuple[str, ...]:
        """The parameters and inputs this node passes a gradient to, in the order the documents work them
        (a linear node: dW, db, then dA_prev)."""
        return self.params + self.inputs

    def local_entry(self, wrt: str, out: tuple[int, ...], entry: tuple[int, ...]) -> tuple[int, ...]:
        """Where ∂value[out]/∂wrt[entry] sits in `shown_locals()[wrt]` (an element-wise node: at `out`)."""
        return out

    def local_quantity(self, wrt: str) -> str | None:
        """The quantity whose figures a shown local gradient is printed with (None: a whole number, 1)."""
        return keys.local(self.name, wrt) if wrt in self.locals else None

    def shown_locals(self, args: dict[str, np.ndarray], params: dict[str, np.ndarray], value: np.ndarray,
                     local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The local gradients `tracer trace` prints, by input or parameter name."""
        return {wrt: local[wrt] for wrt in local}

    # ----------------------------------------------------------------- symbols

    def definition(self, *inputs: Any) -> Any:
        """The node's value as SymPy of SymPy inputs (an element-wise node: of one entry; a column-wise
        node: a list of expressions of the list of one example's inputs); from its expression tree."""
        from tracer.operations import to_sympy

        return to_sympy(self.expression(*inputs), lambda leaf: leaf)

    def expression(self, *inputs: Any) -> Any:
        """The value as a tree of operations on the inputs given (operands, names or symbols)."""
        raise NotImplementedError

    def backward_expression(self, wrt: str, grad: Any, args: dict[str, Any], local: dict[str, Any]) -> Any:
        """What this node passes to `wrt` (an input or parameter) as a tree of the gradient reaching its
        value (`grad`), its inputs and parameters (`args`, by name) and its recorded local gradients."""
        raise NotImplementedError

    # ----------------------------------------------------------------- worked lines

    def definition_tex(self, S: Any) -> str:
        """The node's definition in LaTeX with its inputs' symbols (`S` gives a name's symbol): Z₁ = W₁A₀ + b₁."""
        return rf"{S(self.name)} = {self.glyph}\left({', '.join(S(n) for n in self.inputs)}\right)"

    def worked_forward(self, sheet: Sheet) -> list[Worked]:
        """The forward lines of this node: its value from its inputs' (one line, from `expression`)."""
        tree = self.expression(*[sheet.operand(n) for n in self.inputs + self.params])
        return [Worked(self.name, self.definition_tex(sheet.symbol), tree)]

    def worked_backward(self, sheet: Sheet) -> list[Worked]:
        """The backward lines of this node: the gradient it passes to each input and parameter, from
        `backward_expression` with the recorded numbers."""
        S = sheet.symbol
        grad = keys.grad(self.name)
        args = {n: sheet.operand(n) for n in self.inputs + self.params}
        local = {wrt: sheet.operand(keys.local(self.name, wrt)) for wrt in self.locals}
        out = []
        for wrt in self.receivers():
            if wrt == keys.TARGET or wrt == keys.INPUT:
                continue
            target = sheet.target(self, wrt)
            out.append(Worked(target, f"{S(target)} = {S(grad)}",
                              self.backward_expression(wrt, sheet.operand(grad), args, local)))
        return out


# --------------------------------------------------------------------------- the linear node


class Weighted:
    """A node with weights and perhaps biases: its parameters are (W) or (W, b), in that order."""

    params: tuple[str, ...]

    @property
    def W(self) -> str:
        return self.params[0]

    @property
    def b(self) -> str | None:
        return self.params[1] if len(self.params) > 1 else None


@register
class Linear(Weighted, Node):
    """Z = W·A_prev + b. Its local gradients are A_prevᵀ (for W), 1 (for b) and Wᵀ (for A_prev)."""

    op = "linear"
    kind = "linear"
    readable = "linear"
    glyph = "·"
    formula = r"Z = W A + b"

    @classmethod
    def make(cls, name: str, source: str, units: int, bias: bool = True, weights: str | None = None,
             biases: str | None = None) -> "Linear":
        W, b = keys.parameters_of(name)
        return cls(name, (source,), (weights or W,) + ((biases or b,) if bias else ()), units=units)

    @property
    def units(self) -> int:
        return int(self.options["units"])

    def shape(self, shapes):
        if len(shapes[0]) != 2:
            raise ValueError(f"{self.name}: a dense layer reads one column per example, but {self.inputs[0]} is "
                             f"{' × '.join(map(str, shapes[0][:-1]))} per example (a flatten layer before it makes "
                             "the column)")
        return (self.units, shapes[0][1])

    def parameter_shapes(self, shapes):
        out = {self.W: (self.units, shapes[0][0])}
        if self.b:
            out[self.b] = (self.units, 1)
        return out

    def fan_in(self, shapes: list[tuple[int, ...]]) -> int:
        return shapes[0][0]

    def initial(self, rng: np.random.RandomState, scheme: str, shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The weights drawn from `rng` by `scheme` (as the articles' notebooks draw them), biases zero."""
        n_in, n_out = self.fan_in(shapes), self.units
        if scheme == "plain":
            W = rng.randn(n_out, n_in) * 0.01
        elif scheme == "xavier":
            W = rng.randn(n_out, n_in) / np.sqrt(n_in)
        elif scheme == "he":
            W = rng.randn(n_out, n_in) * np.sqrt(2 / n_in)
        else:  # "uniform" is seed 002's np.random.rand(inputs, units), used there as input × units
            W = rng.rand(n_in, n_out).T.copy()
        return {self.W: W}

    def forward(self, args, params, out=None):
        out = np.matmul(params[0], args[0], out=out)
        if len(params) > 1:
            out += params[1]
        return out

    def vjp(self, grad, args, params, value, local, out):
        """dW = dZ·A_prevᵀ, db = Σ dZ over the examples, dA_prev = Wᵀ·dZ."""
        np.matmul(grad, args[0].T, out=out[self.W])
        if self.b and out.get(self.b) is not None:
            np.add.reduce(grad, axis=1, keepdims=True, out=out[self.b])
        if out.get(self.inputs[0]) is not None:
            np.matmul(params[0].T, grad, out=out[self.inputs[0]])

    def local_quantity(self, wrt):
        """∂Z/∂W is A_prev (its figures), ∂Z/∂A_prev is W, ∂Z/∂b is 1."""
        return {self.W: self.inputs[0], self.inputs[0]: self.W}.get(wrt)

    def local_entry(self, wrt, out, entry):
        """∂z_ij/∂w_ik = A_prevᵀ[j, k]; ∂z_ij/∂b_i = 1; ∂z_ij/∂a_kj = Wᵀ[k, i]."""
        i, j = out
        if wrt == self.W:
            return (j, entry[1])
        if wrt == self.b:
            return (j, 0)
        return (entry[0], i)

    def shown_locals(self, args, params, value, local):
        """∂Z/∂W = A_prevᵀ, ∂Z/∂b = 1 (a column of m ones), ∂Z/∂A_prev = Wᵀ, as the article writes them."""
        A = args[self.inputs[0]]
        out = {self.W: A.T, self.inputs[0]: params[self.W].T}
        if self.b:
            out[self.b] = np.ones((A.shape[1], 1))
        return out

    def expression(self, A, W, b=None):
        tree = op("matmul", W, A)
        return tree if b is None else op("add", tree, b)

    def worked_forward(self, sheet):
        S, A, name = sheet.symbol, self.inputs[0], self.name
        W, P = sheet.value(self.W), sheet.value(A)
        if W.shape[0] == 1 and P.shape[1] == 1:  # one unit, one example: the article's scalar form
            x = "x" if A == keys.INPUT else "a"
            formula = f"{S(name)} = " + " + ".join(
                [f"w_{{{j}}} {x}_{{{j}}}" for j in range(1, W.shape[1] + 1)] + ([S(self.b)] if self.b else []))
            terms = [op("mul", sheet.operand(self.W, (0, j)), sheet.operand(A, (j, 0))) for j in range(W.shape[1])]
            tree = op("add", *terms, *([sheet.operand(self.b, (0, 0))] if self.b else []))
            return [Worked(name, formula, tree, form="scalar")]
        tree = op("matmul", sheet.operand(self.W), sheet.operand(A))
        if self.b:
            tree = op("add", tree, sheet.operand(self.b))
        return [Worked(name, self.definition_tex(S), tree)]

    def definition_tex(self, S):
        return f"{S(self.name)} = {S(self.W)} {S(self.inputs[0])}" + (f" + {S(self.b)}" if self.b else "")

    def worked_backward(self, sheet):
        S, A, dZ = sheet.symbol, self.inputs[0], keys.grad(self.name)
        grad = sheet.value(dZ)
        dW = keys.grad(self.W)
        if grad.shape == (1, 1):  # one unit, one example: each weight's gradient is dz times its input
            tree = op("mul", sheet.operand(dZ, (0, 0)), op("transpose", sheet.operand(A)))
        else:
            tree = op("matmul", sheet.operand(dZ), op("transpose", sheet.operand(A)))
        out = [Worked(dW, f"{S(dW)} = {S(dZ)} \\, {S(A)}^{{T}}", tree)]
        if self.b:
            db = keys.grad(self.b)
            out.append(Worked(db, f"{S(db)} = \\sum_{{i=1}}^{{m}} \\frac{{\\partial \\mathrm{{Cost}}}}"
                                  f"{{\\partial {_lower(S(self.name))}^{{(i)}}}}", op("sum", sheet.operand(dZ), axis=1)))
        if A != keys.INPUT:
            target = sheet.target(self, A)
            out.append(Worked(target, f"{S(target)} = {S(self.W)}^{{T}} {S(dZ)}",
                              op("matmul", op("transpose", sheet.operand(self.W)), sheet.operand(dZ))))
        return out

    def backward_expression(self, wrt, grad, args, local):
        """dW = dZ·A_prevᵀ, db = Σ dZ along each row, dA_prev = Wᵀ·dZ."""
        if wrt == self.W:
            return op("matmul", grad, op("transpose", args[self.inputs[0]]))
        if wrt == self.b:
            return op("sum", grad, axis=1)
        return op("matmul", op("transpose", args[self.W]), grad)


# --------------------------------------------------------------------------- activations


@abstract
class Unary(Node):
    """A = f(Z) of one input, the same shape: an activation. `symbol` is the function's LaTeX name."""

    kind = "activation"
    symbol: ClassVar[str]

    @property
    def locals(self):
        return self.inputs[:1]

    def forward(self, args, params, out=None):
        return self.apply(args[0], out=out)

    def apply(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """f(Z)."""
        raise NotImplementedError

    def definition_tex(self, S):
        return rf"{S(self.name)} = {self.symbol}\left({S(self.inputs[0])}\right)"


@abstract
class Activation(Unary):
    """A = f(Z) entry by entry; its local gradient ∂A/∂Z is entry by entry too.

    Display (each class gives all of it): `readable`, `symbol` (LaTeX, the function's name before its
    argument), `glyph`, `formula` (LaTeX of the definition), `gradient_tex` (LaTeX of ∂A/∂Z with <A>
    and <Z> for the node's values), and `expression` / `local_expression`, the same as trees.
    """

    elementwise = True
    gradient_tex: ClassVar[str]
    DISPLAY = Node.DISPLAY + ("symbol", "gradient_tex", "expression", "local_expression")

    def local_shapes(self, shapes):
        return {self.inputs[0]: shapes[0]}

    def local(self, args, value, out):
        self.local_gradient(args[0], value, out=out[self.inputs[0]])

    def vjp(self, grad, args, params, value, local, out):
        """dZ = dA ⊙ ∂A/∂Z."""
        np.multiply(grad, local[self.inputs[0]], out=out[self.inputs[0]])

    def backward_expression(self, wrt, grad, args, local):
        return op("mul", grad, local[wrt])

    def worked_forward(self, sheet):
        out = []
        for S, at, part in _maps(sheet, self.name):
            tree = self.expression(sheet.operand(self.inputs[0], at))
            if not isinstance(tree, dict):  # the identity: nothing to work out
                return []
            out.append(Worked(self.name, self.definition_tex(S), tree, part=part))
        return out

    def worked_backward(self, sheet):
        Z = self.inputs[0]
        local, dA, target = keys.local(self.name, Z), keys.grad(self.name), sheet.target(self, Z)
        out = []
        for S, at, part in _maps(sheet, self.name):
            tree = self.local_expression(sheet.operand(Z, at), sheet.operand(self.name, at))
            indicator = isinstance(tree, dict) and tree["op"] == "heaviside"  # 0 or 1 by definition
            if tree is not None:
                out.append(Worked(local, f"{S(local)} = " + fill(self.gradient_tex, A=S(self.name), Z=S(Z)), tree,
                                  whole=indicator, part=part))
            times = r" \odot " if np.size(sheet.value(self.name)) > 1 else r" \cdot "
            out.append(Worked(target, f"{S(target)} = {S(dA)}{times}{S(local)}",
                              op("mul", sheet.operand(dA, at), sheet.operand(local, at, exact=indicator)), part=part))
        return out

    def local_gradient(self, Z: np.ndarray, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def local_expression(self, z: Any, a: Any) -> Any:
        """∂A/∂Z as a tree of operations on `z` and `a`; None when it is a constant (identity's 1)."""
        raise NotImplementedError


@register
class Sigmoid(Activation):
    op = "sigmoid"
    formula = r"\sigma(z) = \frac{1}{1 + e^{-z}}"
    readable = "sigmoid"
    symbol = r"\sigma"
    glyph = "σ"
    gradient_tex = r"<A> \odot \left(1 - <A>\right)"

    def apply(self, Z, out=None):
        out = _out(Z, out)
        # The article's 1/(1 + e^(-z)), with -z capped so exp() cannot overflow for z < -709.
        np.negative(Z, out=out)
        np.minimum(out, _EXP_LIMIT, out=out)
        np.exp(out, out=out)
        out += 1.0
        return np.reciprocal(out, out=out)

    def local_gradient(self, Z, A, out=None):
        out = np.subtract(1.0, A, out=out)
        out *= A
        return out

    def expression(self, z):
        return op("sigmoid", z)

    def local_expression(self, z, a):
        return op("mul", a, op("sub", 1, a))


@register
class ReLU(Activation):
    op = "relu"
    formula = r"\operatorname{ReLU}(z) = \max(0, z)"
    readable = "ReLU"
    symbol = r"\operatorname{ReLU}"
    glyph = "ReLU"
    gradient_tex = r"\mathbf{1}\left[<Z> > 0\right]"
    kinks = (0.0,)

    def apply(self, Z, out=None):
        return np.maximum(Z, 0.0, out=out)

    def local_gradient(self, Z, A, out=None):
        # The derivative at z = 0 is taken as 0, as NN_scratch.py and most libraries do.
        return np.greater(Z, 0.0, out=_out(Z, out), casting="unsafe")

    def expression(self, z):
        return op("relu", z)

    def local_expression(self, z, a):
        return op("heaviside", z)


@register
class Tanh(Activation):
    op = "tanh"
    formula = r"\tanh(z) = \frac{e^{z} - e^{-z}}{e^{z} + e^{-z}}"
    readable = "tanh"
    symbol = r"\tanh"
    glyph = "tanh"
    gradient_tex = r"1 - <A> \odot <A>"

    def apply(self, Z, out=None):
        return np.tanh(Z, out=out)

    def local_gradient(self, Z, A, out=None):
        out = np.multiply(A, A, out=out)
        return np.subtract(1.0, out, out=out)

    def definition(self, z):
        import sympy as sp

        return (sp.exp(z) - sp.exp(-z)) / (sp.exp(z) + sp.exp(-z))

    def expression(self, z):
        return op("tanh", z)

    def local_expression(self, z, a):
        return op("sub", 1, op("square", a))


@register
class Identity(Activation):
    op = "identity"
    formula = r"\operatorname{id}(z) = z"
    readable = "identity"
    symbol = r"\operatorname{id}"
    glyph = "id"
    gradient_tex = r"1"

    def apply(self, Z, out=None):
        out = _out(Z, out)
        np.copyto(out, Z)
        return out

    def local_gradient(self, Z, A, out=None):
        out = _out(Z, out)
        out.fill(1.0)
        return out

    def expression(self, z):
        return z

    def local_expression(self, z, a):
        return None


@abstract
class ColumnActivation(Unary):
    """A = f(Z) one example (one column) at a time, each output depending on every input of its
    column: softmax, a normalisation. Its local gradient is the Jacobian of each example, recorded
    as units × units × examples (J[k, j, i] = ∂a_k/∂z_j for example i); the backward pass applies it:
    dZ[:, i] = J[:, :, i]ᵀ · dA[:, i].

    Display: as an activation's, with `jacobian_tex` (LaTeX of ∂a_k/∂z_j with <a_k>, <a_j>, <k>,
    <j>) and `jacobian_expression(a, z, k, j)`, the tree of one entry (a and z the column's operands).
    """

    jacobian_tex: ClassVar[str]
    DISPLAY = Node.DISPLAY + ("symbol", "jacobian_tex", "expression", "jacobian_expression")

    def local_shapes(self, shapes):
        n, m = shapes[0]
        return {self.inputs[0]: (n, n, m)}

    def local(self, args, value, out):
        self.jacobian(args[0], value, out=out[self.inputs[0]])

    def local_entry(self, wrt, out, entry):
        """∂a_ij/∂z_kj = J[i, k, j]."""
        return (out[0], entry[0], out[1])

    def jacobian(self, Z: np.ndarray, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """J[k, j, i] = ∂A[k, i]/∂Z[j, i]."""
        raise NotImplementedError

    def vjp(self, grad, args, params, value, local, out):
        np.einsum("kji,ki->ji", local[self.inputs[0]], grad, out=out[self.inputs[0]])

    def backward_expression(self, wrt, grad, args, local):
        """dZ of each example: its Jacobian transposed times its dA."""
        return op("vjp", local[wrt], grad)

    def column_expression(self, z: list[Any]) -> Any:
        """One example's output column as a tree of that example's inputs (a column of `entries`)."""
        raise NotImplementedError

    def worked_forward(self, sheet):
        """One line per example: the column worked out from that example's inputs, stage by stage."""
        Z = self.inputs[0]
        n, m = sheet.value(Z).shape
        out = []
        for i in map_lines.columns(m):
            tree = self.column_expression([sheet.operand(Z, (k, i)) for k in range(n)])
            out.append(Worked(self.name, rf"{sheet.example(self.name, i + 1)} = {self.symbol}\left("
                                         rf"{sheet.example(Z, i + 1)}\right)", tree, part=(None, i), stages=True))
        return out

    def worked_backward(self, sheet):
        """The Jacobian of the first example entry by entry, then each example's product Jᵀ·dA."""
        Z = self.inputs[0]
        local, dA, target = keys.local(self.name, Z), keys.grad(self.name), sheet.target(self, Z)
        n, m = sheet.value(Z).shape
        a = [sheet.operand(self.name, (k, 0)) for k in range(n)]
        z = [sheet.operand(Z, (k, 0)) for k in range(n)]
        entry = fill(self.jacobian_tex, a_k=keys.entry_symbol(self.name, "k"), a_j=keys.entry_symbol(self.name, "j"),
                     k="k", j="j")
        E = sheet.example
        out = [Worked(local, rf"{E(local, 1)} = \left[{entry}\right]_{{kj}}",
                      op("entries", *[self.jacobian_expression(a, z, k, j) for k in range(n) for j in range(n)],
                         shape=[n, n]), part=(None, None, 0))]
        for i in map_lines.columns(m):
            out.append(Worked(target, rf"{E(target, i + 1)} = \left({E(local, i + 1)}\right)^{{T}} {E(dA, i + 1)}",
                              op("matmul", op("transpose", sheet.operand(local, (None, None, i))),
                                 sheet.operand(dA, (None, i))), part=(None, i)))
        return out

    def jacobian_expression(self, a: list[Any], z: list[Any], k: int, j: int) -> Any:
        raise NotImplementedError


@register
class Softmax(ColumnActivation):
    """a_k = e^{z_k} / Σ_j e^{z_j} for each example; ∂a_k/∂z_j = a_k (δ_kj − a_j)."""

    op = "softmax"
    readable = "softmax"
    symbol = r"\operatorname{softmax}"
    glyph = "softmax"
    formula = r"\operatorname{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j} e^{z_j}}"
    jacobian_tex = r"<a_k> \left(\delta_{<k><j>} - <a_j>\right)"

    def apply(self, Z, out=None):
        # e^(z − max z) for each example: the same quotient, and e^z cannot overflow.
        out = np.subtract(Z, Z.max(axis=0, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=0, keepdims=True)
        return out

    def jacobian(self, Z, A, out=None):
        n = A.shape[0]
        out = np.multiply(A[:, None, :], A[None, :, :], out=out)
        np.negative(out, out=out)
        if out.flags.c_contiguous:
            out.reshape(n * n, -1)[::n + 1] += A  # the diagonal J[k, k, i], as a view of rows
        else:
            out[np.arange(n), np.arange(n), :] += A
        return out

    def expression(self, z):
        return op("div", op("exp", z), op("sum", op("exp", z), axis=0))

    def column_expression(self, z):
        """One example's a: its e^{z_k} as a column, over their sum e^{z_1} + … + e^{z_n}."""
        total = op("add", *[op("exp", x) for x in z]) if len(z) > 1 else op("exp", z[0])
        return op("div", op("entries", *[op("exp", x) for x in z], shape=[len(z), 1]), total)

    def definition(self, z):
        import sympy as sp

        total = sum(sp.exp(x) for x in z)
        return [sp.exp(x) / total for x in z]

    def jacobian_expression(self, a, z, k, j):
        return op("mul", a[k], op("sub", 1 if k == j else 0, a[j]))

    def jacobian_code(self, a: str, z: str) -> str:
        """NumPy for the Jacobians of every example at once: J[k, j, i] = a_k (δ_kj − a_j)."""
        return f"{a}[:, None, :] * (np.eye({a}.shape[0])[:, :, None] - {a}[None, :, :])"


# --------------------------------------------------------------------------- merging paths


@register
class Add(Node):
    """S = A + B (+ …): a skip connection adds a layer's input to its output. Each input receives the
    gradient of S unchanged (its local gradient is 1)."""

    op = "add"
    kind = "merge"
    readable = "sum"
    glyph = "+"
    formula = r"S = A + B"

    def shape(self, shapes):
        if len(set(shapes)) > 1:
            raise ValueError(f"{self.name}: its inputs have different shapes ({', '.join(map(str, shapes))})")
        return shapes[0]

    def forward(self, args, params, out=None):
        out = np.add(args[0], args[1], out=out)
        for a in args[2:]:
            out += a
        return out

    def vjp(self, grad, args, params, value, local, out):
        for name in self.inputs:
            if out.get(name) is not None:
                np.copyto(out[name], grad)

    def shown_locals(self, args, params, value, local):
        return {name: np.ones_like(value) for name in self.inputs}

    def expression(self, *inputs):
        return op("add", *inputs)

    def backward_expression(self, wrt, grad, args, local):
        return grad

    def definition_tex(self, S):
        return f"{S(self.name)} = " + " + ".join(S(n) for n in self.inputs)

    def worked_forward(self, sheet):
        return [Worked(self.name, self.definition_tex(sheet.symbol), op("add", *[sheet.operand(n) for n in self.inputs]))]


# --------------------------------------------------------------------------- costs


@abstract
class Cost(Node):
    """The cost of a batch from the prediction P (the last node, or the logits it was computed from)
    and the labels Y: scale · Σ loss over the examples.

    `gradient` is ∂Cost/∂P. An element-wise cost (`elementwise`) adds one loss per entry; a column-wise
    one (categorical cross-entropy) one loss per example, from its whole column. A cost computed
    from the logits of the last activation (`from_logits`, in the stable form) names that
    activation in `logits_of`; a cost that has such a form names its class in `with_logits`.

    Display (each class gives all of it): `readable`, `formula` (the cost always written Cost),
    `scale_tex` and `term_tex` (scale · Σ terms, with <m> and one example's <y>, <a> = ŷ and <z>),
    `gradient_tex` (with <A>, <Z>, <Y>, <m>), and `scale` / `term` / `gradient_expression` as trees.
    """

    kind = "cost"
    glyph = "Cost"
    scale_tex: ClassVar[str]
    term_tex: ClassVar[str]
    gradient_tex: ClassVar[str]
    DISPLAY = Node.DISPLAY + ("scale_tex", "term_tex", "gradient_tex", "scale", "term", "gradient_expression")
    elementwise = True
    from_logits: ClassVar[bool] = False
    logits_of: ClassVar[str | None] = None  # the activation whose logits a from-logits cost reads
    with_logits: ClassVar[type["Cost"] | None] = None
    #: (low, high): the prediction is clipped to this range before the cost and its gradient use it.
    clip: ClassVar[tuple[float, float] | None] = None
    #: Labels must be one-hot (or probabilities): each example's column sums to 1.
    distributions: ClassVar[bool] = False
    #: The activation this cost simplifies with when it follows it (cross-entropy after a sigmoid: ŷ − y).
    meets: ClassVar[str | None] = None
    #: Does the cost take a logarithm (a student may take it in base 10)?
    logarithmic: ClassVar[bool] = False

    @property
    def prediction(self) -> str:
        return self.inputs[0]

    def shape(self, shapes):
        return ()

    def cost(self, Y: np.ndarray, P: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, Y: np.ndarray, P: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def forward(self, args, params, out=None):
        return np.asarray(self.cost(args[1], args[0]))

    def vjp(self, grad, args, params, value, local, out):
        self.gradient(args[1], args[0], out=out[self.prediction])

    def definition(self, y: Any, p: Any, m: Any) -> tuple[Any, Any]:
        """(scale, loss) as SymPy, so that cost = scale · Σ loss over the examples (and entries): of one
        entry's y and prediction p, or, for a column-wise cost, of one example's lists of them."""
        raise NotImplementedError

    def expression(self, *inputs):
        raise NotImplementedError("a cost is worked as scale · Σ term")

    def scale(self, m: Any) -> Any:
        """The factor before the sum over examples, as a tree (None when there is none)."""
        raise NotImplementedError

    def term(self, y: Any, a: Any, z: Any) -> Any:
        """One entry's loss (a column-wise cost: one example's, of lists) as a tree on y, ŷ (= a) and z."""
        raise NotImplementedError

    def gradient_expression(self, Y: Any, A: Any, Z: Any, m: Any) -> Any:
        """∂Cost/∂P as a tree on the whole matrices."""
        raise NotImplementedError

    def total_expression(self, Y: Any, A: Any, Z: Any, m: Any) -> Any:
        """The whole cost as a tree on the matrices (the notebook's line): scale · Σ term."""
        body = op("sum", self.term(Y, A, Z))
        scale = self.scale(m)
        return body if scale is None else op("mul", scale, body)

    def shown_term(self, y: Any, a: Any, z: Any, label: Any) -> Any:
        """The term the documents write for one entry (a column-wise cost: one example, lists), given the
        label's value: the loss itself, or None where it adds nothing."""
        return self.term(y, a, z)

    def worked_cost(self, sheet: Sheet, output: str, logits: str) -> Worked:
        """Cost = scale · (the sum of one term per entry, or per example), with the step's numbers."""
        Y = sheet.value(keys.TARGET)
        if self.elementwise:
            terms = [self.shown_term(sheet.operand(keys.TARGET, ix), sheet.operand(output, ix),
                                     sheet.operand(logits, ix), float(Y[ix])) for ix in np.ndindex(Y.shape)]
        else:
            n, m = Y.shape
            terms = [self.shown_term(*[[sheet.operand(q, (k, i)) for k in range(n)] for q in (keys.TARGET, output, logits)],
                                     [float(Y[k, i]) for k in range(n)]) for i in range(m)]
        terms = [t for t in terms if t is not None]
        body = terms[0] if len(terms) == 1 else op("add", *terms)
        scale = self.scale(sheet.m)
        return Worked(keys.COST, self.formula, body if scale is None else op("mul", scale, body))

    def worked_gradient(self, sheet: Sheet, output: str, logits: str) -> Worked:
        """∂Cost/∂(what the cost reads), the first line of the backward pass."""
        into = keys.grad(self.prediction)
        formula = f"{sheet.symbol(into)} = " + fill(self.gradient_tex, A=sheet.symbol(output), Z=sheet.symbol(logits),
                                                    Y="Y", m="m")
        tree = self.gradient_expression(sheet.operand(keys.TARGET), sheet.operand(output), sheet.operand(logits),
                                        sheet.m)
        return Worked(into, formula, tree)


@register
class SquaredError(Cost):
    op = "squared_error"
    formula = r"\mathrm{Cost} = \frac{1}{2m} \sum_{i=1}^{m} (y_i - \hat{y}_i)^2"
    readable = "squared error"
    scale_tex = r"\frac{1}{2 \cdot <m>}"
    term_tex = r"(<y> - <a>)^2"
    gradient_tex = r"\frac{1}{<m>}\left(<A> - <Y>\right)"

    def cost(self, Y, P):
        diff = Y - P
        return float(np.vdot(diff, diff)) / (2 * Y.shape[1])

    def gradient(self, Y, P, out=None):
        out = np.subtract(P, Y, out=out)
        out *= 1.0 / Y.shape[1]
        return out

    def definition(self, y, yhat, m):
        return 1 / (2 * m), (y - yhat) ** 2

    def scale(self, m):
        return op("div", 1, op("mul", 2, m))

    def term(self, y, a, z):
        return op("square", op("sub", y, a))

    def gradient_expression(self, Y, A, Z, m):
        return op("mul", op("div", 1, m), op("sub", A, Y))


@register
class SumOfSquares(Cost):
    op = "sum_of_squares"
    formula = r"\mathrm{Cost} = \sum_{i=1}^{m} (y_i - \hat{y}_i)^2"
    readable = "sum of squared errors"
    scale_tex = ""
    term_tex = r"(<y> - <a>)^2"
    gradient_tex = r"2\left(<A> - <Y>\right)"

    def cost(self, Y, P):
        diff = Y - P
        return float(np.vdot(diff, diff))

    def gradient(self, Y, P, out=None):
        out = np.subtract(P, Y, out=out)
        out *= 2.0
        return out

    def definition(self, y, yhat, m):
        return 1, (y - yhat) ** 2

    def scale(self, m):
        return None

    def term(self, y, a, z):
        return op("square", op("sub", y, a))

    def gradient_expression(self, Y, A, Z, m):
        return op("mul", 2, op("sub", A, Y))


#: Predictions are kept this far from 0 and 1 before a logarithm, so log(0) never happens.
BCE_CLIP = 1e-15


@register
class BinaryCrossEntropyFromLogits(Cost):
    """Cross-entropy of σ(z) computed from z itself: max(z, 0) − z·y + log(1 + e^(−|z|))."""

    op = "binary_cross_entropy_from_logits"
    logarithmic = True
    formula = (r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \left[\max(z_i, 0) - z_i y_i"
               r" + \log\left(1 + e^{-|z_i|}\right)\right]")
    from_logits = True
    logits_of = "sigmoid"
    readable = "binary cross-entropy (from z)"
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"\max(<z>, 0) - <z> \cdot <y> + \log\left(1 + e^{-|<z>|}\right)"
    gradient_tex = r"\frac{1}{<m>}\left(\sigma\left(<Z>\right) - <Y>\right)"

    def cost(self, Y, P):
        loss = np.maximum(P, 0.0) - P * Y + np.log1p(np.exp(-np.abs(P)))
        return float(np.sum(loss)) / Y.shape[1]

    def gradient(self, Y, P, out=None):
        out = Sigmoid("", ()).apply(P, out=out)
        out -= Y
        out *= 1.0 / Y.shape[1]
        return out

    def definition(self, y, z, m):
        import sympy as sp

        yhat = 1 / (1 + sp.exp(-z))
        return 1 / m, -y * sp.log(yhat) - (1 - y) * sp.log(1 - yhat)

    def scale(self, m):
        return op("div", 1, m)

    def term(self, y, a, z):
        return op("add", op("sub", op("max", z, 0), op("mul", z, y)),
                  op("log", op("add", 1, op("exp", op("neg", op("abs", z))))))

    def gradient_expression(self, Y, A, Z, m):
        return op("mul", op("div", 1, m), op("sub", op("sigmoid", Z), Y))


@register
class BinaryCrossEntropy(Cost):
    op = "binary_cross_entropy"
    logarithmic = True
    formula = (r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \left[-y_i \log \hat{y}_i"
               r" - (1 - y_i) \log (1 - \hat{y}_i)\right]")
    readable = "binary cross-entropy"
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"-<y> \log <a> - (1 - <y>) \log(1 - <a>)"
    gradient_tex = r"\frac{1}{<m>}\left(<A> - <Y>\right) \oslash \left(<A> \odot \left(1 - <A>\right)\right)"
    clip = (BCE_CLIP, 1.0 - BCE_CLIP)
    with_logits = BinaryCrossEntropyFromLogits
    meets = "sigmoid"

    def cost(self, Y, P):
        P = np.clip(P, *self.clip)
        return float(np.sum(-Y * np.log(P) - (1.0 - Y) * np.log1p(-P))) / Y.shape[1]

    def gradient(self, Y, P, out=None):
        P = np.clip(P, *self.clip)
        out = np.subtract(P, Y, out=out)
        out /= P * (1.0 - P) * Y.shape[1]
        return out

    def definition(self, y, yhat, m):
        import sympy as sp

        return 1 / m, -y * sp.log(yhat) - (1 - y) * sp.log(1 - yhat)

    def scale(self, m):
        return op("div", 1, m)

    def term(self, y, a, z):
        return op("sub", op("neg", op("mul", y, op("log", a))), op("mul", op("sub", 1, y), op("log", op("sub", 1, a))))

    def gradient_expression(self, Y, A, Z, m):
        return op("div", op("sub", A, Y), op("mul", m, op("mul", A, op("sub", 1, A))))


@register
class CrossEntropyFromLogits(Cost):
    """Categorical cross-entropy of softmax(z) computed from z: log Σ_k e^{z_k} − Σ_k y_k z_k per
    example, with the largest z taken out of the exponentials (log-sum-exp); ∂Cost/∂Z = (ŷ − y)/m."""

    op = "cross_entropy_from_logits"
    logarithmic = True
    formula = (r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \left[\log \sum_{k} e^{z_k^{(i)}}"
               r" - \sum_{k} y_k^{(i)} z_k^{(i)}\right]")
    from_logits = True
    logits_of = "softmax"
    elementwise = False
    distributions = True
    readable = "cross-entropy (from z)"
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"\log \sum_{k} e^{<z>_k} - \sum_{k} <y>_k <z>_k"
    gradient_tex = r"\frac{1}{<m>}\left(\operatorname{softmax}\left(<Z>\right) - <Y>\right)"

    def cost(self, Y, P):
        top = P.max(axis=0, keepdims=True)
        logsumexp = np.log(np.exp(P - top).sum(axis=0, keepdims=True)) + top
        return float(np.sum(logsumexp - np.sum(Y * P, axis=0, keepdims=True))) / Y.shape[1]

    def gradient(self, Y, P, out=None):
        out = Softmax("", ()).apply(P, out=out)
        out -= Y
        out *= 1.0 / Y.shape[1]
        return out

    def definition(self, y, z, m):
        import sympy as sp

        return 1 / m, sp.log(sum(sp.exp(x) for x in z)) - sum(a * b for a, b in zip(y, z))

    def scale(self, m):
        return op("div", 1, m)

    def term(self, y, a, z):
        total = op("add", *[op("exp", x) for x in z]) if len(z) > 1 else op("exp", z[0])
        picked = [op("mul", yk, zk) for yk, zk in zip(y, z)]
        return op("sub", op("log", total), op("add", *picked) if len(picked) > 1 else picked[0])

    def gradient_expression(self, Y, A, Z, m):
        return op("mul", op("div", 1, m), op("sub", A, Y))

    def total_expression(self, Y, A, Z, m):
        """(1/m) Σ over the examples of log Σ_k e^{z_k} − Σ_k y_k z_k."""
        per_example = op("sub", op("log", op("sum", op("exp", Z), axis=0)), op("sum", op("mul", Y, Z), axis=0))
        return op("mul", op("div", 1, m), op("sum", per_example))

    def shown_term(self, y, a, z, label):
        """log Σ e^z minus the true class's z (labels of 0 add nothing; a label of 1 needs no factor)."""
        total = op("add", *[op("exp", x) for x in z]) if len(z) > 1 else op("exp", z[0])
        picked = [zk if lk == 1 else op("mul", yk, zk) for yk, zk, lk in zip(y, z, label) if lk != 0]
        return op("sub", op("log", total), op("add", *picked) if len(picked) > 1 else picked[0])


@register
class CrossEntropy(Cost):
    """Categorical cross-entropy: (1/m)·Σᵢ Σₖ −yₖ log ŷₖ, labels one-hot (one row per class)."""

    op = "cross_entropy"
    logarithmic = True
    formula = r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \sum_{k} -y_k^{(i)} \log \hat{y}_k^{(i)}"
    readable = "cross-entropy"
    elementwise = True  # a sum of one term per entry, −y log ŷ
    distributions = True
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"-<y> \log <a>"
    gradient_tex = r"-\frac{1}{<m>} <Y> \oslash <A>"
    clip = (BCE_CLIP, 1.0)
    with_logits = CrossEntropyFromLogits
    meets = "softmax"

    def cost(self, Y, P):
        P = np.clip(P, *self.clip)
        return float(np.sum(-Y * np.log(P))) / Y.shape[1]

    def gradient(self, Y, P, out=None):
        P = np.clip(P, *self.clip)
        out = np.divide(Y, P, out=out)
        out *= -1.0 / Y.shape[1]
        return out

    def definition(self, y, yhat, m):
        import sympy as sp

        return 1 / m, -y * sp.log(yhat)

    def scale(self, m):
        return op("div", 1, m)

    def term(self, y, a, z):
        return op("neg", op("mul", y, op("log", a)))

    def gradient_expression(self, Y, A, Z, m):
        return op("neg", op("div", Y, op("mul", m, A)))

    def shown_term(self, y, a, z, label):
        """Only the true class's −log ŷ of each example (the others' labels are 0 and add nothing)."""
        if label == 0:
            return None
        return op("neg", op("log", a)) if label == 1 else self.term(y, a, z)


def activations() -> dict[str, type[Node]]:
    """Every registered activation (element-wise or column-wise), by name, including ones registered later."""
    return {name: cls for name, cls in NODES.items() if issubclass(cls, Unary)}


def costs() -> dict[str, type[Cost]]:
    """Every registered cost a chapter may name, by name."""
    return {name: cls for name, cls in NODES.items() if issubclass(cls, Cost) and not cls.from_logits}

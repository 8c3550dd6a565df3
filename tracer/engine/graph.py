"""The computational graph: linear nodes, activation nodes and costs.

Each node is one small class that keeps its forward computation, its local gradient and its
symbolic definition side by side (as micrograd's `Value` keeps `_backward` beside the forward
operation). Adding an activation means adding one class with `@register`, nothing else.

Shapes follow the article's code: `X` is features × examples, `W` is units × inputs, `b` is
units × 1, `Z = W·A_prev + b`, `A = f(Z)`; `m` is the number of examples. Every method writes
into `out` when it is given, so the training loop can compute straight into the trace's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

ACTIVATIONS: dict[str, type["Activation"]] = {}
COSTS: dict[str, type["Cost"]] = {}

#: exp() overflows above this; sigmoid is exactly 0 or 1 in float64 well before it.
_EXP_LIMIT = 709.0


def register(cls: type) -> type:
    """Make an activation or cost class available to chapter files under its `name`.

    A node owns its display: a class missing any of its display attributes or methods (see
    `Activation.DISPLAY`, `Cost.DISPLAY`) is refused here, never shown as a placeholder later.
    """
    base = Activation if issubclass(cls, Activation) else Cost
    missing = [a for a in base.DISPLAY if getattr(cls, a, None) is getattr(base, a, None)
               or getattr(cls, a, None) is None]
    if missing:
        raise TypeError(f"{cls.__name__}: a {base.__name__.lower()} must give its display too; "
                        f"missing: {', '.join(missing)}")
    table = ACTIVATIONS if base is Activation else COSTS
    table[cls.name] = cls
    return cls


def op(name: str, *args: Any, **keys: Any) -> dict[str, Any]:
    """One operation of a worked line's expression tree: {"op": name, "args": [...]} (see README)."""
    return {"op": name, "args": list(args), **keys}


def fill(pattern: str, **values: str) -> str:
    """A display pattern with its <A>, <Z>, <Y>, <m>, … placeholders replaced (LaTeX has too many braces for format)."""
    for key, value in values.items():
        pattern = pattern.replace(f"<{key}>", value)
    return pattern


def _out(like: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    return np.empty_like(like, dtype=float) if out is None else out


# --------------------------------------------------------------------------- linear node


class Linear:
    """Z = W·A_prev + b. Its local gradients are A_prevᵀ (for W), 1 (for b) and Wᵀ (for A_prev)."""

    def forward(self, W: np.ndarray, b: np.ndarray | None, A_prev: np.ndarray,
                out: np.ndarray | None = None) -> np.ndarray:
        out = np.matmul(W, A_prev, out=out)
        if b is not None:
            out += b
        return out

    def local_gradients(self, W: np.ndarray, A_prev: np.ndarray) -> dict[str, np.ndarray]:
        """∂Z/∂W = A_prevᵀ, ∂Z/∂b = 1 (a column of m ones), ∂Z/∂A_prev = Wᵀ, as the article writes them."""
        return {"W": A_prev.T, "b": np.ones((A_prev.shape[1], 1)), "A_prev": W.T}

    def backward(self, W: np.ndarray, A_prev: np.ndarray, dZ: np.ndarray,
                 dW: np.ndarray | None = None, db: np.ndarray | None = None,
                 dA_prev: np.ndarray | None = None, input_gradient: bool = True,
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The upstream dZ times each local gradient: dW = dZ·A_prevᵀ, db = Σ dZ, dA_prev = Wᵀ·dZ.

        db is computed only where an array for it is given (a network without biases has none);
        dA_prev only when `input_gradient` (training does not need the one reaching X).
        """
        dW = np.matmul(dZ, A_prev.T, out=dW)
        if db is not None:
            np.add.reduce(dZ, axis=1, keepdims=True, out=db)
        if input_gradient:
            dA_prev = np.matmul(W.T, dZ, out=dA_prev)
        return dW, db, dA_prev


# --------------------------------------------------------------------------- activations


class Activation:
    """A = f(Z) element by element; its local gradient dA/dZ is element by element too.

    Display (each class gives all of it): `readable` (the name in prose), `symbol` (LaTeX, the
    function's name before its argument), `glyph` (plain Unicode, for graph labels), `formula`
    (LaTeX of the definition), `gradient_tex` (LaTeX of dA/dZ with <A> and <Z> for the node's
    values), and `expression` / `local_expression`, the same as trees of operations (README).
    """

    DISPLAY: ClassVar[tuple[str, ...]] = ("readable", "symbol", "glyph", "formula", "gradient_tex",
                                          "expression", "local_expression")
    name: ClassVar[str]
    readable: ClassVar[str]
    symbol: ClassVar[str]
    glyph: ClassVar[str]
    formula: ClassVar[str]  # LaTeX of the definition, for documents
    gradient_tex: ClassVar[str]
    #: Values of z where f has no derivative (ReLU's 0): the witnesses do not difference across them.
    kinks: ClassVar[tuple[float, ...]] = ()

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def local_gradient(self, Z: np.ndarray, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def definition(self, z: Any) -> Any:
        """f(z) as a SymPy expression of the symbol `z` (SymPy is imported only here)."""
        raise NotImplementedError

    def expression(self, z: Any) -> Any:
        """f(z) as a tree of operations on the operand `z`."""
        raise NotImplementedError

    def local_expression(self, z: Any, a: Any) -> Any:
        """dA/dZ as a tree of operations on `z` and `a`; None when it is a constant (identity's 1)."""
        raise NotImplementedError


@register
class Sigmoid(Activation):
    name = "sigmoid"
    formula = r"\sigma(z) = \frac{1}{1 + e^{-z}}"
    readable = "sigmoid"
    symbol = r"\sigma"
    glyph = "σ"
    gradient_tex = r"<A> \odot \left(1 - <A>\right)"

    def forward(self, Z, out=None):
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

    def definition(self, z):
        import sympy as sp

        return 1 / (1 + sp.exp(-z))

    def expression(self, z):
        return op("sigmoid", z)

    def local_expression(self, z, a):
        return op("mul", a, op("sub", 1, a))


@register
class ReLU(Activation):
    name = "relu"
    formula = r"\operatorname{ReLU}(z) = \max(0, z)"
    readable = "ReLU"
    symbol = r"\operatorname{ReLU}"
    glyph = "ReLU"
    gradient_tex = r"\mathbf{1}\left[<Z> > 0\right]"
    kinks = (0.0,)

    def forward(self, Z, out=None):
        return np.maximum(Z, 0.0, out=out)

    def local_gradient(self, Z, A, out=None):
        # The derivative at z = 0 is taken as 0, as NN_scratch.py and most libraries do.
        return np.greater(Z, 0.0, out=_out(Z, out), casting="unsafe")

    def definition(self, z):
        import sympy as sp

        return sp.Piecewise((z, z > 0), (0, True))

    def expression(self, z):
        return op("relu", z)

    def local_expression(self, z, a):
        return op("heaviside", z)


@register
class Tanh(Activation):
    name = "tanh"
    formula = r"\tanh(z) = \frac{e^{z} - e^{-z}}{e^{z} + e^{-z}}"
    readable = "tanh"
    symbol = r"\tanh"
    glyph = "tanh"
    gradient_tex = r"1 - <A> \odot <A>"

    def forward(self, Z, out=None):
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
    name = "identity"
    formula = r"\operatorname{id}(z) = z"
    readable = "identity"
    symbol = r"\operatorname{id}"
    glyph = "id"
    gradient_tex = r"1"

    def forward(self, Z, out=None):
        out = _out(Z, out)
        np.copyto(out, Z)
        return out

    def local_gradient(self, Z, A, out=None):
        out = _out(Z, out)
        out.fill(1.0)
        return out

    def definition(self, z):
        return z

    def expression(self, z):
        return z

    def local_expression(self, z, a):
        return None

# --------------------------------------------------------------------------- costs


class Cost:
    """The cost of a batch: scale · Σ loss(y, ŷ) over the m examples (and the output units).

    `gradient` is ∂cost/∂A of the last layer; a cost with `from_logits = True` is computed from
    the last layer's Z instead, and its gradient is ∂cost/∂Z.

    Display (each class gives all of it): `readable` (the name in prose), `formula` (LaTeX of the
    definition, the cost always written Cost), `scale_tex` and `term_tex` (the cost as
    scale · Σ terms, with <m> and one example's <y>, <a> = ŷ and <z>), `gradient_tex` (with <A>,
    <Z>, <Y>, <m>), and `scale` / `term` / `gradient_expression`, the same as trees of operations.
    """

    DISPLAY: ClassVar[tuple[str, ...]] = ("readable", "formula", "scale_tex", "term_tex", "gradient_tex",
                                          "scale", "term", "gradient_expression")
    name: ClassVar[str]
    readable: ClassVar[str]
    formula: ClassVar[str]  # LaTeX of the definition, for documents
    scale_tex: ClassVar[str]
    term_tex: ClassVar[str]
    gradient_tex: ClassVar[str]
    from_logits: ClassVar[bool] = False
    #: (low, high): the prediction is clipped to this range before the cost and its gradient use it.
    clip: ClassVar[tuple[float, float] | None] = None

    def forward(self, Y: np.ndarray, A: np.ndarray, Z: np.ndarray) -> float:
        raise NotImplementedError

    def gradient(self, Y: np.ndarray, A: np.ndarray, Z: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def definition(self, y: Any, yhat: Any, m: Any) -> tuple[Any, Any]:
        """(scale, loss) as SymPy expressions, so that cost = scale · Σ loss(y, ŷ) over the examples.

        For a from-logits cost `yhat` stands for the last layer's z.
        """
        raise NotImplementedError

    def scale(self, m: int) -> Any:
        """The factor before the sum over examples, as a tree (None when there is none)."""
        raise NotImplementedError

    def term(self, y: Any, a: Any, z: Any) -> Any:
        """One example's loss as a tree of operations on its y, ŷ (= a) and z."""
        raise NotImplementedError

    def gradient_expression(self, Y: Any, A: Any, Z: Any, m: int) -> Any:
        """∂Cost/∂A_L (∂Cost/∂Z_L from logits) as a tree on the whole matrices."""
        raise NotImplementedError


@register
class SquaredError(Cost):
    name = "squared_error"
    formula = r"\mathrm{Cost} = \frac{1}{2m} \sum_{i=1}^{m} (y_i - \hat{y}_i)^2"
    readable = "squared error"
    scale_tex = r"\frac{1}{2 \cdot <m>}"
    term_tex = r"(<y> - <a>)^2"
    gradient_tex = r"\frac{1}{<m>}\left(<A> - <Y>\right)"

    def forward(self, Y, A, Z):
        diff = Y - A
        return float(np.vdot(diff, diff)) / (2 * Y.shape[1])

    def gradient(self, Y, A, Z, out=None):
        out = np.subtract(A, Y, out=out)
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
    name = "sum_of_squares"
    formula = r"\mathrm{Cost} = \sum_{i=1}^{m} (y_i - \hat{y}_i)^2"
    readable = "sum of squared errors"
    scale_tex = ""
    term_tex = r"(<y> - <a>)^2"
    gradient_tex = r"2\left(<A> - <Y>\right)"

    def forward(self, Y, A, Z):
        diff = Y - A
        return float(np.vdot(diff, diff))

    def gradient(self, Y, A, Z, out=None):
        out = np.subtract(A, Y, out=out)
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
class BinaryCrossEntropy(Cost):
    name = "binary_cross_entropy"
    formula = (r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \left[-y_i \log \hat{y}_i"
               r" - (1 - y_i) \log (1 - \hat{y}_i)\right]")
    readable = "binary cross-entropy"
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"-<y> \log <a> - (1 - <y>) \log(1 - <a>)"
    gradient_tex = r"\frac{1}{<m>}\left(<A> - <Y>\right) \oslash \left(<A> \odot \left(1 - <A>\right)\right)"
    clip = (BCE_CLIP, 1.0 - BCE_CLIP)

    def forward(self, Y, A, Z):
        P = np.clip(A, *self.clip)
        return float(np.sum(-Y * np.log(P) - (1.0 - Y) * np.log1p(-P))) / Y.shape[1]

    def gradient(self, Y, A, Z, out=None):
        P = np.clip(A, *self.clip)
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
class BinaryCrossEntropyFromLogits(Cost):
    """Cross-entropy of σ(z) computed from z itself: max(z, 0) − z·y + log(1 + e^(−|z|))."""

    name = "binary_cross_entropy_from_logits"
    formula = (r"\mathrm{Cost} = \frac{1}{m} \sum_{i=1}^{m} \left[\max(z_i, 0) - z_i y_i"
               r" + \log\left(1 + e^{-|z_i|}\right)\right]")
    from_logits = True
    readable = "binary cross-entropy (from z)"
    scale_tex = r"\frac{1}{<m>}"
    term_tex = r"\max(<z>, 0) - <z> \cdot <y> + \log\left(1 + e^{-|<z>|}\right)"
    gradient_tex = r"\frac{1}{<m>}\left(\sigma\left(<Z>\right) - <Y>\right)"

    def forward(self, Y, A, Z):
        loss = np.maximum(Z, 0.0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
        return float(np.sum(loss)) / Y.shape[1]

    def gradient(self, Y, A, Z, out=None):
        out = Sigmoid().forward(Z, out=out)
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


def cost_named(name: str, from_logits: bool = False) -> Cost:
    """The cost node for a chapter's `cost` and `from_logits` keys."""
    return COSTS[f"{name}_from_logits" if from_logits else name]()


# --------------------------------------------------------------------------- the network


@dataclass
class Layer:
    """One layer of the article's network: the linear node Z_l and the activation node A_l."""

    index: int  # 1-based, as the article names W1, Z1, A1
    units: int
    linear: Linear
    activation: Activation

    def __post_init__(self) -> None:
        l = self.index
        self.W, self.b, self.Z, self.A = f"W{l}", f"b{l}", f"Z{l}", f"A{l}"
        self.dW, self.db, self.dZ, self.dA = f"dW{l}", f"db{l}", f"dZ{l}", f"dA{l}"
        self.A_prev, self.dA_prev = f"A{l - 1}", f"dA{l - 1}"
        self.local = local_name(self.A, self.Z)


def local_name(of: str, wrt: str) -> str:
    """The trace's name for a recorded local gradient ∂of/∂wrt, e.g. 'dA1_dZ1'."""
    return f"d{of}_d{wrt}"


#: Called on every value a node computes; carry="rounded" rounds it there (None: full precision).
Carry = Callable[[str, np.ndarray], np.ndarray] | None


class Network:
    """Layers of Linear → Activation nodes and a cost: one forward and one backward pass at a time.

    Values go into `out`, a dict from the article's names (Z1, A1, dA1_dZ1, dZ1, dW1, …) to arrays,
    which is either the trace's record for this step or scratch space. `carry`, when given, sees
    every value as soon as a node has computed it (hand mode rounds it there).
    """

    def __init__(self, units: list[int], activations: list[Activation], cost: Cost, bias: bool = True):
        self.layers = [Layer(i + 1, n, Linear(), act) for i, (n, act) in enumerate(zip(units, activations))]
        self.cost = cost
        self.bias = bias

    @classmethod
    def named(cls, layers: list[tuple[int, str]], cost: str, from_logits: bool = False,
              bias: bool = True) -> "Network":
        """A network from the names a chapter file (or a trace's meta) uses: [(units, activation)], cost."""
        return cls([units for units, _ in layers], [ACTIVATIONS[name]() for _, name in layers],
                   cost_named(cost, from_logits), bias)

    @property
    def parameter_names(self) -> list[str]:
        return [name for layer in self.layers for name in ([layer.W, layer.b] if self.bias else [layer.W])]

    def shapes(self, n_inputs: int, m: int) -> dict[str, tuple[int, ...]]:
        """The shape of every node quantity a step computes, for a batch of m examples."""
        shapes: dict[str, tuple[int, ...]] = {"dA0": (n_inputs, m)}
        for layer in self.layers:
            n = layer.units
            shapes.update({layer.Z: (n, m), layer.A: (n, m), layer.local: (n, m), layer.dA: (n, m),
                           layer.dZ: (n, m), layer.dW: (n, n_inputs)})
            if self.bias:
                shapes[layer.db] = (n, 1)
            n_inputs = n
        if self.cost.from_logits:
            del shapes[self.layers[-1].dA]
        return shapes

    def forward(self, params: dict[str, np.ndarray], A0: np.ndarray, out: dict[str, np.ndarray],
                carry: Carry = None) -> None:
        A_prev = A0
        for layer in self.layers:
            Z = layer.linear.forward(params[layer.W], params.get(layer.b), A_prev, out=out[layer.Z])
            A_prev = layer.activation.forward(_carry(carry, layer.Z, Z) if carry else Z, out=out[layer.A])
            if carry:
                _carry(carry, layer.A, A_prev)

    def loss(self, Y: np.ndarray, out: dict[str, np.ndarray], carry: Carry = None) -> float:
        last = self.layers[-1]
        cost = self.cost.forward(Y, out[last.A], out[last.Z])
        return float(carry("cost", np.array(cost))) if carry else cost

    def backward(self, params: dict[str, np.ndarray], A0: np.ndarray, Y: np.ndarray,
                 out: dict[str, np.ndarray], carry: Carry = None) -> None:
        last = self.layers[-1]
        logits = self.cost.from_logits
        upstream = last.dZ if logits else last.dA
        grad = self.cost.gradient(Y, out[last.A], out[last.Z], out=out[upstream])
        if carry:
            _carry(carry, upstream, grad)
        for layer in reversed(self.layers):
            local = layer.activation.local_gradient(out[layer.Z], out[layer.A], out=out[layer.local])
            if carry:
                _carry(carry, layer.local, local)
            if layer is not last or not logits:
                dZ = np.multiply(out[layer.dA], local, out=out[layer.dZ])
                if carry:
                    _carry(carry, layer.dZ, dZ)
            if layer.index == 1:
                A_prev = A0
                if layer.dA_prev not in out:  # nothing reads the gradient reaching the input: skip it
                    grads = layer.linear.backward(params[layer.W], A0, out[layer.dZ], out[layer.dW],
                                                  out.get(layer.db), input_gradient=False)
                    if carry:
                        _carry_all(carry, layer, grads)
                    continue
            else:
                A_prev = out[layer.A_prev]
            grads = layer.linear.backward(params[layer.W], A_prev, out[layer.dZ], out[layer.dW],
                                          out.get(layer.db), out[layer.dA_prev])
            if carry:
                _carry_all(carry, layer, grads)


def _carry_all(carry: Carry, layer: Layer, grads: tuple[np.ndarray | None, ...]) -> None:
    for name, value in zip((layer.dW, layer.db, layer.dA_prev), grads):
        if value is not None:
            _carry(carry, name, value)


def _carry(carry: Carry, name: str, value: np.ndarray) -> np.ndarray:
    if carry is not None:
        value[...] = carry(name, value)
    return value

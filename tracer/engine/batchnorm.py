"""Batch normalisation as four nodes of the graph, each with its vector–Jacobian product.

A layer written `{units = N, activation = "…", batchnorm = true}` computes, for the m examples of
the batch (one column each):

    Z  = W·A_prev                 (no b: β takes its place)
    μ  = (1/m)·Σᵢ Z⁽ⁱ⁾             the mean of each unit over the batch          (`mu<l>`)
    σ² = (1/m)·Σᵢ (Z⁽ⁱ⁾ − μ)²      its variance, biased: 1/m, not 1/(m − 1)        (`var<l>`)
    Ẑ  = (Z − μ) / √(σ² + ε)                                                       (`Zhat<l>`)
    Z̃  = γ ⊙ Ẑ + β                 learned scale γ (`gamma<l>`, from 1) and shift β (`beta<l>`, from 0)  (`Zt<l>`)
    A  = activation(Z̃)

Z reaches the cost by three paths (through μ, through σ² and through Ẑ) and μ by two (through σ²
and through Ẑ); the graph sums them as it sums any node's paths, so the backward pass is the
article's rule applied node by node, with no formula for "the batch-norm gradient" typed in.

For inference the layer keeps running averages of μ and σ² (`running`, PyTorch's convention:
momentum 0.1, the variance's running average taken from the unbiased batch variance).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tracer.engine import keys
from tracer.engine.nodes import Node, Worked, register
from tracer.operations import op
from tracer.rounding import constant_tex

#: ε under the square root when a chapter gives no `batchnorm_epsilon` (PyTorch's default).
EPSILON = 1e-5
#: How far each step moves the running averages toward the batch's statistics (PyTorch's default).
MOMENTUM = 0.1


def _column(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    return (shapes[0][0], 1)


class _Statistic(Node):
    """A node of batch normalisation (kind "normalisation")."""

    kind = "normalisation"

    def worked_forward(self, sheet):
        tree = self.expression(*[sheet.operand(n) for n in self.inputs + self.params], m=sheet.m)
        return [Worked(self.name, self.definition_tex(sheet.symbol), tree)]

    def worked_backward(self, sheet):
        S = sheet.symbol
        out = []
        for wrt in self.receivers():
            target = sheet.target(self, wrt)
            formula = f"{S(target)} = " + self.backward_tex(wrt, S)
            out.append(Worked(target, formula, self.worked_expression(wrt, sheet)))
        return out

    def worked_expression(self, wrt: str, sheet: Any) -> Any:
        """The tree of what this node passes to `wrt`, on the step's numbers (m a number)."""
        args = {n: sheet.operand(n) for n in self.inputs + self.params}
        return self.backward_expression(wrt, sheet.operand(keys.grad(self.name)), args, {}, m=sheet.m)

    def backward_tex(self, wrt: str, S: Any) -> str:
        raise NotImplementedError


def _m(m: Any, of: Any) -> Any:
    """The number of examples: `m` when the caller knows it (a worked line), else counted from `of`."""
    return m if m is not None else op("count", of)


class _BatchStatistic(_Statistic):
    """A statistic of each unit over the batch (units × 1); in prediction, its running average when kept."""

    def shape(self, shapes):
        return _column(shapes)

    def infer(self, args, params, running=None):
        kept = (running or {}).get(keys.running(self.name))
        return np.array(kept, dtype=float) if kept is not None else self.forward(args, params)


@register
class BatchMean(_BatchStatistic):
    """μ = (1/m)·Σᵢ Z⁽ⁱ⁾ for each unit; each entry of Z passes back ∂Cost/∂μ / m."""

    op = "batch_mean"
    readable = "batch mean"
    glyph = "μ"
    formula = r"\mu = \frac{1}{m} \sum_{i=1}^{m} z^{(i)}"

    def forward(self, args, params, out=None):
        out = np.add.reduce(args[0], axis=1, keepdims=True, out=out)
        out *= 1.0 / args[0].shape[1]
        return out

    def vjp(self, grad, args, params, value, local, out):
        target = out.get(self.inputs[0])
        if target is not None:
            np.multiply(grad, 1.0 / args[0].shape[1], out=target)

    def expression(self, Z, m=None):
        return op("div", op("sum", Z, axis=1), _m(m, Z))

    def backward_expression(self, wrt, grad, args, local, m=None):
        Z = args[self.inputs[0]]
        return op("spread", op("div", grad, _m(m, Z)), Z)

    def definition_tex(self, S):
        return rf"{S(self.name)} = \frac{{1}}{{m}} \sum_{{i=1}}^{{m}} {S(self.inputs[0])}^{{(i)}}"

    def backward_tex(self, wrt, S):
        return rf"\frac{{1}}{{m}} {S(keys.grad(self.name))} \, \mathbf{{1}}^{{T}}"


@register
class BatchVariance(_BatchStatistic):
    """σ² = (1/m)·Σᵢ (Z⁽ⁱ⁾ − μ)², the biased variance; Z receives 2(Z − μ)/m · ∂Cost/∂σ², μ the negated row sum."""

    op = "batch_variance"
    readable = "batch variance"
    glyph = "σ²"
    formula = r"\sigma^{2} = \frac{1}{m} \sum_{i=1}^{m} \left(z^{(i)} - \mu\right)^{2}"

    def forward(self, args, params, out=None):
        Z, M = args
        d = Z - M
        d *= d
        out = np.add.reduce(d, axis=1, keepdims=True, out=out)
        out *= 1.0 / Z.shape[1]
        return out

    def vjp(self, grad, args, params, value, local, out):
        Z, M = args
        via_Z = out.get(self.inputs[0])
        via_Z = np.subtract(Z, M, out=via_Z)
        via_Z *= grad
        via_Z *= 2.0 / Z.shape[1]
        if out.get(self.inputs[1]) is not None:
            np.add.reduce(via_Z, axis=1, keepdims=True, out=out[self.inputs[1]])
            np.negative(out[self.inputs[1]], out=out[self.inputs[1]])

    def expression(self, Z, M, m=None):
        return op("div", op("sum", op("square", op("sub", Z, M)), axis=1), _m(m, Z))

    def backward_expression(self, wrt, grad, args, local, m=None):
        Z, M = args[self.inputs[0]], args[self.inputs[1]]
        via_Z = op("div", op("mul", op("mul", 2, grad), op("sub", Z, M)), _m(m, Z))
        return via_Z if wrt == self.inputs[0] else op("neg", op("sum", via_Z, axis=1))

    def definition_tex(self, S):
        Z, M = (S(n) for n in self.inputs)
        return rf"{S(self.name)} = \frac{{1}}{{m}} \sum_{{i=1}}^{{m}} \left({Z}^{{(i)}} - {M}\right)^{{2}}"

    def backward_tex(self, wrt, S):
        Z, M = (S(n) for n in self.inputs)
        dV = S(keys.grad(self.name))
        if wrt == self.inputs[0]:
            return rf"\frac{{2}}{{m}} {dV} \left({Z} - {M}\right)"
        return rf"-\sum_{{i=1}}^{{m}} \frac{{2}}{{m}} {dV} \left({Z}^{{(i)}} - {M}\right)"


@register
class Normalise(_Statistic):
    """Ẑ = (Z − μ)/√(σ² + ε): each unit of each example standardised by the batch's statistics."""

    op = "normalise"
    readable = "normalisation"
    glyph = "norm"
    formula = r"\hat{z} = \frac{z - \mu}{\sqrt{\sigma^{2} + \varepsilon}}"

    @property
    def epsilon(self) -> float:
        return float(self.options.get("epsilon", EPSILON))

    def forward(self, args, params, out=None):
        Z, M, V = args
        out = np.subtract(Z, M, out=out)
        out /= np.sqrt(V + self.epsilon)
        return out

    def vjp(self, grad, args, params, value, local, out):
        Z, M, V = args
        shifted = V + self.epsilon
        via_Z = np.divide(grad, np.sqrt(shifted), out=out.get(self.inputs[0]))
        names = self.inputs
        if out.get(names[1]) is not None:
            np.add.reduce(via_Z, axis=1, keepdims=True, out=out[names[1]])
            np.negative(out[names[1]], out=out[names[1]])
        if out.get(names[2]) is not None:  # −½ Σᵢ dẐ ⊙ (Z − μ) / (σ² + ε)^{3/2} = −½ Σᵢ dẐ ⊙ Ẑ / (σ² + ε)
            part = grad * value
            part /= -2.0 * shifted
            np.add.reduce(part, axis=1, keepdims=True, out=out[names[2]])

    def _root(self, V: Any) -> Any:
        return op("sqrt", op("add", V, self.epsilon))

    def expression(self, Z, M, V, m=None):
        return op("div", op("sub", Z, M), self._root(V))

    def backward_expression(self, wrt, grad, args, local, m=None):
        Z, M, V = (args[n] for n in self.inputs)
        if wrt == self.inputs[0]:
            return op("div", grad, self._root(V))
        if wrt == self.inputs[1]:
            return op("neg", op("sum", op("div", grad, self._root(V)), axis=1))
        return self._variance_path(grad, self.expression(Z, M, V), V)

    def _variance_path(self, grad: Any, N: Any, V: Any) -> Any:
        """∂Cost/∂σ² = Σᵢ dẐ⁽ⁱ⁾ ⊙ Ẑ⁽ⁱ⁾ ⊘ (−2(σ² + ε)): −½ Σᵢ dẐ⁽ⁱ⁾ (Z⁽ⁱ⁾ − μ)(σ² + ε)^{−3/2}, with Ẑ for (Z − μ)/√(σ² + ε)."""
        return op("sum", op("div", op("mul", grad, N), op("mul", -2, op("add", V, self.epsilon))), axis=1)

    def worked_expression(self, wrt, sheet):
        """As `backward_expression`, σ²'s path written with Ẑ itself (the node's value), as the engine works it."""
        if wrt == self.inputs[2]:
            return self._variance_path(sheet.operand(keys.grad(self.name)), sheet.operand(self.name),
                                       sheet.operand(wrt))
        return super().worked_expression(wrt, sheet)

    def definition_tex(self, S):
        Z, M, V = (S(n) for n in self.inputs)
        return rf"{S(self.name)} = \frac{{{Z} - {M}}}{{\sqrt{{{V} + \varepsilon}}}}"

    def backward_tex(self, wrt, S):
        Z, M, V = (S(n) for n in self.inputs)
        dN = S(keys.grad(self.name))
        if wrt == self.inputs[0]:
            return rf"{dN} \oslash \sqrt{{{V} + \varepsilon}}"
        if wrt == self.inputs[1]:
            return rf"-\sum_{{i=1}}^{{m}} {dN}^{{(i)}} \oslash \sqrt{{{V} + \varepsilon}}"
        return rf"\sum_{{i=1}}^{{m}} {dN}^{{(i)}} {S(self.name)}^{{(i)}} \oslash \left(-2 \left({V} + \varepsilon\right)\right)"


@register
class ScaleShift(_Statistic):
    """Z̃ = γ ⊙ Ẑ + β with a scale γ and a shift β per unit, learned (γ starts at 1, β at 0)."""

    op = "scale_shift"
    readable = "scale and shift"
    glyph = "γẑ+β"
    formula = r"\tilde{z} = \gamma \hat{z} + \beta"
    starts: ClassVar[dict[int, float]] = {0: 1.0, 1: 0.0}  # γ from 1, β from 0

    @classmethod
    def make(cls, name: str, source: str, layer: str) -> "ScaleShift":
        return cls(name, (source,), (f"gamma{layer}", f"beta{layer}"))

    def parameter_shapes(self, shapes):
        return {p: _column(shapes) for p in self.params}

    def starting(self, shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
        """γ = 1 and β = 0 before step 0."""
        return {p: np.full(_column(shapes), self.starts[i]) for i, p in enumerate(self.params)}

    def forward(self, args, params, out=None):
        out = np.multiply(params[0], args[0], out=out)
        out += params[1]
        return out

    def vjp(self, grad, args, params, value, local, out):
        gamma, beta = self.params
        np.add.reduce(grad * args[0], axis=1, keepdims=True, out=out[gamma])
        np.add.reduce(grad, axis=1, keepdims=True, out=out[beta])
        if out.get(self.inputs[0]) is not None:
            np.multiply(params[0], grad, out=out[self.inputs[0]])

    def expression(self, N, gamma, beta, m=None):
        return op("add", op("mul", gamma, N), beta)

    def backward_expression(self, wrt, grad, args, local, m=None):
        gamma, beta = self.params
        if wrt == gamma:
            return op("sum", op("mul", grad, args[self.inputs[0]]), axis=1)
        if wrt == beta:
            return op("sum", grad, axis=1)
        return op("mul", args[gamma], grad)

    def definition_tex(self, S):
        gamma, beta = (S(p) for p in self.params)
        return rf"{S(self.name)} = {gamma} \odot {S(self.inputs[0])} + {beta}"

    def backward_tex(self, wrt, S):
        gamma, beta = self.params
        dT = S(keys.grad(self.name))
        if wrt == gamma:
            return rf"\sum_{{i=1}}^{{m}} {dT}^{{(i)}} \odot {S(self.inputs[0])}^{{(i)}}"
        if wrt == beta:
            return rf"\sum_{{i=1}}^{{m}} {dT}^{{(i)}}"
        return rf"{S(gamma)} \odot {dT}"


def names(layer: str) -> dict[str, str]:
    """The quantity names of layer `layer`'s batch normalisation: mu1, var1, Zhat1, Zt1, gamma1, beta1."""
    return {"mean": f"mu{layer}", "variance": f"var{layer}", "normalised": f"Zhat{layer}",
            "scaled": f"Zt{layer}", "gamma": f"gamma{layer}", "beta": f"beta{layer}"}


def nodes(Z: str, layer: str, epsilon: float = EPSILON) -> list[Node]:
    """The four nodes after the layer's Z = W·A_prev: μ, σ², Ẑ and Z̃ (the activation reads Z̃)."""
    n = names(layer)
    return [BatchMean(n["mean"], (Z,)),
            BatchVariance(n["variance"], (Z, n["mean"])),
            Normalise(n["normalised"], (Z, n["mean"], n["variance"]), epsilon=float(epsilon)),
            ScaleShift.make(n["scaled"], n["normalised"], layer)]



class RunningAverages:
    """The running mean and variance of every batch-normalised layer, for inference (PyTorch's
    convention): both start at 0 and 1; after each step's forward pass, running ← (1 − 0.1)·running +
    0.1·batch value, the variance's batch value being the unbiased one, σ²·m/(m − 1)."""

    def __init__(self, graph: object, shapes: dict[str, tuple[int, ...]]):
        stats = [n for n in graph.nodes if isinstance(n, (BatchMean, BatchVariance))]  # type: ignore[attr-defined]
        self.nodes = stats
        self.values = {keys.running(n.name): np.zeros(shapes[n.name]) if isinstance(n, BatchMean)
                       else np.ones(shapes[n.name]) for n in stats}
        #: (statistic, its running average, the weight of the batch's value: 0.1, the variance's by m/(m − 1))
        self._plan: list[tuple[str, np.ndarray, bool]] = [
            (n.name, self.values[keys.running(n.name)], isinstance(n, BatchVariance)) for n in stats]

    def __bool__(self) -> bool:
        return bool(self.nodes)

    def update(self, out: dict[str, np.ndarray], m: int) -> None:
        unbiased = MOMENTUM * (m / (m - 1)) if m > 1 else MOMENTUM
        for name, kept, variance in self._plan:
            kept *= 1.0 - MOMENTUM
            kept += (unbiased if variance else MOMENTUM) * out[name]


def conventions(graph: object) -> list[str]:
    """The sentences that state batch normalisation's conventions, for a graph that has it (prose with $…$ maths)."""
    layers = [n for n in graph.nodes if isinstance(n, Normalise)]  # type: ignore[attr-defined]
    if not layers:
        return []
    eps = ", ".join(sorted({constant_tex(n.epsilon) for n in layers}))
    return [r"Batch normalisation divides the variance by $m$, not $m - 1$, with "
            rf"$\varepsilon = {eps}$; $\gamma^{{[l]}}$ and $\beta^{{[l]}}$ are layer $l$'s learned scale and shift "
            r"(from 1 and 0), not Adam's $\beta_{1}, \beta_{2}$; a prediction uses running averages of $\mu$ and "
            r"$\sigma^{2}$."]

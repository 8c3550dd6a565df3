"""Regularisation of the weights: the L2 penalty in the cost, and weight decay in the update.

Two conventions, each stated once here and in the documents:

* **L2** (`[train] l2 = λ`) adds (λ/2m)·Σₗ‖Wₗ‖² to the cost (the weights only, not the biases), so each
  dWₗ gains (λ/m)·Wₗ. The penalty belongs to the linear node that owns the weights (`PenalisedLinear`,
  a linear node whose weight gradient has that extra term), so the trace records dWₗ with the term in
  it and every witness of `tracer verify` sees it through the node's own expression trees.
* **Weight decay** (`[train] weight_decay = λ`) shrinks each weight by α·λ·W at every step, after and
  apart from the optimizer's own step (PyTorch's `torch.optim.AdamW` convention; the biases too when
  `decay_biases = true`). With plain gradient descent this is the same as an L2 gradient of λ·W;
  with Adam it is not, because Adam divides the L2 term by √ŝ like the rest of the gradient, while
  decay moves every weight by the same fraction α·λ whatever its gradient's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tracer.engine import keys
from tracer.engine.graph import Graph
from tracer.engine.nodes import Linear, Worked, register
from tracer.engine.optimizers import OPTIMIZERS, Optimizer
from tracer.operations import op
from tracer.rounding import constant_tex


@dataclass(frozen=True)
class Regularisation:
    """A chapter's `[train] l2`, `weight_decay` and `decay_biases` (0: none)."""

    l2: float = 0.0
    weight_decay: float = 0.0
    decay_biases: bool = False

    def __bool__(self) -> bool:
        return bool(self.l2 or self.weight_decay)


# --------------------------------------------------------------------------- L2: a linear node with a penalty


@register
class PenalisedLinear(Linear):
    """Z = W·A_prev + b, whose weights carry the L2 penalty (λ/2m)·‖W‖² in the cost: dW = dZ·A_prevᵀ + (λ/m)·W."""

    op = "linear_l2"
    readable = "linear"

    @property
    def l2(self) -> float:
        return float(self.options["l2"])

    def penalty(self, params: list[np.ndarray], m: int) -> float:
        """(λ/2m)·‖W‖²: this node's part of the cost."""
        W = params[0]
        return self.l2 * float(np.vdot(W, W)) / (2 * m)

    def penalty_expression(self, W: Any, m: Any) -> Any:
        """(λ/2m)·Σ W², as a tree."""
        return op("mul", op("div", self.l2, op("mul", 2, m)), op("sum", op("square", W)))

    def vjp(self, grad, args, params, value, local, out):
        super().vjp(grad, args, params, value, local, out)
        out[self.W] += (self.l2 / args[0].shape[1]) * params[0]

    def backward_expression(self, wrt, grad, args, local):
        tree = super().backward_expression(wrt, grad, args, local)
        if wrt != self.W:
            return tree
        A = args[self.inputs[0]]
        return op("add", tree, op("mul", op("div", self.l2, op("count", A)), args[self.W]))

    def worked_backward(self, sheet):
        """dW = dZ·A_prevᵀ + (λ/m)·W: the data term as a plain linear node works it, then the penalty's term."""
        lines = super().worked_backward(sheet)
        S, dW = sheet.symbol, keys.grad(self.W)
        out = []
        for line in lines:
            if line.quantity == dW:
                formula = line.formula + rf" + \frac{{\lambda}}{{m}} {S(self.W)}"
                tree = op("add", line.tree, op("mul", op("div", self.l2, sheet.m), sheet.operand(self.W)))
                line = Worked(dW, formula, tree)
            out.append(line)
        return out


def penalised(graph: Graph, l2: float) -> Graph:
    """The graph with every linear node's weights carrying the L2 penalty λ (the graph itself when λ is 0)."""
    if not l2:
        return graph
    nodes = []
    for node in graph.nodes:
        if isinstance(node, Linear) and not isinstance(node, PenalisedLinear):
            spec = node.spec()
            node = PenalisedLinear(spec["name"], tuple(spec["inputs"]), tuple(spec["params"]),
                                   **{k: v for k, v in spec.items() if k not in ("op", "name", "inputs", "params")},
                                   l2=float(l2))
        nodes.append(node)
    return Graph(nodes)


def penalty(graph: Any, params: dict[str, np.ndarray], m: int) -> float:
    """The L2 penalty of the whole network, (λ/2m)·Σₗ‖Wₗ‖² (0 without one)."""
    return sum((node.penalty([params[p] for p in node.params], m) for node in graph.nodes
                if isinstance(node, PenalisedLinear)), 0.0)


def has_penalty(graph: Graph) -> bool:
    """Does a node of the graph carry an L2 penalty (worked out once per graph)?"""
    known = graph.__dict__.get("_has_penalty")
    if known is None:
        known = graph.__dict__["_has_penalty"] = any(isinstance(n, PenalisedLinear) for n in graph.nodes)
    return known


def penalised_cost(graph: Any, Y: np.ndarray, out: dict[str, np.ndarray], params: dict[str, np.ndarray],
                   carry: Any = None) -> tuple[float, dict[str, float]]:
    """The cost of a step and, with an L2 penalty, its two parts as a student writes them down (each rounded
    in hand mode, then their sum): (cost, {cost_data, penalty}), the parts empty without a penalty."""
    data = graph.loss(Y, out, carry)
    if not has_penalty(graph):
        return data, {}
    extra = penalty(graph, params, Y.shape[1])
    extra = float(carry(keys.PENALTY, np.array(extra))) if carry else extra
    cost = float(carry(keys.COST, np.array(data + extra))) if carry else data + extra
    return cost, {keys.DATA_COST: data, keys.PENALTY: extra}


def penalty_expression(graph: Any, operand: Any, m: Any) -> Any:
    """The penalty as a tree (None without one): the sum of each penalised node's (λ/2m)·Σ W²."""
    terms = [node.penalty_expression(operand(node.W), m) for node in graph.nodes if isinstance(node, PenalisedLinear)]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else op("add", *terms)


# --------------------------------------------------------------------------- weight decay: the update


class DecoupledDecay(Optimizer):
    """Any optimizer's update, then each decayed parameter shrunk by α·λ·P (its value before the step):
    P ← P − α·step(dP) − α·λ·P, as torch.optim.AdamW (and SGD's weight_decay, which for plain gradient
    descent is the same thing)."""

    def __init__(self, inner: Optimizer, decay: float, decayed: set[str]):
        self.inner = inner
        self.decay = decay
        self.decayed = decayed
        self.name = inner.name
        self.state = inner.state
        self.uses = inner.uses
        self.readable = inner.readable
        self.update_tex = inner.update_tex
        self.state_tex = inner.state_tex
        self.learning_rate = inner.learning_rate
        self.hyper = inner.hyper

    @property
    def memory(self) -> dict[str, dict[str, np.ndarray]]:  # type: ignore[override]
        return self.inner.memory

    @memory.setter
    def memory(self, value: dict[str, dict[str, np.ndarray]]) -> None:
        self.inner.memory = value

    def update(self, name, param, grad, t, out, carry=None):
        self.inner.update(name, param, grad, t, out, carry)
        if name in self.decayed:
            out -= (self.learning_rate * self.decay) * param

    #: The decay's term in a decayed parameter's update (LaTeX, <P> for the parameter).
    decay_tex = r" - \alpha \lambda \, <P>"

    def expression(self, P, dP, alpha, state, hyper, t):
        return self.inner.expression(P, dP, alpha, state, hyper, t)

    def with_decay(self, tree: Any, P: Any, alpha: Any) -> Any:
        """A decayed parameter's update: the optimizer's, then − αλP."""
        return op("sub", tree, op("mul", op("mul", alpha, self.decay), P))

    def state_expression(self, name, previous, dP, hyper):
        return self.inner.state_expression(name, previous, dP, hyper)


def decayed_parameters(graph: Any, decay_biases: bool) -> set[str]:
    """The weights of every linear node, and their biases when `decay_biases`."""
    out = set()
    for node in graph.linear:
        out.add(node.W)
        if decay_biases and node.b:
            out.add(node.b)
    return out


def make_optimizer(chapter: Any, learning_rate: float | None = None) -> Optimizer:
    """The chapter's optimizer, with its weight decay when it has one."""
    rate = chapter.learning_rate if learning_rate is None else learning_rate
    inner = OPTIMIZERS[chapter.optimizer](rate, **chapter.hyper)
    reg = getattr(chapter, "regularisation", None)
    if reg is None or not reg.weight_decay:
        return inner
    return DecoupledDecay(inner, reg.weight_decay, decayed_parameters(chapter.network, reg.decay_biases))




def conventions(chapter: Any) -> list[str]:
    """The sentences that state the chapter's regularisation conventions (prose with $…$ maths)."""
    reg = getattr(chapter, "regularisation", None)
    out = []
    if reg is not None and reg.l2:
        out.append(r"The cost has an L2 penalty on the weights, $\frac{\lambda}{2m} \sum_{l} \lVert W_{l} \rVert^{2}$ "
                   rf"with $\lambda = {constant_tex(reg.l2)}$ (the sum of the squares of every weight, the biases left out): "
                   r"$\mathrm{Cost} = \mathrm{Cost}_{0} + \mathrm{Penalty}$, $\mathrm{Cost}_{0}$ being the cost "
                   r"without it, and each $\partial \mathrm{Cost} / \partial W_{l}$ gains the term "
                   r"$\frac{\lambda}{m} W_{l}$.")
    if reg is not None and reg.weight_decay:
        which = "every weight and bias" if reg.decay_biases else "every weight (not the biases)"
        out.append(rf"Each update also shrinks {which} by $\alpha \lambda$ times its value, with "
                   rf"$\lambda = {constant_tex(reg.weight_decay)}$: weight decay, applied apart from the gradient.")
        if chapter.optimizer in ("adam", "rmsprop"):
            out.append(r"Under " + OPTIMIZERS[chapter.optimizer].readable + r" this is not the same as an L2 penalty: "
                       r"the penalty's gradient $\frac{\lambda}{m} W$ would be divided by $\sqrt{\hat{s}}$ like the rest "
                       r"of the gradient, so a weight with large gradients would hardly shrink, while weight decay "
                       r"shrinks every weight by the same fraction $\alpha \lambda$.")
    return out

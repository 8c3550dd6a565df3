"""Inverted dropout as two nodes of the graph: the mask D, drawn at every step, and Ã = A ⊙ D / p.

A layer written `{units = N, activation = "…", keep = p}` keeps each of its outputs with probability
p at every training step: D<l> holds one Bernoulli(p) draw (1: kept, 0: dropped) per unit and
example, and the layer passes on Ad<l> = A<l> ⊙ D<l> / p, so that the expected value of each entry
is A<l> itself (the 1/p is what makes dropout "inverted": nothing needs rescaling at inference).

The masks come from one generator seeded with `[train] dropout_seed`, drawn step after step and, in
a step, layer after layer, as a notebook draws `np.random.rand(*A.shape) < keep_prob`: the same
chapter always draws the same masks, whatever it records. D is a node of the trace like any other:
it is recorded, shown in the worked step and read by the backward pass, which sends dA = dÃ ⊙ D / p
back (a dropped unit passes nothing back). It receives the gradient ∂Cost/∂D = dÃ ⊙ A / p but passes
nothing on: the mask is drawn, not computed from A. In prediction (the decision boundary, the
exercises' forward pass of a trained network) dropout is off: Ã = A.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tracer.engine import keys
from tracer.engine.nodes import Node, Worked, register
from tracer.operations import op
from tracer.rounding import constant_tex


@register
class DropoutMask(Node):
    """D: a Bernoulli(p) draw per entry of the layer's A, made by the training loop at every step (`drawn`)."""

    op = "dropout_mask"
    kind = "dropout"
    readable = "dropout mask"
    glyph = "D"
    formula = r"D \sim \operatorname{Bernoulli}(p)"
    #: The training loop fills this node's value before the forward pass (`draw`); the forward pass
    #: and the witnesses take it as recorded.
    drawn: ClassVar[bool] = True

    @property
    def keep(self) -> float:
        return float(self.options["keep"])

    def receivers(self):
        return ()  # drawn, not computed from A: no gradient goes back through it

    def draw(self, rng: np.random.RandomState, out: np.ndarray) -> None:
        """One step's mask: each entry 1 with probability p (`rng.rand() < p`), else 0."""
        np.less(rng.rand(*out.shape), self.keep, out=out, casting="unsafe")

    def forward(self, args, params, out=None):
        """Outside training (no draw): every unit kept."""
        out = np.empty_like(args[0], dtype=float) if out is None else out
        out.fill(1.0)
        return out

    def infer(self, args, params, running=None):
        return np.ones_like(args[0], dtype=float)

    def draw_code(self, rng: str) -> str:
        """NumPy that draws this step's mask from the generator named `rng`, as `draw` does."""
        return f"{self.name} = ({rng}.rand(*{self.inputs[0]}.shape) < {self.keep!r}).astype(float)"

    def vjp(self, grad, args, params, value, local, out):
        pass

    def expression(self, *inputs):
        return op("heaviside", 1)  # never evaluated: the witnesses take a drawn node as recorded

    def definition_tex(self, S):
        return rf"{S(self.name)} \sim \operatorname{{Bernoulli}}({constant_tex(self.keep)})"

    def worked_forward(self, sheet):
        """The mask as drawn (whole numbers, 0 or 1)."""
        return [Worked(self.name, self.definition_tex(sheet.symbol), sheet.operand(self.name, exact=True), whole=True)]

    def worked_backward(self, sheet):
        return []


@register
class Dropout(Node):
    """Ã = A ⊙ D / p: the layer's output with the dropped units zeroed and the kept ones scaled by 1/p."""

    op = "dropout"
    kind = "dropout"
    readable = "dropout"
    glyph = "⊙D/p"
    formula = r"\tilde{a} = a \, d / p"

    @property
    def keep(self) -> float:
        return float(self.options["keep"])

    def forward(self, args, params, out=None):
        A, D = args
        out = np.multiply(A, D, out=out)
        out *= 1.0 / self.keep
        return out

    def infer(self, args, params, running=None):
        """In prediction dropout is off: Ã = A."""
        return np.array(args[0], dtype=float)

    def vjp(self, grad, args, params, value, local, out):
        """dA = dÃ ⊙ D / p; dD = dÃ ⊙ A / p."""
        A, D = args
        for name, other in ((self.inputs[0], D), (self.inputs[1], A)):
            if out.get(name) is not None:
                np.multiply(grad, other, out=out[name])
                out[name] *= 1.0 / self.keep

    def expression(self, A, D):
        return op("div", op("mul", A, D), self.keep)

    def backward_expression(self, wrt, grad, args, local):
        other = args[self.inputs[1] if wrt == self.inputs[0] else self.inputs[0]]
        return op("div", op("mul", grad, other), self.keep)

    def receivers(self):
        return self.inputs[:1]  # what the documents work: dA (dD is recorded, not a step of the method)

    def definition_tex(self, S):
        A, D = (S(n) for n in self.inputs)
        return rf"{S(self.name)} = {A} \odot {D} / p"

    def worked_forward(self, sheet):
        A, D = self.inputs
        tree = op("div", op("mul", sheet.operand(A), sheet.operand(D, exact=True)), self.keep)
        return [Worked(self.name, self.definition_tex(sheet.symbol), tree)]

    def worked_backward(self, sheet):
        S = sheet.symbol
        A, D = self.inputs
        target, grad = sheet.target(self, A), keys.grad(self.name)
        tree = op("div", op("mul", sheet.operand(grad), sheet.operand(D, exact=True)), self.keep)
        return [Worked(target, rf"{S(target)} = {S(grad)} \odot {S(D)} / p", tree)]




def nodes(A: str, layer: str, keep: float) -> list[Node]:
    """The mask D<layer> (the shape of A) and Ad<layer> = A ⊙ D / keep, after the layer's activation A."""
    mask = DropoutMask(f"D{layer}", (A,), keep=float(keep))
    return [mask, Dropout(f"Ad{layer}", (A, mask.name), keep=float(keep))]


def draw_masks(graph: object, rng: np.random.RandomState, out: dict[str, np.ndarray]) -> None:
    """One step's masks, layer after layer, into `out`."""
    for node in graph.nodes:  # type: ignore[attr-defined]
        if getattr(node, "drawn", False):
            node.draw(rng, out[node.name])


def conventions(graph: object) -> list[str]:
    """The sentence that states inverted dropout's convention, for a graph that has it (prose with $…$ maths)."""
    masks = [n for n in graph.nodes if isinstance(n, DropoutMask)]  # type: ignore[attr-defined]
    if not masks:
        return []
    keep = ", ".join(sorted({constant_tex(n.keep) for n in masks}))
    return [rf"Dropout keeps each unit of the layer with probability $p = {keep}$ at every step: the mask $D$ holds 1 "
            r"for a kept unit and 0 for a dropped one, drawn anew at each step, and the kept units are divided by $p$, "
            r"$\tilde{A} = A \odot D / p$, so that each entry keeps its expected value; the backward pass sends "
            r"$\partial \mathrm{Cost} / \partial A = \partial \mathrm{Cost} / \partial \tilde{A} \odot D / p$ back, and "
            r"a prediction uses no dropout."]

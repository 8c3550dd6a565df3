"""The catalogue of common mistakes: each one a small variant of the real training step.

A mistake is not a list of known wrong answers: it swaps one part of the engine for a slightly
wrong one (a cost whose gradient has no 1/m, an activation whose derivative is taken at Z, a
linear node that does not sum the bias gradient, an optimizer that adds the step …) and reruns
the step with the engine's own `Graph.forward / loss / backward` and optimizer: each altered
part is one node of the graph replaced (`Graph.replaced`). The checker
compares a wrong answer with what each variant computes and names the ones that reproduce it.

`rerun_step` with no change gives exactly the trace's numbers (tested), so a variant differs
from the truth only by its mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from tracer.engine import keys
from tracer.engine.chapter import Chapter, features
from tracer.engine.graph import Carry, Graph
from tracer.engine.keys import COST, INPUT, TARGET
from tracer.engine.nodes import Activation, ColumnActivation, Cost, Linear, Node
from tracer.engine.optimizers import OPTIMIZERS, Optimizer
from tracer.engine.batchnorm import BatchVariance
from tracer.engine.dropout import Dropout
from tracer.engine.penalties import PenalisedLinear, make_optimizer, penalised_cost
from tracer.engine.trace import Trace
from tracer.rounding import round_half_up, to_decimal

# --------------------------------------------------------------------------- the step to rerun


@dataclass
class StepContext:
    """What a step starts from: parameters, batch, optimizer state before it, and the step before."""

    chapter: Chapter
    step: int
    params: dict[str, np.ndarray]  # before the step's update
    A0: np.ndarray
    Y: np.ndarray
    state: dict[str, dict[str, np.ndarray]]  # optimizer memory before the step: {param: {"v": …}}
    previous: dict[str, np.ndarray] | None = None  # parameters before the previous step
    carry: Carry = None  # hand mode: round each value as it is computed
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # the step as recorded


def step_context(chapter: Chapter, trace: Trace, step: int, carry: Carry = None) -> StepContext:
    """The context of `step` read from a trace that recorded `step` (and `step - 1`, if there is one)."""
    now = trace.at(step)
    before = trace.at(step - 1) if step >= 1 else None
    names = trace.parameter_names
    state_names = trace.meta["state"]
    state = {p: {s: (np.array(before[s + p], dtype=float) if before is not None else np.zeros_like(now[p]))
                 for s in state_names} for p in names}
    previous = {p: before[p] for p in names} if before is not None else None
    return StepContext(chapter, step, {p: now[p] for p in names}, now["A0"], now["Y"], state, previous, carry,
                       {k: np.asarray(v) for k, v in now.items()})


def rerun_step(ctx: StepContext, *, net: Graph | None = None, params: dict[str, np.ndarray] | None = None,
               A0: np.ndarray | None = None, Y: np.ndarray | None = None,
               optimizer: Optimizer | None = None, shapes: dict[str, tuple[int, ...]] | None = None,
               update_from: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One training step through the engine: forward, cost, backward, update; every value by name.

    Each keyword replaces one part of the real step: `net` (nodes), `params`, the batch, the
    `optimizer`, the arrays' `shapes` (a mistake may make db one number per example) and
    `update_from` (the parameters the update is applied to). A gradient whose shape no longer fits
    its parameter gives no `…_after` for it.
    """
    chapter = ctx.chapter
    net = net or chapter.network
    params = params if params is not None else ctx.params
    A0 = ctx.A0 if A0 is None else A0
    Y = ctx.Y if Y is None else Y
    sizes = net.shapes(features(A0), A0.shape[-1])
    sizes.update(shapes or {})
    out = {k: np.zeros(s) for k, s in sizes.items()}
    for node in net.nodes:  # a dropout mask: the one the step drew
        if getattr(node, "drawn", False) and node.name in ctx.truth and np.shape(ctx.truth[node.name]) == \
                out[node.name].shape:
            out[node.name][...] = ctx.truth[node.name]
    with np.errstate(all="ignore"):
        net.forward(params, A0, out, ctx.carry)
        cost, parts = penalised_cost(net, Y, out, params, ctx.carry)
        net.backward(params, A0, Y, out, ctx.carry)
        values: dict[str, np.ndarray] = {**out, COST: np.asarray(cost), INPUT: A0, TARGET: Y,
                                         **{k: np.asarray(v) for k, v in parts.items()}}
        optimizer = optimizer or real_optimizer(ctx)
        start = update_from or params
        for p in params:
            values[p] = params[p]
            grad = out.get(keys.grad(p))
            if p in chapter.frozen:
                values[keys.after(p)] = start[p]
                continue
            if grad is None or not _fits(start[p].shape, grad.shape):
                continue
            new = np.empty(grad.shape)
            memory = getattr(optimizer, "inner", optimizer).memory
            if grad.shape != start[p].shape and p in memory:  # optimizer state spread like the gradient
                memory[p] = {s: np.broadcast_to(v, grad.shape).copy() for s, v in memory[p].items()}
            optimizer.update(p, np.broadcast_to(start[p], grad.shape), grad, ctx.step + 1, out=new, carry=ctx.carry)
            values[keys.after(p)] = ctx.carry(p, new) if ctx.carry else new
        memory = getattr(optimizer, "inner", optimizer).memory
        for s in OPTIMIZERS[chapter.optimizer].state:
            for p in params:
                values[keys.state(s, p)] = np.array(memory.get(p, {}).get(s, np.zeros_like(params[p])), dtype=float)
    return values


def _fits(param: tuple[int, ...], grad: tuple[int, ...]) -> bool:
    """Can the update be written with this gradient (the parameter broadcast to its shape)?"""
    try:
        return np.broadcast_shapes(param, grad) == grad
    except ValueError:
        return False


def one_product_route(chapter: Chapter, hand: Trace, step: int, rounder: Carry) -> dict[str, np.ndarray]:
    """The values at `step` of the other usual hand route: dZ = dA·A·(1 − A) worked as one product.

    Every value is rounded as it is written down (`rounder`, the hand carry), except the local
    gradient ∂A/∂Z, which this route never writes down. Steps 0 to `step` are rerun from the hand
    trace's starting parameters (`hand` records them all), so the route is followed from the start.
    """
    local = {keys.local(node.name, wrt) for node in chapter.network.nodes for wrt in node.locals}
    carry: Carry = lambda name, value: value if name in local else rounder(name, value)
    names = hand.parameter_names
    first = hand.at(0)
    params = {p: np.asarray(first[p], dtype=float) for p in names}
    state = {p: {s: np.zeros_like(params[p]) for s in hand.meta["state"]} for p in names}
    previous = None
    values: dict[str, np.ndarray] = {}
    for s in range(step + 1):
        now = hand.at(s)
        ctx = StepContext(chapter, s, params, np.asarray(now[INPUT]), np.asarray(now[TARGET]), state, previous, carry,
                          {k: np.asarray(v) for k, v in now.items()})
        values = rerun_step(ctx)
        previous = params
        params = {p: values.get(keys.after(p), params[p]) for p in names}
        state = {p: {n: values[keys.state(n, p)] for n in hand.meta["state"]} for p in names}
    return values


def real_optimizer(ctx: StepContext, learning_rate: float | None = None) -> Optimizer:
    """The chapter's optimizer with its memory as it was before the step."""
    chapter = ctx.chapter
    opt = make_optimizer(chapter, learning_rate)
    opt.memory = {p: {s: v.copy() for s, v in slots.items()} for p, slots in ctx.state.items()}
    return opt


# --------------------------------------------------------------------------- altered parts


def _copy(node: Node, cls: type[Node]) -> Node:
    """`node` as an instance of `cls` (a subclass of its own class with one part changed)."""
    return cls(node.name, node.inputs, node.params, **node.options)


def scaled_cost(cost: Cost, factor: float) -> Cost:
    """The cost node with the cost (and its gradient) multiplied by `factor`: with factor m, the 1/m left out."""
    class Scaled(type(cost)):  # type: ignore[misc, valid-type]
        def cost(self, Y, P):
            return super().cost(Y, P) * factor

        def gradient(self, Y, P, out=None):
            out = super().gradient(Y, P, out=out)
            out *= factor
            return out
    return _copy(cost, Scaled)  # type: ignore[return-value]


def no_derivative(node: Node) -> Node:
    """The activation with its local gradient taken as 1 (the identity for a softmax): its derivative left out."""
    if isinstance(node, ColumnActivation):
        class Identity(type(node)):  # type: ignore[misc, valid-type]
            def jacobian(self, Z, A, out=None):
                out = np.zeros(Z.shape[:1] + Z.shape, dtype=float) if out is None else out
                out.fill(0.0)
                out[np.arange(Z.shape[0]), np.arange(Z.shape[0]), :] = 1.0
                return out
        return _copy(node, Identity)

    class Ones(type(node)):  # type: ignore[misc, valid-type]
        def local_gradient(self, Z, A, out=None):
            out = np.empty_like(Z) if out is None else out
            out.fill(1.0)
            return out
    return _copy(node, Ones)


def derivative_at_z(node: Node) -> Node:
    """The activation's derivative written in terms of its output but fed Z: σ′ as Z(1 − Z)."""
    class AtZ(type(node)):  # type: ignore[misc, valid-type]
        def local_gradient(self, Z, A, out=None):
            return super().local_gradient(Z, Z, out=out)
    return _copy(node, AtZ)


def diagonal_jacobian(node: ColumnActivation) -> Node:
    """A softmax's Jacobian with only its diagonal, a_k(1 − a_k): the other classes' terms left out."""
    class Diagonal(type(node)):  # type: ignore[misc, valid-type]
        def jacobian(self, Z, A, out=None):
            out = super().jacobian(Z, A, out=out)
            n = A.shape[0]
            diagonal = out[np.arange(n), np.arange(n), :].copy()
            out.fill(0.0)
            out[np.arange(n), np.arange(n), :] = diagonal
            return out
    return _copy(node, Diagonal)


def bias_not_summed(node: Linear) -> Linear:
    """db left as dZ, one value per example, instead of the sum over the examples."""
    class NotSummed(type(node)):  # type: ignore[misc, valid-type]
        def vjp(self, grad, args, params, value, local, out):
            super().vjp(grad, args, params, value, local, {**out, self.b: None})
            np.copyto(out[self.b], grad)
    return _copy(node, NotSummed)  # type: ignore[return-value]


def transposed_weight_gradient(node: Linear) -> Linear:
    """dW computed as A_prev·dZᵀ (X·dZᵀ for layer 1): the transpose of dZ·Xᵀ."""
    class Transposed(type(node)):  # type: ignore[misc, valid-type]
        def vjp(self, grad, args, params, value, local, out):
            super().vjp(grad, args, params, value, local, {**out, self.W: np.empty(out[self.W].shape[::-1])})
            np.matmul(args[0], grad.T, out=out[self.W])
    return _copy(node, Transposed)  # type: ignore[return-value]


def untransposed_input(node: Linear) -> Linear:
    """dW computed as dZ·A_prev, X where the local gradient is Xᵀ (only possible when the shapes allow)."""
    class Untransposed(type(node)):  # type: ignore[misc, valid-type]
        def vjp(self, grad, args, params, value, local, out):
            super().vjp(grad, args, params, value, local, out)
            np.matmul(grad, args[0], out=out[self.W])
    return _copy(node, Untransposed)  # type: ignore[return-value]


class AddsStep(Optimizer):
    """The real optimizer fed −gradient: the update applied with the wrong sign (W + α·dW for gd)."""

    def __init__(self, inner: Optimizer):
        self.inner = inner

    def update(self, name, param, grad, t, out, carry=None):
        self.inner.update(name, param, -grad, t, out, carry)


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Variant:
    """One mistake made one way (at one layer, with one example …) and every value it gives at the step."""

    mistake: str
    says: str
    values: dict[str, np.ndarray]


Build = Callable[[StepContext, dict[str, np.ndarray]], Iterator[tuple[str, dict[str, np.ndarray]]]]


@dataclass(frozen=True)
class Mistake:
    key: str
    title: str  # a short plain name, for documentation
    build: Build  # (context, the student's numbers by quantity) -> (plain words, values) per way


CATALOGUE: dict[str, Mistake] = {}


def mistake(key: str, title: str) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CATALOGUE[key] = Mistake(key, title, build)
        return build
    return register


def _with(ctx: StepContext, node: Node) -> Graph:
    """The chapter's graph with one node replaced by its mistaken twin."""
    return ctx.chapter.network.replaced(node.name, node)


@mistake("no_mean", "the 1/m left out")
def _no_mean(ctx, answers):
    m = ctx.A0.shape[-1]
    net = _with(ctx, scaled_cost(ctx.chapter.network.cost, m))
    yield (f"left out the 1/m: summed over the m = {m} examples instead of averaging "
           f"(the cost and its gradient {m} times too large)", rerun_step(ctx, net=net))


@mistake("sign_flipped", "the sign of (y − ŷ) flipped")
def _sign_flipped(ctx, answers):
    graph = ctx.chapter.network
    net = _with(ctx, scaled_cost(graph.cost, -1.0))
    yield (f"flipped the sign of the cost's derivative: used (y − ŷ) where it is (ŷ − y), "
           f"so {keys.grad(graph.prediction)} and every gradient after it has the wrong sign", rerun_step(ctx, net=net))


@mistake("log_base_10", "log base 10 instead of the natural log")
def _log_base_10(ctx, answers):
    cost = ctx.chapter.network.cost
    if not cost.logarithmic:
        return
    yield ("took the logarithm in base 10 instead of the natural log (ln): the cost and every gradient "
           f"{math.log(10):.3f} times too small", rerun_step(ctx, net=_with(ctx, scaled_cost(cost, 1 / math.log(10)))))


def _activations(ctx: StepContext, kinds: tuple[type, ...] = (Activation, ColumnActivation)) -> list[Node]:
    graph = ctx.chapter.network
    return [n for n in graph.nodes if isinstance(n, kinds) and n.name in graph.on_path]


def _per_activation(ctx: StepContext, wrap: Callable[[Node], Node], words: Callable[[Node | None, str], str],
                    kinds: tuple[type, ...] = (Activation, ColumnActivation)):
    """The mistake made at each activation node, then at all of them (when there are several)."""
    nodes = _activations(ctx, kinds)
    for chosen in [[n] for n in nodes] + ([nodes] if len(nodes) > 1 else []):
        net = ctx.chapter.network
        for node in chosen:
            net = net.replaced(node.name, wrap(node))
        where = f"{chosen[0].name}" if len(chosen) == 1 else "every activation"
        yield words(chosen[0] if len(chosen) == 1 else None, chosen[0].readable).replace("{where}", where), \
            rerun_step(ctx, net=net)


@mistake("no_activation_derivative", "the activation's derivative left out")
def _no_derivative(ctx, answers):
    def words(node: Node | None, name: str) -> str:
        text = f"left out the derivative of the {name} at {{where}}"
        if node is not None:
            dz, da = keys.grad(node.inputs[0]), keys.grad(node.name)
            text += f": took {dz} = {da} instead of {da} · {node.name}′"
        return text
    yield from _per_activation(ctx, no_derivative, words)


@mistake("derivative_at_Z", "the activation's derivative taken at Z instead of A")
def _derivative_at_z(ctx, answers):
    def words(node: Node | None, name: str) -> str:
        text = f"took the derivative of the {name} at Z instead of A at {{where}}"
        if node is not None and node.op == "sigmoid":
            z, a = node.inputs[0], node.name
            text += f": σ′ as {z}(1 − {z}) instead of {a}(1 − {a})"
        elif node is not None and node.op == "tanh":
            z, a = node.inputs[0], node.name
            text += f": tanh′ as 1 − {z}² instead of 1 − {a}²"
        return text
    yield from _per_activation(ctx, derivative_at_z, words, (Activation,))


@mistake("jacobian_diagonal", "only the diagonal of the softmax's Jacobian")
def _jacobian_diagonal(ctx, answers):
    def words(node: Node | None, name: str) -> str:
        text = f"used only the diagonal of the {name}'s Jacobian at {{where}}, leaving out the other classes' terms"
        if node is not None:
            a = node.name
            text += f": ∂a_k/∂z_k = a_k(1 − a_k) alone, as if {a} were applied entry by entry"
        return text
    yield from _per_activation(ctx, diagonal_jacobian, words, (ColumnActivation,))


@mistake("bias_not_summed", "the bias gradient not summed over the examples")
def _bias_not_summed(ctx, answers):
    m = ctx.A0.shape[-1]
    for node in ctx.chapter.network.linear:
        if not node.b:
            continue
        db, dz = keys.grad(node.b), keys.grad(node.name)
        yield (f"did not sum the bias gradient over the {m} examples: took {db} = {dz} "
               f"(one value per example) instead of the sum of {dz} along each row",
               rerun_step(ctx, net=_with(ctx, bias_not_summed(node)), shapes={db: (node.units, m)}))


@mistake("transposed", "Xᵀ instead of X, or the transpose of the result")
def _transposed(ctx, answers):
    m = ctx.A0.shape[-1]
    shapes = ctx.chapter.network.parameter_shapes(features(ctx.A0))
    for node in ctx.chapter.network.linear:
        n, n_in = shapes[node.W]
        x = "X" if node.inputs[0] == INPUT else node.inputs[0]
        dw, dz = keys.grad(node.W), keys.grad(node.name)
        yield (f"wrote {dw} transposed: {x}·{dz}ᵀ ({n_in} × {n}) instead of {dz}·{x}ᵀ ({n} × {n_in})",
               rerun_step(ctx, net=_with(ctx, transposed_weight_gradient(node)), shapes={dw: (n_in, n)}))
        if n_in == m:  # dZ·X is only defined when there are as many examples as inputs
            yield (f"used {x} where the local gradient ∂{node.name}/∂{node.W} is {x}ᵀ: {dw} = {dz}·{x} "
                   f"instead of {dz}·{x}ᵀ", rerun_step(ctx, net=_with(ctx, untransposed_input(node))))


@mistake("update_sign", "the update applied with the wrong sign")
def _update_sign(ctx, answers):
    rule = "W + α·dW instead of W − α·dW" if ctx.chapter.optimizer == "gd" else "adding the step instead of subtracting it"
    yield (f"applied the update with the wrong sign: {rule}",
           rerun_step(ctx, optimizer=AddsStep(real_optimizer(ctx))))


#: Learning rates a student may use by mistake, as multiples of the chapter's (besides 1 itself).
RATE_FACTORS = (2.0, 0.5, 10.0, 0.1)


@mistake("learning_rate", "the update applied with the wrong learning rate")
def _learning_rate(ctx, answers):
    true = ctx.chapter.learning_rate
    rates = [1.0] + [true * f for f in RATE_FACTORS]
    estimated = estimated_rate(ctx, answers)
    if estimated is not None:  # after the catalogue's rates: the checker names the first that fits
        rates.append(estimated)
    seen = {true}
    for rate in rates:
        if rate in seen or not rate > 0:
            continue
        seen.add(rate)
        yield (f"applied the update with learning rate {rate:g} instead of {true:g}",
               rerun_step(ctx, optimizer=real_optimizer(ctx, learning_rate=rate)))


def estimated_rate(ctx: StepContext, answers: dict[str, np.ndarray]) -> float | None:
    """The learning rate that best explains a student's W_after (gd only), to 2 significant digits."""
    if ctx.chapter.optimizer != "gd":
        return None
    ratios = []
    for p in ctx.params:
        given = answers.get(keys.after(p))
        grad = ctx.truth.get(keys.grad(p))
        if given is None or grad is None or np.shape(given) != np.shape(grad):
            continue
        big = np.abs(grad) > 1e-9
        ratios += list(((ctx.params[p] - given)[big] / grad[big]).ravel())
    if not ratios:
        return None
    rate = float(np.median(ratios))
    if not math.isfinite(rate) or rate <= 0:
        return None
    return float(round_half_up(rate, 1 - to_decimal(rate).adjusted()))


@mistake("previous_weights", "the previous step's weights used")
def _previous_weights(ctx, answers):
    if ctx.previous is None:
        return
    yield (f"did step {ctx.step} with the weights before step {ctx.step - 1} (the previous step's): "
           f"these are step {ctx.step - 1}'s numbers", rerun_step(ctx, params=ctx.previous))
    yield (f"applied step {ctx.step}'s update to the weights before step {ctx.step - 1} "
           f"instead of the current ones", rerun_step(ctx, update_from=ctx.previous))


@mistake("one_example", "the loss of one example instead of the cost of the batch")
def _one_example(ctx, answers):
    m = ctx.A0.shape[-1]
    if m < 2:
        return
    for i in range(m):
        yield (f"used the loss of example {i + 1} alone instead of the cost of the batch "
               f"(the average over all {m} examples)",
               rerun_step(ctx, A0=ctx.A0[..., [i]], Y=ctx.Y[:, [i]]))


# --------------------------------------------------------------------------- regularisation and normalisation


def l2_term(node: PenalisedLinear, factor: Callable[[float, int], float]) -> PenalisedLinear:
    """The penalised linear node with the L2 term of dW written factor(λ, m)·W instead of (λ/m)·W."""
    class Term(type(node)):  # type: ignore[misc, valid-type]
        def vjp(self, grad, args, params, value, local, out):
            Linear.vjp(self, grad, args, params, value, local, out)
            out[self.W] += factor(self.l2, args[0].shape[1]) * params[0]
    return _copy(node, Term)  # type: ignore[return-value]


@mistake("l2_no_mean", "the L2 gradient without its 1/m")
def _l2_no_mean(ctx, answers):
    for node in ctx.chapter.network.of_kind(PenalisedLinear):
        dw = keys.grad(node.W)
        yield (f"left the 1/m out of the penalty's gradient: added λ·{node.W} to {dw} instead of (λ/m)·{node.W}",
               rerun_step(ctx, net=_with(ctx, l2_term(node, lambda lam, m: lam))))


@mistake("l2_doubled", "the L2 gradient with 2λ")
def _l2_doubled(ctx, answers):
    for node in ctx.chapter.network.of_kind(PenalisedLinear):
        dw = keys.grad(node.W)
        yield (f"differentiated the penalty as if it had no 1/2: added (2λ/m)·{node.W} to {dw} instead of "
               f"(λ/m)·{node.W}", rerun_step(ctx, net=_with(ctx, l2_term(node, lambda lam, m: 2 * lam / m))))


def unbiased_variance(node: BatchVariance) -> BatchVariance:
    """The batch variance divided by m − 1 (the unbiased, sample variance) instead of m, and its gradient so."""
    class Unbiased(type(node)):  # type: ignore[misc, valid-type]
        def forward(self, args, params, out=None):
            m = args[0].shape[1]
            out = super().forward(args, params, out=out)
            out *= m / (m - 1)
            return out

        def vjp(self, grad, args, params, value, local, out):
            m = args[0].shape[1]
            super().vjp(grad * (m / (m - 1)), args, params, value, local, out)
    return _copy(node, Unbiased)  # type: ignore[return-value]


@mistake("unbiased_variance", "batch norm with the unbiased variance")
def _unbiased_variance(ctx, answers):
    m = ctx.A0.shape[1]
    if m < 2:
        return
    for node in ctx.chapter.network.of_kind(BatchVariance):
        yield (f"divided the batch variance {node.name} by m − 1 = {m - 1} instead of m = {m} (the sample "
               "variance, not the batch's own)", rerun_step(ctx, net=_with(ctx, unbiased_variance(node))))


@mistake("dropout_no_scaling", "dropout without the 1/p")
def _dropout_no_scaling(ctx, answers):
    for node in ctx.chapter.network.of_kind(Dropout):
        A, D = node.inputs
        yield (f"applied the mask without dividing by p = {node.keep:g}: {node.name} = {A} ⊙ {D} instead of "
               f"{A} ⊙ {D} / p, and so in the backward pass", rerun_step(ctx, net=_with(ctx, node.renamed(keep=1.0))))


def variants(ctx: StepContext, answers: dict[str, np.ndarray] | None = None,
             keys: list[str] | None = None) -> Iterator[Variant]:
    """Every way of making each mistake (or those in `keys`) at this step, with the values it gives."""
    for key in keys or list(CATALOGUE):
        for says, values in CATALOGUE[key].build(ctx, answers or {}):
            yield Variant(key, says, values)

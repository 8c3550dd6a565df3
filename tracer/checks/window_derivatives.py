"""SymPy on one window: the local derivatives of one output entry of a convolution or a pooling with
respect to the entries of its window, and the image nodes' gradients rebuilt from them.

One output entry of a convolution is z = Σ_c Σ_a Σ_b w_{c,a,b} x_{c,a,b} + b over its window x;
of a max-pool, the first largest entry of its window in row order, Σ_k x_k·[x_k > every earlier
entry and ≥ every later one]; of an average pool, (1/S²) Σ x. SymPy
differentiates that definition with respect to every weight, every window entry and the bias.
The check then evaluates those derivatives at every window of the recorded steps and sums, over
the windows, each derivative times the gradient reaching that output entry (the chain rule written
window by window): ∂Cost/∂W, ∂Cost/∂b and ∂Cost/∂A_prev, compared with the trace. Nothing of the
engine's backward pass (the correlation of the input with ∂Cost/∂Z, the full convolution with the
flipped kernel, the max-pool's routing) is used.

The derivatives are kept as plain trees in the verify cache, so a warm cache needs no SymPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tracer.checks import cache, expressions
from tracer.checks.symbolic import RTOL, ATOL, Comparison, _compare, chosen_steps
from tracer.engine import keys
from tracer.engine.conv import Conv2d
from tracer.engine.keys import INPUT
from tracer.engine.pooling import AvgPool, MaxPool, Pool


@dataclass(frozen=True)
class WindowDerivation:
    """One output entry's definition over its window and SymPy's derivative by each variable, as trees.

    `variables`: the window's entries x_c_a_b, then (a convolution) its weights w_c_a_b and b."""

    kind: str
    variables: tuple[str, ...]
    definition: Any
    derivatives: dict[str, Any]


def _names(letter: str, c: int, kh: int, kw: int) -> list[str]:
    return [f"{letter}_{i}_{a}_{b}" for i in range(c) for a in range(kh) for b in range(kw)]


def _derive(kind: str, c: int, kh: int, kw: int) -> WindowDerivation:
    import sympy as sp

    xs = [sp.Symbol(n, real=True) for n in _names("x", c, kh, kw)]
    if kind == "conv2d":
        ws = [sp.Symbol(n, real=True) for n in _names("w", c, kh, kw)]
        bias = sp.Symbol("b", real=True)
        value = sum((w * x for w, x in zip(ws, xs)), sp.Integer(0)) + bias
        variables = xs + ws + [bias]
    elif kind == "maxpool":
        def first_largest(k: int) -> Any:  # 1 when x_k is the window's first largest entry in row order
            return sp.Mul(*[sp.Piecewise((1, xs[k] > x if j < k else xs[k] >= x), (0, True))
                            for j, x in enumerate(xs) if j != k])
        value = sp.Add(*[x * first_largest(k) for k, x in enumerate(xs)])
        variables = xs
    else:
        value = sum(xs, sp.Integer(0)) / (kh * kw)
        variables = xs
    derivatives = {v.name: expressions.tree(sp.diff(value, v)) for v in variables}
    return WindowDerivation(kind, tuple(v.name for v in variables), expressions.tree(value), derivatives)


def derivation(kind: str, c: int, kh: int, kw: int) -> WindowDerivation:
    """SymPy's derivation for one window of `kind` (conv2d, maxpool, avgpool) over c channels of kh × kw
    (a pool's window is one channel), from the verify cache when it is there."""
    def encode(d: WindowDerivation) -> dict[str, Any]:
        return {"kind": d.kind, "variables": list(d.variables), "definition": d.definition,
                "derivatives": d.derivatives}

    def decode(v: Any) -> WindowDerivation:
        variables = [str(x) for x in v["variables"]]
        for tree in [v["definition"], *v["derivatives"].values()]:
            expressions.check(tree, variables)
        if set(v["derivatives"]) != set(variables):
            raise ValueError("derivatives do not match the variables")
        return WindowDerivation(str(v["kind"]), tuple(variables), v["definition"], dict(v["derivatives"]))

    key = [kind, c, kh, kw, cache.source_of(__file__)]
    return cache.cached("window", key, lambda: _derive(kind, c, kh, kw), encode, decode)


def _evaluate(d: WindowDerivation, name: str, env: dict[str, np.ndarray]) -> np.ndarray:
    fn = expressions.numpy_function(d.derivatives[name], list(d.variables))
    return np.asarray(fn(*[env[v] for v in d.variables]), dtype=float)


def _conv_gradients(node: Conv2d, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    A, W, G = values[node.inputs[0]], values[node.W], values[keys.grad(node.name)]
    window = node.window
    c = A.shape[0]
    d = derivation("conv2d", c, window.kh, window.kw)
    cols = window.gather(A)  # C × kh × kw × OH × OW × m
    f = W.shape[0]
    spots = [(i, a, b) for i in range(c) for a in range(window.kh) for b in range(window.kw)]
    out: dict[str, np.ndarray] = {node.W: np.zeros(W.shape), INPUT: np.zeros(cols.shape)}
    if node.b:
        out[node.b] = np.zeros((f, 1))
    for k in range(f):  # each filter's output entries, every window at once
        env = {f"x_{i}_{a}_{b}": cols[i, a, b] for i, a, b in spots}
        env.update({f"w_{i}_{a}_{b}": np.full(cols.shape[3:], W[k, i, a, b]) for i, a, b in spots})
        env["b"] = np.zeros(cols.shape[3:])
        g = G[k]
        for i, a, b in spots:
            out[node.W][k, i, a, b] = np.sum(g * _evaluate(d, f"w_{i}_{a}_{b}", env))
            out[INPUT][i, a, b] += g * _evaluate(d, f"x_{i}_{a}_{b}", env)
        if node.b:
            out[node.b][k, 0] = np.sum(g * _evaluate(d, "b", env))
    out[INPUT] = window.scatter(out[INPUT], A.shape[1], A.shape[2])
    return out


def _pool_gradients(node: Pool, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    A, G = values[node.inputs[0]], values[keys.grad(node.name)]
    window = node.window
    d = derivation(node.op, 1, window.kh, window.kw)
    cols = window.gather(A)  # C × S × S × OH × OW × m
    spots = [(a, b) for a in range(window.kh) for b in range(window.kw)]
    env = {f"x_0_{a}_{b}": cols[:, a, b] for a, b in spots}
    back = np.zeros(cols.shape)
    for a, b in spots:
        back[:, a, b] = G * _evaluate(d, f"x_0_{a}_{b}", env)
    return {INPUT: window.scatter(back, A.shape[1], A.shape[2])}


def window_checks(trace: Any, steps: list[int] | None = None) -> list[Comparison]:
    """Each convolution's and pooling's gradients at the chosen steps, rebuilt window by window from
    SymPy's derivatives of one output entry."""
    graph = trace.network
    image_nodes = [n for n in graph.nodes if isinstance(n, (Conv2d, MaxPool, AvgPool)) and n.name in graph.on_path]
    if not image_nodes:
        return []
    steps = chosen_steps(trace) if steps is None else steps
    found: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for step in steps:
        v = trace.at(step)
        for node in image_nodes:
            rebuilt = _conv_gradients(node, v) if isinstance(node, Conv2d) else _pool_gradients(node, v)
            for wrt, target in graph.passes(node.name):
                name = INPUT if wrt == node.inputs[0] else wrt
                if target in v and name in rebuilt:
                    found.setdefault((target, node.name), []).append((rebuilt[name], np.asarray(v[target])))
    what = "steps " + ", ".join(map(str, steps))
    out = []
    for (target, node), pairs in found.items():
        kind = graph.node(node).readable
        out.append(_compare("window", target, node, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]),
                            np.array(steps), RTOL, ATOL, what,
                            f"SymPy's derivative of one {kind} output entry by each entry of its window, "
                            "times the gradient reaching that entry, summed over every window"))
    return out

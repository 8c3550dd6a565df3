"""Every node's gradient against central finite differences of the cost, and behaviour at |z| = 1000.

Finite differences use only forward passes, so they are independent of every `backward`,
`local_gradient` and `gradient` method under test.

Tolerance: central differences with step h have truncation error O(h²·f‴) and rounding error
O(ε·|cost|/h). With h = 1e-6, ε ≈ 1e-16 and costs of order 1, both are below ~1e-9, so we ask
for agreement to rtol 1e-6 and atol 1e-8: a real bug (a missing factor, a sign, a transpose)
is wrong by far more than that.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tracer.engine.graph import ACTIVATIONS, COSTS, Linear, Network, Sigmoid, cost_named

H = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def random_case(hidden: str, cost: str, seed: int = 0):
    """A 3-input, 4-hidden, 2-output network on 5 random examples, with labels the cost accepts."""
    rng = np.random.default_rng(seed)
    from_logits = cost.endswith("_from_logits")
    base = cost.removesuffix("_from_logits")
    out_act = "sigmoid" if base == "binary_cross_entropy" else "tanh"
    net = Network([4, 2], [ACTIVATIONS[hidden](), ACTIVATIONS[out_act]()], cost_named(base, from_logits))
    X = rng.normal(size=(3, 5))
    Y = rng.integers(0, 2, size=(2, 5)).astype(float) if base == "binary_cross_entropy" else rng.normal(size=(2, 5))
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=(4, 1)),
              "W2": rng.normal(size=(2, 4)), "b2": rng.normal(size=(2, 1))}
    return net, X, Y, params


def buffers(net: Network, X: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.empty(s) for k, s in net.shapes(X.shape[0], X.shape[1]).items()}


def cost_of(net: Network, params: dict, X: np.ndarray, Y: np.ndarray) -> float:
    out = buffers(net, X)
    net.forward(params, X, out)
    return net.loss(Y, out)


def cost_from_node(net: Network, params: dict, X: np.ndarray, Y: np.ndarray, node: str, value: np.ndarray) -> float:
    """The cost when node `node` (Z_l or A_l) is replaced by `value` and the forward pass continues from there."""
    kind, l = node[0], int(node[1:])
    A = None
    for layer in net.layers:
        if layer.index < l:
            continue
        if layer.index == l:
            Z = value if kind == "Z" else None
            A = layer.activation.forward(Z) if kind == "Z" else value
        else:
            Z = layer.linear.forward(params[layer.W], params[layer.b], A)
            A = layer.activation.forward(Z)
    return net.cost.forward(Y, A, Z)


def central_difference(f, x: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += H
        down[i] -= H
        grad[i] = (f(up) - f(down)) / (2 * H)
    return grad


CASES = [(hidden, cost) for hidden in ACTIVATIONS for cost in COSTS]


@pytest.mark.parametrize("hidden,cost", CASES)
def test_every_gradient_matches_central_differences(hidden, cost):
    net, X, Y, params = random_case(hidden, cost)
    out = buffers(net, X)
    net.forward(params, X, out)
    net.loss(Y, out)
    net.backward(params, X, Y, out)

    for name in params:
        numeric = central_difference(lambda v: cost_of(net, {**params, name: v}, X, Y), params[name])
        np.testing.assert_allclose(out["d" + name], numeric, rtol=RTOL, atol=ATOL, err_msg=f"d{name}")
    numeric = central_difference(lambda v: cost_of(net, params, v, Y), X)
    np.testing.assert_allclose(out["dA0"], numeric, rtol=RTOL, atol=ATOL, err_msg="dA0")
    for node in ("Z1", "A1", "Z2") + (() if net.cost.from_logits else ("A2",)):
        numeric = central_difference(lambda v: cost_from_node(net, params, X, Y, node, v), out[node])
        np.testing.assert_allclose(out["d" + node], numeric, rtol=RTOL, atol=ATOL, err_msg=f"d{node}")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_local_gradient_matches_central_differences(name):
    act = ACTIVATIONS[name]()
    Z = np.random.default_rng(1).normal(size=(3, 4)) * 2
    numeric = (act.forward(Z + H) - act.forward(Z - H)) / (2 * H)
    np.testing.assert_allclose(act.local_gradient(Z, act.forward(Z)), numeric, rtol=RTOL, atol=ATOL)


def test_linear_local_gradients_are_the_articles_transposes_and_ones():
    W = np.array([[0.1, 0.6]])
    X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    local = Linear().local_gradients(W, X)
    np.testing.assert_array_equal(local["W"], X.T)
    np.testing.assert_array_equal(local["A_prev"], W.T)
    np.testing.assert_array_equal(local["b"], np.ones((4, 1)))


def test_sigmoid_at_plus_minus_1000_gives_no_warning_and_no_nan():
    z = np.array([[-1000.0, -745.0, -50.0, 0.0, 50.0, 745.0, 1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = Sigmoid().forward(z)
        g = Sigmoid().local_gradient(z, a)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(g))
    assert a[0, 3] == 0.5 and a[0, -1] == 1.0 and 0.0 <= a[0, 0] < 1e-300


@pytest.mark.parametrize("cost", sorted(COSTS))
def test_costs_at_plus_minus_1000_give_no_warning_and_no_nan(cost):
    Z = np.array([[-1000.0, 1000.0, -1000.0, 1000.0]])
    Y = np.array([[0.0, 1.0, 1.0, 0.0]])
    node = COSTS[cost]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = Sigmoid().forward(Z)
        value = node.forward(Y, A, Z)
        grad = node.gradient(Y, A, Z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_cross_entropy_from_logits_is_exact_where_probabilities_saturate():
    # For z = -1000 and y = 1 the loss is -log σ(-1000) = 1000 + log(1 + e^-1000) = 1000 exactly in float64.
    Z = np.array([[-1000.0]])
    Y = np.array([[1.0]])
    assert cost_named("binary_cross_entropy", from_logits=True).forward(Y, Sigmoid().forward(Z), Z) == 1000.0


# --------------------------------------------------------------------------- a new activation is one class


def test_a_new_activation_registered_here_alone_gets_a_document_and_a_graph(tmp_path):
    """Softplus, written and registered in this test only: one class gives the engine, the SymPy
    derivation, the document's worked lines and the graph's labels, with no change elsewhere."""
    import json
    import shutil

    from tracer.documents import build
    from tracer.documents.model import reproduces
    from tracer.engine.graph import Activation, op, register

    class Softplus(Activation):
        name = "softplus"
        readable = "softplus"
        symbol = r"\operatorname{softplus}"
        glyph = "softplus"
        formula = r"\operatorname{softplus}(z) = \log\left(1 + e^{z}\right)"
        gradient_tex = r"\sigma\left(<Z>\right)"

        def forward(self, Z, out=None):
            return np.logaddexp(0.0, Z, out=out)

        def local_gradient(self, Z, A, out=None):
            return Sigmoid().forward(Z, out=out)

        def definition(self, z):
            import sympy as sp

            return sp.log(1 + sp.exp(z))

        def expression(self, z):
            return op("log", op("add", 1, op("exp", z)))

        def local_expression(self, z, a):
            return op("sigmoid", z)

    register(Softplus)
    try:
        chapter = tmp_path / "softplus.toml"
        chapter.write_text('title = "Softplus"\n[data]\nX = [[0, 1], [1, 0]]\nY = [[1], [0]]\n'
                           '[network]\nlayers = [{units = 2, activation = "softplus"}, '
                           '{units = 1, activation = "sigmoid"}]\n'
                           '[init]\nseed = 1\n[train]\ncost = "squared_error"\nlearning_rate = 1\nsteps = 2\n',
                           encoding="utf-8")
        build.build([chapter], tmp_path / "out", ["md", "json"], figures=shutil.which("dot") is not None)
        md = (tmp_path / "out" / "softplus.md").read_text(encoding="utf-8")
        assert r"A_{1} &= \operatorname{softplus}\left(Z_{1}\right)" in md
        assert r"\frac{\partial A_{1}}{\partial Z_{1}} &= \sigma\left(Z_{1}\right)" in md
        assert r"\log\left(1 + e^{" in md and "⋯" not in md and r"\cdots" not in md
        model = json.loads((tmp_path / "out" / "softplus.json").read_text(encoding="utf-8"))
        lines = [line for step in model["steps"] for line in step["lines"]]
        assert {"A1", "dA1_dZ1"} <= {line["quantity"] for line in lines}
        assert all(reproduces(line["expression"], line["result"]) for line in lines)
        if shutil.which("dot"):
            svg = (tmp_path / "out" / "figures" / "softplus-graph-step-0.svg").read_text(encoding="utf-8")
            assert "softplus" in svg
    finally:
        ACTIVATIONS.pop("softplus", None)


def test_an_activation_without_its_display_is_refused_at_registration():
    from tracer.engine.graph import Activation, register

    class Bare(Activation):
        name = "bare"

        def forward(self, Z, out=None):
            return Z

    with pytest.raises(TypeError, match="must give its display too; missing: readable, symbol, glyph"):
        register(Bare)
    assert "bare" not in ACTIVATIONS

"""Batch normalisation's nodes checked by witnesses that share none of their code: SymPy differentiates
the whole layer from its definition (μ, the biased σ², Ẑ, γẐ + β) and the three paths the graph sums
must give its derivative; `tracer verify` (oracle at 50 digits, finite differences, chain rule) passes
on a batch-normalised chapter and fails, naming the node, when a node's gradient is planted wrong."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import tracer
from tracer.checks.verify import verify
from tracer.engine import batchnorm, keys
from tracer.engine.graph import Graph
from tracer.engine.nodes import NODES

M = 4


def layer_graph(eps: float) -> Graph:
    """Z1 = W1·A0, then μ, σ², Ẑ, Z̃, and the cost reading Z̃ through the identity."""
    from tracer.engine.graph import LayerSpec, from_layers

    spec = LayerSpec(2, "identity", "dense", (("batchnorm", True), ("batchnorm_epsilon", eps)))
    return from_layers((spec,), "squared_error")


def test_sympy_derivative_of_the_whole_layer_is_the_sum_of_the_three_paths():
    """∂Cost/∂z_i for Cost = Σ_j g_j·(γ(z_j − μ)/√(σ² + ε) + β), differentiated by SymPy with μ and σ²
    (1/m) written out in z, equals dZ = dZ_via_μ + dZ_via_σ² + dZ_via_Ẑ as the engine computes it."""
    z = sp.symbols(f"z1:{M + 1}")
    g = sp.symbols(f"g1:{M + 1}")
    gamma, beta, eps = sp.symbols("gamma beta epsilon", positive=True)
    mu = sum(z) / M
    var = sum((zi - mu) ** 2 for zi in z) / M  # biased, as the layer's convention says
    out = [gamma * (zi - mu) / sp.sqrt(var + eps) + beta for zi in z]
    cost = sum(gi * oi for gi, oi in zip(g, out))
    derivative = [sp.diff(cost, zi) for zi in z]
    dgamma, dbeta = sp.diff(cost, gamma), sp.diff(cost, beta)
    rng = np.random.default_rng(0)
    for trial in range(3):
        zv, gv = rng.normal(size=M), rng.normal(size=M)
        point = {**dict(zip(z, zv)), **dict(zip(g, gv)), gamma: 1.3, beta: -0.2, eps: 1e-3}
        expected = np.array([float(d.subs(point)) for d in derivative])
        # the engine's nodes, one unit: forward, then the backward pass node by node, paths summed
        Z = zv.reshape(1, M)
        nodes = batchnorm.nodes("Z1", "1", 1e-3)
        mean, variance, normalise, scale = nodes
        mu_v = mean.forward([Z], [])
        var_v = variance.forward([Z, mu_v], [])
        N = normalise.forward([Z, mu_v, var_v], [])
        params = [np.array([[1.3]]), np.array([[-0.2]])]
        dT = gv.reshape(1, M)
        out = {"gamma1": np.empty((1, 1)), "beta1": np.empty((1, 1)), "Zhat1": np.empty((1, M))}
        scale.vjp(dT, [N], params, None, {}, out)
        parts = {"Z1": np.empty((1, M)), "mu1": np.empty((1, 1)), "var1": np.empty((1, 1))}
        normalise.vjp(out["Zhat1"], [Z, mu_v, var_v], [], N, {}, parts)
        via_Zhat, dmu, dvar = parts["Z1"].copy(), parts["mu1"].copy(), parts["var1"].copy()
        vparts = {"Z1": np.empty((1, M)), "mu1": np.empty((1, 1))}
        variance.vjp(dvar, [Z, mu_v], [], var_v, {}, vparts)
        dmu = dmu + vparts["mu1"]
        mparts = {"Z1": np.empty((1, M))}
        mean.vjp(dmu, [Z], [], mu_v, {}, mparts)
        dZ = via_Zhat + vparts["Z1"] + mparts["Z1"]
        np.testing.assert_allclose(dZ.ravel(), expected, rtol=1e-12, atol=1e-13)
        assert out["gamma1"][0, 0] == pytest.approx(float(dgamma.subs(point)), rel=1e-12)
        assert out["beta1"][0, 0] == pytest.approx(float(dbeta.subs(point)), rel=1e-12)
        # μ's path through σ² is zero (Σ(z − μ) = 0), to round-off
        assert abs(vparts["mu1"][0, 0]) < 1e-12


def test_the_graph_sums_three_paths_into_Z_and_two_into_mu():
    graph = layer_graph(1e-5)
    assert [u.name for u in graph.feeds["Z1"]] == ["mu1", "var1", "Zhat1"]
    assert [u.name for u in graph.feeds["mu1"]] == ["var1", "Zhat1"]
    assert graph.parameter_names == ["W1", "gamma1", "beta1"]
    names = graph.names()
    for part in ("dZ1_via_mu1", "dZ1_via_var1", "dZ1_via_Zhat1", "dmu1_via_var1", "dmu1_via_Zhat1"):
        assert part in names


def test_symbols_set_gamma_and_beta_apart_from_adams_betas():
    assert keys.symbol("beta1") == r"{\beta^{[1]}}"
    assert keys.symbol("gamma2") == r"{\gamma^{[2]}}"
    assert keys.symbol("var1") == r"{\sigma^{2}_{1}}"
    assert keys.symbol("dZhat1") == r"\frac{\partial \mathrm{Cost}}{\partial {\hat{Z}_{1}}}"


def bn_chapter(steps: int = 3) -> tracer.Chapter:
    raw = {"title": "bn", "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "Y": [[0], [1], [1], [0]]},
           "network": {"layers": [{"units": 2, "activation": "tanh", "batchnorm": True},
                                  {"units": 1, "activation": "sigmoid"}]},
           "init": {"seed": 3, "scheme": "xavier"},
           "train": {"cost": "binary_cross_entropy", "learning_rate": 0.5, "steps": steps}}
    return tracer.parse_chapter(raw)


def test_verify_passes_on_a_batch_normalised_network():
    report = verify(bn_chapter())
    assert report.ok, [c.subject for c in report.disagreements()]
    witnesses = {c.section for c in report.checks}
    assert {"chain rule", "oracle", "finite differences"} <= witnesses
    checked = {c.subject.split(" ")[0] for c in report.checks if c.section == "oracle"}
    assert {"mu1", "var1", "Zhat1", "Zt1", "dZ1", "dmu1", "dvar1", "dgamma1", "dbeta1"} <= checked


class _UnbiasedVariance(batchnorm.BatchVariance):
    """A planted fault: the gradient to Z of the unbiased variance (2/(m − 1)) with the biased forward."""

    def vjp(self, grad, args, params, value, local, out):
        Z, M_ = args
        m = Z.shape[1]
        if out.get(self.inputs[0]) is not None:
            out[self.inputs[0]][...] = (2.0 / (m - 1)) * grad * (Z - M_)
        if out.get(self.inputs[1]) is not None:
            out[self.inputs[1]][...] = -(2.0 / (m - 1)) * (grad * (Z - M_)).sum(axis=1, keepdims=True)


def test_a_planted_wrong_batch_norm_gradient_fails_naming_the_node(monkeypatch):
    chapter = bn_chapter()
    good = chapter.network
    wrong = _UnbiasedVariance("var1", good.node("var1").inputs)
    monkeypatch.setitem(NODES, "batch_variance", _UnbiasedVariance)  # a saved graph rebuilds the planted node
    planted = good.replaced("var1", wrong)
    monkeypatch.setattr(type(chapter), "network", property(lambda self: planted))
    report = verify(chapter)
    assert not report.ok
    first = report.disagreements()[0]
    assert first.subject.startswith("dZ1_via_var1 (node var1)"), first.subject

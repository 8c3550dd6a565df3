"""The graph: every gradient against central finite differences of the cost, the sum over paths, the
layers shorthand against the written-out form, and the engine change moving no number.

Finite differences use only forward passes, so they are independent of every `vjp`, `local` and
`gradient` method under test.

Tolerance: central differences with step h have truncation error O(h²·f‴) and rounding error
O(ε·|cost|/h). With h = 1e-6, ε ≈ 1e-16 and costs of order 1, both are below ~1e-9, so we ask
for agreement to rtol 1e-6 and atol 1e-8: a real bug (a missing factor, a sign, a transpose)
is wrong by far more than that.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import tracer
from tracer.engine import keys
from tracer.engine.graph import Graph, GraphError, LayerSpec, NodeSpec, from_layers, from_nodes
from tracer.engine.nodes import costs

from trace_fingerprints import fingerprints, numerics, records

H = 1e-6
RTOL, ATOL = 1e-6, 1e-8


def labels(cost: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Labels the cost accepts: 0/1 for binary cross-entropy, one-hot for cross-entropy, any number else."""
    if cost == "binary_cross_entropy":
        return rng.integers(0, 2, size=shape).astype(float)
    if costs()[cost].distributions:
        return np.eye(shape[0])[:, rng.integers(0, shape[0], size=shape[1])]
    return rng.normal(size=shape)


def random_case(hidden: str, cost: str, from_logits: bool = False, seed: int = 0):
    """A 3-input, 4-hidden, 2- or 3-output network on 5 random examples, with labels the cost accepts."""
    rng = np.random.default_rng(seed)
    out_act = {"binary_cross_entropy": "sigmoid", "cross_entropy": "softmax"}.get(cost, "tanh")
    n_out = 3 if out_act == "softmax" else 2
    graph = from_layers((LayerSpec(4, hidden), LayerSpec(n_out, out_act)), cost, from_logits)
    X = rng.normal(size=(3, 5))
    Y = labels(cost, rng, (n_out, 5))
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=(4, 1)),
              "W2": rng.normal(size=(n_out, 4)), "b2": rng.normal(size=(n_out, 1))}
    return graph, X, Y, params


def buffers(graph: Graph, X: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.empty(s) for k, s in graph.shapes(X.shape[0], X.shape[1]).items()}


def cost_of(graph: Graph, params: dict, X: np.ndarray, Y: np.ndarray) -> float:
    out = buffers(graph, X)
    graph.forward(params, X, out)
    return graph.loss(Y, out)


def cost_from_node(graph: Graph, params: dict, X: np.ndarray, Y: np.ndarray, name: str, value: np.ndarray) -> float:
    """The cost when node `name` takes `value` and the forward pass continues from there (nodes' forward only)."""
    out = buffers(graph, X)
    graph.forward(params, X, out)
    out[name] = value
    changed = {name}
    for node in graph.nodes[:-1]:
        if changed.intersection(node.inputs):
            out[node.name] = node.forward([X if n == keys.INPUT else out[n] for n in node.inputs],
                                          [params[p] for p in node.params])
            changed.add(node.name)
    return graph.loss(Y, out)


def central_difference(f, x: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += H
        down[i] -= H
        grad[i] = (f(up) - f(down)) / (2 * H)
    return grad


CASES = [(hidden, cost, logits) for hidden in ("sigmoid", "relu", "tanh", "identity", "softmax") for cost in costs()
         for logits in ((False, True) if costs()[cost].with_logits else (False,))]


def check_every_gradient(graph: Graph, X: np.ndarray, Y: np.ndarray, params: dict) -> None:
    out = buffers(graph, X)
    graph.forward(params, X, out)
    graph.loss(Y, out)
    graph.backward(params, X, Y, out)
    for name in params:
        numeric = central_difference(lambda v: cost_of(graph, {**params, name: v}, X, Y), params[name])
        np.testing.assert_allclose(out[keys.grad(name)], numeric, rtol=RTOL, atol=ATOL, err_msg=keys.grad(name))
    numeric = central_difference(lambda v: cost_of(graph, params, v, Y), X)
    np.testing.assert_allclose(out[keys.grad(keys.INPUT)], numeric, rtol=RTOL, atol=ATOL, err_msg="dA0")
    for node in graph.nodes[:-1]:
        if node.name in graph.on_path:
            numeric = central_difference(lambda v: cost_from_node(graph, params, X, Y, node.name, v), out[node.name])
            np.testing.assert_allclose(out[keys.grad(node.name)], numeric, rtol=RTOL, atol=ATOL,
                                       err_msg=keys.grad(node.name))


@pytest.mark.parametrize("hidden,cost,logits", CASES)
def test_every_gradient_matches_central_differences(hidden, cost, logits):
    check_every_gradient(*random_case(hidden, cost, logits))


SKIP = (NodeSpec("Z1", "linear", ("A0",), (("units", 3),)), NodeSpec("A1", "tanh", ("Z1",)),
        NodeSpec("Z2", "linear", ("A1",), (("units", 3),)), NodeSpec("A2", "relu", ("Z2",)),
        NodeSpec("S2", "add", ("A2", "A1")), NodeSpec("Z3", "linear", ("S2",), (("units", 1),)),
        NodeSpec("A3", "sigmoid", ("Z3",)))


def test_a_node_read_twice_receives_the_sum_of_both_paths():
    graph = from_nodes(SKIP, "squared_error")
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(2, 4)), rng.normal(size=(1, 4))
    params = {name: rng.normal(size=shape) for name, shape in graph.parameter_shapes(2).items()}
    check_every_gradient(graph, X, Y, params)
    out = buffers(graph, X)
    graph.forward(params, X, out)
    graph.backward(params, X, Y, out)
    # By hand: A1 reaches the cost through Z2 (W2ᵀ·dZ2) and through the sum S2 (dS2 unchanged).
    through_z2 = params["W2"].T @ out["dZ2"]
    np.testing.assert_allclose(out["dA1_via_Z2"], through_z2, rtol=1e-14)
    np.testing.assert_array_equal(out["dA1_via_S2"], out["dS2"])
    np.testing.assert_array_equal(out["dA1"], out["dA1_via_Z2"] + out["dA1_via_S2"])
    assert [u.name for u in graph.feeds["A1"]] == ["Z2", "S2"]


def test_the_layers_shorthand_is_the_graph_written_out():
    short = from_layers((LayerSpec(3, "sigmoid"), LayerSpec(1, "sigmoid")), "squared_error")
    written = from_nodes((NodeSpec("Z1", "linear", ("A0",), (("units", 3),)), NodeSpec("A1", "sigmoid", ("Z1",)),
                          NodeSpec("Z2", "linear", ("A1",), (("units", 1),)), NodeSpec("A2", "sigmoid", ("Z2",))),
                         "squared_error")
    assert short.spec() == written.spec()
    assert Graph.from_spec(json.loads(json.dumps(short.spec()))).spec() == short.spec()


def test_a_cost_from_logits_reads_the_last_nodes_input_and_skips_the_activation():
    graph = from_layers((LayerSpec(2, "relu"), LayerSpec(3, "softmax")), "cross_entropy", from_logits=True)
    assert graph.cost.from_logits and graph.prediction == "Z2" and graph.output.name == "A2"
    assert "A2" not in graph.on_path and "dA2" not in graph.shapes(2, 4)
    with pytest.raises(GraphError, match="from_logits"):
        from_layers((LayerSpec(3, "sigmoid"),), "cross_entropy", from_logits=True)


def test_a_graph_refuses_a_node_that_reads_a_later_one():
    nodes = (NodeSpec("A1", "sigmoid", ("Z1",)), NodeSpec("Z1", "linear", ("A0",), (("units", 1),)))
    with pytest.raises(GraphError, match="reads 'Z1', which no earlier node computes"):
        from_nodes(nodes, "squared_error")


# --------------------------------------------------------------------------- the engine change moves no number


def test_every_array_is_bit_identical_to_the_dense_layer_engine():
    """tests/golden/traces.json: what the engine of commit 55ebf4b recorded for 29 runs (the six bundled
    chapters in both carries, every optimizer, mini-batches, frozen weights, every activation and cost,
    a 64-unit layer), once per machine's numerics. The graph engine records the same bytes as one of
    them in full; on a machine whose numerics no record was made under, there is nothing to compare."""
    now = fingerprints(records()[0]["runs"])
    if any(record["runs"] == now for record in records()):
        return
    same = [r for r in records() if r["numerics"] == numerics()]
    if not same:
        pytest.skip(f"no record of the dense-layer engine under this machine's numerics ({numerics()}); "
                    "tests/trace_fingerprints.py says how to make one")
    for run, prints in same[0]["runs"].items():
        for name, digest in prints.items():
            assert now[run].get(name) == digest, f"{run}: {name} moved"


def test_a_trace_walks_the_graph_with_the_sum_of_paths(tmp_path):
    raw = {"title": "skip", "data": {"X": [[0, 1], [1, 0], [1, 1]], "Y": [[1], [0], [1]]},
           "network": {"graph": [{"name": s.name, "op": s.op, ("inputs" if len(s.inputs) > 1 else "input"):
                                  list(s.inputs) if len(s.inputs) > 1 else s.inputs[0], **dict(s.options)}
                                 for s in SKIP]},
           "init": {"seed": 1, "scheme": "xavier"}, "train": {"learning_rate": 0.5, "steps": 3}}
    trace = tracer.run(tracer.parse_chapter(raw))
    records = {r.name: r for r in trace.nodes(1)}
    assert set(records["A1"].parts) == {"dA1_via_Z2", "dA1_via_S2"}
    np.testing.assert_array_equal(records["A1"].upstream, sum(records["A1"].parts.values()))
    loaded = tracer.Trace.load(trace.save(tmp_path / "skip.npz"))
    assert loaded.network.spec() == trace.network.spec()

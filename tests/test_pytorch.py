"""The graph engine against PyTorch's autograd in float64: softmax with categorical cross-entropy on
random networks of one to three layers (from the probabilities and from the logits), and a skip
connection, every gradient and every recorded value over several training steps.

PyTorch is a test-only dependency (`.ci/run` installs the CPU wheel); its softmax, log-softmax,
NLL and cross-entropy are the reference, computed without any of tracer's code.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracer
from tracer.engine import keys

if os.environ.get("CI"):  # .ci/run installs it: there a missing torch fails
    import torch
else:
    torch = pytest.importorskip("torch")

TOL = 1e-12


def chapter(layers: list[dict], X: np.ndarray, Y: np.ndarray, params: dict[str, np.ndarray], cost: str,
            from_logits: bool = False, steps: int = 4, graph: list[dict] | None = None) -> tracer.Chapter:
    network = {"graph": graph} if graph else {"layers": layers}
    raw = {"title": "against PyTorch", "data": {"X": X.T.tolist(), "Y": Y.T.tolist()}, "network": network,
           "init": {"values": {k: v.tolist() for k, v in params.items()}},
           "train": {"cost": cost, "from_logits": from_logits, "learning_rate": 0.5, "steps": steps}}
    return tracer.parse_chapter(raw)


def random_network(rng: np.random.Generator, depth: int, classes: int = 4, features: int = 3, m: int = 7):
    hidden = ["tanh", "relu", "sigmoid"]
    units = [int(rng.integers(2, 5)) for _ in range(depth - 1)] + [classes]
    layers = [{"units": u, "activation": hidden[i % 3]} for i, u in enumerate(units[:-1])]
    layers.append({"units": classes, "activation": "softmax"})
    X = rng.normal(size=(features, m))
    labels = rng.integers(0, classes, size=m)
    Y = np.eye(classes)[:, labels]
    params, n_in = {}, features
    for l, u in enumerate(units, start=1):
        params[f"W{l}"] = rng.normal(size=(u, n_in))
        params[f"b{l}"] = rng.normal(size=(u, 1)) * 0.3
        n_in = u
    return layers, X, Y, labels, params


ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


@pytest.mark.parametrize("from_logits", [False, True], ids=["probabilities", "logits"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_and_cross_entropy_reproduce_pytorch(depth, seed, from_logits):
    rng = np.random.default_rng(100 * depth + seed)
    layers, X, Y, labels, params = random_network(rng, depth)
    trace = tracer.run(chapter(layers, X, Y, params, "cross_entropy", from_logits))
    weights = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    target = torch.tensor(labels)
    for step in range(4):
        values = trace.at(step)
        A = torch.tensor(X, dtype=torch.float64)
        outs = {}
        for l, spec in enumerate(layers, start=1):
            Z = weights[f"W{l}"] @ A + weights[f"b{l}"]
            Z.retain_grad()
            A = torch.softmax(Z, dim=0) if spec["activation"] == "softmax" else ACT[spec["activation"]](Z)
            A.retain_grad()
            outs[f"Z{l}"], outs[f"A{l}"] = Z, A
        L = len(layers)
        if from_logits:  # PyTorch's own: log-softmax inside cross_entropy, examples as rows
            loss = torch.nn.functional.cross_entropy(outs[f"Z{L}"].T, target)
        else:
            loss = torch.nn.functional.nll_loss(torch.log(outs[f"A{L}"]).T, target)
        loss.backward()
        assert values["cost"] == pytest.approx(loss.item(), rel=TOL, abs=TOL)
        for name, tensor in outs.items():
            np.testing.assert_allclose(values[name], tensor.detach().numpy(), rtol=TOL, atol=TOL, err_msg=name)
            if keys.grad(name) in values:
                np.testing.assert_allclose(values[keys.grad(name)], tensor.grad.numpy(), rtol=TOL, atol=TOL,
                                           err_msg=keys.grad(name))
        for name, w in weights.items():
            np.testing.assert_allclose(values[keys.grad(name)], w.grad.numpy(), rtol=TOL, atol=TOL, err_msg=name)
        with torch.no_grad():  # the step's update, as tracer's gradient descent does it
            for name, w in weights.items():
                w -= 0.5 * w.grad
                w.grad = None
                np.testing.assert_allclose(values[keys.after(name)], w.numpy(), rtol=TOL, atol=TOL)


def test_a_skip_connection_reproduces_pytorchs_autograd():
    rng = np.random.default_rng(7)
    graph = [{"name": "Z1", "op": "linear", "input": "A0", "units": 3}, {"name": "A1", "op": "tanh", "input": "Z1"},
             {"name": "Z2", "op": "linear", "input": "A1", "units": 3}, {"name": "A2", "op": "relu", "input": "Z2"},
             {"name": "S2", "op": "add", "inputs": ["A2", "A1"]},
             {"name": "Z3", "op": "linear", "input": "S2", "units": 2}, {"name": "A3", "op": "sigmoid", "input": "Z3"}]
    X, Y = rng.normal(size=(2, 5)), rng.integers(0, 2, size=(2, 5)).astype(float)
    params = {"W1": rng.normal(size=(3, 2)), "b1": rng.normal(size=(3, 1)), "W2": rng.normal(size=(3, 3)),
              "b2": rng.normal(size=(3, 1)), "W3": rng.normal(size=(2, 3)), "b3": rng.normal(size=(2, 1))}
    trace = tracer.run(chapter([], X, Y, params, "binary_cross_entropy", graph=graph))
    w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    for step in range(4):
        values = trace.at(step)
        A0 = torch.tensor(X, dtype=torch.float64)
        Z1 = w["W1"] @ A0 + w["b1"]
        A1 = torch.tanh(Z1)
        Z2 = w["W2"] @ A1 + w["b2"]
        A2 = torch.relu(Z2)
        S2 = A2 + A1
        Z3 = w["W3"] @ S2 + w["b3"]
        A3 = torch.sigmoid(Z3)
        nodes = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2, "S2": S2, "Z3": Z3, "A3": A3}
        for t in nodes.values():
            t.retain_grad()
        Yt = torch.tensor(Y, dtype=torch.float64)
        loss = torch.nn.functional.binary_cross_entropy(A3, Yt, reduction="sum") / X.shape[1]
        loss.backward(retain_graph=True)
        assert values["cost"] == pytest.approx(loss.item(), rel=TOL)
        for name, t in nodes.items():
            np.testing.assert_allclose(values[name], t.detach().numpy(), rtol=TOL, atol=TOL, err_msg=name)
            np.testing.assert_allclose(values[keys.grad(name)], t.grad.numpy(), rtol=TOL, atol=TOL,
                                       err_msg=keys.grad(name))
        # The two parts A1 receives, each as PyTorch computes that path alone (the other held fixed).
        through_z2 = torch.autograd.grad(Z2, A1, Z2.grad, retain_graph=True)[0]
        np.testing.assert_allclose(values["dA1_via_Z2"], through_z2.numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(values["dA1_via_S2"], S2.grad.numpy(), rtol=TOL, atol=TOL)
        for name, p in w.items():
            np.testing.assert_allclose(values[keys.grad(name)], p.grad.numpy(), rtol=TOL, atol=TOL, err_msg=name)
        with torch.no_grad():
            for p in w.values():
                p -= 0.5 * p.grad
                p.grad = None

"""L2, weight decay, batch normalisation and dropout against PyTorch float64, over several steps.

The conventions checked (docs/chapter-format.md, [train]):
* L2: Cost = data term + (λ/2m)·Σₗ‖Wₗ‖², the weights only, so dWₗ gains (λ/m)·Wₗ. PyTorch's side
  adds the penalty to its loss by hand and lets autograd differentiate it; with Adam the same run
  is torch.optim.Adam(weight_decay=λ/m) (PyTorch's "weight decay" there is this coupled L2).
* weight decay: W ← W − α·step(dW) − α·λ·W, decoupled: torch.optim.AdamW; with plain gradient
  descent the same as torch.optim.SGD(weight_decay=λ).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tracer

if os.environ.get("CI"):  # .ci/run installs it: there a missing torch fails
    import torch
else:
    torch = pytest.importorskip("torch")

TOL = 1e-12
STEPS = 10
ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def network(rng: np.random.Generator, features: int = 3, m: int = 6, hidden: int = 3):
    X = rng.normal(size=(features, m))
    Y = (rng.random(size=(1, m)) > 0.5).astype(float)
    params = {"W1": rng.normal(size=(hidden, features)), "b1": rng.normal(size=(hidden, 1)) * 0.3,
              "W2": rng.normal(size=(1, hidden)), "b2": rng.normal(size=(1, 1)) * 0.3}
    layers = [{"units": hidden, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    return X, Y, params, layers


def chapter(X, Y, params, layers, optimizer: str = "gd", steps: int = STEPS, **train) -> tracer.Chapter:
    raw = {"title": "regularisation against PyTorch", "data": {"X": X.T.tolist(), "Y": Y.T.tolist()},
           "network": {"layers": layers}, "init": {"values": {k: v.tolist() for k, v in params.items()}},
           "train": {"cost": "binary_cross_entropy", "learning_rate": 0.1, "steps": steps, "optimizer": optimizer,
                     **train}}
    return tracer.parse_chapter(raw)


def torch_run(X, Y, params, layers, make_optimizer, l2: float = 0.0, steps: int = STEPS):
    """Each step's cost, gradients and parameters before the step, from PyTorch's autograd."""
    weights = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = make_optimizer(list(weights.values()))
    m = X.shape[1]
    history = []
    for _ in range(steps):
        opt.zero_grad()
        A = torch.tensor(X, dtype=torch.float64)
        for l, spec in enumerate(layers, start=1):
            A = ACT[spec["activation"]](weights[f"W{l}"] @ A + weights[f"b{l}"])
        target = torch.tensor(Y, dtype=torch.float64)
        loss = torch.nn.functional.binary_cross_entropy(A, target, reduction="sum") / m
        if l2:
            loss = loss + l2 / (2 * m) * sum((weights[f"W{l}"] ** 2).sum() for l in range(1, len(layers) + 1))
        before = {k: w.detach().clone().numpy() for k, w in weights.items()}
        loss.backward()
        history.append((loss.item(), before, {k: w.grad.detach().clone().numpy() for k, w in weights.items()}))
        opt.step()
    return history, {k: w.detach().numpy() for k, w in weights.items()}


def same(trace: tracer.Trace, history, final) -> None:
    for step, (loss, before, grads) in enumerate(history):
        v = trace.at(step)
        assert v["cost"] == pytest.approx(loss, rel=TOL, abs=TOL), step
        for k in before:
            np.testing.assert_allclose(v[k], before[k], rtol=TOL, atol=TOL, err_msg=f"{k} at step {step}")
            np.testing.assert_allclose(v[f"d{k}"], grads[k], rtol=TOL, atol=TOL, err_msg=f"d{k} at step {step}")
    for k, value in final.items():
        np.testing.assert_allclose(trace.final[k], value, rtol=TOL, atol=TOL, err_msg=f"final {k}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_is_the_penalty_added_to_the_loss(seed):
    X, Y, params, layers = network(np.random.default_rng(seed))
    lam = 0.7
    trace = tracer.run(chapter(X, Y, params, layers, l2=lam))
    history, final = torch_run(X, Y, params, layers, lambda p: torch.optim.SGD(p, lr=0.1), l2=lam)
    same(trace, history, final)


def test_l2_under_adam_is_torchs_coupled_weight_decay_of_lambda_over_m():
    """torch.optim.Adam(weight_decay=w) adds w·W to every gradient before Adam's moments: our L2 with
    λ = w·m on the weights (the biases get no decay here, so they are given their own group)."""
    X, Y, params, layers = network(np.random.default_rng(7))
    lam, m = 0.9, X.shape[1]
    trace = tracer.run(chapter(X, Y, params, layers, optimizer="adam", l2=lam))

    def adam(p):
        W, b = [p[0], p[2]], [p[1], p[3]]
        return torch.optim.Adam([{"params": W, "weight_decay": lam / m}, {"params": b, "weight_decay": 0.0}],
                                lr=0.1, betas=(0.9, 0.999), eps=1e-8)

    history, final = torch_run(X, Y, params, layers, adam)
    for step, (_, before, _) in enumerate(history):
        for k in before:
            np.testing.assert_allclose(trace.at(step)[k], before[k], rtol=TOL, atol=TOL, err_msg=f"{k} at {step}")
    for k, value in final.items():
        np.testing.assert_allclose(trace.final[k], value, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("decay_biases", [False, True])
def test_weight_decay_under_adam_is_adamw(decay_biases):
    X, Y, params, layers = network(np.random.default_rng(3))
    wd = 0.3
    trace = tracer.run(chapter(X, Y, params, layers, optimizer="adam", weight_decay=wd, decay_biases=decay_biases))

    def adamw(p):
        W, b = [p[0], p[2]], [p[1], p[3]]
        return torch.optim.AdamW([{"params": W, "weight_decay": wd},
                                  {"params": b, "weight_decay": wd if decay_biases else 0.0}],
                                 lr=0.1, betas=(0.9, 0.999), eps=1e-8)

    history, final = torch_run(X, Y, params, layers, adamw)
    same(trace, history, final)


def test_weight_decay_under_gradient_descent_is_sgds_weight_decay():
    X, Y, params, layers = network(np.random.default_rng(4))
    wd = 0.4
    trace = tracer.run(chapter(X, Y, params, layers, weight_decay=wd))

    def sgd(p):
        return torch.optim.SGD([{"params": [p[0], p[2]], "weight_decay": wd}, {"params": [p[1], p[3]]}], lr=0.1)

    history, final = torch_run(X, Y, params, layers, sgd)
    for step, (loss, before, _) in enumerate(history):
        v = trace.at(step)
        assert v["cost"] == pytest.approx(loss, rel=TOL, abs=TOL)  # decay is not in the cost
        for k in before:
            np.testing.assert_allclose(v[k], before[k], rtol=TOL, atol=TOL, err_msg=f"{k} at {step}")
    for k, value in final.items():
        np.testing.assert_allclose(trace.final[k], value, rtol=TOL, atol=TOL)


def test_weight_decay_is_not_l2_under_adam():
    """The two differ under Adam (the point the documents make in one sentence), and agree under gd."""
    X, Y, params, layers = network(np.random.default_rng(5))
    m = X.shape[1]
    adam_l2 = tracer.run(chapter(X, Y, params, layers, optimizer="adam", l2=0.3 * m))
    adam_wd = tracer.run(chapter(X, Y, params, layers, optimizer="adam", weight_decay=0.3 / 0.1))
    assert np.abs(adam_l2.final["W1"] - adam_wd.final["W1"]).max() > 1e-3
    gd_l2 = tracer.run(chapter(X, Y, params, layers, l2=0.3 * m))
    gd_wd = tracer.run(chapter(X, Y, params, layers, weight_decay=0.3))
    for k in params:
        np.testing.assert_allclose(gd_l2.final[k], gd_wd.final[k], rtol=1e-12, atol=1e-14)

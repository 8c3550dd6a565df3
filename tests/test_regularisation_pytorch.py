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


# --------------------------------------------------------------------------- batch normalisation


def bn_chapter(X, Y, params, layers, steps: int = STEPS, **train) -> tracer.Chapter:
    raw = {"title": "batch norm against PyTorch", "data": {"X": X.T.tolist(), "Y": Y.T.tolist()},
           "network": {"layers": layers}, "init": {"values": {k: v.tolist() for k, v in params.items()}},
           "train": {"cost": "squared_error", "learning_rate": 0.1, "steps": steps, **train}}
    return tracer.parse_chapter(raw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_norm_reproduces_torchs_batch_norm_in_training_mode(seed):
    """F.batch_norm(training=True): forward, and the gradients of γ, β, W and of the input, over 10 steps."""
    rng = np.random.default_rng(seed)
    features, m, hidden = 3, 5, 4
    X = rng.normal(size=(features, m))
    Y = rng.random(size=(1, m))
    eps = [1e-5, 1e-3, 0.1][seed]
    layers = [{"units": hidden, "activation": "tanh", "batchnorm": True, "batchnorm_epsilon": eps},
              {"units": 1, "activation": "sigmoid"}]
    params = {"W1": rng.normal(size=(hidden, features)), "gamma1": 1 + 0.3 * rng.normal(size=(hidden, 1)),
              "beta1": 0.3 * rng.normal(size=(hidden, 1)), "W2": rng.normal(size=(1, hidden)),
              "b2": 0.3 * rng.normal(size=(1, 1))}
    trace = tracer.run(bn_chapter(X, Y, params, layers))
    w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(w.values()), lr=0.1)
    for step in range(STEPS):
        opt.zero_grad()
        A0 = torch.tensor(X, dtype=torch.float64, requires_grad=True)
        Z1 = w["W1"] @ A0
        Zt = torch.nn.functional.batch_norm(Z1.T, None, None, w["gamma1"].flatten(), w["beta1"].flatten(),
                                            training=True, eps=eps).T
        Zt.retain_grad()
        Z1.retain_grad()
        A2 = torch.sigmoid(w["W2"] @ torch.tanh(Zt) + w["b2"])
        loss = ((A2 - torch.tensor(Y)) ** 2).sum() / (2 * m)
        loss.backward()
        v = trace.at(step)
        assert v["cost"] == pytest.approx(loss.item(), rel=TOL, abs=TOL)
        np.testing.assert_allclose(v["Zt1"], Zt.detach().numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(v["dZt1"], Zt.grad.numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(v["dZ1"], Z1.grad.numpy(), rtol=TOL, atol=TOL, err_msg="dZ1: the three paths")
        np.testing.assert_allclose(v["dA0"], A0.grad.numpy(), rtol=TOL, atol=TOL)
        for k in params:
            np.testing.assert_allclose(v[k], w[k].detach().numpy(), rtol=TOL, atol=TOL, err_msg=f"{k} at {step}")
            np.testing.assert_allclose(v[f"d{k}"], w[k].grad.numpy(), rtol=TOL, atol=TOL, err_msg=f"d{k} at {step}")
        opt.step()


def test_batch_norm_layer_starts_gamma_at_one_beta_at_zero_and_has_no_bias():
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(2, 4)), rng.random(size=(1, 4))
    raw = {"title": "bn", "data": {"X": X.T.tolist(), "Y": Y.T.tolist()},
           "network": {"layers": [{"units": 3, "activation": "relu", "batchnorm": True}, {"units": 1}]},
           "init": {"seed": 1}, "train": {"learning_rate": 0.1, "steps": 1}}
    trace = tracer.run(tracer.parse_chapter(raw))
    assert trace.parameter_names == ["W1", "gamma1", "beta1", "W2", "b2"]
    np.testing.assert_array_equal(trace.at(0)["gamma1"], np.ones((3, 1)))
    np.testing.assert_array_equal(trace.at(0)["beta1"], np.zeros((3, 1)))
    # the biased variance: each unit of Ẑ has mean 0 and mean square σ²/(σ² + ε) over the batch
    v = trace.at(0)
    np.testing.assert_allclose(v["var1"], np.var(v["Z1"], axis=1, ddof=0, keepdims=True), rtol=1e-14)


# --------------------------------------------------------------------------- dropout


def test_dropout_reproduces_pytorch_given_the_same_masks():
    """Inverted dropout, A·D/p, written by hand in PyTorch with the masks the trace recorded."""
    rng = np.random.default_rng(11)
    X, Y, params, _ = network(rng, hidden=4)
    keep = 0.6
    layers = [{"units": 4, "activation": "tanh", "keep": keep}, {"units": 1, "activation": "sigmoid"}]
    trace = tracer.run(chapter(X, Y, params, layers, dropout_seed=5))
    w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(w.values()), lr=0.1)
    m = X.shape[1]
    dropped = 0
    for step in range(STEPS):
        opt.zero_grad()
        v = trace.at(step)
        D = torch.tensor(v["D1"])
        assert set(np.unique(v["D1"])) <= {0.0, 1.0}
        dropped += int((v["D1"] == 0).sum())
        A1 = torch.tanh(w["W1"] @ torch.tensor(X) + w["b1"])
        A1.retain_grad()
        A2 = torch.sigmoid(w["W2"] @ (A1 * D / keep) + w["b2"])
        loss = torch.nn.functional.binary_cross_entropy(A2, torch.tensor(Y), reduction="sum") / m
        loss.backward()
        assert v["cost"] == pytest.approx(loss.item(), rel=TOL, abs=TOL)
        np.testing.assert_allclose(v["dA1"], A1.grad.numpy(), rtol=TOL, atol=TOL)
        for k in params:
            np.testing.assert_allclose(v[k], w[k].detach().numpy(), rtol=TOL, atol=TOL, err_msg=f"{k} at {step}")
            np.testing.assert_allclose(v[f"d{k}"], w[k].grad.numpy(), rtol=TOL, atol=TOL, err_msg=f"d{k} at {step}")
        opt.step()
    assert 0 < dropped < STEPS * v["D1"].size  # some units dropped, not all


def test_dropout_masks_are_the_seeds_draws_step_after_step():
    """D at step k is the k-th draw of np.random.RandomState(dropout_seed).rand(*A.shape) < keep, as a
    notebook draws it; the same seed gives the same masks whatever is recorded, another seed others."""
    rng = np.random.default_rng(12)
    X, Y, params, _ = network(rng, hidden=4)
    layers = [{"units": 4, "activation": "tanh", "keep": 0.5}, {"units": 1, "activation": "sigmoid"}]
    trace = tracer.run(chapter(X, Y, params, layers, dropout_seed=8, steps=4))
    draws = np.random.RandomState(8)
    for step in range(4):
        np.testing.assert_array_equal(trace.at(step)["D1"], (draws.rand(4, X.shape[1]) < 0.5).astype(float))
    later = tracer.run(chapter(X, Y, params, layers, dropout_seed=8, steps=4), record=[3])
    np.testing.assert_array_equal(later.at(3)["D1"], trace.at(3)["D1"])
    other = tracer.run(chapter(X, Y, params, layers, dropout_seed=9, steps=4))
    assert not np.array_equal(other.at(0)["D1"], trace.at(0)["D1"])


def test_batch_norm_running_averages_and_prediction_are_torchs_batchnorm1d():
    """nn.BatchNorm1d (momentum 0.1, running variance from the unbiased batch variance) over 10 steps
    in training mode, then in eval mode: the trace's running averages after each step, and the
    prediction from them (Graph.predict), with dropout off."""
    rng = np.random.default_rng(21)
    features, m, hidden = 2, 6, 3
    X, Y = rng.normal(size=(features, m)), rng.random(size=(1, m))
    layers = [{"units": hidden, "activation": "relu", "batchnorm": True, "keep": 0.5},
              {"units": 1, "activation": "sigmoid"}]
    params = {"W1": rng.normal(size=(hidden, features)), "gamma1": np.ones((hidden, 1)),
              "beta1": np.zeros((hidden, 1)), "W2": rng.normal(size=(1, hidden)), "b2": np.zeros((1, 1))}
    chap = bn_chapter(X, Y, params, layers)
    trace = tracer.run(chap)
    bn = torch.nn.BatchNorm1d(hidden, dtype=torch.float64)
    for step in range(STEPS):
        v = trace.at(step)
        bn.train()
        bn(torch.tensor(v["Z1"].T))
        np.testing.assert_allclose(v["running_mu1"], bn.running_mean.numpy().reshape(-1, 1), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(v["running_var1"], bn.running_var.numpy().reshape(-1, 1), rtol=TOL, atol=TOL)
    net = chap.network
    grid = rng.normal(size=(features, 9))
    out = {k: np.empty(s) for k, s in net.value_shapes(features, 9).items()}
    net.predict(trace.final, grid, out, trace.running)
    bn.eval()
    bn.weight.data = torch.tensor(trace.final["gamma1"].ravel())
    bn.bias.data = torch.tensor(trace.final["beta1"].ravel())
    with torch.no_grad():
        Z1 = torch.tensor(trace.final["W1"]) @ torch.tensor(grid)
        A1 = torch.relu(bn(Z1.T).T)  # no dropout in prediction
        A2 = torch.sigmoid(torch.tensor(trace.final["W2"]) @ A1 + torch.tensor(trace.final["b2"]))
    np.testing.assert_allclose(out["A2"], A2.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(out["D1"], np.ones((hidden, 9)))

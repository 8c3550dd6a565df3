"""Each catalogued mistake, made by hand in plain NumPy here, is named by the checker.

The wrong answers are computed in this file from the article's equations (Z = W·X + b,
A = σ(Z), Cost = 1/(2m)·Σ(y − ŷ)², dW = dZ·Xᵀ, db = Σ dZ, W ← W − α·dW) with the one slip
written in; they never go through tracer.mistakes.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracer
from tracer.engine.train import hand_carry
from tracer.exercises.answers import check
from tracer.exercises.mistakes import CATALOGUE, rerun_step, step_context, variants

X = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])  # chapter 02: features × examples
Y = np.array([[0.0, 1.0, 1.0, 1.0]])
W0, b0 = np.array([[0.1, 0.6]]), np.array([[0.0]])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def step(W, b, X=X, Y=Y, lr=1.0, *, slip=None):
    """One step of the article's OR network by hand, with an optional slip."""
    m = X.shape[1]
    Z = W @ X + b
    A = sigmoid(Z)
    cost = np.sum((Y - A) ** 2) / (2 * m)
    dA = (A - Y) / m
    if slip == "no_mean":
        dA, cost = A - Y, np.sum((Y - A) ** 2) / 2
    if slip == "sign":
        dA = (Y - A) / m
    local = A * (1 - A)
    if slip == "no_derivative":
        local = np.ones_like(A)
    if slip == "at_Z":
        local = Z * (1 - Z)
    dZ = dA * local
    dW = dZ @ X.T
    if slip == "transposed":
        dW = X @ dZ.T
    if slip == "untransposed":
        dW = dZ @ X
    db = np.sum(dZ, axis=1, keepdims=True)
    if slip == "not_summed":
        db = dZ
    W_after, b_after = W - lr * dW, b - lr * db
    return {"Z1": Z, "A1": A, "cost": cost, "dW1": dW, "db1": db, "W1_after": W_after, "b1_after": b_after}


def at_step_1():
    first = step(W0, b0)
    return first["W1_after"], first["b1_after"]


def answer(name, value, decimals=3):
    a = np.asarray(value, dtype=float)
    if a.size == 1:
        return f"{name} = {a.item():.{decimals}f}"
    if 1 in a.shape:
        return f"{name} = [" + ", ".join(f"{x:.{decimals}f}" for x in a.ravel()) + "]"
    return f"{name} = [" + ", ".join("[" + ", ".join(f"{x:.{decimals}f}" for x in row) + "]" for row in a) + "]"


def named(chapter, text, at):
    report = check(chapter, [text], at)
    (j,) = report.judgements
    assert not j.right, f"{text} should be wrong"
    return [key for key, _ in j.mistakes]


@pytest.mark.parametrize("slip, key", [("no_mean", "no_mean"), ("sign", "sign_flipped"),
                                       ("no_derivative", "no_activation_derivative"),
                                       ("at_Z", "derivative_at_Z")])
def test_a_gradient_slip_at_the_articles_exercise_is_named(or_batch, slip, key):
    W1, b1 = at_step_1()
    wrong = step(W1, b1, slip=slip)
    assert key in named(or_batch, answer("dW1", wrong["dW1"]), 1)


def test_the_bias_gradient_not_summed_is_named(or_batch):
    W1, b1 = at_step_1()
    wrong = step(W1, b1, slip="not_summed")["db1"]  # one number per example
    assert wrong.shape == (1, 4)
    assert named(or_batch, answer("db1", wrong), 1) == ["bias_not_summed"]


def test_the_transpose_of_dW_is_named_where_it_shows(or_batch):
    # A hidden layer of 3 makes dW1 3 × 2, so its transpose (2 × 3) cannot pass for it.
    chapter = tracer.parse_chapter({
        "title": "t", "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "Y": [[0], [1], [1], [0]]},
        "network": {"layers": [{"units": 3, "activation": "sigmoid"}, {"units": 1, "activation": "sigmoid"}]},
        "init": {"values": {"W1": [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]], "W2": [[0.7, -0.8, 0.9]]}},
        "train": {"learning_rate": 1, "steps": 1}})
    Xh, Yh = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], float), np.array([[0, 1, 1, 0]], float)
    W1, W2 = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]]), np.array([[0.7, -0.8, 0.9]])
    A1 = sigmoid(W1 @ Xh)
    A2 = sigmoid(W2 @ A1)
    dZ2 = (A2 - Yh) / 4 * A2 * (1 - A2)
    dZ1 = (W2.T @ dZ2) * A1 * (1 - A1)
    wrong = Xh @ dZ1.T  # X·dZ1ᵀ: 2 × 3
    assert "transposed" in named(chapter, answer("dW1", wrong), 0)


def test_X_in_place_of_its_transpose_is_named_when_the_shapes_allow():
    # Two examples of two features: dZ·X has the shape of dW, with the wrong numbers.
    chapter = tracer.parse_chapter({
        "title": "t", "data": {"X": [[0.2, 0.9], [0.7, 0.3]], "Y": [[1], [0]]},
        "network": {"layers": [{"units": 1, "activation": "sigmoid"}]},
        "init": {"values": {"W1": [[0.5, -0.4]]}}, "train": {"learning_rate": 1, "steps": 1}})
    Xs, Ys = np.array([[0.2, 0.7], [0.9, 0.3]]), np.array([[1.0, 0.0]])
    wrong = step(np.array([[0.5, -0.4]]), np.zeros((1, 1)), Xs, Ys, slip="untransposed")["dW1"]
    assert "transposed" in named(chapter, answer("dW1", wrong, 4), 0)


def test_the_update_with_the_wrong_sign_is_named(or_batch):
    W1, b1 = at_step_1()
    right = step(W1, b1)
    wrong = W1 + 1.0 * right["dW1"]
    # The same numbers come from flipping the sign of (ŷ − y): both are named.
    assert set(named(or_batch, answer("W1_after", wrong), 1)) == {"update_sign", "sign_flipped"}


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_the_update_with_the_wrong_learning_rate_is_named(or_batch, rate):
    W1, b1 = at_step_1()
    right = step(W1, b1)
    wrong = W1 - rate * right["dW1"]
    found = check(or_batch, [answer("W1_after", wrong, 4)], 1).judgements[0].mistakes
    assert [k for k, _ in found] == ["learning_rate"]
    assert f"learning rate {rate:g} instead of 1" in found[0][1]


def test_the_previous_steps_weights_are_named(or_batch):
    wrong = step(W0, b0)["dW1"]  # step 1's gradient computed from the weights before step 0
    assert "previous_weights" in named(or_batch, answer("dW1", wrong), 1)
    W1, b1 = at_step_1()
    moved_from_old = W0 - step(W1, b1)["dW1"]
    assert "previous_weights" in named(or_batch, answer("W1_after", moved_from_old), 1)


def test_the_loss_of_one_example_is_named(or_batch):
    W1, b1 = at_step_1()
    A = sigmoid(W1 @ X + b1)
    loss_2 = (Y[0, 1] - A[0, 1]) ** 2 / 2  # example 2 alone: 1/(2·1)·(y − ŷ)²
    found = check(or_batch, [f"cost = {loss_2:.3f}"], 1).judgements[0].mistakes
    assert [k for k, _ in found] == ["one_example"]
    assert "example 2" in found[0][1]


def test_a_right_answer_names_no_mistake_and_a_random_one_names_none(or_batch):
    report = check(or_batch, ["dW1 = [-0.044, -0.035]", "db1 = 0.500"], 1)
    assert report.judgements[0].mistakes == []
    assert report.judgements[1].mistakes == []
    assert "no mistake in the catalogue" in report.judgements[1].message


# --------------------------------------------------------------------------- the variants themselves


@pytest.mark.parametrize("name", ["02-or-batch", "04-xor-hidden-layer", "06-xor-relu-adam", "11-batch-norm", "12-dropout",
                                  "13-l2-penalty"])
def test_rerunning_a_step_without_a_mistake_gives_the_trace(name):
    chapter = tracer.load_chapter(name)
    for carry in ("full", "rounded"):
        trace = tracer.run(chapter, carry=carry, steps=3, record=[1, 2])
        ctx = step_context(chapter, trace, 2, hand_carry(chapter) if carry == "rounded" else None)
        again = rerun_step(ctx)
        for q, value in trace.at(2).items():
            if q.startswith("running_"):  # batch norm's running averages are the run's, not the step's
                continue
            np.testing.assert_allclose(again[q], value, rtol=1e-12, atol=1e-15, err_msg=f"{name} {carry} {q}")


def _mistakes_made(chapter, steps: int) -> set[str]:
    """The mistakes whose variants of the last of `steps` steps change at least one recorded value."""
    trace = tracer.run(chapter, steps=steps)
    truth = trace.at(steps - 1)
    seen = set()
    for v in variants(step_context(chapter, trace, steps - 1)):
        seen.add(v.mistake)
        changed = [q for q in v.values if q in truth and (np.shape(v.values[q]) != np.shape(truth[q])
                                                          or not np.allclose(v.values[q], truth[q]))]
        assert changed, v.says
    return seen


def test_every_mistake_changes_something_at_the_articles_exercise(or_batch):
    seen = _mistakes_made(or_batch, 2)
    # The rest need a cost with a logarithm (log base 10) or a softmax (its Jacobian's diagonal alone).
    # (and an L2 penalty, a batch-normalised layer or dropout, for the mistakes made there: chapters 11–13)
    assert seen == set(CATALOGUE) - {"log_base_10", "jacobian_diagonal", "l2_no_mean", "l2_doubled",
                                     "unbiased_variance", "dropout_no_scaling"}


def test_each_variant_says_what_was_done_in_plain_words(or_batch):
    ctx = step_context(or_batch, tracer.run(or_batch, steps=2), 1)
    for v in variants(ctx):
        assert v.says and v.says[0].islower() and "_" not in v.says


@pytest.mark.parametrize("name", ["01-or-one-example", "03-xor-feature-cross", "04-xor-hidden-layer",
                                  "05-xor-no-bias", "06-xor-relu-adam"])
def test_every_mistake_can_be_made_in_every_bundled_chapter(name):
    chapter = tracer.load_chapter(name)
    trace = tracer.run(chapter, steps=2)
    for carry in (None, hand_carry(chapter)):
        for v in variants(step_context(chapter, trace, 1, carry)):
            assert "cost" in v.values and all(np.all(np.isfinite(x)) for x in v.values.values()), v.says


# --------------------------------------------------------------------------- softmax's usual slips (chapter 07)


def softmax_step(slip=None):
    """Step 0 of chapter 07 by hand (its starting weights and data, typed here): Z = W·X + b, a softmax,
    the cross-entropy from the probabilities, and the backward pass through each example's Jacobian."""
    X7 = np.array([[2, 1, -1, 0, -1, 0], [0, 0, -1.5, -2, 1.5, 2]], dtype=float)
    Y7 = np.eye(3)[:, [0, 0, 1, 1, 2, 2]]
    W, b = np.array([[0.5, 0.2], [-1, -0.4], [0, 0.6]]), np.zeros((3, 1))
    m = X7.shape[1]
    Z = W @ X7 + b
    A = np.exp(Z) / np.exp(Z).sum(axis=0)
    log = np.log10 if slip == "log10" else np.log
    cost = -np.sum(Y7 * log(A)) / m
    dA = -Y7 / (A * m) / (np.log(10) if slip == "log10" else 1)
    dZ = np.empty_like(Z)
    for i in range(m):  # each example's Jacobian, J[k, j] = a_k (δ_kj − a_j)
        a = A[:, i]
        J = np.diag(a) - np.outer(a, a)
        if slip == "diagonal":
            J = np.diag(np.diag(J))  # the other classes' terms forgotten
        dZ[:, i] = J.T @ dA[:, i]
    if slip == "no_mean":  # the shortcut ŷ − y, without its 1/m
        dZ = A - Y7
    return {"cost": cost, "dZ1": dZ, "dW1": dZ @ X7.T}


@pytest.mark.parametrize("slip, key, quantity", [("diagonal", "jacobian_diagonal", "dZ1"),
                                                 ("no_mean", "no_mean", "dZ1"),
                                                 ("log10", "log_base_10", "cost"),
                                                 ("log10", "log_base_10", "dW1")])
def test_a_softmax_slip_is_named(slip, key, quantity):
    chapter = tracer.load_chapter("07-softmax-three-classes")
    right = softmax_step()
    wrong = softmax_step(slip)
    assert not np.allclose(wrong[quantity], right[quantity])
    assert key in named(chapter, answer(quantity, wrong[quantity]), 0)


def test_every_mistake_changes_something_in_the_softmax_chapter():
    seen = _mistakes_made(tracer.load_chapter("07-softmax-three-classes"), 1)
    # One step and one example per class pair: no previous step, and every one-example loss differs.
    assert {"jacobian_diagonal", "log_base_10", "no_mean"} <= seen

"""The regularisation and normalisation slips of the catalogue, each made by hand in plain NumPy here
(never through tracer.exercises.mistakes) and named by the checker: the L2 gradient without its 1/m or
with 2λ (chapter 13), batch norm with the unbiased variance (chapter 11), dropout without the 1/p
(chapter 12). The starting parameters and the step's mask are read from the trace; the rest is worked here."""

from __future__ import annotations

import numpy as np
import pytest

import tracer
from tracer.exercises.mistakes import step_context, variants

from test_mistakes import answer, named


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def start(name):
    chapter = tracer.load_chapter(name)
    v = tracer.run(chapter, steps=1).at(0)
    return chapter, v


@pytest.mark.parametrize("slip, key", [("no_mean", "l2_no_mean"), ("doubled", "l2_doubled")])
def test_an_l2_gradient_slip_is_named(slip, key):
    chapter, v = start("13-l2-penalty")
    lam = chapter.regularisation.l2
    X, Y = v["A0"], v["Y"]
    m = X.shape[1]
    A1 = np.tanh(v["W1"] @ X + v["b1"])
    A2 = sigmoid(v["W2"] @ A1 + v["b2"])
    dZ2 = (A2 - Y) / m  # cross-entropy after a sigmoid
    term = {"no_mean": lam, "doubled": 2 * lam / m, None: lam / m}
    right = dZ2 @ A1.T + term[None] * v["W2"]
    wrong = dZ2 @ A1.T + term[slip] * v["W2"]
    np.testing.assert_allclose(right, v["dW2"], rtol=1e-12)
    assert key in named(chapter, answer("dW2", wrong), 0)


def test_the_l2_cost_is_the_data_term_plus_the_penalty():
    chapter, v = start("13-l2-penalty")
    lam, m = chapter.regularisation.l2, v["A0"].shape[1]
    A2 = sigmoid(v["W2"] @ np.tanh(v["W1"] @ v["A0"] + v["b1"]) + v["b2"])
    data = -np.mean(v["Y"] * np.log(A2) + (1 - v["Y"]) * np.log(1 - A2))
    penalty = lam / (2 * m) * (np.sum(v["W1"] ** 2) + np.sum(v["W2"] ** 2))
    assert v["cost_data"] == pytest.approx(data, rel=1e-12)
    assert v["penalty"] == pytest.approx(penalty, rel=1e-12)
    assert v["cost"] == pytest.approx(data + penalty, rel=1e-12)


def test_batch_norm_with_the_unbiased_variance_is_named():
    chapter, v = start("11-batch-norm")
    Z1 = v["W1"] @ v["A0"]
    wrong = np.var(Z1, axis=1, ddof=1, keepdims=True)
    np.testing.assert_allclose(np.var(Z1, axis=1, ddof=0, keepdims=True), v["var1"], rtol=1e-12)
    assert "unbiased_variance" in named(chapter, answer("var1", wrong), 0)


def test_dropout_without_the_one_over_p_is_named():
    chapter, v = start("12-dropout")
    keep = 0.75
    A1 = np.tanh(v["W1"] @ v["A0"] + v["b1"])
    D1 = v["D1"]  # the step's mask, as the sheet gives it
    right = sigmoid(v["W2"] @ (A1 * D1 / keep) + v["b2"])
    wrong = sigmoid(v["W2"] @ (A1 * D1) + v["b2"])
    np.testing.assert_allclose(right, v["A2"], rtol=1e-12)
    assert "dropout_no_scaling" in named(chapter, answer("A2", wrong), 0)


@pytest.mark.parametrize("name", ["11-batch-norm", "12-dropout", "13-l2-penalty"])
def test_each_new_mistake_changes_something(name):
    """(That rerunning a step without a mistake gives the trace is test_mistakes.py's, for these chapters too.)"""
    chapter = tracer.load_chapter(name)
    trace = tracer.run(chapter, steps=3, record=[1, 2])
    truth = trace.at(2)
    ours = ["l2_no_mean", "l2_doubled", "unbiased_variance", "dropout_no_scaling"]
    made = list(variants(step_context(chapter, trace, 2), keys=ours))
    assert made  # each chapter makes its own mistake
    for v in made:
        assert any(q in truth and (np.shape(v.values[q]) != np.shape(truth[q]) or not np.allclose(v.values[q], truth[q]))
                   for q in v.values), v.says

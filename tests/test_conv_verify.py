"""`tracer verify` on image networks: the exact oracle, finite differences and SymPy's derivatives of
one window check the convolution, pooling and flatten nodes; max-pool ties and ReLU kinks raise no
false alarm; a planted mistake in the engine's backward pass is caught by each witness."""

from __future__ import annotations

import numpy as np
import pytest

import tracer
from tracer.checks import expressions
from tracer.checks.verify import verify
from tracer.checks.window_derivatives import derivation
from tracer.engine import conv, pooling, windows


def image_chapter(X: np.ndarray, pool: str = "maxpool", steps: int = 3) -> tracer.Chapter:
    raw = {"title": "verify an image network",
           "data": {"X": X.tolist(), "Y": [1, 0][: len(X)] + [1] * (len(X) - 2)},
           "network": {"layers": [{"kind": "conv2d", "filters": 2, "kernel": 2},
                                  {"kind": pool, "size": 2, "stride": 1},
                                  {"kind": "flatten"}, {"units": 1, "activation": "sigmoid"}]},
           "init": {"values": {"W1": [[[[1, 0], [0, -1]]], [[[0.5, 0.5], [0, 0]]]], "b1": [0, -1],
                               "W4": [[0.1, -0.2, 0.3, 0.1, 0.2, -0.1, 0.05, 0.1]], "b4": [[0]]}},
           "train": {"cost": "binary_cross_entropy", "learning_rate": 0.05, "steps": steps}}
    return tracer.parse_chapter(raw)


# Integer images with flat patches: the convolutions give exact zeros (ReLU's kink) and the pools'
# windows hold equal largest entries (ties).
FLAT = np.array([[[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 2, 2], [0, 0, 2, 2]],
                 [[0, 0, 0, 0], [0, 3, 3, 0], [0, 3, 3, 0], [0, 0, 0, 0]]], dtype=float)


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_every_witness_agrees_on_an_image_network_with_ties_and_kinks(pool):
    chapter = image_chapter(FLAT, pool)
    trace = tracer.run(chapter)
    Z1 = trace.at(0)["Z1"]
    assert np.any(Z1 == 0)  # ReLU's kink is reached
    report = verify(chapter, trace)
    assert report.ok, report.table()
    sections = {c.section for c in report.checks}
    assert {"window", "oracle", "finite differences", "chain rule"} <= sections
    window = {c.subject.split()[0] for c in report.checks if c.section == "window"}
    assert {"dW1", "db1", "dA1"} <= window


def test_a_max_pool_tie_is_no_false_alarm_for_finite_differences():
    X = np.array([[[2, 2, 0], [2, 2, 0], [0, 0, 0]]] * 2, dtype=float)  # every window of the pool a tie
    raw = {"title": "ties", "data": {"X": X.tolist(), "Y": [1, 0]},
           "network": {"layers": [{"kind": "maxpool", "size": 2, "stride": 1}, {"kind": "flatten"},
                                  {"units": 1, "activation": "sigmoid"}]},
           "init": {"values": {"W3": [[0.1, -0.2, 0.3, 0.4]], "b3": [[0]]}},
           "train": {"cost": "squared_error", "learning_rate": 0.1, "steps": 2}}
    chapter = tracer.parse_chapter(raw)
    report = verify(chapter)
    assert report.ok, report.table()
    fd = [c for c in report.checks if c.section == "finite differences" and c.subject.startswith("dA0")]
    assert fd and "left out" in fd[0].detail  # the tied entries have no derivative: left out, not flagged


def _route_to_last(A, G, size=2, stride=2):
    flipped = np.flip(np.asarray(A), axis=(1, 2))
    return np.flip(windows.maxpool_back(flipped, np.flip(G, axis=(1, 2)), size, stride), axis=(1, 2))


def _wrong_flip(W, G, A, stride=1, padding=0):
    return windows.conv_input(np.flip(W, axis=(2, 3)), G, A, stride, padding)  # the flip done twice: unflipped


# Routing a tie to the last winner differs from the first only at a tie, where the cost has no
# derivative for differences to find: there the oracle and SymPy's window, which follow the
# definition's first-largest rule, catch it.
@pytest.mark.parametrize("module, name, mistake, witnesses", [
    (pooling, "maxpool_back", _route_to_last, {"window", "oracle", "chain rule"}),
    (conv, "conv_input", _wrong_flip, {"window", "oracle", "finite differences", "chain rule"})],
    ids=["max-pool tie to the last winner", "kernel not flipped"])
def test_a_planted_mistake_in_the_backward_pass_is_caught(monkeypatch, module, name, mistake, witnesses):
    X = np.array([[[0, 1, 2, 1], [3, 4, 5, 0], [6, 7, 8, 1], [1, 0, 1, 2]],
                  [[2, 1, 0, 0], [1, 0, 0, 1], [0, 5, 1, 2], [0, 1, 2, 3]]], dtype=float)
    chapter = image_chapter(np.concatenate([X, FLAT]))
    monkeypatch.setattr(module, name, mistake)
    report = verify(chapter, tracer.run(chapter))
    failed = {c.section for c in report.disagreements()}
    assert witnesses <= failed, (failed, [c.subject for c in report.disagreements()])


def test_sympy_derives_one_convolution_entry_by_its_window():
    d = derivation("conv2d", 2, 2, 3)
    assert d.derivatives["w_1_0_2"] == ["sym", "x_1_0_2"]  # ∂z/∂w = the input under it
    assert d.derivatives["x_0_1_1"] == ["sym", "w_0_1_1"]  # ∂z/∂x = the weight over it
    assert d.derivatives["b"] == ["int", 1]


def test_sympy_derives_the_max_pool_and_average_pool_windows():
    d = derivation("maxpool", 1, 2, 2)
    names = list(d.variables)
    at = {n: v for n, v in zip(names, [np.array([3.0, 1.0]), np.array([3.0, 4.0]), np.array([0.0, 4.0]),
                                       np.array([3.0, 2.0])])}
    got = [expressions.numpy_function(d.derivatives[n], names)(*at.values()).tolist() for n in names]
    assert got == [[1, 0], [0, 1], [0, 0], [0, 0]]  # a tie of three 3s goes to the first; 4, 4 to the first 4
    a = derivation("avgpool", 1, 3, 3)
    assert all(t == ["rat", 1, 9] for t in a.derivatives.values())

"""Recording cost: chapter 4 (the 2-layer XOR network) trained for 5000 steps two ways.

1. the article's plain NumPy loop (LinearLayer / SigmoidLayer / compute_cost, as printed in seed 000);
2. tracer.run with every node recorded at every step.

Prints both times (best of several rounds) and their ratio. Target: ratio within 1.25.
Run: python benchmarks/engine_overhead.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracer  # noqa: E402


class LinearLayer:
    def __init__(self, input_shape, n_out, ini_type="plain"):
        self.m = input_shape[1]
        self.params = {"W": np.random.randn(n_out, input_shape[0]) / np.sqrt(input_shape[0]),
                       "b": np.zeros((n_out, 1))}
        self.Z = np.zeros((self.params["W"].shape[0], input_shape[1]))

    def forward(self, A_prev):
        self.A_prev = A_prev
        self.Z = np.dot(self.params["W"], self.A_prev) + self.params["b"]

    def backward(self, upstream_grad):
        self.dW = np.dot(upstream_grad, self.A_prev.T)
        self.db = np.sum(upstream_grad, axis=1, keepdims=True)
        self.dA_prev = np.dot(self.params["W"].T, upstream_grad)

    def update_params(self, learning_rate=0.1):
        self.params["W"] = self.params["W"] - learning_rate * self.dW
        self.params["b"] = self.params["b"] - learning_rate * self.db


class SigmoidLayer:
    def __init__(self, shape):
        self.A = np.zeros(shape)

    def forward(self, Z):
        self.A = 1 / (1 + np.exp(-Z))

    def backward(self, upstream_grad):
        self.dZ = upstream_grad * self.A * (1 - self.A)


def compute_cost(Y, Y_hat):
    m = Y.shape[1]
    cost = (1 / (2 * m)) * np.sum(np.square(Y - Y_hat))
    cost = np.squeeze(cost)
    dY_hat = -1 / m * (Y - Y_hat)
    return cost, dY_hat


def article_loop(X_train, Y_train, epochs=5000, learning_rate=1):
    np.random.seed(48)
    Z1 = LinearLayer(input_shape=X_train.shape, n_out=3, ini_type="xavier")
    A1 = SigmoidLayer(Z1.Z.shape)
    Z2 = LinearLayer(input_shape=A1.A.shape, n_out=1, ini_type="xavier")
    A2 = SigmoidLayer(Z2.Z.shape)
    costs = []
    for epoch in range(epochs):
        Z1.forward(X_train)
        A1.forward(Z1.Z)
        Z2.forward(A1.A)
        A2.forward(Z2.Z)
        cost, dA2 = compute_cost(Y=Y_train, Y_hat=A2.A)
        if (epoch % 100) == 0:
            costs.append(cost)
        A2.backward(dA2)
        Z2.backward(A2.dZ)
        A1.backward(Z2.dA_prev)
        Z1.backward(A1.dZ)
        Z2.update_params(learning_rate=learning_rate)
        Z1.update_params(learning_rate=learning_rate)
    return costs


def best_of(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(rounds: int = 7) -> None:
    chapter = tracer.load_chapter("04-xor-hidden-layer")
    assert chapter.record_every == 1 and chapter.steps == 5000
    plain, costs = best_of(lambda: article_loop(chapter.X, chapter.Y), rounds)
    traced, trace = best_of(lambda: tracer.run(chapter), rounds)
    assert abs(trace.costs[4900] - costs[49]) <= 1e-12 * costs[49], "the two runs disagree"
    print(f"article loop     : {plain * 1000:7.1f} ms for 5000 steps")
    print(f"tracer, recorded : {traced * 1000:7.1f} ms for 5000 steps, every node at every step")
    print(f"ratio            : {traced / plain:.2f}  (target <= 1.25)")


if __name__ == "__main__":
    main()

"""Recording cost: chapter 4 (the 2-layer XOR network, 5000 steps) against the article's own loop.

The anchor is seed 000's Part II code exactly as the article prints it (Fig 87–92: LinearLayer,
SigmoidLayer, compute_cost, the layer definitions and the training loop, run as notebook cells
at module level, its `print` every 100 epochs sent to a string), plus the repository's
`initialize_parameters`, which the article describes but does not print. It runs on the chapter's
X_train and Y_train (floats, features × examples).

Three tracer configurations are timed against it: every node at every step (the chapter as it
is), every 100th step, and nothing recorded. Then chapter 7, the softmax classifier, every node at
every step, against the same training written as a student writes it in plain NumPy (student_softmax). Each round runs the article and tracer alternately,
the order swapped every round, so drift on this shared machine falls on both sides alike.
Prints, per configuration, the median ratio tracer/article and its spread (lowest and highest).
Run: python benchmarks/engine_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracer  # noqa: E402

#: util/paramInitializer.py of the article's repository (described in the article, not printed).
INITIALIZER = '''
import numpy as np
def initialize_parameters(n_in, n_out, ini_type='plain'):
    params = dict()
    if ini_type == 'plain':
        params['W'] = np.random.randn(n_out, n_in) *0.01
    elif ini_type == 'xavier':
        params['W'] = np.random.randn(n_out, n_in) / (np.sqrt(n_in))
    elif ini_type == 'he':
        params['W'] = np.random.randn(n_out, n_in) * np.sqrt(2/n_in)
    params['b'] = np.zeros((n_out, 1))
    return params
'''

#: Fig 87, 88 and 90 of the article, as printed (docstrings shortened, code and comments as printed).
CLASSES = '''
import numpy as np # import numpy library
class LinearLayer:
    """
    This Class implements all functions to be executed by a linear layer
    in a computational graph
    """
    def __init__(self, input_shape, n_out, ini_type="plain"):
        self.m = input_shape[1]  # number of examples in training data
        # `params` store weights and bias in a python dictionary
        self.params = initialize_parameters(input_shape[0], n_out, ini_type)  # initialize weights and bias
        self.Z = np.zeros((self.params['W'].shape[0], input_shape[1]))  # create space for resultant Z output

    def forward(self, A_prev):
        self.A_prev = A_prev  # store the Activations/Training Data coming in
        self.Z = np.dot(self.params['W'], self.A_prev) + self.params['b']  # compute the linear function

    def backward(self, upstream_grad):
        # derivative of Cost w.r.t W
        self.dW = np.dot(upstream_grad, self.A_prev.T)
        # derivative of Cost w.r.t b, sum across rows
        self.db = np.sum(upstream_grad, axis=1, keepdims=True)
        # derivative of Cost w.r.t A_prev
        self.dA_prev = np.dot(self.params['W'].T, upstream_grad)

    def update_params(self, learning_rate=0.1):
        self.params['W'] = self.params['W'] - learning_rate * self.dW  # update weights
        self.params['b'] = self.params['b'] - learning_rate * self.db  # update bias(es)


class SigmoidLayer:
    """
    This file implements activation layers
    inline with a computational graph model
    """
    def __init__(self, shape):
        self.A = np.zeros(shape)  # create space for the resultant activations

    def forward(self, Z):
        self.A = 1 / (1 + np.exp(-Z))  # compute activations

    def backward(self, upstream_grad):
        # couple upstream gradient with local gradient, the result will be sent back to the Linear layer
        self.dZ = upstream_grad * self.A*(1-self.A)


def compute_cost(Y, Y_hat):
    m = Y.shape[1]

    cost = (1 / (2 * m)) * np.sum(np.square(Y - Y_hat))
    cost = np.squeeze(cost)  # remove extraneous dimensions to give just a scalar

    dY_hat = -1 / m * (Y - Y_hat)  # derivative of the squared error cost function

    return cost, dY_hat
'''

#: Fig 91 and 92: the training constants, the layers and the main loop, as notebook cells.
NOTEBOOK = '''
# define training constants
learning_rate = 1
number_of_epochs = 5000

np.random.seed(48) # set seed value so that the results are reproduceable
# (weights will now be initailzaed to the same pseudo-random numbers, each time)

# Our network architecture has the shape:
#                   (input)--> [Linear->Sigmoid] -> [Linear->Sigmoid] -->(output)

#------ LAYER-1 ----- define hidden layer that takes in training data
Z1 = LinearLayer(input_shape=X_train.shape, n_out=3, ini_type='xavier')
A1 = SigmoidLayer(Z1.Z.shape)

#------ LAYER-2 ----- define output layer that take is values from hidden layer
Z2= LinearLayer(input_shape=A1.A.shape, n_out=1, ini_type='xavier')
A2= SigmoidLayer(Z2.Z.shape)

costs = [] # initially empty list, this will store all the costs after a certian number of epochs

# Start training
for epoch in range(number_of_epochs):

    # ------------------------- forward-prop -------------------------
    Z1.forward(X_train)
    A1.forward(Z1.Z)

    Z2.forward(A1.A)
    A2.forward(Z2.Z)

    # ---------------------- Compute Cost ----------------------------
    cost, dA2 = compute_cost(Y=Y_train, Y_hat=A2.A)

    # print and store Costs every 100 iterations.
    if (epoch % 100) == 0:
        #print("Cost at epoch#" + str(epoch) + ": " + str(cost))
        print("Cost at epoch#{}: {}".format(epoch, cost))
        costs.append(cost)

    # ------------------------- back-prop ----------------------------
    A2.backward(dA2)
    Z2.backward(A2.dZ)

    A1.backward(Z2.dA_prev)
    Z1.backward(A1.dZ)

    # ----------------------- Update weights and bias ----------------
    Z2.update_params(learning_rate=learning_rate)
    Z1.update_params(learning_rate=learning_rate)
'''

_COMPILED = [compile(src, f"<article {name}>", "exec")
             for name, src in [("initializer", INITIALIZER), ("classes", CLASSES), ("notebook", NOTEBOOK)]]


def article(X_train: np.ndarray, Y_train: np.ndarray) -> list[float]:
    """Run the article's cells in a fresh notebook namespace; return its printed costs."""
    namespace = {"X_train": X_train, "Y_train": Y_train}
    with contextlib.redirect_stdout(io.StringIO()):
        for code in _COMPILED:
            exec(code, namespace)
    return namespace["costs"]


def student_softmax(X: np.ndarray, Y: np.ndarray, W: np.ndarray, b: np.ndarray, steps: int,
                    learning_rate: float) -> list[float]:
    """Chapter 7's training as a student writes it in plain NumPy: a linear layer, a softmax, the
    cross-entropy, its gradient through each example's Jacobian (the worked route), gradient descent."""
    W, b = W.copy(), b.copy()
    m = X.shape[1]
    costs = []
    for _ in range(steps):
        Z = W @ X + b
        E = np.exp(Z - Z.max(axis=0, keepdims=True))
        A = E / E.sum(axis=0, keepdims=True)
        costs.append(-np.sum(Y * np.log(A)) / m)
        dA = -Y / (A * m)
        J = A[:, None, :] * (np.eye(A.shape[0])[:, :, None] - A[None, :, :])  # J[k, j, i] = a_k (δ_kj − a_j)
        dZ = np.einsum("kji,ki->ji", J, dA)
        dW, db = dZ @ X.T, dZ.sum(axis=1, keepdims=True)
        W -= learning_rate * dW
        b -= learning_rate * db
    return costs


def student_batchnorm(X: np.ndarray, Y: np.ndarray, start: dict[str, np.ndarray], steps: int,
                      learning_rate: float, eps: float = 1e-5) -> list[float]:
    """Chapter 9's training as a student writes it in plain NumPy: Z1 = W1·X, the batch mean, the biased
    variance, the normalised values, γẐ + β, tanh, a sigmoid output, cross-entropy, the backward pass
    node by node (the three paths into Z1 summed) and gradient descent."""
    W1, g, be, W2, b2 = (start[k].copy() for k in ("W1", "gamma1", "beta1", "W2", "b2"))
    m = X.shape[1]
    costs = []
    for _ in range(steps):
        Z1 = W1 @ X
        mu = Z1.mean(axis=1, keepdims=True)
        var = ((Z1 - mu) ** 2).mean(axis=1, keepdims=True)
        Zhat = (Z1 - mu) / np.sqrt(var + eps)
        Zt = g * Zhat + be
        A1 = np.tanh(Zt)
        A2 = 1 / (1 + np.exp(-(W2 @ A1 + b2)))
        costs.append(float(np.sum(-Y * np.log(A2) - (1 - Y) * np.log(1 - A2)) / m))
        dZ2 = (A2 - Y) / m
        dW2, db2, dA1 = dZ2 @ A1.T, dZ2.sum(axis=1, keepdims=True), W2.T @ dZ2
        dZt = dA1 * (1 - A1 * A1)
        dg, dbe, dZhat = (dZt * Zhat).sum(axis=1, keepdims=True), dZt.sum(axis=1, keepdims=True), g * dZt
        dvar = (dZhat * Zhat).sum(axis=1, keepdims=True) / (-2 * (var + eps))
        dmu = -(dZhat / np.sqrt(var + eps)).sum(axis=1, keepdims=True) - 2 * dvar * (Z1 - mu).mean(axis=1, keepdims=True)
        dZ1 = dZhat / np.sqrt(var + eps) + 2 * dvar * (Z1 - mu) / m + dmu / m
        dW1 = dZ1 @ X.T
        for p, d in ((W1, dW1), (g, dg), (be, dbe), (W2, dW2), (b2, db2)):
            p -= learning_rate * d
    return costs


def pairs(rounds: int, first, second) -> tuple[list[float], list[float]]:
    """Times of `first` and `second`, run alternately (the order swapped every round)."""
    a, b = [], []
    for r in range(rounds):
        sides = [(a, first), (b, second)]
        for times, fn in (sides if r % 2 == 0 else sides[::-1]):
            times.append(timed(fn)[0])
    return a, b


def report(label: str, plain: list[float], traced: list[float], anchor: str) -> None:
    ratios = sorted(t / p for t, p in zip(traced, plain))
    print(f"{label:24s}: {anchor} {statistics.median(plain) * 1000:6.1f} ms, "
          f"tracer {statistics.median(traced) * 1000:6.1f} ms; ratio median {statistics.median(ratios):.3f} "
          f"(spread {ratios[0]:.3f}–{ratios[-1]:.3f}, middle half {ratios[len(ratios) // 4]:.3f}–"
          f"{ratios[(3 * len(ratios)) // 4]:.3f})")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    rounds = parser.parse_args().rounds

    chapter = tracer.load_chapter("04-xor-hidden-layer")
    assert chapter.record_every == 1 and chapter.steps == 5000
    configs = {
        "every node, every step": None,
        "every 100th step": list(range(0, 5000, 100)),
        "nothing recorded": [],
    }
    costs = article(chapter.X, chapter.Y)
    for record in configs.values():  # warm up, and check both compute the same costs
        trace = tracer.run(chapter, record=record)
        assert np.allclose(trace.costs[::100], costs, rtol=1e-12, atol=0), "the two runs disagree"

    print(f"chapter 4, 5000 steps; {rounds} alternated pairs per line; ratio = tracer / article")
    for label, record in configs.items():
        plain, traced = pairs(rounds, lambda: article(chapter.X, chapter.Y), lambda: tracer.run(chapter, record=record))
        report(label, plain, traced, "article")
    print("targets: every step <= 1.1; every 100th step <= 1.1")

    soft = tracer.load_chapter("07-softmax-three-classes")
    start = tracer.run(soft, steps=1).at(0)
    student = lambda: student_softmax(soft.X, soft.Y, start["W1"], start["b1"], soft.steps,  # noqa: E731
                                      soft.learning_rate)
    assert np.allclose(tracer.run(soft).costs, student(), rtol=1e-12, atol=0), "the two softmax runs disagree"
    print(f"\nchapter 7 (softmax, 3 classes), {soft.steps} steps; ratio = tracer / a student's NumPy loop")
    plain, traced = pairs(rounds, student, lambda: tracer.run(soft))
    report("every node, every step", plain, traced, "student")

    bn = tracer.load_chapter("11-batch-norm")
    begin = tracer.run(bn, steps=1).at(0)
    steps = 2000  # the chapter's network, run longer so that a run is long enough to time
    student_bn = lambda: student_batchnorm(bn.X, bn.Y, begin, steps, bn.learning_rate)  # noqa: E731
    assert np.allclose(tracer.run(bn, steps=steps).costs, student_bn(), rtol=1e-10, atol=0), "the two bn runs disagree"
    print(f"\nchapter 11 (batch normalisation), {steps} steps; ratio = tracer / a student's NumPy loop")
    plain, traced = pairs(rounds, student_bn, lambda: tracer.run(bn, steps=steps))
    report("every node, every step", plain, traced, "student")
    print("target: <= 1.3")


if __name__ == "__main__":
    main()

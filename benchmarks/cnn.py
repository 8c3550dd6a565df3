"""The digits-size CNN, tracer against PyTorch on the CPU in the same run.

The network of the issue: 1,797 images of 8 × 8 pixels, a convolution of 4 filters 3 × 3 with a
ReLU, a 2 × 2 max-pool, flatten, a softmax over 10 classes (cross-entropy from the logits), 100
steps of full-batch gradient descent, tracer recording every 10th step. The images are made here
from a seed (their content does not change the time), so nothing is downloaded. PyTorch trains the
same network from the same initial weights in float64 (its own conv2d, max_pool2d and autograd),
and the two final costs are compared, so both sides do the same work.

Each round times tracer and PyTorch alternately, the order swapped every round, so drift on this
shared machine falls on both sides alike. Prints each side's median time and spread, and the median
ratio tracer / PyTorch with its spread; the targets are tracer at most 2× PyTorch and under 10 s.
Run: python benchmarks/cnn.py [--rounds N] [--threads=N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# One core each side, set before NumPy loads its BLAS: on a shared machine a BLAS thread per core
# fights the other processes and the timing measures the fight (PyTorch gets the same, set_num_threads).
THREADS = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, THREADS)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracer  # noqa: E402

M, CLASSES, FILTERS, STEPS, RATE = 1797, 10, 4, 100, 0.5


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Images (m × 1 × 8 × 8, pixels 0 to 16 as the digits set has them), labels, initial weights."""
    rng = np.random.RandomState(seed)
    labels = np.arange(M) % CLASSES
    X = rng.randint(0, 17, size=(M, 1, 8, 8)).astype(float) / 16
    params = {"W1": rng.randn(FILTERS, 1, 3, 3) * np.sqrt(2 / 9), "b1": np.zeros((FILTERS, 1)),
              "W4": rng.randn(CLASSES, FILTERS * 9) * np.sqrt(2 / (FILTERS * 9)), "b4": np.zeros((CLASSES, 1))}
    return X, labels, params


def chapter(X: np.ndarray, labels: np.ndarray, params: dict[str, np.ndarray]) -> tracer.Chapter:
    raw = {"title": "digits-size CNN", "data": {"X": X.tolist(), "Y": np.eye(CLASSES)[labels].tolist()},
           "network": {"layers": [{"kind": "conv2d", "filters": FILTERS, "kernel": 3},
                                  {"kind": "maxpool", "size": 2}, {"kind": "flatten"},
                                  {"units": CLASSES, "activation": "softmax"}]},
           "init": {"values": {k: v.tolist() for k, v in params.items()}},
           "train": {"cost": "cross_entropy", "from_logits": True, "learning_rate": RATE, "steps": STEPS},
           "record": {"every": 10}}
    return tracer.parse_chapter(raw)


def run_tracer(ch: tracer.Chapter) -> float:
    return float(tracer.run(ch).costs[-1])


def run_torch(X: np.ndarray, labels: np.ndarray, params: dict[str, np.ndarray]) -> float:
    import torch
    import torch.nn.functional as F

    w = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    A0, target = torch.tensor(X), torch.tensor(labels)
    for _ in range(STEPS):
        A2 = F.max_pool2d(torch.relu(F.conv2d(A0, w["W1"], w["b1"][:, 0])), 2)
        Z4 = w["W4"] @ A2.reshape(M, -1).T + w["b4"]
        loss = F.cross_entropy(Z4.T, target)
        loss.backward()
        with torch.no_grad():
            for p in w.values():
                p -= RATE * p.grad
                p.grad = None
    return float(loss.item())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of each side, as --threads=N (default 1: NumPy's BLAS and PyTorch one core each)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    X, labels, params = data()
    ch = chapter(X, labels, params)
    times: dict[str, list[float]] = {"tracer": [], "pytorch": []}
    costs = {}
    sides = {"tracer": lambda: run_tracer(ch), "pytorch": lambda: run_torch(X, labels, params)}
    for r in range(args.rounds):
        for name in (("tracer", "pytorch") if r % 2 == 0 else ("pytorch", "tracer")):
            start = time.perf_counter()
            costs[name] = sides[name]()
            times[name].append(time.perf_counter() - start)
    print(f"digits-size CNN: {M} images 8 × 8, {FILTERS} filters 3 × 3, max-pool 2, softmax over {CLASSES}, "
          f"{STEPS} steps (tracer recording every 10th), {args.rounds} rounds alternating")
    for name, ts in times.items():
        print(f"  {name:8s} median {statistics.median(ts):.3f} s  (lowest {min(ts):.3f}, highest {max(ts):.3f})")
    ratios = [a / b for a, b in zip(times["tracer"], times["pytorch"])]
    print(f"  tracer / pytorch: median {statistics.median(ratios):.2f}×  (lowest {min(ratios):.2f}, "
          f"highest {max(ratios):.2f}); targets ≤ 2× and < 10 s")
    print(f"  final cost: tracer {costs['tracer']:.12f}, pytorch {costs['pytorch']:.12f} "
          f"(difference {abs(costs['tracer'] - costs['pytorch']):.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

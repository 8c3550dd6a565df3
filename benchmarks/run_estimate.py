"""How far the run-time estimate (tracer.progress) is from the measured time, for three network shapes.

The estimate refuses a chapter whose run would not end within an hour, so it should err long: it is
printed here as estimate / measured (above 1 means the estimate errs long), the median of a few runs,
with BLAS single-threaded as the figures in the README are.

    OPENBLAS_NUM_THREADS=1 python benchmarks/run_estimate.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tracer
from tracer.progress import step_seconds

SHAPES = {  # name: (inputs, layers, examples, steps)
    "chapter 4 (2-3-1, 4 examples)": (2, [3, 1], 4, 5000),
    "digits (64-32-10, 1797 examples)": (64, [32, 10], 1797, 200),
    "wide (100-512-512-1, 256 examples)": (100, [512, 512, 1], 256, 100),
}


def chapter(inputs: int, units: list[int], m: int, steps: int) -> tracer.Chapter:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (m, inputs)).round(3).tolist()
    Y = (rng.uniform(0, 1, (m, units[-1])) > 0.5).astype(int).tolist()
    layers = [{"units": n, "activation": "sigmoid"} for n in units]
    raw = {"title": "estimate", "data": {"X": X, "Y": Y}, "network": {"layers": layers}, "init": {"seed": 1,
           "scheme": "xavier"}, "train": {"learning_rate": 0.1, "steps": steps}, "record": {"steps": [0]}}
    return tracer.parse_chapter(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, (inputs, units, m, steps) in SHAPES.items():
        ch = chapter(inputs, units, m, steps)
        estimate = steps * step_seconds(inputs, units, m)
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            tracer.run(ch)
            times.append(time.perf_counter() - start)
        measured = statistics.median(times)
        print(f"{name}: {steps} steps, estimate {estimate:.3f} s, measured {measured:.3f} s "
              f"(spread {min(times):.3f}–{max(times):.3f}), estimate / measured {estimate / measured:.2f}")


if __name__ == "__main__":
    main()

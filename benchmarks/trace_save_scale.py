"""Printing and saving at scale: a 64-32-10 network on 1,797 examples (the size of the digits set).

The chapter is written to a temporary folder: 64 random features of 1,797 examples and 10 one-hot
labels (seeded; timings do not depend on the values), a ReLU hidden layer of 32 and a sigmoid
output, 1000 steps, every 10th step recorded (100 steps, about 400 MB).

Prints, in fresh processes alternated round by round:
  - `tracer run CH` (the yardstick) and `tracer trace CH --step 990`, and their ratio;
and in this process:
  - `Trace.save` of the run: its time, and the memory it allocates beyond the trace (tracemalloc,
    which sees NumPy's buffers) as a share of the trace's raw bytes.

BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1, unless set otherwise) on both sides: on this
shared 2-core machine OpenBLAS's two threads wait on each other and make every side several
times slower, and noisier.

    python benchmarks/trace_save_scale.py [--rounds 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tracer  # noqa: E402


def chapter_text() -> str:
    rng = np.random.RandomState(0)
    X = rng.rand(1797, 64).round(3)
    labels = rng.randint(0, 10, 1797)
    Y = np.eye(10)[labels]
    rows = lambda a: "[" + ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in a) + "]"  # noqa: E731
    return f'''title = "A 64-32-10 network on 1,797 examples"
[data]
X = {rows(X)}
Y = {rows(Y)}
[network]
layers = [{{units = 32, activation = "relu"}}, {{units = 10, activation = "sigmoid"}}]
[init]
seed = 1
scheme = "he"
[train]
cost = "squared_error"
learning_rate = 0.5
steps = 1000
[record]
every = 10
'''


def timed(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tracer.cli", *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tracer {' '.join(args)}: exit {done.returncode}: {done.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="tracer-scale-") as folder:
        path = Path(folder) / "digits-size.toml"
        path.write_text(chapter_text(), encoding="utf-8")
        runs, traces = [], []
        for r in range(rounds):
            pair = [("run", ["run", str(path)]), ("trace", ["trace", str(path), "--step", "990"])]
            for label, args in (pair if r % 2 == 0 else pair[::-1]):
                (runs if label == "run" else traces).append(timed(args))
        ratios = [t / r for t, r in zip(traces, runs)]
        print(f"64-32-10 network, 1,797 examples, 1000 steps; {rounds} alternated rounds, fresh processes")
        print(f"tracer run             : median {statistics.median(runs):.2f} s (spread {min(runs):.2f}–{max(runs):.2f})")
        print(f"tracer trace --step 990: median {statistics.median(traces):.2f} s "
              f"(spread {min(traces):.2f}–{max(traces):.2f}); ratio to run median {statistics.median(ratios):.2f} "
              f"(spread {min(ratios):.2f}–{max(ratios):.2f}); target < 2")

        trace = tracer.run(tracer.load_chapter(path))
        raw = sum(a.nbytes for a in trace.arrays.values())
        saves, peaks = [], []
        for _ in range(rounds):
            tracemalloc.start()
            start = time.perf_counter()
            saved = trace.save(Path(folder) / "t.npz")
            saves.append(time.perf_counter() - start)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        size = saved.stat().st_size
        print(f"Trace.save (run --save): median {statistics.median(saves):.2f} s (spread {min(saves):.2f}–"
              f"{max(saves):.2f}); file {size / 1e6:.0f} MB; trace {raw / 1e6:.0f} MB raw; "
              f"allocated while saving {max(peaks) / 1e6:.0f} MB, so in memory (1 + {max(peaks) / raw:.2f})× the "
              "trace's raw bytes; targets < 2 s and < 1.3×")


if __name__ == "__main__":
    main()

"""How long `tracer verify` takes, in a fresh process as a user runs it.

Alternates, for the given number of rounds:
  - `tracer run 04-xor-hidden-layer` (the yardstick),
  - `tracer verify 04-xor-hidden-layer` with a warm verify cache,
  - `tracer verify` of every bundled chapter with a warm cache,
and, fewer times, the same two verify commands with an empty cache folder (cold: SymPy derives
every node and judges every formula claim). Each cache folder is a fresh temporary folder given as
XDG_CACHE_HOME, so the user's own cache is neither used nor touched. Prints medians and spreads,
and the ratio verify / run per round.

    python benchmarks/verify_time.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(args: list[str], cache: str) -> float:
    env = {**os.environ, "XDG_CACHE_HOME": cache, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tracer.cli", *args], cwd=ROOT, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tracer {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def spread(times: list[float]) -> str:
    return f"median {statistics.median(times):.2f} s (spread {min(times):.2f}–{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    one, every = ["verify", "04-xor-hidden-layer"], ["verify"]
    runs, warm_one, warm_all, cold_one, cold_all, ratios = [], [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="tracer-cache-") as warm:
        timed(every, warm)  # fill the cache
        for r in range(rounds):
            order = [("run", ["run", "04-xor-hidden-layer"]), ("one", one), ("all", every)]
            for label, args in (order if r % 2 == 0 else order[::-1]):
                t = timed(args, warm)
                {"run": runs, "one": warm_one, "all": warm_all}[label].append(t)
            ratios.append(warm_one[-1] / runs[-1])
    for _ in range(max(1, rounds // 3)):
        with tempfile.TemporaryDirectory(prefix="tracer-cache-") as cold:
            cold_one.append(timed(one, cold))
        with tempfile.TemporaryDirectory(prefix="tracer-cache-") as cold:
            cold_all.append(timed(every, cold))
    print(f"fresh processes, {rounds} alternated rounds")
    print(f"tracer run 04-xor-hidden-layer          : {spread(runs)}")
    print(f"tracer verify 04-xor-hidden-layer, warm : {spread(warm_one)}; verify / run median "
          f"{statistics.median(ratios):.2f} (spread {min(ratios):.2f}–{max(ratios):.2f})")
    print(f"tracer verify (all chapters), warm      : {spread(warm_all)}")
    print(f"tracer verify 04-xor-hidden-layer, cold : {spread(cold_one)}")
    print(f"tracer verify (all chapters), cold      : {spread(cold_all)}")
    print("targets (warm): one chapter < 1 s and < 2x run; all chapters < 3 s")


if __name__ == "__main__":
    main()

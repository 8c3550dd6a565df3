"""How long `tracer verify` takes.

Prints the time of the vectorised local-gradient check on chapter 04's 5000-step trace (cold: with
SymPy's import, derivation and lambdify; warm: the check alone), and of a whole `tracer verify` of
every bundled chapter (a fresh process, as a user runs it).

    python benchmarks/verify_time.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tracer  # noqa: E402


def main() -> None:
    trace = tracer.run(tracer.load_chapter("04-xor-hidden-layer"))
    start = time.perf_counter()
    from tracer.checks.symbolic import local_gradient_checks

    checks = local_gradient_checks(trace)
    cold = time.perf_counter() - start
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        local_gradient_checks(trace)
    warm = (time.perf_counter() - start) / runs
    assert all(c.ok for c in checks)
    print(f"local-gradient check, chapter 04, {len(trace.steps)} recorded steps, {len(checks)} comparisons:")
    print(f"  first call (imports SymPy, derives, lambdifies): {cold:.3f} s")
    print(f"  each further call (the vectorised check itself): {warm * 1000:.1f} ms")

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tracer.cli", "verify"], cwd=ROOT, capture_output=True, text=True)
    whole = time.perf_counter() - start
    print(f"`tracer verify` of all {len(tracer.bundled_chapters())} bundled chapters (fresh process): {whole:.2f} s "
          f"(exit status {done.returncode})")


if __name__ == "__main__":
    main()

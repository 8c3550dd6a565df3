"""What the figures add to `tracer build`: every bundled chapter's figures, Markdown (SVG) and LaTeX (TikZ, PDF).

Each round is a fresh Python process (so matplotlib's and Graphviz's start-up count, as in a cold
build): it trains the chapters first (not timed, the build does that anyway), then times
`document_figures` for both formats. Prints each round (wall clock, and CPU time including the dot
processes, which is steadier on a busy machine) and the best and median. Target: under 2 s.
Run: python benchmarks/figures_time.py [ROUNDS]
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu() -> float:
    """CPU seconds of this process and its finished children (Graphviz's dot runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def once() -> tuple[float, float]:
    """(wall seconds, CPU seconds) to build every bundled chapter's figures in both formats."""
    sys.path.insert(0, str(ROOT))
    import tracer

    traces = [(chapter, tracer.run(chapter)) for chapter in map(tracer.load_chapter, tracer.bundled_chapters())]
    with tempfile.TemporaryDirectory() as tmp:
        start, start_cpu = time.perf_counter(), cpu()
        from tracer.documents.figures import document_figures

        for chapter, trace in traces:
            for fmt in ("md", "tex"):
                document_figures(chapter, trace, Path(tmp), fmt)
        return time.perf_counter() - start, cpu() - start_cpu


def main() -> None:
    if sys.argv[1:] == ["--once"]:
        print("%.3f %.3f" % once())
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times, cpus = [], []
    for i in range(rounds):
        out = subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True, check=True)
        wall, used = map(float, out.stdout.split())
        times.append(wall)
        cpus.append(used)
        print(f"round {i + 1}: {wall:.2f} s ({used:.2f} s CPU)")
    print(f"figures of all bundled chapters (md + tex): best {min(times):.2f} s, median "
          f"{statistics.median(times):.2f} s; CPU median {statistics.median(cpus):.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()

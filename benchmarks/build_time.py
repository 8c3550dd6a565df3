"""Time a cold `tracer build` of every bundled chapter to Markdown and LaTeX (no PDF).

Each run is a fresh Python process (imports, training, figures and templates all paid for),
writing into a fresh temporary folder. Prints the best and median of N runs; the target is under
3 s on a 2-core machine. Run:  python benchmarks/build_time.py [--runs 5] [--no-figures]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NO_FIGURES = """
import sys
from tracer.engine.chapter import bundled_chapters
from tracer.documents.build import build
build([p.stem for p in bundled_chapters()], sys.argv[1], ["md", "tex"], figures=False)
"""


def one_run(figures: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="tracer-bench-") as out:
        if figures:
            cmd = [sys.executable, "-m", "tracer.cli", "build", "-o", out, "--format", "md,tex"]
        else:
            cmd = [sys.executable, "-c", NO_FIGURES, out]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-figures", action="store_true", help="documents only (what figures add is the rest)")
    args = parser.parse_args()
    times = [one_run(not args.no_figures) for _ in range(args.runs)]
    what = "md+tex, no figures" if args.no_figures else "md+tex with figures"
    print(f"cold tracer build, all bundled chapters ({what}): best {min(times):.2f} s, "
          f"median {statistics.median(times):.2f} s over {args.runs} runs (target < 3 s)")


if __name__ == "__main__":
    main()

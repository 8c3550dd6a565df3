"""Time to write a set of exercise sheets: 40 variants of chapter 02, Markdown and LaTeX, with answer keys.

Prints the best of several rounds (drawing, training each variant, rendering, writing). Target: < 5 s.
Run: python benchmarks/exercises_time.py [CHAPTER] [VARIANTS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tracer  # noqa: E402
from tracer.exercises.sheets import write_exercises  # noqa: E402


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "02-or-batch"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    chapter = tracer.load_chapter(name)
    times, files = [], 0
    for _ in range(3):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            files = len(write_exercises(chapter, Path(out), count=count, seed=2026))
            times.append(time.perf_counter() - start)
    print(f"tracer exercises {name} --variants {count} --seed 2026: {files} files, "
          f"best {min(times):.2f} s of {len(times)} rounds (target < 5 s)")


if __name__ == "__main__":
    main()

"""Time to grade a class of 1,000 students with `tracer grade` (target: < 10 s).

The set is 40 secret variants of chapter 02 asking for every intermediate of step 1 (Z1, A1, dZ1,
dW1, db1, W1_after). The class is a mix as a real one might be: 40 % right, and the rest with the
1/m left out, the sign of the update flipped, a slip in Z1 carried through, a transposed dW1, blank
and unreadable cells, one answer given to 2 decimals. Each round runs the whole command in a fresh
process (Python start, imports, reading, grading, writing grades.csv and the report); prints the
median and spread of 5 rounds.
Run: python benchmarks/grade_time.py [STUDENTS]
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import tracer  # noqa: E402
from tracer.exercises.sheets import write_exercises  # noqa: E402

ASK = ["Z1", "A1", "dZ1", "dW1", "db1", "W1_after"]


def scale(text: str, factor: float) -> str:
    """Every number of an answer multiplied by `factor`, kept at 3 decimals."""
    import re

    return re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()) * factor:.3f}", text)


def student(i: int, answers: dict[str, str]) -> list[str]:
    cells = dict(answers)
    kind = i % 10
    if kind == 4:
        cells["dZ1"] = scale(cells["dZ1"], 4)  # 1/m left out (later answers as the key has them)
    elif kind == 5:
        cells["W1_after"] = scale(cells["W1_after"], -1)
    elif kind == 6:
        cells["Z1"] = scale(cells["Z1"], 1.5)
    elif kind == 7:
        cells["dW1"] = "[[" + cells["dW1"].strip("[]").replace(", ", "], [") + "]]"
    elif kind == 8:
        cells["db1"], cells["W1_after"] = "", "[0.1, oops]"
    elif kind == 9:
        cells["dW1"] = "[" + ", ".join(f"{float(x):.2f}" for x in cells["dW1"].strip("[]").split(",")) + "]"
    return [cells[q] for q in ASK]


def main() -> None:
    students = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = Path(tracer.load_chapter("02-or-batch").path).read_text()
        (tmp / "ws.toml").write_text(text.replace('ask = ["dW1", "db1"]', f"ask = {json.dumps(ASK)}"))
        write_exercises(tracer.load_chapter(tmp / "ws.toml"), tmp / "sheets", count=40, key=bytes(range(32)),
                        formats=())
        listing = json.loads((tmp / "sheets" / "secret" / "answers.json").read_text())["variants"]
        with (tmp / "class.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["student", "variant", *ASK])
            for i in range(students):
                v = listing[i % len(listing)]
                w.writerow([f"s{i:04d}", v["code"], *student(i, {q: a["expected"] for q, a in v["answers"].items()})])
        command = [sys.executable, "-m", "tracer.cli", "grade", str(tmp / "sheets"), "--answers",
                   str(tmp / "class.csv"), "-o", str(tmp / "out" / "grades.csv")]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        rows = sum(1 for _ in (tmp / "out" / "grades.csv").open()) - 1
    print(f"tracer grade, {students} students x {len(ASK)} quantities, 40 secret variants: {rows} rows graded; "
          f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}) of "
          f"{len(times)} rounds in a fresh process (target < 10 s)")


if __name__ == "__main__":
    main()

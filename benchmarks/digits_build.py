"""Time `tracer build` of a digits-shaped chapter to md, tex and pdf; print the time and each document's size.

The chapter is generated here, not shipped: a 64-32-10 sigmoid network on 1,797 examples of the
shape of scikit-learn's digits (64 whole-number features in [0, 16], 10 one-hot classes; random
data from a fixed seed), a few hundred steps, recording only a few of them. The data are inline
TOML arrays (one row per example), as every chapter holds them. Targets: under 20 s, every
document under 1 MB. When the build fails, each stage is run on its own to say which fail.

Run:  python benchmarks/digits_build.py [--runs 1] [--keep DIR]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES, FEATURES, HIDDEN, CLASSES, STEPS = 1797, 64, 32, 10, 300
TARGET_SECONDS, TARGET_BYTES = 20.0, 1_000_000
TIMEOUT = 600


def digits_chapter() -> str:
    """The chapter file's text: random digits-shaped data, a 64-32-10 sigmoid network."""
    rng = np.random.RandomState(0)
    X = rng.randint(0, 17, size=(EXAMPLES, FEATURES))
    labels = rng.randint(0, CLASSES, size=EXAMPLES)
    Y = np.eye(CLASSES, dtype=int)[labels]
    rows = lambda a: "[\n" + ",\n".join("[" + ", ".join(str(int(x)) for x in row) + "]" for row in a) + "\n]"  # noqa: E731
    return f'''title = "Digits-shaped: a 64-32-10 network on 1,797 examples"
source = "benchmarks/digits_build.py: random data of the shape of scikit-learn's digits"

[network]
layers = [{{units = {HIDDEN}, activation = "sigmoid"}}, {{units = {CLASSES}, activation = "sigmoid"}}]

[init]
seed = 1
scheme = "xavier"

[train]
cost = "squared_error"
learning_rate = 0.5
steps = {STEPS}

[record]
steps = [0, 1, {STEPS // 2}, {STEPS - 1}]

[data]
X = {rows(X)}
Y = {rows(Y)}
'''


# Each stage of a build on its own, through the Python API, for naming the one that fails.
STAGES = {
    "read the chapter": "from tracer import load_chapter; load_chapter(CH)",
    "train": "from tracer import Traces, load_chapter; Traces(load_chapter(CH)).main",
    "documents, md without figures": "from tracer.documents.build import build; build([CH], OUT, ['md'], figures=False)",
    "documents, tex without figures": "from tracer.documents.build import build; build([CH], OUT, ['tex'], figures=False)",
    "figures (graphs, curve)": "from tracer import Traces, load_chapter\n"
                               "from tracer.documents.figures import document_figures\n"
                               "c = load_chapter(CH); list(document_figures(c, Traces(c).main, OUT, 'md'))",
    "pdf (pdflatex) without figures": "from tracer.documents.build import build; build([CH], OUT, ['pdf'], figures=False)",
}


def python(code: str, chapter: Path, out: Path) -> subprocess.CompletedProcess:
    prelude = f"CH, OUT = {str(chapter)!r}, {str(out)!r}\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def one_build(chapter: Path, out: Path) -> tuple[float, subprocess.CompletedProcess | None]:
    cmd = [sys.executable, "-m", "tracer.cli", "build", str(chapter), "-o", str(out), "--format", "md,tex,pdf"]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, None
    return time.perf_counter() - start, done


def diagnose(chapter: Path, out: Path) -> None:
    """Run the stages one by one: which fail, how, and how big the documents they write are."""
    for name, code in STAGES.items():
        start = time.perf_counter()
        try:
            done = python(code, chapter, out)
        except subprocess.TimeoutExpired:
            print(f"  stage {name!r}: did not finish in {TIMEOUT} s")
            continue
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"  stage {name!r}: FAILED after {seconds:.1f} s")
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            print("\n".join("    " + line[:300] for line in tail))
            continue
        print(f"  stage {name!r}: ok ({seconds:.1f} s)")
    sizes(out)


def sizes(out: Path) -> bool:
    """Print each document's size (and its longest line); True when all three are there and under 1 MB."""
    ok = True
    for fmt in ("md", "tex", "pdf"):
        path = out / f"digits.{fmt}"
        if not path.exists():
            print(f"  digits.{fmt}: not written")
            ok = False
            continue
        size = path.stat().st_size
        longest = max((len(line) for line in path.read_bytes().splitlines()), default=0) if fmt != "pdf" else None
        ok &= size < TARGET_BYTES
        print(f"  digits.{fmt}: {size / 1e6:.2f} MB ({'under' if size < TARGET_BYTES else 'OVER'} 1 MB)"
              + (f", longest line {longest:,} characters" if longest is not None else ""))
    figures = [p for p in out.rglob("*") if p.is_file() and p.parent != out]
    if figures:
        print(f"  figures: {len(figures)} files, {sum(p.stat().st_size for p in figures) / 1e6:.2f} MB")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build into DIR and keep the files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracer-digits-") as tmp:
        chapter = Path(tmp, "digits.toml")
        chapter.write_text(digits_chapter(), encoding="utf-8")
        print(f"chapter: {EXAMPLES} examples, {FEATURES}-{HIDDEN}-{CLASSES} sigmoid, {STEPS} steps; "
              f"file {chapter.stat().st_size / 1e6:.2f} MB")
        times = []
        out = args.keep or Path(tmp, "out")
        for _ in range(args.runs):
            seconds, done = one_build(chapter, out)
            if done is None or done.returncode != 0:
                why = f"did not finish in {TIMEOUT} s" if done is None else f"exit status {done.returncode}"
                print(f"tracer build --format md,tex,pdf FAILED ({why}, {seconds:.1f} s); stage by stage:")
                if done is not None and done.stderr.strip():
                    print("  tracer said: " + done.stderr.strip().splitlines()[-1][:300])
                diagnose(chapter, Path(tmp, "stages"))
                return 1
            times.append(seconds)
        spread = f", spread {min(times):.1f}–{max(times):.1f} s over {len(times)} runs" if len(times) > 1 else ""
        verdict = "under" if statistics.median(times) < TARGET_SECONDS else "OVER"
        print(f"tracer build --format md,tex,pdf: {statistics.median(times):.1f} s{spread} "
              f"({verdict} the {TARGET_SECONDS:.0f} s target)")
        ok = sizes(out) and statistics.median(times) < TARGET_SECONDS
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

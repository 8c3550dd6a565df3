"""Fingerprints of every array a set of runs records: the engine change must move no number.

`fingerprints()` trains each run below and hashes each recorded array (dtype, shape and bytes),
the cost at every step and the final parameters. tests/golden/traces.json holds what the dense-layer
engine of commit 55ebf4b gave, one record per machine's numerics: NumPy's exp and log and OpenBLAS's
products take different code paths on different processors (AVX-512 or AVX2), which round the last
bit differently, so a record holds only where it was made. test_graph.py compares the graph engine's
runs with the record made under the same numerics, array by array.

To add a record on a new kind of machine, run the old engine with this file:

    git archive 55ebf4b tracer templates chapters | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/trace_fingerprints.py

(the old package's `bundled_chapters` gives its six chapters; the record is added to the file).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

import tracer
from tracer.engine.chapter import bundled_chapters, parse_chapter

GOLDEN = Path(__file__).parent / "golden" / "traces.json"


def _variants() -> dict[str, tuple[dict, str]]:
    """Name → (chapter dict, carry): the bundled chapters in both carries, then other parts of the engine."""
    import tomllib

    runs = {}
    raw = {p.stem: tomllib.loads(p.read_text()) for p in bundled_chapters()}
    for name, chapter in raw.items():
        for carry in ("full", "rounded"):
            runs[f"{name}/{carry}"] = (chapter, carry)

    def changed(base: str, **sections: dict) -> dict:
        chapter = json.loads(json.dumps(raw[base]))
        for section, keys in sections.items():
            chapter.setdefault(section, {}).update(keys)
        chapter.pop("article", None)
        return chapter

    few = {"steps": 60}
    for optimizer in ("gd", "momentum", "rmsprop", "adam"):
        runs[f"04/{optimizer}"] = (changed("04-xor-hidden-layer", train={**few, "optimizer": optimizer,
                                                                        "learning_rate": 0.1}), "full")
    runs["04/minibatch-shuffle"] = (changed("04-xor-hidden-layer", train={**few, "batch_size": 2, "shuffle": True,
                                                                        "shuffle_seed": 3}), "full")
    runs["04/record-every-7"] = (changed("04-xor-hidden-layer", train=few, record={"every": 7}), "full")
    runs["02/frozen-W1"] = (changed("02-or-batch", train={**few, "frozen": ["W1"]}), "full")
    for activation in ("relu", "tanh", "identity"):
        chapter = changed("04-xor-hidden-layer", train=few)
        chapter["network"]["layers"] = [{"units": 3, "activation": activation}, {"units": 1, "activation": "sigmoid"}]
        runs[f"04/{activation}-hidden"] = (chapter, "full")
    for cost, logits in (("binary_cross_entropy", False), ("binary_cross_entropy", True), ("sum_of_squares", False)):
        runs[f"04/{cost}{'-logits' if logits else ''}"] = (
            changed("04-xor-hidden-layer", train={**few, "cost": cost, "from_logits": logits}), "full")
        runs[f"04/{cost}{'-logits' if logits else ''}/rounded"] = (
            changed("04-xor-hidden-layer", train={**few, "cost": cost, "from_logits": logits}), "rounded")
    big = changed("04-xor-hidden-layer", train={"steps": 5}, record={"every": 1})
    big["data"] = {"X": np.round(np.random.RandomState(0).randn(40, 3), 3).tolist(),
                   "Y": (np.random.RandomState(1).rand(40, 2) > 0.5).astype(int).tolist()}
    big["network"]["layers"] = [{"units": 64, "activation": "relu"}, {"units": 2, "activation": "sigmoid"}]
    runs["big-64"] = (big, "full")
    return runs


def _hash(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()[:24]


def numerics() -> str:
    """What decides the last bit of this machine's arithmetic: NumPy's version and its widest SIMD path."""
    features = np._core._multiarray_umath.__cpu_features__
    widest = next((f for f in ("AVX512_SKX", "AVX512F", "AVX2", "ASIMD") if features.get(f)), "baseline")
    return f"numpy {np.__version__}, {platform.machine()}, {widest}"


def records() -> list[dict]:
    """The dense-layer engine's records: each {"numerics": …, "runs": {run: {array: hash}}}."""
    return json.loads(GOLDEN.read_text())["records"]


def fingerprints(runs: object = None) -> dict[str, dict[str, str]]:
    """The fingerprints of every run (or of the runs named in `runs`)."""
    out = {}
    for name, (raw, carry) in _variants().items():
        if runs is not None and name not in runs:
            continue
        trace = tracer.run(parse_chapter(raw, name=name.split("/")[0]), carry=carry)
        prints = {f"arrays/{k}": _hash(v) for k, v in trace.arrays.items()}
        prints.update({f"final/{k}": _hash(v) for k, v in trace.final.items()})
        prints["costs"] = _hash(trace.costs)
        out[name] = prints
    return out


if __name__ == "__main__":
    kept = [r for r in records() if r["numerics"] != numerics()]
    kept.append({"numerics": numerics(), "runs": fingerprints()})
    GOLDEN.write_text(json.dumps({"records": kept}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {numerics()} in {GOLDEN}", file=sys.stderr)

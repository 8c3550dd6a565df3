"""Per-student exercise variants: nice starting numbers, a sheet and an answer key for each.

A chapter's `[exercise]` section says which step is worked, which quantities are asked, at how
many decimals, and what may vary (weights, biases, inputs, learning rate). Variant k of a set is
drawn from its own random stream, seeded by the set's seed and k, with numbers of one decimal by
default; a draw is rejected when an asked value rounds to 0 or sits (within TIE_MARGIN of a unit)
on a tie at the rounding digit, or when its answers repeat an earlier variant's. The set is a pure
function of (chapter, seed, count): `tracer exercises` writes it, and `tracer check --variant K`
makes variant K again to check a student's answers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tracer.engine.chapter import (
    Chapter,
    Display,
    ExerciseSpec,
    append_crosses,
    chapter_section,
    exercise_spec,
    load_chapter,
)
from tracer.engine.graph import ACTIVATIONS, COSTS
from tracer.engine.trace import AFTER, Trace
from tracer.engine.train import Traces, initial_parameters
from tracer.errors import NumericalError, TracerError
from tracer.output import write_atomic
from tracer.rounding import round_half_up, to_decimal

#: A value closer than this (in units of the last asked digit) to a rounding tie is rejected.
TIE_MARGIN = Decimal("0.05")
#: Draws tried for one variant before giving up.
MAX_ATTEMPTS = 2000
#: The manifest a sheets folder carries, so `tracer check SHEETS --variant K` needs nothing else.
MANIFEST = "exercises.json"
CHAPTER_COPY = "chapter.toml"
FORMAT = "tracer-exercises/1"


# --------------------------------------------------------------------------- drawing variants


@dataclass
class Variant:
    """One student's version: its starting values, the chapter they make, and the traces of its steps."""

    id: int
    chapter: Chapter
    start: dict[str, np.ndarray]  # parameters before step 0
    X: np.ndarray
    learning_rate: float
    trace: Trace  # full precision, every step up to the exercise's
    hand: Trace  # carry = "rounded"
    spec: ExerciseSpec

    def value(self, quantity: str) -> np.ndarray:
        return np.asarray(self.trace.at(self.spec.step)[quantity], dtype=float)

    def hand_value(self, quantity: str) -> np.ndarray:
        return np.asarray(self.hand.at(self.spec.step)[quantity], dtype=float)


def _nice(rng: random.Random, low: float, high: float, decimals: int, nonzero: bool) -> float:
    scale = 10 ** decimals
    lo, hi = int(np.ceil(low * scale)), int(np.floor(high * scale))
    while True:
        k = rng.randint(lo, hi)
        if k or not nonzero or lo == hi == 0:
            return float(Decimal(k).scaleb(-decimals))


def _nice_matrix(rng: random.Random, shape: tuple[int, ...], span: tuple[float, float], decimals: int,
                 nonzero: bool) -> np.ndarray:
    return np.array([_nice(rng, span[0], span[1], decimals, nonzero) for _ in range(int(np.prod(shape)))],
                    dtype=float).reshape(shape)


def draw(chapter: Chapter, spec: ExerciseSpec, seed: int, variant: int, attempt: int) -> Chapter:
    """The chapter of one draw: its own random stream from (seed, variant, attempt), stable across versions."""
    rng = random.Random(f"tracer-exercises/{seed}/{variant}/{attempt}")
    params = initial_parameters(chapter)
    for name in chapter.parameter_names:
        kind = "weights" if name.startswith("W") else "biases"
        if kind in spec.vary:
            span = spec.weights
            params[name] = _nice_matrix(rng, params[name].shape, span, spec.value_decimals, nonzero=kind == "weights")
    X = chapter.X
    if "inputs" in spec.vary:
        X = _nice_matrix(rng, (chapter.n_features, chapter.m), spec.inputs, spec.value_decimals, nonzero=False)
        X = append_crosses(X, chapter.feature_crosses)
    rate = rng.choice(spec.learning_rates) if "learning_rate" in spec.vary else chapter.learning_rate
    # The variant is a chapter of its own: drawn values, only the steps the exercise needs, and
    # none of the article's figures (they belong to the original numbers).
    raw = {k: v for k, v in chapter.raw.items() if k not in ("article", "document")}
    return dataclasses.replace(chapter, values=params, X=X, learning_rate=float(rate), steps=spec.step + 1,
                               record_every=1, record_steps=(), raw=raw,
                               name=chapter.name)


def acceptable(trace: Trace, spec: ExerciseSpec) -> bool:
    """No asked value that rounds to 0 at the asked decimals, and none within TIE_MARGIN of a tie."""
    values = trace.at(spec.step)
    unit = Decimal(1).scaleb(-spec.decimals)
    for q in spec.ask:
        for x in np.asarray(values[q], dtype=float).ravel():
            if not np.isfinite(x) or round_half_up(x, spec.decimals) == 0:
                return False
            frac = (abs(to_decimal(x)) / unit) % 1
            if abs(frac - Decimal("0.5")) < TIE_MARGIN:
                return False
    return True


def answer_key(trace: Trace, spec: ExerciseSpec) -> tuple[str, ...]:
    """The asked values as printed, which must differ between variants."""
    from tracer.exercises.answers import format_value

    values = trace.at(spec.step)
    return tuple(format_value(values[q], spec.decimals) for q in spec.ask)


def make_variants(chapter: Chapter, count: int, seed: int, upto: int | None = None) -> list[Variant]:
    """Variants 1 … count of the set `seed` (only up to `upto` when given: variant k depends on 1 … k−1)."""
    spec = exercise_spec(chapter)
    _check_asked(chapter, spec)
    if not isinstance(count, int) or count < 1 or count > 10_000:
        raise TracerError(f"--variants: expected a number of variants from 1 to 10000, got {count!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise TracerError(f"--seed: expected a whole number from 0, got {seed!r}")
    record = list(range(spec.step + 1))
    variants: list[Variant] = []
    seen: set[tuple[str, ...]] = set()
    for k in range(1, (upto or count) + 1):
        for attempt in range(MAX_ATTEMPTS):
            drawn = draw(chapter, spec, seed, k, attempt)
            traces = Traces(drawn, carry="full", steps=record)
            try:
                trace = traces.full
            except NumericalError:
                continue
            if not acceptable(trace, spec):
                continue
            key = answer_key(trace, spec)
            if key in seen:
                continue
            seen.add(key)
            hand = traces.hand()
            start = {p: trace.at(0)[p] for p in drawn.parameter_names}
            variants.append(Variant(k, drawn, start, drawn.X, drawn.learning_rate, trace, hand, spec))
            break
        else:
            raise TracerError(f"{chapter.path or chapter.name}: [exercise]: could not draw variant {k} in "
                              f"{MAX_ATTEMPTS} tries with readable, distinct answers; widen the ranges, vary more "
                              "(vary = [\"weights\", \"biases\", \"inputs\", \"learning_rate\"]) or ask fewer decimals")
    return variants


def _check_asked(chapter: Chapter, spec: ExerciseSpec) -> None:
    known = Traces(chapter, steps=[spec.step]).full.at(spec.step)
    for q in spec.ask:
        if q not in known:
            chapter_section(chapter, "exercise").fail(
                "ask", f"quantities recorded at step {spec.step} ({', '.join(sorted(known))})", repr(q),
                suggest=sorted(known), near=q)


def variant(chapter: Chapter, seed: int, variant_id: int) -> Variant:
    """Variant `variant_id` of the set `seed` (as `tracer exercises` wrote it)."""
    if not isinstance(variant_id, int) or variant_id < 1:
        raise TracerError(f"--variant: expected a variant number from 1, got {variant_id!r}")
    return make_variants(chapter, variant_id, seed, upto=variant_id)[-1]


# --------------------------------------------------------------------------- checking a variant


def open_sheets(folder: str | Path) -> tuple[Chapter, int, int]:
    """(chapter, seed, count) of a folder written by `tracer exercises`."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TracerError(f"{folder}: not an exercises folder written by `tracer exercises` "
                          f"(cannot read {MANIFEST}: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise TracerError(f"{folder / MANIFEST}: expected format {FORMAT!r}, got {manifest.get('format')!r}")
    chapter = load_chapter(folder / CHAPTER_COPY)
    chapter = dataclasses.replace(chapter, name=manifest["chapter"])
    return chapter, int(manifest["seed"]), int(manifest["variants"])


def check_answers(source: str | Path | Chapter, answers: Sequence[str], *, step: int | None = None,
                  variant: int | None = None, seed: int | None = None, **options: Any):
    """Judge a student's answers (what `tracer check` does); returns an answers.Report.

    `source` is a chapter (path, bundled name or Chapter) or a folder written by `tracer
    exercises`. With `variant`, the answers are about that variant of the set `seed` (a folder
    knows its seed). The step defaults to the [exercise] step; at that step the exercise's asked
    quantities and decimals apply.
    """
    from tracer.exercises.answers import check

    count = None
    if isinstance(source, Chapter):
        chapter = source
    elif Path(source).is_dir():
        chapter, folder_seed, count = open_sheets(source)
        if seed is not None and seed != folder_seed:
            raise TracerError(f"--seed {seed}: the folder {source} holds the set of seed {folder_seed}")
        seed = folder_seed
        if variant is None:
            raise TracerError(f"{source}: a sheets folder is checked per variant: add --variant ID (1 to {count})")
    else:
        chapter = load_chapter(source)
    has_exercise = bool(chapter.raw.get("exercise"))
    if variant is not None:
        if seed is None:
            raise TracerError("--variant: expected --seed S too (the seed on the exercise sheet), or a sheets "
                              "folder in place of the chapter")
        if count is not None and not 1 <= variant <= count:
            raise TracerError(f"--variant {variant}: the set has variants 1 to {count}")
        if not has_exercise:
            exercise_spec(chapter)  # says the section is missing
        v = globals()["variant"](chapter, seed, variant)
        if step is not None and step != v.spec.step:
            raise TracerError(f"--step {step}: variant {variant}'s exercise is about step {v.spec.step}")
        return check(v.chapter, answers, v.spec.step, asked=v.spec.ask, decimals=v.spec.decimals,
                     variant=variant, traces=Traces(v.chapter, v.trace, v.hand, carry="full"), **options)
    if seed is not None:
        raise TracerError("--seed: only with --variant ID")
    spec = exercise_spec(chapter) if has_exercise else None
    if step is None:
        if spec is None:
            raise TracerError(f"{chapter.path or chapter.name}: no [exercise] section says which step: add --step N")
        step = spec.step
    if spec is not None and step == spec.step:
        return check(chapter, answers, step, asked=spec.ask, decimals=spec.decimals, **options)
    return check(chapter, answers, step, **options)


# --------------------------------------------------------------------------- writing the set


def sheet_context(v: Variant, base: Chapter, seed: int, count: int, fmt: str) -> dict[str, Any]:
    """What the sheet and key templates see: every number already written as maths by render's helpers."""
    from tracer.documents.render import UserText, chapter_number, matrix, symbol
    from tracer.exercises.answers import format_value

    spec = v.spec
    given = Display(decimals=spec.value_decimals)
    asked = Display(decimals=spec.decimals)
    data = Display(decimals=max(spec.value_decimals, 1))
    chapter = v.chapter
    names = chapter.parameter_names
    answers = []
    for q in spec.ask:
        exact, by_hand = v.value(q), v.hand_value(q)
        shown, hand_shown = matrix(exact, q, asked), matrix(by_hand, q, asked)
        answers.append({"quantity": q, "symbol": _symbol(q), "value": shown,
                        "hand": hand_shown if hand_shown != shown else "",
                        "typed": f"{q} = {format_value(exact, spec.decimals)}"})
    steps = []
    for s in range(spec.step + 1):
        at = v.trace.at(s)
        rows = []
        for layer in range(1, len(chapter.layers) + 1):
            rows += [f"Z{layer}", f"A{layer}"]
        rows.append("cost")
        rows += [q for layer in range(len(chapter.layers), 0, -1)
                 for q in (f"dA{layer}", f"dZ{layer}", f"dW{layer}", f"db{layer}") if q in at]
        rows += [p + "_after" for p in names]
        steps.append({"step": s, "rows": [{"quantity": q, "symbol": _symbol(q), "value": matrix(at[q], q, asked)}
                                          for q in rows]})
    command = f"tracer check {_chapter_argument(base)} --seed {seed} --variant {v.id}"
    return {
        "format": fmt,
        "variant": v.id, "variants": count, "seed": seed,
        "chapter": {"name": base.name, "title": UserText(base.title), "m": chapter.m,
                    "layers": [{"index": i, "units": l.units, "activation": l.activation,
                                "formula": ACTIVATIONS[l.activation].formula}
                               for i, l in enumerate(chapter.layers, start=1)],
                    "bias": chapter.bias, "cost": chapter.cost, "cost_formula": COSTS[chapter.cost].formula,
                    "optimizer": chapter.optimizer, "learning_rate": chapter_number(v.learning_rate)},
        "data": {"X": matrix(v.X, "X", data), "Y": matrix(chapter.Y, "Y", data)},
        "start": [{"symbol": symbol(p), "value": matrix(v.start[p], p, given)} for p in names],
        "exercise": {"step": spec.step, "decimals": spec.decimals,
                     "prompt": UserText(spec.prompt) if spec.prompt else None,
                     "asked": [{"quantity": q, "symbol": _symbol(q)} for q in spec.ask],
                     "example": answers[0]["typed"].split(" = ")[0] + " = …"},
        "answers": answers,
        "steps": steps,
        "check": {"command": command, "sheets_command": f"tracer check SHEETS --variant {v.id}"},
    }


def _symbol(quantity: str) -> str:
    """The maths symbol of a quantity, W1_after as W₁ with a "new" mark (render.symbol for the rest)."""
    from tracer.documents.render import symbol

    if quantity.endswith(AFTER):
        return symbol(quantity[: -len(AFTER)]) + r"^{\text{new}}"
    return symbol(quantity)


def _chapter_argument(chapter: Chapter) -> str:
    """How a student names the chapter: a bundled chapter by its name, any other by its file name."""
    from tracer.engine.chapter import bundled_chapters

    path = Path(chapter.path) if chapter.path else None
    if path is not None and any(path.resolve() == p.resolve() for p in bundled_chapters()):
        return path.stem
    return path.name if path is not None else chapter.name


TEMPLATES = {("sheet", "md"): "exercise-sheet.md.j2", ("sheet", "tex"): "exercise-sheet.tex.j2",
             ("key", "md"): "answer-key.md.j2", ("key", "tex"): "answer-key.tex.j2"}


def write_exercises(chapter: Chapter, out_dir: str | Path, count: int = 40, seed: int = 2026,
                    formats: Sequence[str] = ("md", "tex"), user_templates: Path | None = None) -> list[Path]:
    """Write the set: per variant a sheet and an answer key per format, answers.csv/.json, the manifest.

    Everything is rendered before anything is written, so a failure leaves no half-written set.
    """
    from tracer.documents.render import environment, render
    from tracer.exercises.answers import format_value

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TracerError(f"-o {out}: expected a folder for the sheets, and this is a file")
    for fmt in formats:
        if fmt not in ("md", "tex"):
            raise TracerError(f"--format: expected md or tex, got {fmt!r}")
    variants = make_variants(chapter, count, seed)
    env = environment(user_templates)
    width = max(2, len(str(count)))
    files: dict[Path, str | bytes] = {}
    rows, listing = [], []
    for v in variants:
        tag = f"{v.id:0{width}d}"
        for fmt in formats:
            ctx = sheet_context(v, chapter, seed, count, fmt)
            files[out / f"exercise-{tag}.{fmt}"] = render(env, TEMPLATES[("sheet", fmt)], ctx)
            files[out / f"answer-key-{tag}.{fmt}"] = render(env, TEMPLATES[("key", fmt)], ctx)
        answers = {}
        for q in v.spec.ask:
            exact = v.value(q)
            shown = format_value(exact, v.spec.decimals)
            answers[q] = {"expected": shown, "exact": exact.tolist(),
                          "hand": format_value(v.hand_value(q), v.spec.decimals)}
            for index, x in np.ndenumerate(exact):
                rows.append([v.id, q, ",".join(str(i + 1) for i in index) if exact.ndim else "",
                             str(round_half_up(float(x), v.spec.decimals)), repr(float(x))])
        listing.append({"variant": v.id, "learning_rate": v.learning_rate,
                        "start": {p: a.tolist() for p, a in v.start.items()}, "X": v.X.tolist(),
                        "answers": answers})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "quantity", "entry", "expected", "exact"])
    writer.writerows(rows)
    files[out / "answers.csv"] = buffer.getvalue()
    spec = variants[0].spec
    files[out / "answers.json"] = json.dumps(
        {"format": "tracer-answers/1", "chapter": chapter.name, "seed": seed, "step": spec.step,
         "decimals": spec.decimals, "asked": list(spec.ask), "variants": listing}, indent=1) + "\n"
    files[out / MANIFEST] = json.dumps(
        {"format": FORMAT, "chapter": chapter.name, "seed": seed, "variants": count, "step": spec.step,
         "asked": list(spec.ask), "decimals": spec.decimals, "chapter_file": CHAPTER_COPY,
         "check": "tracer check SHEETS --variant ID \"QUANTITY = VALUE\" …"}, indent=1) + "\n"
    files[out / CHAPTER_COPY] = _chapter_text(chapter)
    written = []
    for path, data in files.items():
        written.append(write_atomic(path, data))
    return written


def _chapter_text(chapter: Chapter) -> bytes:
    """The chapter file as its author wrote it, so a sheets folder is enough to check a variant."""
    if chapter.path is None:
        raise TracerError("the exercises need a chapter read from a file (its copy goes into the sheets folder)")
    try:
        return Path(chapter.path).read_bytes()
    except OSError as exc:
        raise TracerError(f"{chapter.path}: cannot be read ({exc})") from None

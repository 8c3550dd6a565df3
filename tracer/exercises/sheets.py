"""Per-student exercise variants: nice starting numbers, a sheet and an answer key for each.

A chapter's `[exercise]` section says which step is worked, which quantities are asked (with
their points), at how many decimals, and what may vary (weights, biases, inputs, learning rate).
Each variant is drawn from its own random stream, with numbers of one decimal by default; a draw
is rejected when an asked value rounds to 0 or sits (within TIE_MARGIN of a unit) on a tie at the
rounding digit, or when its answers repeat an earlier variant's.

A set is secret or public. A secret set's streams derive from the instructor key and each
variant's printed code (see keys.py), so the sheet gives nothing away; a public practice set's
derive from its seed and the variant's number, so anyone can make variant K again. A sheets folder
(exercises.json, chapter.toml and the instructor's answers.json) is enough to check and grade.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import shlex
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tracer.engine.chapter import (
    Chapter,
    Display,
    ExerciseSpec,
    append_crosses,
    chapter_section,
    exercise_spec,
    has_section,
    load_chapter,
    without_sections,
)
from tracer.engine import keys as quantities
from tracer.engine.trace import Trace
from tracer.engine.train import Traces, hand_carry, initial_parameters
from tracer.errors import NumericalError, TracerError, quoted
from tracer.exercises import keys, tolerance
from tracer.exercises.mistakes import one_product_route
from tracer.interrupts import in_threads
from tracer.output import staged, write_atomic, write_secret
from tracer.rounding import round_half_up, to_decimal
from tracer.spreadsheet import csv_text

#: A value closer than this (in units of the last asked digit) to a rounding tie is rejected.
TIE_MARGIN = Decimal("0.05")
#: Draws tried for one variant before giving up.
MAX_ATTEMPTS = 2000
#: The manifest a sheets folder carries, so `tracer check SHEETS --variant K` needs nothing else.
MANIFEST = "exercises.json"
#: The instructor's listing of every variant's starting values and answers (never handed out).
ANSWERS = "answers.json"
CHAPTER_COPY = "chapter.toml"
#: Where a set's files go: what students get, and what is kept from them (answer keys, answers, quiz banks).
HANDOUTS = "handouts"
SECRET = "secret"
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
    code: str = ""  # what the sheet prints: a keyed set's secret code, or a public set's number

    def value(self, quantity: str) -> np.ndarray:
        return np.asarray(self.trace.at(self.spec.step)[quantity], dtype=float)

    def hand_value(self, quantity: str) -> np.ndarray:
        return np.asarray(self.hand.at(self.spec.step)[quantity], dtype=float)

    def product_value(self, quantity: str) -> np.ndarray:
        """The one-product hand route's value (dZ = dA·∂A/∂Z in one go, ∂A/∂Z never rounded)."""
        return np.asarray(self._product_route[quantity], dtype=float)

    @functools.cached_property
    def _product_route(self) -> dict[str, np.ndarray]:
        return one_product_route(self.chapter, self.hand, self.spec.step, hand_carry(self.chapter))


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


def draw(chapter: Chapter, spec: ExerciseSpec, stream: str) -> Chapter:
    """The chapter of one draw from its own random stream (a public seed's, or a key's: see keys.stream)."""
    rng = random.Random(stream)
    params = initial_parameters(chapter)
    biases = {node.b for node in chapter.network.linear if node.b}
    for name in chapter.parameter_names:
        kind = "biases" if name in biases else "weights"
        if kind in spec.vary:
            span = spec.weights
            params[name] = _nice_matrix(rng, params[name].shape, span, spec.value_decimals, nonzero=kind == "weights")
    X = chapter.X
    if "inputs" in spec.vary:
        X = _nice_matrix(rng, (chapter.n_features, chapter.m), spec.inputs, spec.value_decimals, nonzero=False)
        X = append_crosses(X, chapter.feature_crosses)
    rate = rng.choice(spec.learning_rates) if "learning_rate" in spec.vary else chapter.learning_rate
    return variant_chapter(chapter, spec, params, X, rate)


def variant_chapter(chapter: Chapter, spec: ExerciseSpec, params: dict[str, np.ndarray], X: np.ndarray,
                    rate: float) -> Chapter:
    """A variant as a chapter of its own: its starting values, only the steps the exercise needs, and
    none of the article's figures (they belong to the original numbers)."""
    return dataclasses.replace(without_sections(chapter, "article", "document"), values=params, X=X,
                               learning_rate=float(rate), steps=spec.step + 1, record_every=1, record_steps=(),
                               name=chapter.name)


def _seed_stream(seed: int, variant: int, attempt: int) -> str:
    return f"tracer-exercises/{seed}/{variant}/{attempt}"


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


def make_variants(chapter: Chapter, count: int, seed: int | None = None, upto: int | None = None, *,
                  key: bytes | None = None) -> list[Variant]:
    """Variants 1 … count of a public set `seed` (only up to `upto`: variant k depends on 1 … k−1), or of
    the secret set of instructor `key`, where each variant is named by a code and made from it alone."""
    spec = exercise_spec(chapter)
    _check_asked(chapter, spec)
    if not isinstance(count, int) or count < 1 or count > 10_000:
        raise TracerError(f"--variants: expected a number of variants from 1 to 10000, got {quoted(count)}")
    if key is None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise TracerError(f"--seed: expected a whole number from 0, got {quoted(seed)}")
    variants: list[Variant] = []
    seen: set[tuple[str, ...]] = set()
    if key is not None:
        skipped = 0
        for code in keys.codes(key, chapter.name):
            v = _first_readable(chapter, spec, lambda attempt: keys.stream(key, chapter.name, code, attempt),
                                len(variants) + 1, code)
            if answer_key(v.trace, spec) in seen:  # another code's answers: skip the code, not the draw
                skipped += 1
                if skipped > MAX_ATTEMPTS:
                    raise TracerError(f"{chapter.path or chapter.name}: [exercise]: could not draw {count} variants "
                                      "with distinct answers; widen the ranges or vary more")
                continue
            seen.add(answer_key(v.trace, spec))
            variants.append(v)
            if len(variants) == count:
                return variants
    for k in range(1, (upto or count) + 1):
        v = _first_readable(chapter, spec, lambda attempt: _seed_stream(seed, k, attempt), k, str(k), seen)
        seen.add(answer_key(v.trace, spec))
        variants.append(v)
    return variants


def _first_readable(chapter: Chapter, spec: ExerciseSpec, stream: Callable[[int], str], number: int, code: str,
                    seen: set[tuple[str, ...]] = frozenset()) -> Variant:
    """The first draw of a stream whose asked values are readable (and not among `seen`)."""
    record = list(range(spec.step + 1))
    for attempt in range(MAX_ATTEMPTS):
        drawn = draw(chapter, spec, stream(attempt))
        traces = Traces(drawn, carry="full", steps=record)
        try:
            trace = traces.full
        except NumericalError:
            continue
        if not acceptable(trace, spec) or answer_key(trace, spec) in seen:
            continue
        hand = traces.hand()
        return _variant(number, code, drawn, spec, trace, hand)
    raise TracerError(f"{chapter.path or chapter.name}: [exercise]: could not draw variant {code} in "
                      f"{MAX_ATTEMPTS} tries with readable, distinct answers; widen the ranges, vary more "
                      "(vary = [\"weights\", \"biases\", \"inputs\", \"learning_rate\"]) or ask fewer decimals")


def _variant(number: int, code: str, drawn: Chapter, spec: ExerciseSpec, trace: Trace, hand: Trace) -> Variant:
    start = {p: trace.at(0)[p] for p in drawn.parameter_names}
    return Variant(number, drawn, start, drawn.X, drawn.learning_rate, trace, hand, spec, code)


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
        raise TracerError(f"--variant: expected a variant number from 1, got {quoted(variant_id)}")
    return make_variants(chapter, variant_id, seed, upto=variant_id)[-1]


# --------------------------------------------------------------------------- checking a variant


def keyed_variant(chapter: Chapter, key: bytes, code: str) -> Variant:
    """The variant of code `code` in the secret set of instructor `key` (made from the code alone)."""
    spec = exercise_spec(chapter)
    code = keys.normal_code(code)
    return _first_readable(chapter, spec, lambda attempt: keys.stream(key, chapter.name, code, attempt), 0, code)


@dataclass(frozen=True)
class Sheets:
    """A folder written by `tracer exercises`, as its manifest describes it (checked on reading)."""

    folder: Path
    chapter: Chapter
    count: int
    seed: int | None  # a public set's seed; None for a keyed set
    codes: tuple[str, ...]  # what the sheets print, in order (a public set's: "1", "2", …)
    fingerprint: str | None  # the key's, for a keyed set

    @property
    def keyed(self) -> bool:
        return self.seed is None

    @property
    def listing(self) -> Path | None:
        """The folder's answers.json (in secret/, or beside the manifest in a set written before the split)."""
        return next((p for p in (self.folder / SECRET / ANSWERS, self.folder / ANSWERS) if p.exists()), None)

    def variant(self, label: str | int, key: bytes | None = None) -> Variant:
        """The variant printed as `label` (a code, or a public set's number), from answers.json or the key."""
        code = self.code_of(label)
        listing = self.listing
        if listing is not None:
            return _listed_variant(self, listing, code)
        if not self.keyed:
            return variant(self.chapter, self.seed, int(code))
        if key is None:
            raise TracerError(f"{self.folder}: {SECRET}/{ANSWERS} is not there, and checking or revealing variant {code} of a "
                              f"secret set needs it or the instructor key: add --key FILE")
        if keys.fingerprint(key) != self.fingerprint:
            raise TracerError(f"--key: this is not the key the set in {self.folder} was made with")
        return keyed_variant(self.chapter, key, code)

    def code_of(self, label: str | int) -> str:
        text = str(label).strip()
        code = text if not self.keyed else keys.normal_code(text)
        if code not in self.codes:
            what = f"variants 1 to {self.count}" if not self.keyed else f"{self.count} variant codes"
            raise TracerError(f"--variant {quoted(text)}: the set in {self.folder} has {what}; it is not one of them")
        return code


def _manifest_fail(folder: Path, key: str, expected: str, got: Any) -> None:
    _changed(folder / MANIFEST, key, expected, got)


def _changed(path: Path, key: str, expected: str, got: Any) -> None:
    raise TracerError(f"{path}: {key}: expected {expected}, got {_short(got)} (the file was changed after "
                      "`tracer exercises` wrote it; write the set again)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: What a sheets folder's JSON files may hold: a few megabytes, small integers (counts, seeds below 2⁶³).
JSON_LIMITS = {"bytes": 256 * 2**20, "digits": 20}


def read_json(path: Path) -> Any:
    """A JSON file of a sheets folder (exercises.json, answers.json); a file that was changed, damaged or
    crafted is one clear message naming it (too big, too deep, an integer of 400 digits, NaN), never a
    traceback."""
    def integer(text: str) -> int:
        if len(text.lstrip("-")) > JSON_LIMITS["digits"]:
            raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {JSON_LIMITS['digits']})")
        return int(text)

    def constant(name: str) -> float:
        raise ValueError(f"{name}, which is not a number")

    try:
        size = path.stat().st_size
        if size > JSON_LIMITS["bytes"]:
            raise ValueError(f"{size} bytes; a sheets folder's JSON is at most {JSON_LIMITS['bytes'] // 2**20} MiB")
        return json.loads(path.read_text(encoding="utf-8"), parse_int=integer, parse_constant=constant)
    except OSError as exc:
        raise TracerError(f"{path}: cannot be read ({(exc.strerror or str(exc)).lower()})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = "lists or objects nested too deeply" if isinstance(exc, RecursionError) else _short_text(str(exc))
        raise TracerError(f"{path}: cannot be read ({reason}); was it changed after `tracer exercises` wrote it? "
                          "write the set again") from None


def _short_text(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def open_sheets(folder: str | Path) -> Sheets:
    """The set in a folder written by `tracer exercises`; a changed or broken manifest is told, not traced back."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise TracerError(f"{folder}: not an exercises folder written by `tracer exercises` (it has no {MANIFEST})")
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict):
        _manifest_fail(folder, "the whole file", "a JSON object", manifest)
    if manifest.get("format") != FORMAT:
        _manifest_fail(folder, "format", repr(FORMAT), manifest.get("format"))
    name, count, seed = manifest.get("chapter"), manifest.get("variants"), manifest.get("seed")
    if not isinstance(name, str) or not name:
        _manifest_fail(folder, "chapter", "the chapter's name", name)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        _manifest_fail(folder, "variants", "a number of variants from 1 to 10000", count)
    fingerprint = manifest.get("key")
    if seed is None:
        codes = manifest.get("codes")
        if not isinstance(codes, list) or len(codes) != count or len(set(map(str, codes))) != count \
                or not all(isinstance(c, str) and len(c) == keys.CODE_LENGTH and set(c) <= set(keys.ALPHABET)
                           for c in codes):
            _manifest_fail(folder, "codes", f"{count} different variant codes", codes)
        if not isinstance(fingerprint, str) or len(fingerprint) != 16:
            _manifest_fail(folder, "key", "the key's fingerprint (16 hex digits)", fingerprint)
        codes = tuple(codes)
    else:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            _manifest_fail(folder, "seed", "a whole number from 0 (or null for a keyed set)", seed)
        codes, fingerprint = tuple(str(k) for k in range(1, count + 1)), None
    chapter = load_chapter(folder / CHAPTER_COPY)
    chapter = dataclasses.replace(chapter, name=name)
    return Sheets(folder, chapter, count, seed, codes, fingerprint)


def _listed_variant(sheets: Sheets, path: Path, code: str) -> Variant:
    """A variant made again from its starting values as answers.json lists them (no key needed)."""
    def fail(key: str, expected: str, got: Any) -> None:
        _changed(path, key, expected, got)

    listing = read_json(path)
    entries = listing.get("variants") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        fail("variants", "a list of variants", entries)
    entry = next((e for e in entries if isinstance(e, dict) and str(e.get("code", e.get("variant"))) == code), None)
    if entry is None:
        fail("variants", f"an entry for variant {code}", "none")
    chapter, spec = sheets.chapter, exercise_spec(sheets.chapter)
    where = f"variants[{code}]"
    params = initial_parameters(chapter)
    start = entry.get("start")
    if not isinstance(start, dict) or set(start) != set(params):
        fail(f"{where}.start", f"the parameters {', '.join(params)}", start)
    for p, like in params.items():
        try:
            params[p] = np.array(start[p], dtype=float).reshape(like.shape)
        except (TypeError, ValueError, OverflowError):
            fail(f"{where}.start.{p}", f"numbers in the shape {like.shape}", start[p])
    try:
        X = np.array(entry.get("X"), dtype=float).reshape(chapter.X.shape)
        rate = float(entry.get("learning_rate"))
    except (TypeError, ValueError, OverflowError):
        fail(f"{where}.X / learning_rate", f"an input of shape {chapter.X.shape} and a learning rate",
             [entry.get("X"), entry.get("learning_rate")])
    if not (np.all(np.isfinite(X)) and all(np.all(np.isfinite(v)) for v in params.values())
            and np.isfinite(rate) and rate > 0):
        fail(where, "finite numbers and a learning rate above 0", entry)
    drawn = variant_chapter(chapter, spec, params, X, rate)
    record = list(range(spec.step + 1))
    number = sheets.codes.index(code) + 1
    traces = Traces(drawn, carry="full", steps=record)
    return _variant(number, code, drawn, spec, traces.full, traces.hand())


def variant_label(text: str | int) -> str | int:
    """A --variant as typed: a number (a public set's) or a code (a keyed set's)."""
    text = str(text).strip()
    return int(text) if text.isdigit() else keys.normal_code(text)


def find_variant(source: str | Path | Chapter, label: str | int, *, seed: int | None = None,
                 key: bytes | None = None) -> tuple[Variant, bool]:
    """(the variant, whether its set is public) from a sheets folder or a chapter with its seed or key."""
    label = variant_label(label)
    if not isinstance(source, Chapter) and Path(source).is_dir():
        sheets = open_sheets(source)
        if seed is not None and seed != sheets.seed:
            raise TracerError(f"--seed {seed}: the folder {source} holds "
                              + (f"the set of seed {sheets.seed}" if not sheets.keyed else "a secret (keyed) set"))
        return sheets.variant(label, key), not sheets.keyed
    chapter = source if isinstance(source, Chapter) else load_chapter(source)
    exercise_spec(chapter)  # says the section is missing
    if isinstance(label, str):
        if key is None:
            raise TracerError(f"--variant {label}: a variant code belongs to a secret set; checking it (and "
                              "--reveal) needs the instructor key (--key FILE) or the sheets folder with its "
                              f"{ANSWERS} in place of the chapter")
        return keyed_variant(chapter, key, label), False
    if seed is None:
        raise TracerError("--variant: expected --seed S too (the seed on a public practice sheet), or a sheets "
                          "folder in place of the chapter")
    return variant(chapter, seed, label), True


def check_answers(source: str | Path | Chapter, answers: Sequence[str], *, step: int | None = None,
                  variant: int | str | None = None, seed: int | None = None, key: bytes | None = None,
                  **options: Any):
    """Judge a student's answers (what `tracer check` does); returns an answers.Report.

    `source` is a chapter (path, bundled name or Chapter) or a folder written by `tracer
    exercises`. With `variant` (a public set's number or a secret set's code), the answers are
    about that variant: of the public set `seed`, or of the secret set of instructor `key` (a
    folder's answers.json serves for both). The step defaults to the [exercise] step; at that step
    the exercise's asked quantities, decimals and points apply.
    """
    from tracer.exercises.answers import check

    if variant is None and not isinstance(source, Chapter) and Path(source).is_dir():
        sheets = open_sheets(source)
        raise TracerError(f"{source}: a sheets folder is checked per variant: add --variant "
                          + (f"ID (1 to {sheets.count})" if not sheets.keyed else "CODE (the code on the sheet)"))
    if variant is not None:
        v, public = find_variant(source, variant, seed=seed, key=key)
        if step is not None and step != v.spec.step:
            raise TracerError(f"--step {step}: variant {v.code}'s exercise is about step {v.spec.step}")
        return check(v.chapter, answers, v.spec.step, asked=v.spec.ask, decimals=v.spec.decimals,
                     variant=v.id if public else v.code, points=v.spec.points,
                     traces=Traces(v.chapter, v.trace, v.hand, carry="full"), **options)
    if seed is not None or key is not None:
        raise TracerError("--seed and --key: only with --variant")
    chapter = source if isinstance(source, Chapter) else load_chapter(source)
    has_exercise = has_section(chapter, "exercise")
    spec = exercise_spec(chapter) if has_exercise else None
    if step is None:
        if spec is None:
            raise TracerError(f"{chapter.path or chapter.name}: no [exercise] section says which step: add --step N")
        step = spec.step
    if spec is not None and step == spec.step:
        return check(chapter, answers, step, asked=spec.ask, decimals=spec.decimals, points=spec.points, **options)
    return check(chapter, answers, step, **options)


# --------------------------------------------------------------------------- writing the set


def sheet_context(v: Variant, base: Chapter, seed: int | None, count: int, fmt: str,
                  graph: str | None = None, page: str | None = None) -> dict[str, Any]:
    """What the sheet and key templates see: every number already written as maths by render's helpers;
    `graph` is the worksheet's graph (sheet_graph): the file name of its SVG, or its TikZ picture; `page` the
    practice page's file name, when there is one."""
    from tracer.documents.model import network_layers
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
        product = matrix(v.product_value(q), q, asked)
        answers.append({"quantity": q, "symbol": _symbol(q), "value": shown,
                        "hand": hand_shown if hand_shown != shown else "",
                        "product": product if product not in (shown, hand_shown) else "",
                        "typed": f"{q} = {format_value(exact, spec.decimals)}"})
    steps = []
    net = v.trace.network
    for s in range(spec.step + 1):
        at = v.trace.at(s)
        rows = [q for q in net.step_order() if q in at]
        by_hand = v.hand.at(s)
        shown = [(q, matrix(at[q], q, asked), matrix(by_hand[q], q, asked)) for q in rows]
        steps.append({"step": s, "rows": [{"quantity": q, "symbol": _symbol(q), "value": exact,
                                           "hand": hand if hand != exact else ""} for q, exact, hand in shown]})
    public = seed is not None
    command = f"tracer check {_chapter_argument(base)} --seed {seed} --variant {v.id}" if public else ""
    return {
        "format": fmt,
        "variant": v.code if not public else v.id, "variants": count, "seed": seed, "public": public,
        "chapter": {"name": base.name, "title": UserText(base.title), "m": chapter.m,
                    "layers": network_layers(chapter.network),
                    "bias": chapter.network.bias, "cost": chapter.cost, "cost_formula": chapter.network.cost.formula,
                    "optimizer": chapter.optimizer, "learning_rate": chapter_number(v.learning_rate)},
        "data": {"X": matrix(v.X, "X", data), "Y": matrix(chapter.Y, "Y", data)},
        "start": [{"symbol": symbol(p), "value": matrix(v.start[p], p, given)} for p in names]
        + [{"symbol": symbol(n.name), "value": matrix(v.trace.at(spec.step)[n.name], n.name, Display(decimals=0))}
           for n in net.nodes if getattr(n, "drawn", False)],  # a dropout mask: the one the step draws
        "exercise": {"step": spec.step, "decimals": spec.decimals, "rule": tolerance.rule_words(spec.decimals),
                     "prompt": UserText(spec.prompt) if spec.prompt else None,
                     "asked": [{"quantity": q, "symbol": _symbol(q), "points": _plain(pts),
                                "shape": _shape_words(v.value(q).shape)}
                               for q, pts in zip(spec.ask, spec.points)],
                     "points": _plain(sum(spec.points)),
                     "example": answers[0]["typed"].split(" = ")[0] + " = …"},
        "answers": answers,
        "steps": steps,
        "check": {"command": command, "page": page},
        "graph": graph,
    }


def sheet_graph(v: Variant) -> Any:
    """The computational graph of the exercise's step as a worksheet draws it: what the student is given
    written in (the data, and at step 0 the starting parameters, at the sheet's decimals) and every other
    value an empty box, to fill in with the working and the answers. None without Graphviz."""
    from tracer.documents.figures import computational_graph, graphviz_available

    if not graphviz_available():
        return None
    spec, names = v.spec, v.chapter.parameter_names
    given = {"A0", "Y"} | (set(names) if spec.step == 0 else set())
    data = max(spec.value_decimals, 1)  # as the sheet's data (whole data is written whole)
    display = Display(decimals=spec.decimals, decimals_for={**{p: spec.value_decimals for p in given & set(names)},
                                                            "A0": data, "Y": data})
    chapter = dataclasses.replace(v.chapter, display=display)
    try:
        graph = computational_graph(chapter, v.trace, spec.step)
    except TracerError:  # a scalar view too big to read: the layer view
        graph = computational_graph(chapter, v.trace, spec.step, view="layer")
    graph.leave_blank(graph.quantities() - given)
    return graph


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _shape_words(shape: tuple[int, ...]) -> str:
    """How many numbers a box on the worksheet holds: "1 number", "1 × 2"."""
    if int(np.prod(shape)) == 1:
        return "1 number"
    return " × ".join(str(n) for n in shape)


def _symbol(quantity: str) -> str:
    """The maths symbol of a quantity, W1_after as W₁ with a "new" mark (render.symbol for the rest)."""
    from tracer.documents.render import symbol

    if quantities.is_after(quantity):
        return symbol(quantities.before_update(quantity)) + r"^{\text{new}}"
    return symbol(quantity)


def _chapter_argument(chapter: Chapter) -> str:
    """How a student names the chapter: a bundled chapter by its name, any other by its file name."""
    from tracer.engine.chapter import bundled_chapters

    path = Path(chapter.path) if chapter.path else None
    if path is not None and any(path.resolve() == p.resolve() for p in bundled_chapters()):
        return path.stem
    name = path.name if path is not None else chapter.name
    # The sheet prints it inside a code block: a name that could end the block is not printed.
    if not name.isprintable() or any(c in name for c in "`\\"):
        return "CHAPTER.toml"
    return shlex.quote(("./" if name.startswith("-") else "") + name)


TEMPLATES = {("sheet", "md"): "exercise-sheet.md.j2", ("sheet", "tex"): "exercise-sheet.tex.j2",
             ("key", "md"): "answer-key.md.j2", ("key", "tex"): "answer-key.tex.j2"}


#: What `tracer exercises --format` writes: the sheets and keys (pdf: compiled from the .tex), the practice
#: pages of a public set, and the quiz banks for an LMS.
FORMATS = ("md", "tex", "pdf", "practice", "moodle", "qti")


def check_formats(formats: Sequence[str], public: bool = True) -> Sequence[str]:
    """The formats, if `tracer exercises` can write each of them (a practice page only for a public set)."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise TracerError(f"--format: expected a list from {', '.join(FORMATS)}, got {quoted(fmt)}")
    if "practice" in formats and not public:
        from tracer.exercises.practice import SECRET_REFUSED

        raise TracerError(SECRET_REFUSED)
    if "pdf" in formats and not shutil.which("pdflatex"):
        from tracer.documents.build import PDF_MISSING

        raise TracerError(f"--format pdf: {PDF_MISSING}; or leave pdf out of --format")
    return formats


def write_exercises(chapter: Chapter, out_dir: str | Path, count: int = 40, seed: int | None = None,
                    formats: Sequence[str] = ("md", "tex"), user_templates: Path | None = None, *,
                    key: bytes | None = None) -> list[Path]:
    """Write the set: per variant a sheet (in handouts/) and an answer key per format, answers.csv/.json and
    with "moodle" or "qti" among `formats` a quiz bank for Moodle or Canvas (in secret/), and the manifest
    and the chapter beside them.

    A set is secret (`key`: each sheet prints only its variant code) or public (`seed`: each sheet is
    labelled a practice sheet and says how to check it). Everything is rendered before anything is
    written, so a failure leaves no half-written set.
    """
    from tracer.documents.figures import graph_svg, graph_tikz
    from tracer.documents.render import environment, render
    from tracer.exercises.answers import format_value
    from tracer.exercises.quiz import moodle_xml, qti_zip

    if (seed is None) == (key is None):
        raise TracerError("tracer exercises: expected an instructor key (--key FILE, or --new-key FILE) for a "
                          "secret set, or --seed S for public practice sheets")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TracerError(f"-o {out}: expected a folder for the sheets, and this is a file")
    check_formats(formats, public=key is None)
    variants = make_variants(chapter, count, seed, key=key)
    env = environment(user_templates)
    hand_out, secret = out / HANDOUTS, out / SECRET
    width = max(2, len(str(count)))
    files: dict[Path, str | bytes] = {}
    rows, listing = [], []
    # A PDF is compiled from the .tex, which is written beside it.
    sheet_formats = [fmt for fmt in ("md", "tex") if fmt in formats or (fmt == "tex" and "pdf" in formats)]
    # The practice page shows the graph as the Markdown sheet does (an SVG, inside the page).
    drawn_formats = sheet_formats + (["md"] if "practice" in formats and "md" not in sheet_formats else [])
    # Graphviz runs in its own processes: two lay the worksheets' graphs out at a time.
    graphs = [sheet_graph(v) if drawn_formats else None for v in variants]
    wanted = [(v.id, fmt, graph) for v, graph in zip(variants, graphs) if graph is not None for fmt in drawn_formats]
    drawn = in_threads(lambda job: (graph_svg if job[1] == "md" else graph_tikz)(job[2]), wanted)
    pictures = {(vid, fmt): picture for (vid, fmt, _), picture in zip(wanted, drawn)}
    for v in variants:
        tag = f"{v.id:0{width}d}"
        for fmt in sheet_formats:
            picture = pictures.get((v.id, fmt))
            if picture is not None and fmt == "md":
                files[hand_out / f"exercise-{tag}-graph.svg"] = picture
                picture = f"exercise-{tag}-graph.svg"
            page = f"practice-{tag}.html" if "practice" in formats else None
            ctx = sheet_context(v, chapter, seed, count, fmt, picture, page)
            files[hand_out / f"exercise-{tag}.{fmt}"] = render(env, TEMPLATES[("sheet", fmt)], ctx)
            files[secret / f"answer-key-{tag}.{fmt}"] = render(env, TEMPLATES[("key", fmt)], ctx)
        if "practice" in formats:
            from tracer.exercises.practice import practice_page

            files[hand_out / f"practice-{tag}.html"] = practice_page(v, chapter, seed, count, pictures.get((v.id, "md")),
                                                                     user_templates)
        answers = {}
        for q in v.spec.ask:
            exact = v.value(q)
            shown = format_value(exact, v.spec.decimals)
            answers[q] = {"expected": shown, "exact": exact.tolist(),
                          "hand": format_value(v.hand_value(q), v.spec.decimals)}
            for index, x in np.ndenumerate(exact):
                rows.append([v.code, q, ",".join(str(i + 1) for i in index) if exact.ndim else "",
                             str(round_half_up(float(x), v.spec.decimals)), repr(float(x))])
        listing.append({"variant": v.id, "code": v.code, "learning_rate": v.learning_rate,
                        "start": {p: a.tolist() for p, a in v.start.items()}, "X": v.X.tolist(),
                        "answers": answers})
    files[secret / "answers.csv"] = csv_text([["variant", "quantity", "entry", "expected", "exact"], *rows])
    spec = variants[0].spec
    files[secret / ANSWERS] = json.dumps(
        {"format": "tracer-answers/1", "chapter": chapter.name, "seed": seed, "step": spec.step,
         "decimals": spec.decimals, "asked": list(spec.ask), "points": list(spec.points),
         "variants": listing}, indent=1) + "\n"
    keyed = {"codes": [v.code for v in variants], "key": keys.fingerprint(key)} if key is not None else {}
    files[out / MANIFEST] = json.dumps(
        {"format": FORMAT, "chapter": chapter.name, "seed": seed, "variants": count, **keyed, "step": spec.step,
         "asked": list(spec.ask), "points": list(spec.points), "decimals": spec.decimals,
         "chapter_file": CHAPTER_COPY,
         "check": f"tracer check SHEETS --variant {'CODE' if key is not None else 'ID'} \"QUANTITY = VALUE\" …",
         "grade": "tracer grade SHEETS --answers class.csv -o grades.csv"}, indent=1) + "\n"
    files[out / CHAPTER_COPY] = _chapter_text(chapter)
    if "moodle" in formats:
        files[secret / "quiz-moodle.xml"] = moodle_xml(chapter, variants, seed, keyed.get("key"))
    if "qti" in formats:
        files[secret / "quiz-qti.zip"] = qti_zip(chapter, variants, seed, keyed.get("key"))
    with staged() as staging:  # the folder staged whole beside it, with the PDFs: all or nothing
        staging.folder(out)
        # Each answer key, the answers and the quiz banks open a variant's answers: mode 600.
        written = [(write_secret if is_secret(path) else write_atomic)(path, data) for path, data in files.items()]
        if "pdf" in formats:
            from tracer.documents.build import compile_pdf

            sources = [path for path in written if path.suffix == ".tex"]
            written += [pdf for pdf in in_threads(compile_pdf, sources) if pdf is not None]
    return written


#: What a sheets folder holds that opens a variant's answers (written mode 600, never handed out).
SECRETS = ("answer-key-*", ANSWERS, "answers.csv", "quiz-*")


def is_secret(path: str | Path) -> bool:
    """Whether a file of a sheets folder is kept from students: anything in its secret/ folder, or one of
    SECRETS (where an older folder keeps them beside the handouts)."""
    return Path(path).parent.name == SECRET or any(Path(path).match(pattern) for pattern in SECRETS)


def _chapter_text(chapter: Chapter) -> bytes:
    """The chapter file as its author wrote it, so a sheets folder is enough to check a variant."""
    if chapter.path is None:
        raise TracerError("the exercises need a chapter read from a file (its copy goes into the sheets folder)")
    try:
        return Path(chapter.path).read_bytes()
    except OSError as exc:
        raise TracerError(f"{chapter.path}: cannot be read ({exc})") from None

"""The chapter file: a TOML description of a network, its data, its start and its training.

This is the project's public contract. `load_chapter` reads and checks a file and returns a
`Chapter`; anything wrong raises `ChapterError` naming the file, the key and what was expected.
Every key is documented in docs/chapter-format.md.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tracer.engine import keys
from tracer.engine.graph import LAYERS, Graph, GraphError, LayerSpec, NodeSpec, from_layers, from_nodes
from tracer.engine.image_data import BACKGROUND, INK, SHIFTS, Patterns, generate
from tracer.engine.nodes import NODES, Cost, Linear, costs
from tracer.engine.optimizers import DEFAULTS as OPTIMIZER_DEFAULTS
from tracer.engine.optimizers import OPTIMIZERS
from tracer.engine.penalties import Regularisation, penalised
from tracer.errors import SHOWN, TracerError, quoted
from tracer.progress import duration, max_minutes, step_seconds
from tracer.resources import bundled_path

SCHEMES = ("plain", "xavier", "he", "uniform")
CARRY_MODES = ("full", "rounded")
MAX_STEPS = 10_000_000
#: A link a chapter may give ([article] link): http or https, a host, and only the characters a URL
#: is written with (no space, quote, angle bracket, brace or backslash), at most 2000 of them.
LINK = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
                  r"(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?")


class ChapterError(TracerError):
    """A chapter file that cannot be used, with what was expected where."""


@dataclass(frozen=True)
class Display:
    """How numbers are shown: half-up to `decimals`, or per quantity by `decimals_for`."""

    decimals: int = 3
    decimals_for: dict[str, int] = field(default_factory=dict)
    carry: str = "full"

    def decimals_of(self, quantity: str) -> int:
        """Decimals for a quantity: its own entry ('dW1'), its family's ('dW'), or the default."""
        if quantity in self.decimals_for:
            return self.decimals_for[quantity]
        family = quantity.rstrip("0123456789")
        return self.decimals_for.get(family, self.decimals)


@dataclass(frozen=True)
class Chapter:
    """Everything a run needs, checked. `X` is features × examples, with feature crosses appended."""

    path: Path | None
    name: str
    title: str
    X: np.ndarray
    Y: np.ndarray
    feature_crosses: tuple[tuple[int, ...], ...]
    layers: tuple[LayerSpec, ...]  # the [network] layers shorthand (empty when the graph is written out)
    bias: bool
    seed: int | None
    scheme: str
    values: dict[str, np.ndarray]
    cost: str
    from_logits: bool
    learning_rate: float
    steps: int
    optimizer: str
    hyper: dict[str, float]
    batch_size: int  # m for full batch
    shuffle: bool
    shuffle_seed: int
    frozen: tuple[str, ...]
    record_every: int | None
    record_steps: tuple[int, ...]
    display: Display
    raw: dict[str, Any]  # the whole parsed file, for sections later tools read (article, document, …)
    source: str = ""  # where the chapter's numbers come from (the article), as the file's `source` says
    nodes: tuple[NodeSpec, ...] = ()  # the [network] graph, written out node by node
    regularisation: Regularisation = Regularisation()  # [train] l2, weight_decay, decay_biases
    dropout_seed: int = 0  # [train] dropout_seed: the masks of every step are drawn from it

    @functools.cached_property
    def network(self) -> Graph:
        """The chapter's network as a graph of nodes, the cost last."""
        if self.nodes:
            graph = from_nodes(self.nodes, self.cost, self.from_logits, self.bias)
        else:
            graph = from_layers(self.layers, self.cost, self.from_logits, self.bias)
        return penalised(graph, self.regularisation.l2)

    @property
    def m(self) -> int:
        return self.X.shape[-1]

    @property
    def n_inputs(self) -> int | tuple[int, ...]:
        """Rows of X: the given features and then the feature crosses; for images, each example's
        channels × height × width."""
        return features(self.X)

    @property
    def n_features(self) -> int:
        """The features the chapter gives, before its feature crosses are appended."""
        return self.X.shape[0] - len(self.feature_crosses)

    @property
    def parameter_names(self) -> list[str]:
        return list(self.network.parameter_names)

    def shape_of(self, parameter: str) -> tuple[int, ...]:
        return self.network.parameter_shapes(self.n_inputs)[parameter]

    def recorded_steps(self) -> list[int]:
        """The steps whose every node the trace keeps, in order."""
        chosen = set(s for s in self.record_steps if s < self.steps)
        if self.record_every:
            chosen.update(range(0, self.steps, self.record_every))
        return sorted(chosen)


def features(X: np.ndarray) -> int | tuple[int, ...]:
    """What one example is: its number of features (X features × examples), or for an image batch
    (channels × height × width × examples) its shape."""
    return X.shape[0] if X.ndim == 2 else tuple(X.shape[:-1])


def trace_bytes(graph: Graph, n_inputs: int | tuple[int, ...], batch: int, n_state: int, recorded: int) -> int:
    """About how many bytes a run's trace takes: each recorded step keeps every node's value, local
    gradients and gradient (graph.shapes), the batch, and every parameter before and after its update,
    its gradient and optimizer state."""
    per_step = math.prod(n_inputs if isinstance(n_inputs, tuple) else (n_inputs,)) * batch + batch + 1
    per_step += sum(math.prod(s) for s in graph.shapes(n_inputs, batch).values())
    per_step += sum(math.prod(s) for s in graph.parameter_shapes(n_inputs).values()) * (2 + n_state)
    return 8 * per_step * recorded


def _count_recorded(steps: int, every: int | None, chosen: tuple[int, ...]) -> int:
    """len(chapter.recorded_steps()) without listing millions of steps."""
    if not every:
        return len(chosen)
    return -(-steps // every) + sum(1 for s in chosen if s % every)


def _memory_available() -> int | None:
    """Bytes of memory available now (the smaller of the machine's and the container's), if known."""
    room = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):  # free memory plus what the page cache would give back
                room = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if room is None:
        try:
            room = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            room = min(room, int(limit) - int(used))
    except OSError:
        pass
    return room


def _bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def append_crosses(X: np.ndarray, crosses: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """X (features × examples) with one new feature per cross: the product of the features it names."""
    for cross in crosses:
        X = np.vstack([X, np.prod(X[list(cross), :], axis=0, keepdims=True)])
    return X


# --------------------------------------------------------------------------- reading


def bundled_chapters() -> list[Path]:
    """The chapter files that ship with tracer, in order."""
    return sorted(bundled_path("chapters").glob("*.toml"))


def find_chapter(name: str | Path) -> Path:
    """A chapter path as given, or a bundled chapter by its file name with or without .toml."""
    path = Path(name)
    if path.exists():
        return path
    for bundled in bundled_chapters():
        if str(name) in (bundled.stem, bundled.name):
            return bundled
    known = ", ".join(p.stem for p in bundled_chapters())
    raise ChapterError(f"{name}: no such file, and no bundled chapter of that name (bundled: {known})")


def load_chapter(name: str | Path) -> Chapter:
    """Read and check a chapter file (a path, or the name of a bundled chapter)."""
    path = find_chapter(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChapterError(f"{path}: cannot be read ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChapterError(f"{path}: not valid TOML ({_printable(str(exc))})") from None
    except RecursionError:
        raise ChapterError(f"{path}: {_deepest(text)}not usable TOML (arrays or tables nested too deeply)") from None
    except ValueError:  # Python reads integers of up to 4300 digits
        raise ChapterError(f"{path}: not usable TOML (an integer of more than 4300 digits)") from None
    return parse_chapter(raw, path)


def _deepest(text: str) -> str:
    """Where a TOML text nests deepest ("line 2, key X: "), found without parsing it (it was too deep to parse)."""
    depth, deepest, where = 0, 0, 1
    for number, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            if ch in "[{":
                depth += 1
                if depth > deepest:
                    deepest, where = depth, number
            elif ch in "]}":
                depth = max(depth - 1, 0)
    line = text.splitlines()[where - 1] if text.splitlines() else ""
    key = re.match(r"\s*([A-Za-z0-9_.\"'-]+)\s*=", line)
    return f"line {where}, key {_clipped(key[1])}: " if key else f"line {where}: "


def parse_chapter(raw: dict[str, Any], path: Path | None = None, name: str | None = None) -> Chapter:
    """Check a chapter already read into a dict (from TOML, or built in a notebook)."""
    where = str(path) if path else "<chapter>"
    top = Section(raw, where, "", known=TOP_LEVEL)
    title = top.text("title", required=True)

    data = top.table("data")
    made = data.generated("generate") if "generate" in data else None
    if made is not None:
        for key in ("X", "Y"):
            if key in data:
                data.fail(key, "no X or Y beside [data.generate], which makes both", f"{key} given")
        images, Y_rows = made
    else:
        images = data.images("X")
    X_rows = data.matrix("X", required=True) if images is None else images.reshape(len(images), -1)
    if made is None:
        Y_rows = data.matrix("Y", required=True, allow_flat=True, flat_is_column=True)
    if Y_rows.shape[0] != X_rows.shape[0]:
        data.fail("Y", f"one row per example, as X has ({X_rows.shape[0]} rows)", f"{Y_rows.shape[0]} rows")
    if images is not None and "feature_crosses" in data:
        data.fail("feature_crosses", "no feature crosses for images (X gives one image per example)", "some")
    crosses = data.crosses("feature_crosses", n_features=X_rows.shape[1])
    data.done()
    X = append_crosses(X_rows.T.copy(), crosses) if images is None else np.moveaxis(images, 0, -1).copy()
    Y = Y_rows.T.copy()

    network = top.table("network")
    bias = network.boolean("bias", default=True)
    train = top.table("train")
    cost = train.choice("cost", tuple(costs()), default="squared_error")
    from_logits = train.boolean("from_logits", default=False)
    layers, nodes, graph = network.graph(features(X), Y.shape[0], cost, from_logits, bias, train)
    network.done()
    if costs()[cost].distributions:
        bad = [i for i in range(Y.shape[1]) if np.any(Y[:, i] < 0) or abs(Y[:, i].sum() - 1.0) > 1e-12]
        if bad:
            data.fail("Y", f"for the {cost} cost, one class per column, each example's row of Y summing to 1 "
                           "(one-hot labels such as [0, 1, 0])",
                      f"example {bad[0] + 1}'s row {_short([int(x) if x.is_integer() else x for x in Y[:, bad[0]].tolist()])}")

    init = top.table("init")
    scheme = init.choice("scheme", SCHEMES, default="plain")
    seed = init.integer("seed", default=None, minimum=0, maximum=2**32 - 1)
    values_table = init.table("values")
    names = graph.parameter_names
    shapes = graph.parameter_shapes(features(X))
    biases = {node.b for node in graph.weighted if node.b}
    values: dict[str, np.ndarray] = {}
    for key in values_table.keys():
        if key not in names:
            values_table.fail(key, f"a parameter of this network ({', '.join(names)})", "an unknown name",
                              suggest=names)
        if len(shapes[key]) == 2:
            values[key] = values_table.matrix(key, shape=shapes[key], allow_flat=key in biases)
        else:
            values[key] = values_table.array(key, shapes[key])
    values_table.done()
    drawn = [node.W for node in graph.weighted]
    if seed is None and any(n not in values for n in drawn):
        missing = next(n for n in drawn if n not in values)
        init.fail("seed", f"a seed, because {missing} is drawn at random (or give {missing} in [init.values])",
                  "no seed")
    init.done()

    learning_rate = train.number("learning_rate", required=True, positive=True)
    steps = train.integer("steps", required=True, minimum=1, maximum=MAX_STEPS)
    optimizer = train.choice("optimizer", tuple(OPTIMIZERS), default="gd")
    hyper = {}
    for key in OPTIMIZER_DEFAULTS:
        if key in train:
            if key not in OPTIMIZERS[optimizer].uses:
                train.fail(key, f"a hyper-parameter of the {optimizer!r} optimizer "
                                f"({', '.join(OPTIMIZERS[optimizer].uses) or 'it has none'})", key)
            hyper[key] = train.number(key, positive=True, below_one=key != "epsilon")
    m = X.shape[-1]
    batch_size = train.batch_size("batch_size", m)
    shuffle = train.boolean("shuffle", default=False)
    shuffle_seed = train.integer("shuffle_seed", default=seed or 0, minimum=0, maximum=2**32 - 1)
    frozen = train.names("frozen", names)
    regularisation = Regularisation(l2=_not_negative(train, "l2"), weight_decay=_not_negative(train, "weight_decay"),
                                    decay_biases=train.boolean("decay_biases", default=False))
    if "decay_biases" in train and not regularisation.weight_decay:
        train.fail("decay_biases", "weight_decay too (decay_biases says whether weight decay shrinks the biases)",
                   "no weight_decay")
    dropout_seed = train.integer("dropout_seed", default=seed or 0, minimum=0, maximum=2**32 - 1)
    train.done()

    record = top.table("record")
    record_steps = record.step_list("steps", steps)
    record_every = record.integer("every", default=None if record_steps else 1, minimum=1)
    record.done()
    size = trace_bytes(graph, features(X), batch_size, len(OPTIMIZERS[optimizer].state),
                       _count_recorded(steps, record_every, record_steps))
    room = _memory_available()
    if room is not None and size > room:
        record.fail("every" if record_every else "steps",
                    f"a trace that fits in memory ({_bytes(room)} free): record fewer steps (a larger [record] "
                    "every, or a short [record] steps list)", f"a trace of about {_bytes(size)}")
    seconds = steps * step_seconds(graph, features(X), batch_size)
    if seconds > 60 * max_minutes():
        train.fail("steps", f"a run that ends within {duration(60 * max_minutes())} (fewer steps, fewer or smaller "
                            "layers, or fewer examples; $TRACER_MAX_MINUTES raises the limit)",
                   f"{steps:,} steps estimated at about {duration(seconds)} on one core")

    display = top.table("display")
    decimals = display.integer("decimals", default=3, minimum=0, maximum=15)
    decimals_for_table = display.table("decimals_for")
    decimals_for = {k: decimals_for_table.integer(k, minimum=0, maximum=15) for k in decimals_for_table.keys()}
    carry = display.choice("carry", CARRY_MODES, default="full")
    display.done()

    for section in OWNED_ELSEWHERE:
        top.table(section)  # checked by the tool that reads it; here only that it is a table
    top.done()
    return Chapter(
        path=path, name=name or (path.stem if path else "chapter"), title=title, X=X, Y=Y,
        feature_crosses=crosses, layers=layers, bias=bias, seed=seed, scheme=scheme, values=values,
        cost=cost, from_logits=from_logits, learning_rate=learning_rate, steps=steps,
        optimizer=optimizer, hyper=hyper, batch_size=batch_size, shuffle=shuffle,
        shuffle_seed=shuffle_seed, frozen=frozen, record_every=record_every,
        record_steps=record_steps, display=Display(decimals, decimals_for, carry), raw=raw,
        source=str(raw.get("source", "")), nodes=nodes, regularisation=regularisation, dropout_seed=dropout_seed,
    )


#: Node kinds written only through `[network] layers` (their settings are a layer's): the image nodes.
LAYER_ONLY = ("pooling", "reshape")

#: Sections that later tools read and check themselves with a Section: [article] (tracer verify),
#: [document] (tracer build), [exercise] (tracer check / tracer exercises).
OWNED_ELSEWHERE = ("article", "document", "exercise", "compare")
#: Top-level keys and sections; each section's own keys are checked where it is parsed.
TOP_LEVEL = ("title", "source", "data", "network", "init", "train", "record", "display") + OWNED_ELSEWHERE


# --------------------------------------------------------------------------- checking


class Section:
    """One TOML table being checked: each read key is ticked off, `done` complains about the rest.

    Tools that read their own section of a chapter (verify's [article], the documents' [document])
    check it with a Section too, so every message has the same form: file, [section] key, expected, got.
    """

    def __init__(self, data: Any, file: str, name: str, known: tuple[str, ...] | None = None):
        self.file, self.name = file, name
        if not isinstance(data, dict):
            self.data: dict[str, Any] = {}
            self.fail(None, "a table", _describe(data))
        self.data = data
        self.seen: set[str] = set()
        self.known = known

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> list[str]:
        return list(self.data)

    def where(self, key: str | None) -> str:
        section = f"[{_clipped(_printable(self.name))}]" if self.name else ""
        return f"{_printable(self.file)}: {section}{' ' if section and key else ''}{_clipped(_printable(key or ''))}".rstrip()

    def fail(self, key: str | None, expected: str, got: str, suggest: list[str] | None = None,
             near: str | None = None) -> None:
        """Raise the ChapterError; `suggest` adds "did you mean" for the option closest to `near` (or the key)."""
        hint = ""
        if suggest and (near or key):
            close = difflib.get_close_matches(near or key, suggest, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ChapterError(f"{self.where(key)}: expected {expected}, got {_clipped(got, 200)}{hint}")

    def get(self, key: str, required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data and required:
            misspelt = difflib.get_close_matches(key, [k for k in self.data if k not in self.seen], n=1)
            if misspelt:
                self.fail(misspelt[0], f"the required key {key!r}", f"unknown key {quoted(misspelt[0])}", [key])
            self.fail(key, "this key, which is required", "nothing")
        return self.data.get(key)

    def done(self) -> None:
        allowed = self.known if self.known is not None else tuple(self.seen)
        for key in self.data:
            if key not in allowed and key not in self.seen:
                self.fail(key, f"one of the known keys ({', '.join(sorted(allowed))})", f"unknown key {quoted(key)}",
                          suggest=list(allowed))

    def table(self, key: str) -> "Section":
        self.seen.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, "a table", _describe(value))
        return Section(value, self.file, f"{self.name}.{key}" if self.name else key)

    def text(self, key: str, required: bool = False, default: str = "") -> str:
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "a non-empty string", _describe(value))
        control = next((c for c in value if not c.isprintable() and c not in "\n\t"), None)
        if control is not None:
            self.fail(key, "text without control characters", f"{control!r} at character {value.index(control) + 1}")
        return value

    def link(self, key: str) -> str:
        """A web address (LINK): only http and https, so no `javascript:` or markup reaches a document."""
        value = self.text(key)
        if value and (len(value) > 2000 or not LINK.fullmatch(value)):
            self.fail(key, "a web address starting with http:// or https:// (letters, digits and - . _ ~ : / ? # "
                           "[ ] @ ! $ & ' ( ) * + , ; = %, no spaces or < > \" { })", _describe(value))
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, "true or false", _describe(value))
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str = "", required: bool = False) -> str:
        value = self.get(key, required)
        if value is None:
            return default
        if value not in options:
            self.fail(key, f"one of {', '.join(repr(o) for o in options)}", _describe(value),
                      suggest=list(options), near=value if isinstance(value, str) else None)
        return value

    def integer(self, key: str, default: Any = None, required: bool = False,
                minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, "a whole number", _describe(value))
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else " up")
            self.fail(key, f"a whole number {bounds}", _short(value))
        return value

    def number(self, key: str, required: bool = False, positive: bool = False,
               below_one: bool = False) -> Any:
        value = self.get(key, required)
        if value is None:
            return None
        if not _is_number(value) or not _finite(value):
            self.fail(key, "a finite number", _describe(value))
        if positive and value <= 0:
            self.fail(key, "a number above 0", _short(value))
        if below_one and value >= 1:
            self.fail(key, "a number below 1", _short(value))
        return float(value)

    def matrix(self, key: str, required: bool = False, shape: tuple[int, int] | None = None,
               allow_flat: bool = False, flat_is_column: bool = True) -> np.ndarray:
        value = self.get(key, required)
        rows = value
        if allow_flat and isinstance(value, list) and value and all(_is_number(v) for v in value):
            rows = [[v] for v in value] if flat_is_column else [value]
        expected = "a list of rows of numbers, e.g. [[0, 1], [1, 0]]"
        if shape:
            expected = f"a {shape[0]} × {shape[1]} matrix written as {shape[0]} rows of {shape[1]} numbers"
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
            self.fail(key, expected, _describe(value))
        width = len(rows[0])
        for i, row in enumerate(rows):
            if len(row) != width:
                self.fail(key, f"{expected}; every row as long as the first ({width})",
                          f"row {i + 1} with {len(row)} numbers")
            for j, v in enumerate(row):
                if not _is_number(v):
                    self.fail(key, f"{expected}; numbers only", f"{_describe(v)} at row {i + 1}, column {j + 1}")
                if not _finite(v):
                    self.fail(key, "finite numbers", f"{_short(v)} at row {i + 1}, column {j + 1}")
        array = np.array(rows, dtype=float)
        if shape and array.shape != shape:
            self.fail(key, expected, f"{array.shape[0]} × {array.shape[1]}")
        return array

    def array(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """An array of any number of dimensions written as nested lists (a convolution's W: filters ×
        channels × kernel height × kernel width); leading dimensions of size 1 may be left out."""
        value = self.get(key, required=True)
        expected = f"a {' × '.join(map(str, shape))} array written as nested lists of numbers"
        found = _nested_shape(value)
        if isinstance(found, str):
            self.fail(key, expected, found)
        array = np.array(value, dtype=float)
        short = tuple(shape)
        while short and short[0] == 1 and len(short) > array.ndim:
            short = short[1:]
        if array.shape != short:
            self.fail(key, expected, " × ".join(map(str, array.shape)) or "a number")
        if not np.all(np.isfinite(array)):
            self.fail(key, "finite numbers", "a number that is not finite")
        return array.reshape(shape)

    def images(self, key: str) -> np.ndarray | None:
        """X given as images, one entry per example, each channels × height × width or height × width
        (one channel): examples × channels × height × width. None when X is a table of rows."""
        value = self.get(key, required=True)
        if not (isinstance(value, list) and value and isinstance(value[0], list) and value[0]
                and isinstance(value[0][0], list)):
            return None
        found = _nested_shape(value)
        expected = ("one image per example, each a list of rows of numbers (height × width) or a list of "
                    "channels of them, every image the same size")
        if isinstance(found, str):
            self.fail(key, expected, found)
        if len(found) not in (3, 4):
            self.fail(key, expected, f"nested {len(found)} deep")
        array = np.array(value, dtype=float)
        if not np.all(np.isfinite(array)):
            self.fail(key, "finite numbers", "a number that is not finite")
        return array[:, None] if array.ndim == 3 else array

    def generated(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """`[data.generate]`: images made from each class's pattern (tracer.engine.image_data); (images as
        examples × channels × height × width, labels as examples × classes)."""
        section = self.table(key)
        table = section.table("patterns")
        names = table.keys()
        if len(names) < 2:
            table.fail(None, "two or more classes, each a pattern: a list of rows such as \"..##..\"",
                       f"{len(names)} class(es)")
        rows: list[tuple[str, ...]] = []
        for name in names:
            value = table.get(name)
            ok = isinstance(value, list) and value and all(isinstance(r, str) and r and set(r) <= {INK, BACKGROUND}
                                                           for r in value)
            if not ok or len({len(r) for r in value}) != 1:
                table.fail(name, f"a list of rows of {INK!r} (ink) and {BACKGROUND!r}, every row as long as the first",
                           _describe(value))
            if rows and (len(value), len(value[0])) != (len(rows[0]), len(rows[0][0])):
                table.fail(name, f"a pattern of {len(rows[0])} rows of {len(rows[0][0])}, as the first",
                           f"{len(value)} rows of {len(value[0])}")
            rows.append(tuple(value))
        per_class = section.integer("per_class", default=1, minimum=1, maximum=len(SHIFTS))
        noise = section.number("noise") or 0.0
        if noise >= 0.5:
            section.fail("noise", "a number from 0 to below 0.5 (each pixel changed by at most that)", _short(noise))
        seed = section.integer("seed", default=0, minimum=0, maximum=2**32 - 1)
        section.done()
        return generate(Patterns(tuple(names), tuple(rows), per_class, noise, seed))

    def crosses(self, key: str, n_features: int) -> tuple[tuple[int, ...], ...]:
        value = self.get(key)
        if value is None:
            return ()
        expected = f"a list of feature crosses, each a list of 2 or more feature indices from 0 to {n_features - 1}"
        if not isinstance(value, list) or not all(isinstance(c, list) and len(c) >= 2 for c in value):
            self.fail(key, expected, _describe(value))
        for cross in value:
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_features for i in cross):
                self.fail(key, expected, str(cross))
        return tuple(tuple(c) for c in value)

    def graph(self, n_inputs: int | tuple[int, ...], n_outputs: int, cost: str, from_logits: bool, bias: bool,
              train: "Section") -> tuple[tuple[LayerSpec, ...], tuple[NodeSpec, ...], Graph]:
        """The network: `layers` (the shorthand, a layer per entry) or `graph` (the nodes written out),
        checked and built; the last layer or node must have one unit per row of Y."""
        if "graph" in self.data and "layers" in self.data:
            self.fail("graph", "either layers or graph, not both", "both")
        if "graph" in self.data:
            nodes, layers = self.nodes("graph"), ()
        else:
            layers, nodes = self.layers("layers"), ()
        try:
            graph = from_nodes(nodes, cost, from_logits, bias) if nodes else from_layers(layers, cost, from_logits, bias)
        except GraphError as exc:
            if str(exc).startswith("from_logits"):
                train.fail("from_logits", 'true only with cost = "binary_cross_entropy" after a sigmoid last layer, '
                           'or cost = "cross_entropy" after a softmax',
                           f"cost {cost!r} with a {graph_output_op(nodes, layers)} last layer")
            self.fail("graph" if nodes else "layers", "a graph whose every node reads the data or an earlier node",
                      str(exc))
        try:
            units = graph.output_units(n_inputs)
        except ValueError as exc:
            self.fail("graph" if nodes else "layers", "nodes whose inputs fit together", str(exc))
        if units != n_outputs:
            what = "last layer" if layers else f"last node ({graph.output.name})"
            self.fail("graph" if nodes else "layers", f"a {what} with {n_outputs} unit(s), one per column of Y",
                      f"{units} units")
        return layers, nodes, graph

    def layers(self, key: str) -> tuple[LayerSpec, ...]:
        value = self.get(key, required=True)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            self.fail(key, 'a list of layers such as [{units = 3, activation = "sigmoid"}]', _describe(value))
        layers = []
        for i, spec in enumerate(value):
            layer = Section(spec, self.file, f"{self.name}.{key}[{i}]")
            kind = layer.choice("kind", tuple(LAYERS), default="dense")
            spec = LAYERS[kind].read(layer)
            keep = dict(spec.options).get("keep")
            if keep is not None and i == len(value) - 1:
                layer.fail("keep", "dropout on a hidden layer (the last layer is the prediction)", _short(keep))
            layer.done()
            layers.append(spec)
        return tuple(layers)

    def nodes(self, key: str) -> tuple[NodeSpec, ...]:
        """`[network] graph`: nodes such as {name = "Z1", op = "linear", input = "A0", units = 3}, in order."""
        value = self.get(key, required=True)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            self.fail(key, 'a list of nodes such as [{name = "Z1", op = "linear", input = "A0", units = 3}, '
                           '{name = "A1", op = "sigmoid", input = "Z1"}]', _describe(value))
        kinds = tuple(k for k, cls in NODES.items() if not issubclass(cls, Cost) and cls.kind not in LAYER_ONLY)
        specs: list[NodeSpec] = []
        known = [keys.INPUT]
        for i, entry in enumerate(value):
            node = Section(entry, self.file, f"{self.name}.{key}[{i}]")
            name = node.text("name", required=True)
            if not name.isidentifier() or name in (keys.INPUT, keys.TARGET, keys.COST) or name in known:
                node.fail("name", f"a new name made of letters, digits and _ (not {', '.join(known)}, Y or cost)",
                          repr(name))
            kind = node.choice("op", kinds, required=True)
            if "inputs" in node:
                inputs = node.get("inputs")
                if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
                    node.fail("inputs", "a list of node names", _describe(inputs))
            else:
                inputs = [node.text("input", required=True)]
            for x in inputs:
                if x not in known:
                    node.fail("inputs" if "inputs" in node else "input", f"a node defined before it ({', '.join(known)})",
                              repr(x), suggest=known, near=x)
            arity = 2 if NODES[kind].kind == "merge" else 1
            if (len(inputs) < 2) if arity == 2 else len(inputs) != 1:
                node.fail("inputs" if "inputs" in node else "input",
                          "two or more inputs" if arity == 2 else "one input", f"{len(inputs)}")
            options: list[tuple[str, Any]] = []
            if issubclass(NODES[kind], Linear):
                options.append(("units", node.integer("units", required=True, minimum=1, maximum=10_000)))
                if "bias" in node:
                    options.append(("bias", node.boolean("bias", default=True)))
            node.done()
            specs.append(NodeSpec(name, kind, tuple(inputs), tuple(options)))
            known.append(name)
        return tuple(specs)

    def batch_size(self, key: str, m: int) -> int:
        value = self.get(key)
        if value is None or value == "full":
            return m
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= m or m % value:
            divisors = [d for d in range(1, m + 1) if m % d == 0]
            self.fail(key, f'"full" or a batch size that divides the {m} examples ({", ".join(map(str, divisors))})',
                      _describe(value))
        return value

    def names(self, key: str, options: list[str]) -> tuple[str, ...]:
        value = self.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"a list of parameter names from {', '.join(options)}", _describe(value))
        for v in value:
            if v not in options:
                self.fail(key, f"parameter names from {', '.join(options)}", repr(v), suggest=options, near=v)
        return tuple(value)

    def step_list(self, key: str, steps: int) -> tuple[int, ...]:
        value = self.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.fail(key, "a list of step numbers", _describe(value))
        for v in value:
            if not 0 <= v < steps:
                self.fail(key, f"step numbers from 0 to {steps - 1} (steps are counted from 0)", _short(v))
        return tuple(sorted(set(value)))


def _nested_shape(value: Any, where: str = "") -> tuple[int, ...] | str:
    """The shape of nested lists of numbers, or what is wrong with them (ragged, not a number)."""
    if _is_number(value):
        return ()
    if not isinstance(value, list) or not value:
        return f"{_describe(value)}{where}"
    shapes = [_nested_shape(v, f"{where} at entry {i + 1}") for i, v in enumerate(value)]
    for s in shapes:
        if isinstance(s, str):
            return s
    if any(s != shapes[0] for s in shapes):
        bad = next(i for i, s in enumerate(shapes) if s != shapes[0])
        return f"entry {bad + 1}{where} of a different size ({' × '.join(map(str, shapes[bad])) or 'a number'} " \
               f"against {' × '.join(map(str, shapes[0])) or 'a number'})"
    return (len(value),) + shapes[0]


def _not_negative(section: Section, key: str) -> float:
    """A number from 0 up (0, or no key: none of it)."""
    value = section.number(key)
    if value is not None and value < 0:
        section.fail(key, "a number from 0 up (0: none)", _short(value))
    return value or 0.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    """A finite number that a float can hold (an integer of 400 digits cannot)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters (an escape sequence in a key) escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _clipped(text: str, limit: int = SHOWN) -> str:
    """At most about `limit` characters of `text` in a message (a 1 MB key name is not echoed whole)."""
    return text if len(text) <= limit else f"{text[:limit - 1]}… ({len(text):,} characters)"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {quoted(value)}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {_short(value)}"
    if value is None:
        return "nothing"
    if isinstance(value, int) and abs(value) >= 10**60:
        return _short(value)
    return f"{type(value).__name__} {_short(value)}"


def _short(value: Any) -> str:
    if isinstance(value, int) and abs(value) >= 10**60:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def chapter_section(chapter: Chapter, name: str) -> Section:
    """The chapter's [name] table as a Section, for the tool that owns it to check its keys.

    Its messages name a bundled chapter by its name (installed, its file is somewhere in site-packages,
    which tells a user nothing), any other chapter by its file."""
    bundled = chapter.path is not None and chapter.path.resolve().parent == bundled_path("chapters").resolve()
    where = f"{chapter.name} (a bundled chapter)" if bundled else str(chapter.path) if chapter.path else "<chapter>"
    return Section(chapter.raw.get(name, {}), where, name)


def has_section(chapter: Chapter, name: str) -> bool:
    """True when the chapter has a non-empty [name] table."""
    return bool(chapter.raw.get(name))


def without_sections(chapter: Chapter, *names: str) -> Chapter:
    """The chapter without its [name] tables, as if its file had none (a variant drops the article's)."""
    return replace(chapter, raw={k: v for k, v in chapter.raw.items() if k not in names})


# --------------------------------------------------------------------------- the [exercise] section

#: What an exercise's variants may draw anew.
VARY = ("weights", "biases", "inputs", "learning_rate")


@dataclass(frozen=True)
class ExerciseSpec:
    """A chapter's [exercise] section, checked."""

    step: int
    ask: tuple[str, ...]
    decimals: int
    vary: tuple[str, ...]
    value_decimals: int
    weights: tuple[float, float]
    inputs: tuple[float, float]
    learning_rates: tuple[float, ...]
    prompt: str
    points: tuple[float, ...] = ()  # one per asked quantity (default 1 each): a grade's weights


def exercise_spec(chapter: Chapter) -> ExerciseSpec:
    """Read and check the chapter's [exercise] section (every message names the file and key)."""
    section = chapter_section(chapter, "exercise")
    if not section.keys():
        section.fail(None, "an [exercise] section (step, ask, decimals, vary) in the chapter", "none")
    step = section.integer("step", default=0, minimum=0, maximum=chapter.steps - 1)
    ask = section.get("ask", required=True)
    if not isinstance(ask, list) or not ask or not all(isinstance(q, str) and q for q in ask) \
            or len(set(ask)) != len(ask):
        section.fail("ask", 'a list of different quantity names such as ["dW1", "db1"]', _short(ask))
    decimals = section.integer("decimals", default=chapter.display.decimals, minimum=0, maximum=10)
    vary = section.get("vary")
    vary = ["weights"] if vary is None else vary
    if not isinstance(vary, list) or not all(isinstance(v, str) for v in vary):
        section.fail("vary", f"a list from {', '.join(map(repr, VARY))}", _short(vary))
    for v in vary:
        if v not in VARY:
            section.fail("vary", f"a list from {', '.join(map(repr, VARY))}", repr(v), suggest=list(VARY), near=v)
    value_decimals = section.integer("value_decimals", default=1, minimum=0, maximum=3)
    weights = _range(section, "weights", (-1.0, 1.0), value_decimals)
    inputs = _range(section, "inputs", (0.0, 1.0), value_decimals)
    rates = section.get("learning_rates")
    if rates is None:
        rates = [chapter.learning_rate]
    if not isinstance(rates, list) or not rates or not all(_is_number(r) and _finite(r) and r > 0 for r in rates):
        section.fail("learning_rates", "a list of finite learning rates above 0, e.g. [0.5, 1, 2]", _short(rates))
    if "learning_rate" in vary and len(rates) < 2:
        section.fail("learning_rates", 'two or more learning rates to choose from (vary has "learning_rate")',
                     _short(rates))
    prompt = section.text("prompt", default="")
    points = section.get("points")
    points = {} if points is None else points
    if not isinstance(points, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1000 for v in points.values()):
        section.fail("points", 'a table of points per asked quantity above 0, e.g. { dW1 = 2, db1 = 1 }', repr(points))
    for q in points:
        if q not in ask:
            section.fail("points", f"points for asked quantities ({', '.join(ask)})", repr(q), suggest=list(ask), near=q)
    section.done()
    if "biases" in vary and not chapter.network.bias:
        section.fail("vary", "no 'biases' for a network without biases", "'biases'")
    return ExerciseSpec(step, tuple(ask), decimals, tuple(vary), value_decimals, weights, inputs,
                        tuple(float(r) for r in rates), prompt, tuple(float(points.get(q, 1)) for q in ask))


def _range(section: Any, key: str, default: tuple[float, float], decimals: int) -> tuple[float, float]:
    """A [low, high] range that holds at least one number with `decimals` decimals (the values drawn)."""
    value = section.get(key)
    if value is None:
        return default
    if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) and _finite(v) for v in value)
            and value[0] < value[1]):
        section.fail(key, "a range [low, high] of two finite numbers with low < high", _short(value))
    low, high = float(value[0]), float(value[1])
    scale = 10 ** decimals
    if math.ceil(low * scale) > math.floor(high * scale):
        section.fail(key, f"a range holding a number with {decimals} decimal(s) (value_decimals), to draw from",
                     _short(value))
    return low, high


# --------------------------------------------------------------------------- the [document] section

#: Rows of the long-run cost table when a chapter does not choose its steps.
TABLE_ROWS = 10


@dataclass(frozen=True)
class DocumentNote:
    """A note the chapter's author anchors to a step and a node of the graph ([[document.notes]])."""

    step: int
    node: str
    text: str


@dataclass(frozen=True)
class DocumentSpec:
    """What a chapter's [document] section asks for. It names steps and quantities, never values."""

    intro: str
    closing: str
    worked_steps: tuple[int, ...]
    forward_steps: tuple[int, ...]
    table_steps: tuple[int, ...]
    table_decimals: int
    exercise_step: int | None  # the document sets the chapter's [exercise] when it has a prompt
    exercise_prompt: str
    exercise_quantities: tuple[str, ...]
    notes: tuple[DocumentNote, ...]


def document_spec(chapter: Chapter) -> DocumentSpec:
    """Read and check the chapter's [document] section (defaults: step 0 worked, ~10 table rows)."""
    section = chapter_section(chapter, "document")
    intro = section.text("intro")
    closing = section.text("closing")
    last = chapter.steps - 1
    worked = _doc_steps(section, "worked_steps", last) or [0]
    forward = [s for s in _doc_steps(section, "forward_steps", last) if s not in worked]
    table = _doc_steps(section, "table_steps", last)
    if not table and chapter.steps > max(worked + forward) + 1:
        stride = max(1, -(-chapter.steps // TABLE_ROWS))
        table = sorted(set(range(0, chapter.steps, stride)) | {last})
    table_decimals = section.integer("table_decimals", default=chapter.display.decimals_of("cost"),
                                     minimum=0, maximum=15)
    prompt = section.text("exercise_prompt")
    notes = _document_notes(section, chapter, sorted(set(worked) | set(forward)))
    section.done()
    step, asked = None, ()
    if prompt:  # the document sets the chapter's [exercise] (its step and asked quantities), in these words
        spec = exercise_spec(chapter)
        step, asked = spec.step, spec.ask
    return DocumentSpec(intro, closing, tuple(worked), tuple(forward), tuple(table), table_decimals, step, prompt,
                        tuple(asked), notes)


def _doc_steps(section: Section, key: str, last: int) -> list[int]:
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        section.fail(key, "a list of step numbers", repr(value))
    for s in value:
        if not 0 <= s <= last:
            section.fail(key, f"steps from 0 to {last} (steps are counted from 0)", str(s))
    return sorted(set(value))


def graph_nodes(chapter: Chapter) -> list[str]:
    """The nodes of the chapter's graph a note may be anchored to: Z1, A1, …, cost, then the parameters."""
    return [node.name for node in chapter.network.nodes] + chapter.parameter_names


def graph_output_op(nodes: tuple[NodeSpec, ...], layers: tuple[LayerSpec, ...]) -> str:
    """The kind of the last node of a network not yet built (for a message)."""
    return nodes[-1].op if nodes else layers[-1].activation


def _document_notes(section: Section, chapter: Chapter, shown: list[int]) -> tuple[DocumentNote, ...]:
    value = section.get("notes")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        section.fail("notes", "a list of tables, written [[document.notes]]", _describe(value))
    nodes = graph_nodes(chapter)
    notes = []
    for i, entry in enumerate(value):
        note = Section(entry, section.file, f"document.notes[{i}]")
        step = note.integer("step", required=True)
        if step not in shown:
            note.fail("step", f"a step the document shows ({', '.join(map(str, shown))})", str(step))
        node = note.text("node", required=True)
        if node not in nodes:
            note.fail("node", f"a node of the graph ({', '.join(nodes)})", repr(node), suggest=nodes, near=node)
        text = note.text("text", required=True)
        note.done()
        notes.append(DocumentNote(step, node, text))
    return tuple(notes)

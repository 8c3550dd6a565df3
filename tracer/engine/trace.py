"""The trace: every node's value and gradients at every recorded step, the single source of numbers.

Arrays are laid out by quantity, each with a leading step axis (`arrays["dW1"][i]` is dW1 at the
i-th recorded step), so recording costs little and later tools read whole histories at once.
Names are the article's: A0 is the input batch (X), Z1, A1, …, cost; dZ1, dA1, dW1, db1, …
(dA0 reaches the input); W1 is a parameter before the step's update and W1_after after it;
dA1_dZ1 is the activation's local gradient. A trace saves to one .npz with a JSON index inside.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import functools

from tracer.engine import keys
from tracer.engine.graph import Graph, GraphError
from tracer.engine.keys import COST, INPUT, TARGET
from tracer.errors import TracerError, quoted
from tracer.output import atomic_file

FORMAT = "tracer-trace/2"


@dataclass
class NodeRecord:
    """One node of the graph at one step: its value, local gradients, what reaches it, what it passes on."""

    name: str
    kind: str  # "input", "linear", "activation", "merge" or "cost"
    value: np.ndarray
    local: dict[str, np.ndarray] = field(default_factory=dict)  # ∂node/∂input, by input name
    upstream: np.ndarray | None = None  # ∂cost/∂node
    passes: dict[str, np.ndarray] = field(default_factory=dict)  # ∂cost/∂input, by gradient name
    #: For a node read by several others: the part of `upstream` each of them passed back, by name.
    parts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ParameterRecord:
    """One parameter at one step: the value used, the gradient, the value after the update."""

    name: str
    before: np.ndarray
    gradient: np.ndarray
    after: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)  # optimizer state after the update
    frozen: bool = False


class Trace:
    """A recorded training run. Build one with `tracer.run(chapter)` or `Trace.load(path)`."""

    def __init__(self, meta: dict[str, Any], steps: np.ndarray, arrays: dict[str, np.ndarray],
                 costs: np.ndarray, X: np.ndarray, Y: np.ndarray, final: dict[str, np.ndarray],
                 running: dict[str, np.ndarray] | None = None):
        self.meta = meta
        self.steps = np.asarray(steps, dtype=np.int64)
        self.arrays = arrays
        self.costs = costs  # the cost at every step run, recorded or not
        self.X, self.Y = X, Y  # the whole data set, features × examples
        self.final = final  # every parameter after the last step
        #: After the last step, the running averages kept for inference (batch normalisation's
        #: running_mu1, running_var1; empty without batch normalisation).
        self.running = dict(running or {})
        self._slot = {int(s): i for i, s in enumerate(self.steps)}

    # ----------------------------------------------------------------- reading one step

    @property
    def parameter_names(self) -> list[str]:
        return list(self.meta["parameters"])

    @functools.cached_property
    def network(self) -> Graph:
        """The graph this trace recorded, rebuilt from its meta: its nodes name every quantity."""
        return Graph.from_spec(self.meta["graph"])

    @functools.cached_property
    def names(self) -> keys.Names:
        """Every quantity name this trace's graph has (see tracer.engine.keys)."""
        return self.network.names()

    def slot(self, step: int) -> int:
        """Where `step` is in the arrays; a clear error if it was not recorded."""
        if step in self._slot:
            return self._slot[step]
        run = self.meta["steps_run"]
        if not 0 <= step < run:
            raise TracerError(f"step {step}: this run has steps 0 to {run - 1} (steps are counted from 0)")
        raise TracerError(f"step {step} was not recorded; recorded steps: {_ranges(self.steps)} "
                          "(set [record] every or steps in the chapter)")

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The examples (A0 = X of the batch) and labels Y of `step`."""
        idx = self.arrays["batch"][self.slot(step)]
        if len(idx) == self.X.shape[-1] and np.array_equal(idx, np.arange(len(idx))):
            return self.X, self.Y
        return self.X[..., idx], self.Y[:, idx]

    def at(self, step: int) -> dict[str, Any]:
        """Every quantity recorded at `step` by name (A0, Y, Z1, …, cost, dW1, W1, W1_after, …)."""
        i = self.slot(step)
        values: dict[str, Any] = {name: array[i] for name, array in self.arrays.items() if name != "batch"}
        values[INPUT], values[TARGET] = self.batch(step)
        values[COST] = float(values[COST])
        return values

    def value(self, quantity: str, step: int) -> Any:
        values = self.at(step)
        if quantity not in values:
            raise TracerError(f"{quoted(quantity)} is not a recorded quantity; known: {', '.join(sorted(values))}")
        return values[quantity]

    def history(self, quantity: str) -> np.ndarray:
        """`quantity` at every recorded step (leading axis = recorded step)."""
        if quantity == "cost":
            return self.arrays["cost"]
        return self.arrays[quantity]

    def nodes(self, step: int) -> list[NodeRecord]:
        """The graph at `step` in forward order: the input, every node (Z1, A1, Z2, …), the cost."""
        v = self.at(step)
        graph = self.network
        records = [NodeRecord(INPUT, "input", v[INPUT], upstream=v[keys.grad(INPUT)])]
        for node in graph.nodes:
            args = {n: v[n] for n in node.inputs if n != TARGET}
            params = {p: v[p] for p in node.params}
            passes = {target: v[target] for _, target in graph.passes(node.name) if target in v}
            if node is graph.cost:
                grad = v[keys.grad(graph.prediction)]
                records.append(NodeRecord(COST, "cost", np.asarray(v[COST]), {graph.prediction: grad},
                                          np.asarray(1.0), {keys.grad(graph.prediction): grad}))
                continue
            local = node.shown_locals(args, params, v[node.name], {w: v[keys.local(node.name, w)] for w in node.locals})
            parts = {keys.part(node.name, u.name): v[keys.part(node.name, u.name)]
                     for u in graph.feeds[node.name]} if len(graph.feeds[node.name]) > 1 else {}
            records.append(NodeRecord(node.name, node.kind, v[node.name], local, v.get(keys.grad(node.name)), passes,
                                      parts))
        return records

    def parameters(self, step: int) -> list[ParameterRecord]:
        v = self.at(step)
        frozen = set(self.meta["frozen"])
        return [ParameterRecord(p, v[p], v[keys.grad(p)], v[keys.after(p)],
                                {s: v[keys.state(s, p)] for s in self.meta["state"]}, p in frozen)
                for p in self.parameter_names]

    def step_dict(self, step: int) -> dict[str, Any]:
        """Everything at `step` as plain lists and floats, full double precision (for --json)."""
        return {
            "step": step,
            "cost": float(self.at(step)["cost"]),
            "nodes": [{"name": n.name, "kind": n.kind, "value": _plain(n.value),
                       "local_gradients": {k: _plain(g) for k, g in n.local.items()},
                       "upstream_gradient": None if n.upstream is None else _plain(n.upstream),
                       "passes_on": {k: _plain(g) for k, g in n.passes.items()}}
                      for n in self.nodes(step)],
            "parameters": [{"name": p.name, "before": _plain(p.before), "gradient": _plain(p.gradient),
                            "after": _plain(p.after), "frozen": p.frozen,
                            **({"state": {k: _plain(s) for k, s in p.state.items()}} if p.state else {})}
                           for p in self.parameters(step)],
        }

    # ----------------------------------------------------------------- saving and loading

    def save(self, path: str | Path) -> Path:
        """Write the trace to one .npz file (arrays plus a JSON index); byte-identical for equal traces.

        Arrays are streamed into the file one by one, stored rather than compressed (floats hardly
        compress, and DEFLATE is most of the time), so saving needs no second copy of the trace.
        """
        members = {"costs": self.costs, "steps": self.steps, "X": self.X, "Y": self.Y}
        members.update({f"arrays/{k}": a for k, a in self.arrays.items()})
        members.update({f"final/{k}": a for k, a in self.final.items()})
        members.update({f"running/{k}": a for k, a in self.running.items()})
        index = {"format": FORMAT, "meta": self.meta, "members": sorted(members)}

        with atomic_file(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            with archive.open(_entry("index.json"), "w") as stream:
                stream.write(json.dumps(index, indent=1, sort_keys=True).encode())
            for name in sorted(members):
                with archive.open(_entry(name + ".npy"), "w", force_zip64=True) as stream:
                    np.lib.format.write_array(stream, _row_major(members[name]), allow_pickle=False)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        """Read a trace saved by `save`; a file that is not one (or was tampered with) is a TracerError."""
        try:
            with zipfile.ZipFile(path) as archive:
                index = _read_index(archive)
                members = {n: _read_member(archive, n + ".npy") for n in index["members"]}
        except _Invalid as exc:
            raise TracerError(f"{path}: not a usable tracer trace ({exc})") from None
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise TracerError(f"{path}: cannot be read as a trace ({exc})") from None
        try:
            trace = _assemble(cls, index["meta"], members)
        except _Invalid as exc:
            raise TracerError(f"{path}: not a usable tracer trace ({exc})") from None
        return trace


#: The JSON index of a trace is a few kilobytes; anything far bigger is not one.
INDEX_LIMIT = 16 * 2**20
#: What `load` expects in the index's meta, with the type of each entry.
META_TYPES: dict[str, type | tuple[type, ...]] = {
    "chapter": str, "title": str, "graph": list,
    "parameters": list, "frozen": list, "state": list, "carry": str, "steps_run": int,
}


class _Invalid(Exception):
    """A trace file whose contents are not what `save` writes."""


def _read_index(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        info = archive.getinfo("index.json")
    except KeyError:
        raise _Invalid("no index.json inside") from None
    if info.file_size > INDEX_LIMIT:
        raise _Invalid(f"index.json holds {info.file_size} bytes; a trace's index is a few kilobytes")
    try:
        index = json.loads(archive.read(info))
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"index.json is not JSON: {str(exc)[:80]}") from None
    if not isinstance(index, dict):
        raise _Invalid(f"index.json holds a {type(index).__name__}, not an object")
    if index.get("format") != FORMAT:
        raise _Invalid(f"format {str(index.get('format'))[:40]!r}, expected {FORMAT!r}")
    meta, members = index.get("meta"), index.get("members")
    if not isinstance(meta, dict):
        raise _Invalid("index.json has no meta object")
    for key, kind in META_TYPES.items():
        if not isinstance(meta.get(key), kind) or (kind is int and isinstance(meta.get(key), bool)):
            raise _Invalid(f"meta {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    if not all(isinstance(x, str) for x in meta["parameters"] + meta["frozen"] + meta["state"]) or \
            not meta["graph"] or not all(isinstance(n, dict) for n in meta["graph"]):
        raise _Invalid("meta 'graph', 'parameters', 'frozen' or 'state' is malformed")
    display = meta.get("display", {})
    per_quantity = display.get("decimals_for", {}) if isinstance(display, dict) else None
    if not (isinstance(display, dict) and set(display) <= {"decimals", "decimals_for"} and isinstance(per_quantity, dict)
            and all(_places(d) for d in [display.get("decimals", 3), *per_quantity.values()])):
        raise _Invalid("meta 'display' is malformed")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise _Invalid("index.json 'members' is not a list of names")
    return index


def _places(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 15


def _read_member(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """One .npy member, refusing a header that claims more numbers than the member holds."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise _Invalid(f"the index lists {name}, which is not inside") from None
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise _Invalid(f"{name} is in .npy format {version}, expected 1.0 or 2.0")
        shape, fortran, dtype = readers[version](handle)
        if dtype.hasobject or dtype.kind not in "biuf":
            raise _Invalid(f"{name} holds {dtype}, not numbers")
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed > info.file_size:
            raise _Invalid(f"{name} claims {claimed} bytes of numbers in a member of {info.file_size} bytes")
        data = handle.read(claimed)
    if len(data) != claimed:
        raise _Invalid(f"{name} is cut short")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def _assemble(cls: type[Trace], meta: dict[str, Any], members: dict[str, np.ndarray]) -> Trace:
    """A Trace from a saved index and members, checking what the printers and readers rely on."""
    for name in ("steps", "costs", "X", "Y"):
        if name not in members:
            raise _Invalid(f"no {name!r} member")
    steps, costs = members["steps"], members["costs"]
    if steps.ndim != 1 or steps.dtype.kind not in "iu" or not len(steps):
        raise _Invalid("'steps' is not a list of step numbers")
    if costs.ndim != 1 or not len(costs) or len(costs) != meta["steps_run"]:
        raise _Invalid(f"'costs' should hold one cost per step run ({meta['steps_run']}), holds {costs.size}")
    if steps.min() < 0 or steps.max() >= meta["steps_run"] or len(np.unique(steps)) != len(steps):
        raise _Invalid("'steps' holds step numbers outside the run or repeated")
    arrays = {k.split("/", 1)[1]: a for k, a in members.items() if k.startswith("arrays/")}
    final = {k.split("/", 1)[1]: a for k, a in members.items() if k.startswith("final/")}
    running = {k.split("/", 1)[1]: a for k, a in members.items() if k.startswith("running/")}
    for name, array in arrays.items():
        if array.ndim == 0 or len(array) != len(steps):
            raise _Invalid(f"arrays/{name} does not have one entry per recorded step")
    X, Y = members["X"], members["Y"]
    if X.ndim not in (2, 4) or Y.ndim != 2 or X.shape[-1] != Y.shape[1] or not X.shape[-1]:
        raise _Invalid("'X' and 'Y' are not matrices with one column per example")
    batch = arrays.get("batch")
    if batch is None or batch.ndim != 2 or batch.dtype.kind not in "iu" or \
            (batch.size and (batch.min() < 0 or batch.max() >= X.shape[-1])):
        raise _Invalid("arrays/batch does not hold each recorded step's example numbers")
    try:
        Graph.from_spec(meta["graph"])
    except (GraphError, KeyError, TypeError, ValueError) as exc:
        raise _Invalid(f"meta 'graph' is not a graph of known nodes ({str(exc)[:80]})") from None
    trace = cls(meta, steps, arrays, costs, X, Y, final, running)
    try:  # every node and parameter of a step, as the printers read them
        trace.nodes(int(steps[0]))
        trace.parameters(int(steps[0]))
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise _Invalid(f"incomplete at step {int(steps[0])}: {type(exc).__name__} {str(exc)[:60]}") from None
    return trace


def _row_major(array: np.ndarray) -> np.ndarray:
    """`array` as NumPy writes it in row-major order: a strided view is written in chunks as it is
    (no copy of a 100-step history); only a column-major array (a transpose) is copied."""
    array = np.asarray(array)
    return np.ascontiguousarray(array) if array.flags.f_contiguous and not array.flags.c_contiguous else array


def _entry(name: str) -> zipfile.ZipInfo:
    """A stored member with a fixed date, so equal traces give equal files."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    return info


def _plain(value: Any) -> Any:
    return np.asarray(value, dtype=float).tolist()


def _ranges(steps: np.ndarray) -> str:
    """'0-4999' or '0, 100, 200, … 4900' for an error message."""
    s = [int(x) for x in steps]
    if not s:
        return "none"
    if s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]} to {s[-1]}" if len(s) > 1 else str(s[0])
    return ", ".join(map(str, s[:6])) + (f", … {s[-1]}" if len(s) > 6 else "")

"""The trace: every node's value and gradients at every recorded step, the single source of numbers.

Arrays are laid out by quantity, each with a leading step axis (`arrays["dW1"][i]` is dW1 at the
i-th recorded step), so recording costs little and later tools read whole histories at once.
Names are the article's: A0 is the input batch (X), Z1, A1, …, cost; dZ1, dA1, dW1, db1, …
(dA0 reaches the input); W1 is a parameter before the step's update and W1_after after it;
dA1_dZ1 is the activation's local gradient. A trace saves to one .npz with a JSON index inside.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tracer.engine.graph import local_name
from tracer.errors import TracerError
from tracer.output import write_atomic_with

FORMAT = "tracer-trace/1"
AFTER = "_after"


@dataclass
class NodeRecord:
    """One node of the graph at one step: its value, local gradients, what reaches it, what it passes on."""

    name: str
    kind: str  # "input", "linear", "activation" or "cost"
    value: np.ndarray
    local: dict[str, np.ndarray] = field(default_factory=dict)  # ∂node/∂input, by input name
    upstream: np.ndarray | None = None  # ∂cost/∂node
    passes: dict[str, np.ndarray] = field(default_factory=dict)  # ∂cost/∂input, by gradient name


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
                 costs: np.ndarray, X: np.ndarray, Y: np.ndarray, final: dict[str, np.ndarray]):
        self.meta = meta
        self.steps = np.asarray(steps, dtype=np.int64)
        self.arrays = arrays
        self.costs = costs  # the cost at every step run, recorded or not
        self.X, self.Y = X, Y  # the whole data set, features × examples
        self.final = final  # every parameter after the last step
        self._slot = {int(s): i for i, s in enumerate(self.steps)}

    # ----------------------------------------------------------------- reading one step

    @property
    def n_layers(self) -> int:
        return len(self.meta["layers"])

    @property
    def parameter_names(self) -> list[str]:
        return list(self.meta["parameters"])

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
        if len(idx) == self.X.shape[1] and np.array_equal(idx, np.arange(len(idx))):
            return self.X, self.Y
        return self.X[:, idx], self.Y[:, idx]

    def at(self, step: int) -> dict[str, Any]:
        """Every quantity recorded at `step` by name (A0, Y, Z1, …, cost, dW1, W1, W1_after, …)."""
        i = self.slot(step)
        values: dict[str, Any] = {name: array[i] for name, array in self.arrays.items() if name != "batch"}
        values["A0"], values["Y"] = self.batch(step)
        values["cost"] = float(values["cost"])
        return values

    def value(self, quantity: str, step: int) -> Any:
        values = self.at(step)
        if quantity not in values:
            raise TracerError(f"{quantity!r} is not a recorded quantity; known: {', '.join(sorted(values))}")
        return values[quantity]

    def history(self, quantity: str) -> np.ndarray:
        """`quantity` at every recorded step (leading axis = recorded step)."""
        if quantity == "cost":
            return self.arrays["cost"]
        return self.arrays[quantity]

    def nodes(self, step: int) -> list[NodeRecord]:
        """The graph at `step` in forward order: input, then Z1, A1, Z2, A2, …, cost."""
        v = self.at(step)
        L = self.n_layers
        logits = self.meta["from_logits"]
        records = [NodeRecord("A0", "input", v["A0"], upstream=v["dA0"])]
        for l in range(1, L + 1):
            passes = {f"dW{l}": v[f"dW{l}"], f"dA{l - 1}": v[f"dA{l - 1}"]}
            local = {f"W{l}": v[f"A{l - 1}"].T, f"A{l - 1}": v[f"W{l}"].T}
            if self.meta["bias"]:
                passes[f"db{l}"] = v[f"db{l}"]
                local[f"b{l}"] = np.ones((v["A0"].shape[1], 1))
            records.append(NodeRecord(f"Z{l}", "linear", v[f"Z{l}"], local, v[f"dZ{l}"], passes))
            last_logit = logits and l == L
            records.append(NodeRecord(
                f"A{l}", "activation", v[f"A{l}"], {f"Z{l}": v[local_name(f"A{l}", f"Z{l}")]},
                None if last_logit else v[f"dA{l}"], {} if last_logit else {f"dZ{l}": v[f"dZ{l}"]}))
        into = f"Z{L}" if logits else f"A{L}"
        grad = v[f"d{into}"]
        records.append(NodeRecord("cost", "cost", np.asarray(v["cost"]), {into: grad}, np.asarray(1.0),
                                  {f"d{into}": grad}))
        return records

    def parameters(self, step: int) -> list[ParameterRecord]:
        v = self.at(step)
        frozen = set(self.meta["frozen"])
        return [ParameterRecord(p, v[p], v[f"d{p}"], v[p + AFTER],
                                {s: v[s + p] for s in self.meta["state"]}, p in frozen)
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
        index = {"format": FORMAT, "meta": self.meta, "members": sorted(members)}

        def write(handle: BinaryIO) -> None:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                with archive.open(_entry("index.json"), "w") as stream:
                    stream.write(json.dumps(index, indent=1, sort_keys=True).encode())
                for name in sorted(members):
                    with archive.open(_entry(name + ".npy"), "w", force_zip64=True) as stream:
                        np.lib.format.write_array(stream, _row_major(members[name]), allow_pickle=False)
        return write_atomic_with(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "Trace":
        try:
            with zipfile.ZipFile(path) as archive:
                index = json.loads(archive.read("index.json"))
                if index.get("format") != FORMAT:
                    raise TracerError(f"{path}: not a tracer trace (format {index.get('format')!r})")
                members = {n: np.lib.format.read_array(io.BytesIO(archive.read(n + ".npy")), allow_pickle=False)
                           for n in index["members"]}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise TracerError(f"{path}: cannot be read as a trace ({exc})") from None
        arrays = {k.split("/", 1)[1]: a for k, a in members.items() if k.startswith("arrays/")}
        final = {k.split("/", 1)[1]: a for k, a in members.items() if k.startswith("final/")}
        return cls(index["meta"], members["steps"], arrays, members["costs"], members["X"], members["Y"], final)


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

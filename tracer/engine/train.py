"""Training a chapter's network and recording every node at every recorded step into a Trace.

Step k (counted from 0) is: forward with the parameters after k updates, cost, backward, update,
so "cost at step k" is the notebooks' "Cost at epoch#k". Values are computed straight into the
trace's arrays, so recording a step costs almost nothing beyond computing it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from tracer.engine.chapter import Chapter
from tracer.engine.graph import Carry, Network
from tracer.engine.optimizers import OPTIMIZERS
from tracer.engine.trace import AFTER, Trace
from tracer.errors import NumericalError, TracerError
from tracer.rounding import round_shown


def build_network(chapter: Chapter) -> Network:
    """The chapter's layers and cost as graph nodes."""
    return Network.named([(l.units, l.activation) for l in chapter.layers], chapter.cost, chapter.from_logits,
                         chapter.bias)


def initial_parameters(chapter: Chapter) -> dict[str, np.ndarray]:
    """W1, b1, W2, … before step 0.

    Weights are drawn layer by layer from NumPy's legacy generator seeded with `seed`, as the
    articles' notebooks do after `np.random.seed(seed)`, so seed 48 with "xavier" gives their
    weights; biases start at zero. Values given in [init.values] then replace what was drawn
    (the draws still happen, so giving W1 leaves W2 as the seed would make it).
    """
    params: dict[str, np.ndarray] = {}
    rng = np.random.RandomState(chapter.seed) if chapter.seed is not None else None
    n_in = chapter.n_inputs
    for l, layer in enumerate(chapter.layers, start=1):
        n_out = layer.units
        if rng is not None:
            params[f"W{l}"] = _draw(rng, chapter.scheme, n_in, n_out)
        if chapter.bias:
            params[f"b{l}"] = np.zeros((n_out, 1))
        n_in = n_out
    params.update({k: v.copy() for k, v in chapter.values.items()})
    return {name: params[name] for name in chapter.parameter_names}


def _draw(rng: np.random.RandomState, scheme: str, n_in: int, n_out: int) -> np.ndarray:
    if scheme == "plain":
        return rng.randn(n_out, n_in) * 0.01
    if scheme == "xavier":
        return rng.randn(n_out, n_in) / np.sqrt(n_in)
    if scheme == "he":
        return rng.randn(n_out, n_in) * np.sqrt(2 / n_in)
    # "uniform" is seed 002's np.random.rand(inputs, units), used there as input × units.
    return rng.rand(n_in, n_out).T.copy()


def batches(chapter: Chapter, steps: int) -> Iterator[np.ndarray]:
    """The example indices of each step: in order, batch after batch, reshuffled each epoch if asked."""
    m, size = chapter.m, chapter.batch_size
    order = np.arange(m)
    rng = np.random.RandomState(chapter.shuffle_seed) if chapter.shuffle else None
    per_epoch = m // size
    for k in range(steps):
        j = k % per_epoch
        if j == 0 and rng is not None:
            order = rng.permutation(m)
        yield order[j * size:(j + 1) * size]


def hand_carry(chapter: Chapter) -> Carry:
    """carry = "rounded": every value is rounded as soon as it is computed, as a student with a calculator does
    (to the figure the documents print: the chapter's decimals, two significant digits for small values)."""
    display = chapter.display
    return lambda name, value: round_shown(value, display.decimals_of(name))


def run(chapter: Chapter, *, carry: str | None = None, steps: int | None = None,
        record: list[int] | None = None) -> Trace:
    """Train `chapter` and return its trace.

    `carry` is "full" (compute in full precision, the default) or "rounded" (hand mode);
    `steps` and `record` override the chapter's number of steps and recorded steps.
    """
    carry = carry or chapter.display.carry
    steps = steps or chapter.steps
    recorded = sorted(set(record)) if record is not None else [s for s in chapter.recorded_steps() if s < steps]
    if recorded and not 0 <= recorded[0] <= recorded[-1] < steps:
        raise TracerError(f"record: steps from 0 to {steps - 1} (steps are counted from 0), got {recorded}")
    net = build_network(chapter)
    rounder = hand_carry(chapter) if carry == "rounded" else None
    params = initial_parameters(chapter)
    if rounder:
        params = {k: rounder(k, v) for k, v in params.items()}
    optimizer = OPTIMIZERS[chapter.optimizer](chapter.learning_rate, **chapter.hyper)
    names = list(params)
    trainable = [p for p in names if p not in chapter.frozen]
    state = list(optimizer.state)

    n_rec, m = len(recorded), chapter.batch_size
    shapes = net.shapes(chapter.n_inputs, m)
    slot = [-1] * steps
    for i, step in enumerate(recorded):
        slot[step] = i
    nodes = {k: np.empty((n_rec,) + s) for k, s in shapes.items()}
    scratch = {k: np.empty(s) for k, s in shapes.items()}
    record_params = {f"{pre}{p}{post}": np.empty((n_rec,) + params[p].shape)
                     for p in names for pre, post in [("", ""), ("", AFTER)] + [(s, "") for s in state]}
    record_cost = np.empty(n_rec)
    record_batch = np.empty((n_rec, m), dtype=np.int64)
    costs = np.empty(steps)
    # Two scratch arrays per parameter, used in turn, for updates at steps that are not recorded;
    # at recorded steps the update is written straight into the trace.
    spares = {p: (np.empty_like(params[p]), np.empty_like(params[p])) for p in trainable}

    X, Y = chapter.X, chapter.Y
    full_batch = m == chapter.m and not chapter.shuffle
    with np.errstate(all="ignore"):  # failures are found and named below, not warned about
        for k, idx in enumerate(batches(chapter, steps)):
            s = slot[k]
            out = {name: array[s] for name, array in nodes.items()} if s >= 0 else scratch
            A0, Yb = (X, Y) if full_batch else (X[:, idx], Y[:, idx])
            net.forward(params, A0, out, rounder)
            cost = net.loss(Yb, out, rounder)
            costs[k] = cost
            if not math.isfinite(cost):
                raise _failure(k, net, params, out)
            net.backward(params, A0, Yb, out, rounder)
            if s >= 0:
                record_cost[s] = cost
                record_batch[s] = idx
                for p in names:
                    record_params[p][s] = params[p]
            for p in trainable:
                if s >= 0:
                    new = record_params[p + AFTER][s]
                else:
                    a, b = spares[p]
                    new = b if params[p] is a else a
                optimizer.update(p, params[p], out["d" + p], k + 1, out=new)
                if rounder:
                    new[...] = rounder(p, new)
                params[p] = new
            if s >= 0:
                for p in chapter.frozen:
                    record_params[p + AFTER][s] = params[p]
                for st in state:
                    for p in names:
                        record_params[st + p][s] = optimizer.memory.get(p, {}).get(st, 0.0)

    for p, value in params.items():
        if not np.all(np.isfinite(value)):
            raise NumericalError(f"{p} is not finite after the update of step {steps - 1}")
    arrays = {**nodes, **record_params, "cost": record_cost, "batch": record_batch}
    meta = {
        "chapter": chapter.name, "title": chapter.title,
        "layers": [{"units": l.units, "activation": l.activation} for l in chapter.layers],
        "cost": chapter.cost, "from_logits": chapter.from_logits, "bias": chapter.bias,
        "optimizer": chapter.optimizer, "learning_rate": chapter.learning_rate, "hyper": chapter.hyper,
        "parameters": names, "frozen": list(chapter.frozen), "state": state, "carry": carry,
        "steps_run": steps, "batch_size": m,
        "display": {"decimals": chapter.display.decimals, "decimals_for": dict(chapter.display.decimals_for)},
    }
    return Trace(meta, np.array(recorded, dtype=np.int64), arrays, costs, X, Y,
                 {p: v.copy() for p, v in params.items()})


OTHER_CARRY = {"full": "rounded", "rounded": "full"}


class Traces:
    """The traces one command reads: its chapter trained once per carry, each on first use.

    Documents, figures, checks and exercises take a Traces (or a Trace) and read it; none calls
    `run`. The full-precision trace and the command's own (`carry`: --carry, else the chapter's)
    run every step of the chapter, recording the chapter's steps, `steps`, and any step a reader
    asks for. The hand-carried trace, when it is not the command's own, is made only when read and
    runs only as far as the last step asked of it (hand mode is several times slower); a reader
    that asks for a step a trace did not record gets a new run, so callers ask for what they need
    first (a test counts the runs of each command).
    """

    def __init__(self, chapter: Chapter, *known: Trace, carry: str | None = None, steps: Iterable[int] = ()) -> None:
        self.chapter = chapter
        self.carry = carry or chapter.display.carry
        self.steps = sorted(set(steps))
        self._made: dict[str, Trace] = {t.meta["carry"]: t for t in known}

    @classmethod
    def of(cls, chapter: Chapter, given: Trace | Traces | None = None, **options: Any) -> Traces:
        """`given` when it is a Traces already, else a Traces that reuses the Trace given."""
        if isinstance(given, Traces):
            return given
        return cls(chapter, *([given] if given is not None else []), **options)

    @property
    def main(self) -> Trace:
        """The command's own trace, every step of the chapter."""
        return self.get(self.carry)

    @property
    def full(self) -> Trace:
        """Full precision, every step of the chapter."""
        return self.get("full")

    def hand(self, steps: Iterable[int] = ()) -> Trace:
        """Hand mode (every value rounded as it is computed), recording at least `steps`."""
        return self.get("rounded", steps)

    def other(self, steps: Iterable[int] = ()) -> Trace:
        """The carry the command's own trace does not use, recording at least `steps`."""
        return self.get(OTHER_CARRY[self.carry], steps)

    def get(self, carry: str, steps: Iterable[int] = ()) -> Trace:
        """The trace in `carry` that records `steps` (and the steps given when made): made once."""
        if carry not in OTHER_CARRY:
            raise TracerError(f"carry: expected full or rounded, got {carry!r}")
        wanted = set(steps) | set(self.steps)
        made = self._made.get(carry)
        if made is not None and wanted <= set(made.steps.tolist()):
            return made
        record = wanted | (set(made.steps.tolist()) if made is not None else set())
        whole = carry == "full" or carry == self.carry or not record
        if whole:
            record |= set(self.chapter.recorded_steps())
        trace = run(self.chapter, carry=carry, record=sorted(record),
                    steps=None if whole else max(record) + 1)
        self._made[carry] = trace
        return trace


def _failure(step: int, net: Network, params: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> NumericalError:
    """Name the first value at `step`, in the order they were computed, that is not finite."""
    candidates = [(p, params[p], f"set by the update of step {step - 1}") for p in params]
    candidates += [(name, out[name], "") for layer in net.layers for name in (layer.Z, layer.A)]
    for name, value, cause in candidates:
        if not np.all(np.isfinite(value)):
            kind = "NaN" if np.any(np.isnan(value)) else "infinite"
            return NumericalError(f"step {step}: {name} is {kind}{', ' + cause if cause else ''}"
                                  " (the first value that is not finite; try a smaller learning_rate)")
    largest = max(float(np.max(np.abs(out[layer.A]))) for layer in net.layers)
    return NumericalError(f"step {step}: cost is infinite (the first value that is not finite: the output "
                          f"reaches {largest:.3g}; try a smaller learning_rate)")

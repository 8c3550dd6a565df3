"""Training a chapter's network and recording every node at every recorded step into a Trace.

Step k (counted from 0) is: forward with the parameters after k updates, cost, backward, update,
so "cost at step k" is the notebooks' "Cost at epoch#k". Values are computed straight into the
trace's arrays, so recording a step costs almost nothing beyond computing it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from tracer.engine import keys
from tracer.engine.chapter import Chapter
from tracer.engine.graph import Carry, Graph
from tracer.engine.keys import DATA_COST, INPUT, PENALTY
from tracer.engine.batchnorm import RunningAverages
from tracer.engine.dropout import draw_masks
from tracer.engine.penalties import make_optimizer, penalised_cost
from tracer.engine.trace import Trace
from tracer import progress
from tracer.errors import NumericalError, TracerError
from tracer.progress import step_seconds
from tracer.rounding import round_shown


def build_network(chapter: Chapter) -> Graph:
    """The chapter's network as a graph of nodes."""
    return chapter.network


def initial_parameters(chapter: Chapter) -> dict[str, np.ndarray]:
    """W1, b1, W2, … before step 0.

    Weights are drawn node by node from NumPy's legacy generator seeded with `seed`, as the
    articles' notebooks do after `np.random.seed(seed)`, so seed 48 with "xavier" gives their
    weights; biases start at zero. Values given in [init.values] then replace what was drawn
    (the draws still happen, so giving W1 leaves W2 as the seed would make it).
    """
    graph = chapter.network
    params: dict[str, np.ndarray] = {}
    rng = np.random.RandomState(chapter.seed) if chapter.seed is not None else None
    values = graph.value_shapes(chapter.n_inputs, 1)
    for name, shape in graph.parameter_shapes(chapter.n_inputs).items():
        params[name] = np.zeros(shape)
    for node in graph.nodes:  # batch normalisation's γ starts at 1
        if hasattr(node, "starting"):
            params.update(node.starting([values[n] for n in node.inputs]))
    if rng is not None:
        for node in graph.weighted:
            params.update(node.initial(rng, chapter.scheme, [values[n] for n in node.inputs]))
    params.update({k: v.copy() for k, v in chapter.values.items()})
    return {name: params[name] for name in chapter.parameter_names}


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
    optimizer = make_optimizer(chapter)
    names = list(params)
    trainable = [p for p in names if p not in chapter.frozen]
    grads = {p: keys.grad(p) for p in names}
    state = list(optimizer.state)

    n_rec, m = len(recorded), chapter.batch_size
    slot = [-1] * steps
    for i, step in enumerate(recorded):
        slot[step] = i
    contiguous = recorded == list(range(recorded[0], recorded[0] + n_rec)) if recorded else False

    # Every node of a step lives in one flat block (`scratch`, a view per name). A small network
    # computes there and a recorded step is then one copy of the block into the record; a large one
    # computes straight into the record's row, where the copy would cost more than the views.
    shapes = net.shapes(chapter.n_inputs, m)
    node_block = _Block(shapes)
    nodes = np.empty((n_rec, node_block.size))
    scratch_flat = np.empty(node_block.size)
    scratch_all = node_block.views(scratch_flat)
    direct = node_block.size > _COPY_LIMIT
    # Unrecorded steps skip dA0: nothing in training reads the gradient reaching the input.
    scratch = {k: v for k, v in scratch_all.items() if k != keys.grad(INPUT)}

    # Parameters: two flat blocks used in turn (the step's values and the updated ones), so an
    # update never copies. When the recorded steps follow one another, W at step k is W after step
    # k-1: the record keeps one row per step and W / W_after are two views of it.
    param_block = _Block({p: params[p].shape for p in names})
    flats = [np.empty(param_block.size), np.empty(param_block.size)]
    sides = [param_block.views(flat) for flat in flats]
    for side in sides:
        for p in names:
            side[p][...] = params[p]
    if contiguous:
        rows = np.empty((n_rec + 1, param_block.size))
        before_rows, after_rows = rows[:-1], rows[1:]
    else:
        before_rows, after_rows = np.empty((n_rec, param_block.size)), np.empty((n_rec, param_block.size))
    record_state = {keys.state(st, p): np.empty((n_rec,) + params[p].shape) for p in names for st in state}
    record_cost = np.empty(n_rec)
    record_batch = np.empty((n_rec, m), dtype=np.int64)
    costs = np.empty(steps)

    X, Y = chapter.X, chapter.Y
    full_batch = m == chapter.m and not chapter.shuffle
    penalised = any(hasattr(n, "penalty") for n in net.nodes)
    record_parts = {DATA_COST: np.empty(n_rec), PENALTY: np.empty(n_rec)} if penalised else {}
    running = RunningAverages(net, net.value_shapes(chapter.n_inputs, m))
    record_running = {name: np.empty((n_rec,) + v.shape) for name, v in running.values.items()}
    masks = np.random.RandomState(chapter.dropout_seed) if any(getattr(n, "drawn", False) for n in net.nodes) else None
    passes: dict[tuple[int, int], Any] = {}  # the bound passes over each (step values, parameter side)
    current = 0
    with np.errstate(all="ignore"):  # failures are found and named below, not warned about
        estimate = steps * step_seconds(chapter.network, chapter.n_inputs, m)
        for k, idx in enumerate(progress.steps(batches(chapter, steps), steps, chapter.name, estimate)):
            s = slot[k]
            params, new = sides[current], sides[1 - current]
            if s < 0:
                out = scratch
            elif direct:
                out = node_block.views(nodes[s])
            else:
                out = scratch_all
            A0, Yb = (X, Y) if full_batch else (X[..., idx], Y[:, idx])
            if masks is not None:
                draw_masks(net, masks, out)
            bound = passes.get((id(out), current)) if full_batch and not direct else None
            if bound is None:
                bound = net.bind(params, A0, Yb, out, rounder)
                if full_batch and not direct:
                    passes[(id(out), current)] = bound
            bound.forward()
            if running:
                running.update(out, m)
            cost, parts = penalised_cost(net, Yb, out, params, rounder)  # with L2: data term + penalty
            costs[k] = cost
            if not math.isfinite(cost):
                raise _failure(k, net, params, out)
            bound.backward()
            for p in trainable:
                optimizer.update(p, params[p], out[grads[p]], k + 1, out=new[p], carry=rounder)
                if rounder:
                    new[p][...] = rounder(p, new[p])
            if s >= 0:
                if not direct:
                    nodes[s] = scratch_flat
                record_cost[s] = cost
                for name, part in parts.items():
                    record_parts[name][s] = part
                for name, kept in running.values.items():
                    record_running[name][s] = kept
                record_batch[s] = idx
                if not contiguous or s == 0:
                    before_rows[s] = flats[current]
                after_rows[s] = flats[1 - current]
                for st in state:
                    for p in names:
                        record_state[keys.state(st, p)][s] = optimizer.memory.get(p, {}).get(st, 0.0)
            current = 1 - current
    params = sides[current]

    for p, value in params.items():
        if not np.all(np.isfinite(value)):
            raise NumericalError(f"{p} is not finite after the update of step {steps - 1}")
    _check_record(net, recorded, nodes, node_block)
    before, after = param_block.views(before_rows), param_block.views(after_rows)
    arrays = {**node_block.views(nodes)}
    for p in names:
        arrays.update({p: before[p], keys.after(p): after[p],
                       **{keys.state(st, p): record_state[keys.state(st, p)] for st in state}})
    arrays.update({"cost": record_cost, "batch": record_batch, **record_running, **record_parts})
    meta = {
        "chapter": chapter.name, "title": chapter.title,
        "graph": net.spec(),
        "optimizer": chapter.optimizer, "learning_rate": chapter.learning_rate, "hyper": chapter.hyper,
        **({"weight_decay": chapter.regularisation.weight_decay,
            "decay_biases": chapter.regularisation.decay_biases} if chapter.regularisation.weight_decay else {}),
        "parameters": names, "frozen": list(chapter.frozen), "state": state, "carry": carry,
        "steps_run": steps, "batch_size": m,
        "display": {"decimals": chapter.display.decimals, "decimals_for": dict(chapter.display.decimals_for)},
    }
    return Trace(meta, np.array(recorded, dtype=np.int64), arrays, costs, X, Y,
                 {p: v.copy() for p, v in params.items()}, {k: v.copy() for k, v in running.values.items()})


OTHER_CARRY = {"full": "rounded", "rounded": "full"}


class Traces:
    """The traces one command reads: its chapter trained once per carry, each on first use.

    Documents, figures, checks and exercises take a Traces (or a Trace) and read it; none calls
    `run`. The full-precision trace and the command's own (`carry`: --carry, else the chapter's)
    run every step of the chapter, recording the chapter's steps, `steps`, and any step a reader
    asks for. The hand-carried trace, when it is not the command's own, is made only when read and
    runs only as far as the last step asked of it (hand mode is several times slower); a reader
    that asks for a step a trace did not record gets a new run, so callers ask for what they need
    first (a test counts the runs of each command). A command that reads nothing after step
    `through` (`tracer trace --step N`, `tracer check`) says so: every run stops there and records
    only the steps asked for.
    """

    def __init__(self, chapter: Chapter, *known: Trace, carry: str | None = None, steps: Iterable[int] = (),
                 through: int | None = None) -> None:
        self.chapter = chapter
        self.carry = carry or chapter.display.carry
        self.steps = sorted(set(steps))
        self.through = through
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
        if self.through is not None:
            last: int | None = self.through
        elif carry == "full" or carry == self.carry or not record:  # every step of the chapter
            record |= set(self.chapter.recorded_steps())
            last = None
        else:
            last = max(record)
        trace = run(self.chapter, carry=carry, record=sorted(record), steps=None if last is None else last + 1)
        self._made[carry] = trace
        return trace


#: Node blocks up to this many floats are computed in scratch and copied into the record.
_COPY_LIMIT = 4096


class _Block:
    """Named arrays laid out one after another in one flat float array (or a stack of them)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = shapes
        self.slices: dict[str, slice] = {}
        at = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            self.slices[name] = slice(at, at + size)
            at += size
        self.size = at

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """A view per name into `flat` (one block, or a stack of blocks along the leading axis)."""
        lead = flat.shape[:-1]
        views = {}
        for name, shape in self.shapes.items():
            view = flat[..., self.slices[name]].view()
            view.shape = lead + shape  # in place: raises rather than copying
            views[name] = view
        return views



def _check_record(net: Graph, recorded: list[int], nodes: np.ndarray, block: "_Block") -> None:
    """Name the first recorded node value that overflowed, even where the cost stayed finite.

    One vectorised pass over the record after training: a saturated sigmoid can keep the cost
    finite while Z1 is infinite, and the per-step check sees only the cost.
    """
    if nodes.size == 0 or np.isfinite(nodes).all():
        return
    order = [node.name for node in net.nodes[:-1]]
    order += [name for name in block.shapes if name not in order]
    for s, step in enumerate(recorded):
        if np.isfinite(nodes[s]).all():
            continue
        for name in order:
            value = nodes[s, block.slices[name]]
            if not np.isfinite(value).all():
                kind = "NaN" if np.isnan(value).any() else "infinite"
                raise NumericalError(f"step {step}: {name} is {kind} while the cost is still finite (the first "
                                     "value that is not finite; the inputs or weights are too large for float64)")


def _failure(step: int, net: Graph, params: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> NumericalError:
    """Name the first value at `step`, in the order they were computed, that is not finite."""
    candidates = [(p, params[p], f"set by the update of step {step - 1}") for p in params]
    candidates += [(node.name, out[node.name], "") for node in net.nodes[:-1]]
    for name, value, cause in candidates:
        if not np.all(np.isfinite(value)):
            kind = "NaN" if np.any(np.isnan(value)) else "infinite"
            return NumericalError(f"step {step}: {name} is {kind}{', ' + cause if cause else ''}"
                                  " (the first value that is not finite; try a smaller learning_rate)")
    largest = max(float(np.max(np.abs(out[node.name]))) for node in net.nodes[:-1] if node.kind == "activation")
    return NumericalError(f"step {step}: cost is infinite (the first value that is not finite: the output "
                          f"reaches {largest:.3g}; try a smaller learning_rate)")

"""How long a training run takes: estimated before it starts, and shown while it runs on a terminal.

A chapter is checked when it is read (`tracer.engine.chapter`): its trace must fit in memory, and
its run must end within MAX_MINUTES on one core (60, or $TRACER_MAX_MINUTES), estimated from the
floating-point work of a step (three matrix products per layer, forward and backward) and the
Python each step costs. On a terminal (the command line turns it on), a run estimated at more than
SHOW_AFTER seconds prints one line on stderr, kept up to date, with the step it is at and the time
left, and clears it when done. Library use (a notebook) prints nothing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterable, Iterator, TypeVar

from tracer.engine import keys

#: Floating-point operations a second of one core in NumPy's matrix products, on the low side so that
#: an estimate errs long (benchmarks/run_estimate.py measures about 28e9 for wide layers here).
RATE = 1.5e10
#: Seconds of Python a step costs per layer, whatever its size (chapter 4: 22 µs a step on an idle
#: machine, about 46 µs on a busy one, for its 2 layers).
PER_LAYER = 25e-6
#: A run estimated to take longer than this is refused, saying how long it would take.
MAX_MINUTES = 60.0
#: A run estimated to take longer than this shows its progress on a terminal.
SHOW_AFTER = 5.0
#: How often the progress line is rewritten (seconds).
EVERY = 0.5

_enabled = False
T = TypeVar("T")


def max_minutes() -> float:
    """MAX_MINUTES, or $TRACER_MAX_MINUTES when it is a number above 0."""
    try:
        value = float(os.environ.get("TRACER_MAX_MINUTES", MAX_MINUTES))
    except ValueError:
        return MAX_MINUTES
    return value if value > 0 else MAX_MINUTES


def step_seconds(graph: Any, n_inputs: int, batch: int) -> float:
    """About how long one training step takes on one core: every value the graph computes a step
    (graph.shapes) costs a few element-wise passes, and every weight three products with the batch."""
    gradients = {keys.grad(p) for p in graph.parameter_names}  # counted in the products
    entries = sum(math.prod(s) for name, s in graph.shapes(n_inputs, batch).items() if name not in gradients)
    weights = sum(math.prod(s) for s in graph.parameter_shapes(n_inputs).values())
    flops = 6.0 * weights * batch + 4.0 * entries
    return PER_LAYER * len(graph.nodes) / 2 + flops / RATE


def duration(seconds: float) -> str:
    """A duration as a person says it: 40 s, 12 min, 3.5 h, 28 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def enable(on: bool) -> None:
    """Show progress on stderr from now on (the command line does, on a terminal)."""
    global _enabled
    _enabled = on


def steps(items: Iterable[T], total: int, name: str, estimate: float) -> Iterator[T]:
    """`items` (a run's steps), telling a terminal how far the run is when it is estimated to be long."""
    if not _enabled or estimate < SHOW_AFTER:
        yield from items
        return
    start = last = time.monotonic()
    shown = ""
    try:
        for k, item in enumerate(items):
            if not k % 256 and k:
                now = time.monotonic()
                if now - last >= EVERY:
                    last = now
                    left = (now - start) / k * (total - k)
                    text = f"tracer: training {name}: step {k:,} of {total:,} ({100 * k / total:.0f}%), " \
                           f"about {duration(left)} left"
                    sys.stderr.write("\r" + text.ljust(len(shown)))
                    sys.stderr.flush()
                    shown = text
            yield item
    finally:
        if shown:
            sys.stderr.write("\r" + " " * len(shown) + "\r")
            sys.stderr.flush()

"""What the trained network's numbers mean: sentences read off the full-precision trace after the long run.

The article ends its runs by reading them: the cost curve flattens because the gradients shrink, the
decision boundary separates the two classes. `after_training(chapter, full)` writes such sentences for
any chapter, each from what the trace shows: how the last predictions stand against the targets, a
ReLU unit that died (its z negative for every example from some step on, so its weights stopped
moving), a sigmoid output that saturated, and what the boundary's shape says. Plain words, maths
between $…$, no number that the trace did not give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tracer.engine import keys
from tracer.engine.chapter import Chapter
from tracer.engine.nodes import Linear
from tracer.engine.trace import Trace
from tracer.rounding import shown

#: A sigmoid's slope below this is saturated (as the worked steps' commentary says it).
SATURATED = 0.01
#: Costs whose gradient reaches Z through the sigmoid's slope (cross-entropy's cancels it).
SLOPE_PASSES = ("squared_error", "sum_of_squares")
_ORDINAL = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _numbers(values: Any, decimals: int) -> str:
    return _list([f"${shown(float(x), decimals)}$" for x in np.ravel(values)])


def _unit(j: int) -> str:
    return f"the {_ORDINAL[j]} unit" if j < len(_ORDINAL) else f"unit {j + 1}"


def predictions(chapter: Chapter, full: Trace) -> str | None:
    """How the last step's predictions stand against the targets."""
    graph, last = chapter.network, int(full.steps[-1])
    v = full.at(last)
    yhat, Y = np.asarray(v[graph.output.name]), np.asarray(full.Y)
    d = chapter.display.decimals
    S = keys.symbol
    if yhat.shape[0] == 1 and set(np.unique(Y).tolist()) <= {0.0, 1.0}:
        right = int(np.sum((yhat >= 0.5) == (Y >= 0.5)))
        verdict = ("each on the right side of $0.5$" if right == Y.size
                   else f"{right} of the {Y.size} on the right side of $0.5$")
        return (f"At step {last} the network predicts $\\hat{{y}}$ = {_numbers(yhat, d)} for the targets "
                f"{_list([f'${int(y)}$' for y in np.ravel(Y)])}: {verdict}.")
    if yhat.shape[0] > 1 and Y.shape == yhat.shape:
        right = int(np.sum(np.argmax(yhat, axis=0) == np.argmax(Y, axis=0)))
        col = f"the largest entry of each column of ${S(graph.output.name)}$"
        if right == Y.shape[1]:
            return f"At step {last} every example is given its own class: {col} is the one of the example's class."
        return (f"At step {last}, {right} of the {Y.shape[1]} examples are given their own class ({col} is the one "
                f"of the example's class for those).")
    return None


def dead_units(chapter: Chapter, full: Trace) -> list[str]:
    """A ReLU unit whose z is negative (or zero) for every example from some recorded step to the end:
    it outputs 0, passes back no gradient, and the weights that only it uses stop moving."""
    graph = chapter.network
    steps = [int(s) for s in full.steps]
    if not steps or steps[0] != 0:
        return []
    out = []
    for node in graph.nodes[:-1]:
        if node.op != "relu":
            continue
        z = node.inputs[0]
        lin = graph.node(z) if z in graph.by_name else None
        history = np.stack([np.asarray(full.at(s)[z]) for s in steps])  # steps × units × examples
        if history.ndim != 3:  # a feature map's ReLU (channels × height × width × examples): a dense unit's words
            continue  # do not fit it
        dead = np.all(history <= 0, axis=2)  # steps × units
        for j in range(history.shape[1]):
            if not dead[-1, j]:
                continue
            since = len(steps) - 1
            while since > 0 and dead[since - 1, j]:
                since -= 1
            every = steps == list(range(steps[0], steps[-1] + 1))
            when = f"from step {steps[since]} on" if every else f"at every recorded step from step {steps[since]} on"
            said = (f"{_unit(j).capitalize()} of ${keys.symbol(node.name)}$ is dead: {when}, "
                    f"its $z$ is negative for every example, so ReLU outputs 0 and passes back no gradient, "
                    f"and its weights stop changing")
            if isinstance(lin, Linear):
                start, end = np.asarray(full.at(0)[lin.W]), np.asarray(full.final[lin.W])
                kept = [k for k in range(start.shape[1]) if start[j, k] == end[j, k]]
                if kept:
                    k = kept[0]
                    said += (f" (the entry in row {j + 1}, column {k + 1} of ${keys.symbol(lin.W)}$ ends at "
                             f"${shown(end[j, k], chapter.display.decimals)}$, its starting value: it never "
                             f"received a gradient)")
            out.append(said + ". The network makes its predictions with its other units.")
    return out


def saturated_output(chapter: Chapter, full: Trace) -> str | None:
    """A sigmoid output whose slope ŷ(1 − ŷ) has fallen below SATURATED for every example."""
    graph, last = chapter.network, int(full.steps[-1])
    out = graph.output
    if out.op != "sigmoid" or graph.cost.op not in SLOPE_PASSES:
        return None
    a = np.asarray(full.at(last)[out.name])
    slope = a * (1 - a)
    if not np.all(slope < SATURATED):
        return None
    return (f"The output is saturated: at step {last} its slope $\\hat{{y}}(1 - \\hat{{y}})$ is below {SATURATED} "
            f"for every example (at most ${shown(float(slope.max()), chapter.display.decimals)}$). The gradient "
            f"it passes back is $\\hat{{y}} - y$ times that slope, so each step now moves the parameters very "
            f"little: this is why the cost curve flattens.")


def boundary_shape(chapter: Chapter) -> str | None:
    """What the boundary's shape says: one linear layer on the two plotted inputs draws straight lines; a
    product of inputs or a hidden layer bends them."""
    graph = chapter.network
    if chapter.n_features != 2:
        return None
    classes = chapter.Y.shape[0] > 1
    if len(graph.linear) == 1 and not chapter.feature_crosses:
        if classes:
            return ("Each boundary between two regions is a straight line: with one linear layer, each class's "
                    "score is $w_{1}x_{1} + w_{2}x_{2} + b$ with its own weights, and two such scores are equal "
                    "along a line.")
        return ("The decision boundary is a straight line: a single neuron computes $w_{1}x_{1} + w_{2}x_{2} + b$, "
                "and the set where that is constant is a line.")
    if len(graph.linear) == 1:
        crosses = [("".join(f"x_{{{i + 1}}}" for i in cross)) for cross in chapter.feature_crosses]
        terms = [f"w_{{{k + 1}}}{x}" for k, x in enumerate(["x_{1}", "x_{2}", *crosses])]
        return (f"The decision boundary is curved, although the network is a single neuron: its inputs include "
                f"{_list([f'${c}$' for c in crosses])}, and ${' + '.join(terms)} + b$ is constant along a curve, "
                f"not a line.")
    return ("The decision boundary is not a straight line: the hidden layer bends it, which no single "
            "neuron on $x_{1}$ and $x_{2}$ can do.")


def after_training(chapter: Chapter, full: Trace) -> list[str]:
    """The sentences that read the trained network's numbers, in reading order."""
    said = [predictions(chapter, full), saturated_output(chapter, full), *dead_units(chapter, full),
            boundary_shape(chapter)]
    return [s for s in said if s]

"""What the lecture formats (slides, notebook, web page) share: a chapter's worked lines in teaching order.

A worked line is one calculation of the document (formula, numbers substituted, result) tied to
the step, the pass and the graph node it belongs to. The slides show them one by one beside the
graph, the notebook writes them above the NumPy that recomputes them, the web page lists them.
They come from the same document context the Markdown and LaTeX documents are rendered from, so
every lecture format prints the document's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.documents.render import calculation, document_context, document_spec, symbol
from tracer.engine.chapter import Chapter
from tracer.engine.trace import Trace

#: The passes of a worked step, in the order a student works them.
PASSES = ("forward", "cost", "backward", "update")


@dataclass(frozen=True)
class WorkedLine:
    """One calculation: at `step`, in `phase`, on graph node `node` (Z1, A1, cost, W1, …), giving `quantity`."""

    step: int
    phase: str
    node: str
    quantity: str
    latex: str  # the whole calculation as one maths block (aligned)
    symbol: str  # the quantity's maths symbol


@dataclass(frozen=True)
class Lecture:
    """A chapter's worked lines by step, plus what the lecture formats say around them."""

    context: dict[str, Any]
    lines: list[WorkedLine]
    worked_steps: list[int]  # steps with a backward pass and an update
    forward_steps: list[int]  # steps shown forward only
    table_steps: list[int]
    table_decimals: int

    def at(self, step: int, phase: str | None = None) -> list[WorkedLine]:
        return [ln for ln in self.lines if ln.step == step and (phase is None or ln.phase == phase)]

    @property
    def shown_steps(self) -> list[int]:
        return sorted(set(self.worked_steps) | set(self.forward_steps))


def lecture(chapter: Chapter, trace: Trace) -> Lecture:
    """The worked lines of `chapter`'s document, read from its trace (never re-trained here)."""
    context = document_context(chapter, trace)
    spec = document_spec(chapter)
    lines: list[WorkedLine] = []
    for ws in context["worked"]:
        groups = [("forward", ws.forward), ("cost", [ws.cost]), ("backward", ws.backward), ("update", ws.update)]
        for phase, nodes in groups:
            for node in nodes:
                for calc in node.calculations:
                    quantity = calc.quantity or node.name
                    lines.append(WorkedLine(ws.step, phase, node.name, quantity, calculation(calc),
                                            symbol(quantity.removesuffix("_after"))))
    return Lecture(context, lines, list(spec.worked_steps), list(spec.forward_steps), list(spec.table_steps),
                   spec.table_decimals)

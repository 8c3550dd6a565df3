"""The chapter as Beamer slides (16:9): the computational graph filled in node by node with overlays.

For each worked step, one frame per pass: the forward pass reaches the nodes left to right, the
backward pass right to left, the update parameter by parameter; each overlay highlights the node
it reaches and shows that node's worked line under the graph. Then the cost table. Text is never
set below 10 pt (the class's size): long sums are broken over rows instead of shrunk.
"""

from __future__ import annotations

from typing import Any

from tracer.documents.figures import BACKWARD, FORWARD, PARAMETER_FILL
from tracer.documents.lecture import PHASE_TITLES, Lecture, lecture, line_latex
from tracer.documents.outline import Outline, node_tikz, outline, outline_tikz
from tracer.documents.render import environment, render, tex_escape
from tracer.engine.chapter import Chapter
from tracer.engine.trace import Trace

TEMPLATE = "slides.tex.j2"
#: Characters of maths a worked line's row may hold on a 16:9 slide at 10 pt before it is broken.
LINE_WIDTH = 60
#: Rows of numbers a worked line's substitution may stack on a slide (below the graph).
LINE_ROWS = 5
#: Rows of the cost table per column.
TABLE_ROWS = 12
#: Light tints for reached nodes: forward (blue), backward (vermillion).
TINTS = {"forward": "tracerfwd!18", "cost": "tracerfwd!18", "backward": "tracerbwd!22", "update": "tracerbwd!22"}


def _maths_prose(text: str) -> str:
    """Commentary (plain words, maths between $…$, written by the model's templates) as LaTeX."""
    parts = text.split("$")
    return "".join(f"${p}$" if i % 2 else tex_escape(p) for i, p in enumerate(parts))


def _frame_graph(o: Outline, reached: list[tuple[int, str]], phase: str, before: set[str]) -> str:
    """The graph for one frame: `reached` is (overlay, node) in order; `before` are tinted from the start."""
    out = [outline_tikz(o)]
    placed = {n.id: n for n in o.nodes}
    for node in sorted(before):
        if node in placed:
            out.append(node_tikz(placed[node], "fill=tracerfwd!18"))
    first: dict[str, int] = {}
    for k, node in reached:
        first.setdefault(node, k)
    for node, k in first.items():
        if node in placed:
            out.append(rf"\only<{k}->{{{node_tikz(placed[node], 'fill=' + TINTS[phase])}}}")
    spans: dict[str, list[int]] = {}
    for k, node in reached:
        spans.setdefault(node, []).append(k)
    for node, ks in spans.items():
        if node in placed:
            marks = ",".join(str(k) for k in ks)
            ring = node_tikz(placed[node], f"fill={TINTS[phase]}, line width=2.4pt, draw=tracercurrent")
            out.append(rf"\only<{marks}>{{{ring}}}")
    return "\n".join(out)


#: The frames of a worked step: the cost is the last node the forward pass reaches.
PASSES = {"forward": ("forward", "cost"), "backward": ("backward",), "update": ("update",)}


def _title(lec: Lecture, step: int, frame: str) -> str:
    if frame == "forward":
        return f"Step {step}: forward pass and cost"
    if frame == "update":
        return f"Step {step}: the update ({lec.model.network['optimizer_readable']})"
    return f"Step {step}: {PHASE_TITLES[frame].lower()}"


def slide_frames(lec: Lecture, o: Outline) -> list[dict[str, Any]]:
    """Every frame of the worked steps: title, graph (TikZ) and the overlays' worked lines."""
    frames = []
    for st in lec.model.steps:
        reached_before: set[str] = set()
        for frame, phases in PASSES.items():
            lines = [ln for ln in st.lines if ln.phase in phases]
            if not lines:
                continue
            reached = [(k, ln.node) for k, ln in enumerate(lines, start=1)]
            frames.append({
                "title": _title(lec, st.step, frame),
                "graph": _frame_graph(o, reached, frame, reached_before),
                "lines": [{"overlay": k, "latex": line_latex(ln, LINE_WIDTH, LINE_ROWS)}
                          for k, ln in enumerate(lines, start=1)],
            })
            reached_before |= {ln.node for ln in lines}
        notes = [tex_escape(c.text) if c.kind == "author" else _maths_prose(c.text) for c in st.comments]
        if st.comparison:
            notes.append(_maths_prose(st.comparison))
        if notes:
            frames.append({"title": f"Step {st.step}: what to notice", "graph": None, "lines": [], "notes": notes})
    return frames


def slides_tex(chapter: Chapter, trace: Trace, lec: Lecture | None = None, user_templates=None) -> str:
    """The slides' LaTeX (Beamer), byte-identical from run to run."""
    lec = lec or lecture(chapter, trace)
    o = outline(chapter, lec.full)
    table = lec.table
    columns = [table[i:i + TABLE_ROWS] for i in range(0, len(table), TABLE_ROWS)]
    context = {
        "title": tex_escape(lec.model.title), "source": tex_escape(lec.model.source),
        "notation": [_maths_prose(n) for n in lec.model.notation],
        "network": lec.model.network, "overview": outline_tikz(o), "frames": slide_frames(lec, o),
        "table_columns": columns, "long_run": lec.model.long_run,
        "colours": {"fwd": FORWARD[1:], "bwd": BACKWARD[1:], "param": PARAMETER_FILL[1:]},
    }
    return render(environment(user_templates), TEMPLATE, context)

"""The chapter as Beamer slides (16:9): the computational graph filled in node by node with overlays.

For each worked step, one frame per pass: the forward pass reaches the nodes left to right, the
backward pass right to left, the update parameter by parameter; each overlay highlights the node
it reaches and shows that node's worked line under the graph. Then the cost table. Text is never
set below 10 pt (the class's size): long sums are broken over rows instead of shrunk.
"""

from __future__ import annotations

import math
from typing import Any

from tracer.documents.figures import BACKWARD, FORWARD, PARAMETER_FILL
from tracer.documents.lecture import PHASE_TITLES, Lecture, lecture, line_latex
from tracer.documents.model import Line
from tracer.documents.outline import Outline, Placed, node_tikz, outline, outline_tikz
from tracer.documents.render import environment, number_tex, render, tex_escape
from tracer.engine.chapter import Chapter
from tracer.engine import keys
from tracer.engine.trace import Trace

TEMPLATE = "slides.tex.j2"
#: Characters of maths a worked line's row may hold on a 16:9 slide at 10 pt before it is broken.
LINE_WIDTH = 74
#: Rows of text a worked line may take on a slide, below a graph of GRAPH_HEIGHT points (a fraction counts
#: two, a matrix its rows); a taller graph leaves a row fewer for every ROW_HEIGHT points more.
LINE_ROWS = 8
GRAPH_HEIGHT = 110
ROW_HEIGHT = 12
#: Rows of the cost table per column.
TABLE_ROWS = 12
#: Light tints for reached nodes: forward (blue), backward (vermillion).
TINTS = {"forward": "tracerfwd!18", "cost": "tracerfwd!18", "backward": "tracerbwd!22", "update": "tracerbwd!22"}


def _maths_prose(text: str) -> str:
    """Commentary (plain words, maths between $…$, written by the model's templates) as LaTeX."""
    parts = text.split("$")
    return "".join(f"${p}$" if i % 2 else tex_escape(p) for i, p in enumerate(parts))


def _tag(line: Line, nodes: set[str]) -> tuple[str, str, str] | None:
    """(node, role, number) written beside a node for a line giving its scalar value or gradient, else None."""
    result = line.result
    while isinstance(result, list) and len(result) == 1:
        result = result[0]
    if not isinstance(result, str):
        return None
    quantity = keys.before_update(line.quantity)
    if quantity in nodes:
        return quantity, "fwd", result
    key = keys.Names.guess(quantity)
    if key.role == keys.GRAD and key.node in nodes:
        return key.node, "bwd", result
    return None


def _tag_tikz(n: Placed, role: str, number: str) -> str:
    """A number beside a node, a value (blue) over a gradient (vermillion). Tags take no room in the
    picture's size (`overlay`): at a bias, beside it where the row below the graph is free; elsewhere
    at its right shoulder (value) and hip (gradient)."""
    beside = n.kind == "parameter" and keys.stem_and_index(n.id)[0] == "b"  # the article's b₁
    x = n.x + n.w / 2 + (2 if beside else -3)
    if beside:
        y = n.y
    else:
        y = n.y + n.h / 2 - 3 if role == "fwd" else n.y - n.h / 2 + 3
    anchor = "south west" if role == "fwd" else "north west"
    return (rf"\node[overlay, anchor={anchor}, inner sep=1pt, text=tracer{role}, fill=white, fill opacity=0.85, "
            rf"text opacity=1] at ({x:.1f}bp,{y:.1f}bp) {{${number_tex(number)}$}};")


def _frame_graph(o: Outline, lines: list[Line], phase: str, before: set[str],
                 tags_before: dict[tuple[str, str], str]) -> str:
    """The graph for one frame, overlay k reaching the node of lines[k - 1]; `before` (nodes) and
    `tags_before` (numbers beside nodes) come from the frames before it."""
    out = [outline_tikz(o)]
    placed = {n.id: n for n in o.nodes}
    for node in sorted(before):
        if node in placed:
            out.append(node_tikz(placed[node], "fill=tracerfwd!18"))
    first: dict[str, int] = {}
    spans: dict[str, list[int]] = {}
    for k, line in enumerate(lines, start=1):
        first.setdefault(line.node, k)
        spans.setdefault(line.node, []).append(k)
    for node, k in first.items():
        if node in placed:
            out.append(rf"\only<{k}->{{{node_tikz(placed[node], 'fill=' + TINTS[phase])}}}")
    for node, ks in spans.items():
        if node in placed:
            ring = node_tikz(placed[node], f"fill={TINTS[phase]}, line width=2.4pt, draw=tracercurrent")
            out.append(rf"\only<{','.join(str(k) for k in ks)}>{{{ring}}}")
    replaced: dict[tuple[str, str], int] = {}
    for k, line in enumerate(lines, start=1):
        tag = _tag(line, set(placed))
        if tag is not None:
            node, role, number = tag
            replaced.setdefault((node, role), k)
            out.append(rf"\only<{k}->{{{_tag_tikz(placed[node], role, number)}}}")
    for (node, role), number in sorted(tags_before.items()):
        until = replaced.get((node, role))
        text = _tag_tikz(placed[node], role, number)
        # A number replaced in this frame (a parameter's new value) is shown until its replacement.
        out.insert(1, text if until is None else rf"\only<-{until - 1}>{{{text}}}" if until > 1 else "")
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
    rows = LINE_ROWS - math.ceil(max(0.0, o.height - GRAPH_HEIGHT) / ROW_HEIGHT)
    for st in lec.model.steps:
        reached_before: set[str] = set()
        tags: dict[tuple[str, str], str] = {}
        for frame, phases in PASSES.items():
            lines = [ln for ln in st.lines if ln.phase in phases]
            if not lines:
                continue
            frames.append({
                "title": _title(lec, st.step, frame),
                "graph": _frame_graph(o, lines, frame, reached_before, tags),
                "lines": [{"overlay": k, "latex": line_latex(ln, LINE_WIDTH, rows)}
                          for k, ln in enumerate(lines, start=1)],
            })
            reached_before |= {ln.node for ln in lines}
            ids = {n.id for n in o.nodes}
            tags.update({(tag[0], tag[1]): tag[2] for ln in lines if (tag := _tag(ln, ids)) is not None})
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

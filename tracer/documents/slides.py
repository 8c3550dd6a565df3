"""The chapter as Beamer slides (16:9): the computational graph filled in node by node with overlays.

For each worked step, one frame per pass: the forward pass reaches the nodes left to right, the
backward pass right to left, the update parameter by parameter; each overlay highlights the node
it reaches and shows that node's worked line under the graph. Then the cost table. Text is never
set below 10 pt (the class's size): long sums are broken over rows instead of shrunk.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tracer.documents.figures import BACKWARD, FORWARD, PARAMETER_FILL
from tracer.documents.lecture import PHASE_TITLES, Lecture, aligned_rows, block_rows, lecture, line_latex
from tracer.documents.model import Line, Step, slashed
from tracer.documents.outline import Arrow, Outline, Placed, node_tikz, outline, outline_tikz
from tracer.documents.render import (environment, formula_sides, number_tex, printed_tex, render, tex_escape,
                                    with_maths)
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
#: Rows of text under a graph of FRAME_GRAPH_HEIGHT points: a worked line and what to notice about it
#: share them, or the notes come on an overlay of their own (a taller graph leaves a row fewer for every
#: ROW_HEIGHT points more).
FRAME_ROWS = 10
FRAME_GRAPH_HEIGHT = 90
#: Characters of a note's text a row holds on a 16:9 slide at 10 pt.
NOTE_WIDTH = 95
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
    if line.part is not None:  # one entry, map or example of a bigger value: not the node's whole value
        return None
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


def _midpoint(arrow: Arrow) -> tuple[float, float, float, float]:
    """(x, y, dx, dy): the middle of an arrow's Bézier path and its direction there."""
    p = arrow.points
    segments = max((len(p) - 1) // 3, 1)
    k = 3 * (segments // 2)
    p0, p1, p2, p3 = p[k:k + 4] if len(p) >= k + 4 else (p[0], p[0], p[-1], p[-1])
    t = 0.5 if segments % 2 else 0.0
    x = (1 - t) ** 3 * p0[0] + 3 * (1 - t) ** 2 * t * p1[0] + 3 * (1 - t) * t ** 2 * p2[0] + t ** 3 * p3[0]
    y = (1 - t) ** 3 * p0[1] + 3 * (1 - t) ** 2 * t * p1[1] + 3 * (1 - t) * t ** 2 * p2[1] + t ** 3 * p3[1]
    dx = 3 * ((1 - t) ** 2 * (p1[0] - p0[0]) + 2 * (1 - t) * t * (p2[0] - p1[0]) + t ** 2 * (p3[0] - p2[0]))
    dy = 3 * ((1 - t) ** 2 * (p1[1] - p0[1]) + 2 * (1 - t) * t * (p2[1] - p1[1]) + t ** 2 * (p3[1] - p2[1]))
    return x, y, dx, dy


#: Points: about how wide a digit of a number written beside a node is at 10 pt, and how tall the number.
DIGIT_WIDTH, TAG_HEIGHT = 5.0, 10.0


def _tag_tikz(n: Placed, role: str, number: str, arrow: Arrow | None = None, head: Placed | None = None,
              others: tuple[Placed, ...] = ()) -> str:
    """A number where it belongs, a value (blue) over a gradient (vermillion), as the documents' graphs
    write them: on the arrow out of the node, the value it sends above the arrow and the gradient that
    comes back below it (so it reads as that node's and no other's). A parameter, whose arrow is too
    short for a number, has them beside it (on its right, or on its left when a node of `others` stands
    there); the cost, which sends nothing on, at its shoulder. Tags take no room in the picture's size
    (`overlay`)."""
    if n.kind == "parameter" or arrow is None or not arrow.points:
        x, y = n.x + n.w / 2 + 2, (n.y if n.kind == "parameter" else n.y + n.h / 2 - 3)
        side = "west"
        width = DIGIT_WIDTH * len(number_tex(number).replace(" ", "")) + 2
        bottom = y if role == "fwd" else y - TAG_HEIGHT
        if n.kind == "parameter" and any(m.x - m.w / 2 < x + width and x < m.x + m.w / 2 and m.y - m.h / 2
                                         < bottom + TAG_HEIGHT and bottom < m.y + m.h / 2 for m in others):
            x, side = n.x - n.w / 2 - 2, "east"
        anchor = ("south " if role == "fwd" else "north ") + side
    else:
        x, y, dx, dy = _midpoint(arrow)
        if abs(dx) >= abs(dy):  # along the arrow: the value above it, the gradient below it
            if head is not None and abs(head.y - n.y) < 1:  # a straight arrow: centred in the gap between the nodes
                x = (n.x + n.w / 2 + head.x - head.w / 2) / 2
            y += 1.5 if role == "fwd" else -1.5
            anchor = "south" if role == "fwd" else "north"
        else:  # a steep arrow: the value on its left, the gradient on its right
            x += -2 if role == "fwd" else 2
            anchor = "east" if role == "fwd" else "west"
    return (rf"\node[overlay, anchor={anchor}, inner sep=1pt, text=tracer{role}, fill=white, fill opacity=0.85, "
            rf"text opacity=1] at ({x:.1f}bp,{y:.1f}bp) {{${number_tex(number)}$}};")


def _frame_graph(o: Outline, lines: list[Line], phase: str, before: set[str],
                 tags_before: dict[tuple[str, str], str], shows: list[list[int]] | None = None) -> str:
    """The graph for one frame, the node of lines[i] reached at overlay shows[i][0] and ringed while its
    overlays shows[i] last (by default line i at overlay i + 1 alone); `before` (nodes) and
    `tags_before` (numbers beside nodes) come from the frames before it."""
    shows = shows or [[k] for k in range(1, len(lines) + 1)]
    out = [outline_tikz(o)]
    placed = {n.id: n for n in o.nodes}
    leaving: dict[str, Arrow] = {}
    for a in o.arrows:
        leaving.setdefault(a.tail, a)
    put = lambda node, role, number: _tag_tikz(  # noqa: E731
        placed[node], role, number, leaving.get(node), placed.get(leaving[node].head) if node in leaving else None,
        tuple(o.nodes))
    for node in sorted(before):
        if node in placed:
            out.append(node_tikz(placed[node], "fill=tracerfwd!18"))
    first: dict[str, int] = {}
    spans: dict[str, list[int]] = {}
    for ks, line in zip(shows, lines):
        first.setdefault(line.node, ks[0])
        spans.setdefault(line.node, []).extend(ks)
    for node, k in first.items():
        if node in placed:
            out.append(rf"\only<{k}->{{{node_tikz(placed[node], 'fill=' + TINTS[phase])}}}")
    for node, ks in spans.items():
        if node in placed:
            ring = node_tikz(placed[node], f"fill={TINTS[phase]}, line width=2.4pt, draw=tracercurrent")
            out.append(rf"\only<{','.join(str(k) for k in ks)}>{{{ring}}}")
    replaced: dict[tuple[str, str], int] = {}
    for (k, *_), line in zip(shows, lines):
        tag = _tag(line, set(placed))
        if tag is not None:
            node, role, number = tag
            replaced.setdefault((node, role), k)
            out.append(rf"\only<{k}->{{{put(node, role, number)}}}")
    for (node, role), number in sorted(tags_before.items()):
        until = replaced.get((node, role))
        text = put(node, role, number)
        # A number replaced in this frame (a parameter's new value) is shown until its replacement.
        out.insert(1, text if until is None else rf"\only<-{until - 1}>{{{text}}}" if until > 1 else "")
    return "\n".join(out)


#: The slides' short form of the documents' note on carried and every-digit figures (said once).
ROUNDING_NOTE_SHORT = ("Why two figures? A calculator fed the printed figures gives the carried one; a program "
                       "keeping every digit gives the other. They part most where numbers nearly cancel.")


#: The frames of a worked step: the cost is the last node the forward pass reaches.
PASSES = {"forward": ("forward", "cost"), "backward": ("backward",), "update": ("update",)}


def _title(lec: Lecture, step: int, frame: str) -> str:
    if frame == "forward":
        return f"Step {step}: forward pass and cost"
    if frame == "update":
        return f"Step {step}: the update ({lec.model.network['optimizer_readable']})"
    return f"Step {step}: {PHASE_TITLES[frame].lower()}"


def line_notes(st: Step) -> dict[int, list[str]]:
    """What to notice, by the index (in st.lines) of the line it is about: a comment under its node's last
    line, as the documents set it under the node in the last pass the node appears in; the comparison
    under the cost line it names, or the last line of the update."""
    out: dict[int, list[str]] = {}
    for i, ln in enumerate(st.lines):  # what carrying every digit gives instead, under the line itself
        if ln.every_digit is not None:
            every = printed_tex(ln.every_digit, beside=ln.result)
            out.setdefault(i, []).append(f"With every digit carried: ${slashed(formula_sides(ln.formula)[0])} = {every}$")
        if i == st.rounding_note_at and st.rounding_note:
            out[i].append(ROUNDING_NOTE_SHORT)
    for c in st.comments:
        at = [i for i, ln in enumerate(st.lines) if ln.node == c.node] or [len(st.lines) - 1]
        out.setdefault(at[-1], []).append(with_maths(c.text, "tex") if c.kind == "author" else _maths_prose(c.text))
    if st.comparison:
        costs = [i for i, ln in enumerate(st.lines) if ln.phase == "cost"]
        at = costs[-1] if st.comparison_at == "cost" and costs else len(st.lines) - 1
        out.setdefault(at, []).append(_maths_prose(st.comparison))
    return out


def _maths_width(latex: str) -> int:
    """About how many characters wide a piece of inline maths sets (a matrix counts as its widest row)."""
    rows = re.findall(r"\\begin\{bmatrix\}(.*?)\\end\{bmatrix\}", latex)
    outside = re.sub(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", "", latex)
    widest = max((len(r) for m in rows for r in m.split(r"\\")), default=0) // 2
    return max(2, len(re.sub(r"\\(?!partial)[a-zA-Z]+|[{}_^ ]", "", outside).replace("\\partial", "d")) + widest)


def _note_rows(notes: list[str]) -> int:
    """Rows of text the notes take under a line (about NOTE_WIDTH characters a row, maths counted short,
    a matrix as tall as its rows)."""
    def tall(n: str) -> int:
        return sum(m.count("\\\\") for m in re.findall(r"\\begin\{bmatrix\}.*?\\end\{bmatrix\}", n))
    def rows(n: str) -> int:  # a row holding a fraction (∂Cost/∂W set as one) is half as tall again
        plain = 1 + len(re.sub(r"\$([^$]*)\$", lambda m: "x" * _maths_width(m.group(1)), n)) // NOTE_WIDTH
        return math.ceil(plain * 1.5) if "\\frac" in n else plain
    return 1 + sum(rows(n) + tall(n) for n in notes)  # and the list's space


def _chunks(notes: list[str], rows: int) -> list[list[str]]:
    """The notes in groups that each fit `rows` rows under the graph (a note too long alone is a group)."""
    out: list[list[str]] = []
    for n in notes:
        if out and _note_rows(out[-1] + [n]) <= rows:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def slide_frames(lec: Lecture, o: Outline) -> list[dict[str, Any]]:
    """Every frame of the worked steps: title, graph (TikZ) and the overlays' worked lines. What to notice
    about a line comes on the frame of its line: under it on its overlay when both fit, else on the
    overlay right after it, in its place, its node still ringed."""
    frames = []
    def fewer(height: float) -> int:  # rows a graph taller than `height` takes from the text under it
        return math.ceil(max(0.0, o.height - height) / ROW_HEIGHT)

    rows, frame_rows = LINE_ROWS - fewer(GRAPH_HEIGHT), FRAME_ROWS - fewer(FRAME_GRAPH_HEIGHT)
    for st in lec.model.steps:
        reached_before: set[str] = set()
        tags: dict[tuple[str, str], str] = {}
        notes = line_notes(st)
        for frame, phases in PASSES.items():
            lines = [(i, ln) for i, ln in enumerate(st.lines) if ln.phase in phases]
            if not lines:
                continue
            shown, shows, k = [], [], 0
            for i, ln in lines:
                latex = line_latex(ln, LINE_WIDTH, rows)
                said = notes.get(i, [])
                apart = bool(said) and block_rows(aligned_rows(latex)) + _note_rows(said) >= frame_rows  # a row to spare
                k += 1
                shown.append({"overlay": k, "latex": latex, "notes": [] if apart else said})
                chunks = _chunks(said, frame_rows) if apart else []
                shows.append(list(range(k, k + len(chunks) + 1)))
                for chunk in chunks:  # each on the overlay after, as many as the notes need
                    k += 1
                    shown.append({"overlay": k, "latex": "", "notes": chunk})
            frames.append({
                "title": _title(lec, st.step, frame),
                "graph": _frame_graph(o, [ln for _, ln in lines], frame, reached_before, tags, shows),
                "lines": shown,
            })
            reached_before |= {ln.node for _, ln in lines}
            ids = {n.id for n in o.nodes}
            tags.update({(tag[0], tag[1]): tag[2] for _, ln in lines if (tag := _tag(ln, ids)) is not None})
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

"""The computational graph as an outline of node names, laid out once by Graphviz.

The lecture formats fill the numbers in step by step themselves (the slides node by node with
overlays, the web page from its step explorer), so they draw the layer view of figures.py with
names only: the same nodes and arrows, in the same order, without the numbers that would fix it
to one step. One layout serves an SVG (the web page) and a TikZ picture (the slides).
"""

from __future__ import annotations

import html

from tracer.documents.figures import (
    FORWARD,
    PARAMETER_FILL,
    Arrow,
    Line,
    Outline,
    Placed,
    Sym,
    computational_graph,
    latex_label,
    names_layout,
)
from tracer.engine.chapter import Chapter
from tracer.engine.trace import Trace

__all__ = ["Arrow", "Outline", "Placed", "node_tikz", "outline", "outline_svg", "outline_tikz"]

#: Font size (pt) of the names in the layout; the slides set them at this size, never smaller.
NAME_PT = 10
#: Inches: a node's size in the layout (names are short: W1, dA1 never appears in the outline).
NODE_SIZE = 0.34
#: Inches between ranks: room on each arrow for the number the slides write on it (−0.125 at 10 pt).
RANK_GAP = 0.6
#: Points: the widest outline a 16:9 slide holds at NAME_PT; a wider one (a deep or branching graph) is
#: laid out with less room between its ranks, first of these that fits (the names keep their size).
MAX_WIDTH = 390
NARROWER_GAPS = (0.45, 0.35, 0.25, 0.18)
#: CSS pixels per point of the page's graph: a node of NODE_SIZE is then 54 px, above the 44 px a tap
#: target needs (the page shows the graph at this size and lets its box scroll on a narrow screen).
SCALE = 2.2
#: Points of room round the outline's nodes, for the chosen node's outline (3 px wide).
MARGIN = 4


#: The kinds of node drawn round (operations); data and parameters are boxes.
ROUND = ("linear", "activation", "pooling", "reshape", "cost")

def outline(chapter: Chapter, trace: Trace) -> Outline:
    """The layer view of the chapter's graph (X, W1, b1, Z1, A1, …, Y, cost), names only, laid out left to right."""
    graph = computational_graph(chapter, trace, int(trace.steps[0]), view="layer")
    for gap in (RANK_GAP, *NARROWER_GAPS):
        laid = names_layout(graph, rankdir="LR", name_pt=NAME_PT, node_size=NODE_SIZE, rank_gap=gap)
        if laid.width <= MAX_WIDTH:
            break
    return laid


# --------------------------------------------------------------------------- drawing it


def _svg_name(sym: Sym) -> str:
    base = {"Cost": "Cost"}.get(sym.base, sym.base)
    style = "" if sym.base == "Cost" else ' font-style="italic"'
    sub = f'<tspan baseline-shift="sub" font-size="75%">{html.escape(sym.sub)}</tspan>' if sym.sub else ""
    return f"<tspan{style}>{html.escape(base)}</tspan>{sub}"


def _path(points: tuple[tuple[float, float], ...], flip) -> str:
    (x, y), rest = points[0], points[1:]
    d = f"M{x:.1f},{flip(y):.1f}"
    for i in range(0, len(rest) - 2, 3):
        d += "C" + " ".join(f"{px:.1f},{flip(py):.1f}" for px, py in rest[i:i + 3])
    return d


def outline_svg(o: Outline, describe) -> str:
    """The outline as inline SVG: each node a focusable button (`describe(node)` is its accessible name)."""
    flip = lambda y: o.height - y  # noqa: E731  (SVG's y runs down)
    m = MARGIN  # room round the nodes for the chosen node's thick outline, which would otherwise be clipped
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{-m} {-m} {o.width + 2 * m:.0f} {o.height + 2 * m:.0f}" '
           f'width="{(o.width + 2 * m) * SCALE:.0f}" height="{(o.height + 2 * m) * SCALE:.0f}" class="graph" role="group" '
           'aria-label="The computational graph: choose a node to see its numbers at the chosen step">']
    for a in o.arrows:
        if a.points:
            out.append(f'<path d="{_path(a.points, flip)}" fill="none" stroke="{FORWARD}" stroke-width="1"/>')
        if a.tip:
            pts = " ".join(f"{x:.1f},{flip(y):.1f}" for x, y in a.tip)
            out.append(f'<polygon points="{pts}" fill="{FORWARD}"/>')
    for n in o.nodes:
        x, y = n.x, flip(n.y)
        fill = PARAMETER_FILL if n.kind == "parameter" else "#ffffff"
        if n.kind in ROUND:
            shape = f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{n.w / 2:.1f}" ry="{n.h / 2:.1f}" fill="{fill}"/>'
        else:
            shape = (f'<rect x="{x - n.w / 2:.1f}" y="{y - n.h / 2:.1f}" width="{n.w:.1f}" height="{n.h:.1f}" '
                     f'rx="{4 if n.kind != "parameter" else 0}" fill="{fill}"/>')
        out.append(f'<g class="node" id="node-{n.id}" data-node="{n.id}" tabindex="0" role="button" '
                   f'aria-label="{html.escape(describe(n), quote=True)}">{shape}'
                   f'<text x="{x:.1f}" y="{y + 4.5:.1f}" text-anchor="middle" font-size="{NAME_PT}">'
                   f'{_svg_name(n.sym)}</text></g>')
    return "\n".join(out + ["</svg>"])


def node_tikz(n: Placed, extra: str = "") -> str:
    """One node as a TikZ `\\node` at its place, drawn at its laid-out size; `extra` adds options."""
    shape = "ellipse" if n.kind in ROUND else "rectangle"
    base = "tracerparam" if n.kind == "parameter" else "white"
    corners = ", rounded corners=3bp" if n.kind in ("input", "target") else ""
    return (rf"\node[tracernode, {shape}{corners}, fill={base}, minimum width={n.w:.1f}bp, "
            rf"minimum height={n.h:.1f}bp{', ' + extra if extra else ''}] at ({n.x:.1f}bp,{n.y:.1f}bp) "
            rf"{{{latex_label([Line((n.sym,))])}}};")


def outline_tikz(o: Outline, styles: dict[str, str] | None = None) -> str:
    """The outline as TikZ commands (no tikzpicture around them): arrows, then each node `\\node` by id.

    `styles` maps a node id to extra TikZ options for its outline (the slides put overlays there).
    Names are set at NAME_PT, the size Graphviz laid them out for.
    """
    styles = styles or {}
    pt = lambda x, y: f"({x:.1f}bp,{y:.1f}bp)"  # noqa: E731
    out = []
    for a in o.arrows:
        if a.points:
            p = a.points
            path = pt(*p[0]) + "".join(f" .. controls {pt(*p[i])} and {pt(*p[i + 1])} .. {pt(*p[i + 2])}"
                                       for i in range(1, len(p) - 2, 3))
            out.append(rf"\draw[tracerarrow] {path};")
        if a.tip:
            out.append(r"\fill[tracerarrowhead] " + " -- ".join(pt(*q) for q in a.tip) + " -- cycle;")
    for n in o.nodes:
        out.append(node_tikz(n, styles.get(n.id, "")))
    return "\n".join(out) + "\n"

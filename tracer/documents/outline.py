"""The computational graph as an outline of node names, laid out once by Graphviz.

The lecture formats fill the numbers in step by step themselves (the slides node by node with
overlays, the web page from its step explorer), so they draw the layer view of figures.py with
names only: the same nodes and arrows, in the same order, without the numbers that would fix it
to one step. One layout serves an SVG (the web page) and a TikZ picture (the slides).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from tracer.documents.figures import FORWARD, PARAMETER_FILL, Graph, Line, Sym, computational_graph, latex_label
from tracer.engine.chapter import Chapter
from tracer.engine.trace import Trace
from tracer.errors import TracerError

#: Font size (pt) of the names in the layout; the slides set them at this size, never smaller.
NAME_PT = 10
#: Inches: a node's size in the layout (names are short: W1, dA1 never appears in the outline).
NODE_SIZE = 0.34


@dataclass(frozen=True)
class Placed:
    """A node where Graphviz put it (points, origin bottom left): centre, size, and its kind."""

    id: str
    sym: Sym
    kind: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Arrow:
    """An arrow tail → head as cubic Bézier points (points), with its arrowhead polygon."""

    tail: str
    head: str
    points: tuple[tuple[float, float], ...]
    tip: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Outline:
    """The laid-out graph: nodes in forward order, arrows, and the bounding box (points)."""

    nodes: tuple[Placed, ...]
    arrows: tuple[Arrow, ...]
    width: float
    height: float


def outline(chapter: Chapter, trace: Trace) -> Outline:
    """The layer view of the chapter's graph (X, W1, b1, Z1, A1, …, Y, cost), names only, laid out left to right."""
    graph = computational_graph(chapter, trace, int(trace.steps[0]), view="layer")
    return _layout(graph)


def _dot_source(graph: Graph) -> str:
    shapes = {"input": "box", "target": "box", "parameter": "box", "linear": "circle", "activation": "circle",
              "cost": "ellipse"}
    out = ["digraph outline {",
           f'  graph [rankdir=LR, nodesep=0.12, ranksep=0.5, pad=0.04, fontsize={NAME_PT}];',
           f'  node [fontsize={NAME_PT}, fixedsize=true, width={NODE_SIZE}, height={NODE_SIZE}];',
           '  edge [arrowsize=0.6];']
    rows: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        shape = shapes[node.kind]
        width = NODE_SIZE * (1.6 if node.kind == "cost" else 1)
        out.append(f'  "{node.id}" [shape={shape}, width={width:.2f}, label="{node.id}"];')
        if node.row:
            rows.setdefault(node.row, []).append(node.id)
    for members in rows.values():
        out.append("  { rank=same; " + " ".join(f'"{m}";' for m in members) + " }")
    for tail, head in graph.edges:
        if (tail, head) in graph.flipped:
            out.append(f'  "{head}" -> "{tail}" [dir=back, id="{tail}:{head}"];')
        else:
            out.append(f'  "{tail}" -> "{head}" [id="{tail}:{head}"];')
    return "\n".join(out + ["}"])


def _layout(graph: Graph) -> Outline:
    import graphviz

    try:
        text = graphviz.Source(_dot_source(graph)).pipe(format="json", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise TracerError("drawing a graph needs Graphviz's `dot` program (Debian: apt install graphviz)") from None
    layout = json.loads(text)
    x0, y0, x1, y1 = (float(c) for c in layout["bb"].split(","))
    placed = {}
    for obj in layout.get("objects", []):
        if obj.get("name") in graph.nodes and "pos" in obj:
            node = graph.nodes[obj["name"]]
            x, y = (float(c) for c in obj["pos"].split(","))
            placed[node.id] = Placed(node.id, node.sym, node.kind, x - x0, y - y0,
                                     float(obj["width"]) * 72, float(obj["height"]) * 72)
    arrows = []
    for edge in layout.get("edges", []):
        tail, head = edge["id"].split(":")
        points: tuple[tuple[float, float], ...] = ()
        tip: tuple[tuple[float, float], ...] = ()
        for op in edge.get("_draw_", []):
            if op["op"] == "b":
                points = tuple((p[0] - x0, p[1] - y0) for p in op["points"])
        for key in ("_hdraw_", "_tdraw_"):
            for op in edge.get(key, []):
                if op["op"] in ("P", "p"):
                    tip = tuple((p[0] - x0, p[1] - y0) for p in op["points"])
        arrows.append(Arrow(tail, head, points, tip))
    order = [n for n in graph.nodes if n in placed]
    return Outline(tuple(placed[n] for n in order), tuple(arrows), x1 - x0, y1 - y0)


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
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {o.width:.0f} {o.height:.0f}" '
           f'width="{o.width * 2.2:.0f}" height="{o.height * 2.2:.0f}" class="graph" role="group" '
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
        if n.kind in ("linear", "activation", "cost"):
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
    shape = "ellipse" if n.kind in ("linear", "activation", "cost") else "rectangle"
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

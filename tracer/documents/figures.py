"""The article's pictures drawn from a trace: the computational graph, the learning curve, the decision boundary.

The graph is drawn as the article draws it, forward values on the arrows and gradients flowing back,
in two granularities: the scalar view (one node per input, weight and unit of each example, as Part I
of seed 000) and the layer view (X, W1, b1, Z1, A1, … as matrices, as its vectorized part). Graphviz's
`dot` lays it out; the same layout is written as SVG (for Markdown) and as a TikZ picture (for LaTeX).
Curves and boundaries are drawn with matplotlib (Agg, no display) as SVG or PDF.

Palette: Okabe–Ito blue (#0072B2) for forward values, solid arrows; Okabe–Ito vermillion (#D55E00) for
gradients, dashed arrows, each gradient named (∂Cost/∂w₁ = …). The pair is told apart by readers with
any common colour-vision deficiency, and in greyscale print the solid/dashed lines and the ∂ names
still say which is which. Decision boundaries shade the two classes with light and medium tints of the
same pair and mark the training points by shape (× for class 1, ○ for class 0), as the article does.

Every number written on a figure comes from the trace through `rounding.shown_styled` with the
chapter's decimals for that quantity, as in the documents' text. Output is byte-identical from run to
run: matplotlib's SVG hash salt is fixed and its date/creator metadata removed, Graphviz's version
comments are stripped.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tracer import abbreviation
from tracer.engine import keys
from tracer.engine.chapter import Chapter, append_crosses, document_spec
from tracer.engine.conv import Conv2d
from tracer.engine.keys import COST, INPUT, TARGET
from tracer.engine.nodes import Linear, activations
from tracer.engine.trace import Trace
from tracer.errors import TracerError
from tracer.output import write_atomic
from tracer.rounding import shown, shown_styled

FORWARD = "#0072B2"  # Okabe–Ito blue
BACKWARD = "#D55E00"  # Okabe–Ito vermillion
#: Tints of the same pair for the decision regions: class 0 light vermillion, class 1 medium blue,
#: far enough apart in lightness to read in greyscale.
REGION_0, REGION_1 = "#F6D3BC", "#8CBCDF"
PARAMETER_FILL = "#EEEEEE"

KINDS = ("graph", "curve", "boundary")
#: The folder, inside the documents' folder, that document_figures writes into.
FIGURES_DIR = "figures"
VIEWS = ("scalar", "layer")
#: A chapter that runs more steps than this gets a learning curve in its documents.
FEW_STEPS = 10
#: Recorded steps are marked on the learning curve when there are at most this many.
MARKED_POINTS = 60
#: The scalar view of a larger network is refused (it would be unreadable); the layer view is not.
MAX_SCALAR_NODES = 250
#: Grid points per side of the input square for the decision boundary.
GRID = 201

FONT = "Times-Roman"
#: Font sizes (pt) of node names and arrow labels: in the SVG, and in TikZ, where LaTeX sets the text
#: at exactly the sizes Graphviz laid the picture out for (TikZ text is not scaled with coordinates),
#: small enough that a graph fits a 17 cm line without being scaled down.
SVG_SIZES = (11, 10)
TIKZ_SIZES = (9, 8)


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Sym:
    """A mathematical name: w with subscript 12 and superscript [1](2) is w^{[1](2)}_{12}."""

    base: str
    sub: str = ""
    sup: str = ""


@dataclass(frozen=True)
class Grad:
    """∂of/∂wrt, the name of a gradient."""

    of: Sym
    wrt: Sym


@dataclass(frozen=True, eq=False)
class Num:
    """A number from the trace, shown by `rounding.shown_styled` at `decimals` places, or as an empty box to fill in."""

    value: float
    decimals: int
    blank: bool = False


@dataclass(frozen=True, eq=False)
class Mat:
    """A matrix from the trace, each entry shown by `rounding.shown_styled`; a big one by its corner (see `corner`);
    `blank`: each entry an empty box to fill in."""

    value: np.ndarray
    decimals: int
    blank: bool = False

    def entries(self) -> tuple[list[list[float | str]], bool]:
        """(rows of entries to show, with "⋯" "⋮" "⋱" where rows or columns are left out; whether any are)."""
        return corner(abbreviation.as_matrix(np.atleast_2d(self.value)))


#: A matrix with more rows or columns than this is shown by its top-left CORNER × CORNER entries, the
#: graph saying so: the rule of tracer.abbreviation, so a graph and its text abbreviate alike.
MAX_SHOWN = abbreviation.LIMIT
CORNER = abbreviation.CORNER


def corner(value: np.ndarray) -> tuple[list[list[float | str]], bool]:
    """A matrix's entries as shown (tracer.abbreviation's corner), with "⋯" for the columns left out,
    "⋮" for the rows and "⋱" for both. Returns (rows, abbreviated)."""
    shown = abbreviation.corner(value)
    out: list[list[float | str]] = [[float(x) for x in row] + (["⋯"] if shown.more_columns else [])
                                    for row in shown.entries]
    if shown.more_rows:
        out.append(["⋮"] * shown.entries.shape[1] + (["⋱"] if shown.more_columns else []))
    return out, shown.cut


def shape_text(value: np.ndarray) -> str:
    """"64 × 1797": rows × columns, shown under an abbreviated matrix."""
    return abbreviation.shape_text(np.atleast_2d(value).shape)


Item = str | Sym | Grad | Num | Mat

#: An empty box to fill in by hand (points): wide enough for a handwritten number with `decimals` places.
BLANK_HEIGHT = 15


def blank_width(decimals: int) -> int:
    return 7 * (decimals + 3)


def _boxed(item: Item) -> bool:
    """Whether an item is drawn as a table (a matrix, or an empty box), which in Graphviz must sit in a cell."""
    return isinstance(item, Mat) or (isinstance(item, Num) and item.blank)


@dataclass
class Line:
    """One line of a label; role "fwd" (a value, blue), "bwd" (a gradient, vermillion) or "" (a name, black)."""

    items: tuple[Item, ...]
    role: str = ""


#: How a base name is written in HTML (Graphviz) and in LaTeX; italic unless it is a word.
BASES = {"ŷ": ("ŷ", r"\hat{y}"), "Cost": ("Cost", r"\mathrm{Cost}"),
         # batch normalisation's μ, σ², Ẑ, Z̃, γ, β and dropout's mask-applied Ã (tracer.engine.keys.STEM_SYMBOLS)
         "mu": ("μ", r"\mu"), "var": ("σ²", r"\sigma^{2}"), "Zhat": ("Ẑ", r"\hat{Z}"), "Zt": ("Z̃", r"\tilde{Z}"),
         "Ad": ("Ã", r"\tilde{A}"), "gamma": ("γ", r"\gamma"), "beta": ("β", r"\beta")}
WORDS = {"Cost"}


def _functions() -> dict[str, tuple[str, str]]:
    """Each activation's glyph as the node gives it, in HTML and LaTeX (a new activation brings its own)."""
    return {cls.glyph: (cls.glyph, cls.symbol) for cls in activations().values()}


def _base(name: str) -> tuple[str, str]:
    return BASES.get(name) or _functions().get(name) or (name, name)


def _html_blank(decimals: int, colour: str) -> str:
    return (f'<TD BORDER="1" COLOR="{colour or "#000000"}" FIXEDSIZE="TRUE" WIDTH="{blank_width(decimals)}" '
            f'HEIGHT="{BLANK_HEIGHT}"></TD>')


def _html_item(item: Item, colour: str = "") -> str:
    """`colour`: of an empty box's border (its line's colour; Graphviz does not take it from the text's)."""
    if isinstance(item, str):
        return html.escape(item)
    if isinstance(item, Sym):
        base = _base(item.base)[0]
        upright = item.base in WORDS or item.base in _functions()
        text = html.escape(base) if upright else f"<I>{html.escape(base)}</I>"
        text += f"<SUB>{html.escape(item.sub)}</SUB>" if item.sub else ""
        return text + (f"<SUP>{html.escape(item.sup)}</SUP>" if item.sup else "")
    if isinstance(item, Grad):
        return f"∂{_html_item(item.of)}/∂{_html_item(item.wrt)}"
    if isinstance(item, Num) and item.blank:
        return ('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>'
                + _html_blank(item.decimals, colour) + "</TR></TABLE>")
    if isinstance(item, Num):
        return html.escape(shown_styled(item.value, item.decimals, style="unicode"))
    rows, abbreviated = item.entries()
    if item.blank:
        entry = lambda x: _html_blank(item.decimals, colour) if not isinstance(x, str) else f"<TD>{x}</TD>"  # noqa: E731
    else:
        entry = lambda x: (f'<TD ALIGN="{"CENTER" if isinstance(x, str) else "RIGHT"}">'  # noqa: E731
                           f'{html.escape(_entry(x, item))}</TD>')
    side = f'<TD ROWSPAN="{len(rows)}" SIDES="{{}}" BORDER="1" WIDTH="3"></TD>'
    cells = ["<TR>" + (side.format("LTB") if i == 0 else "")
             + "".join(entry(x) for x in row)
             + (side.format("RTB") if i == 0 else "") + "</TR>" for i, row in enumerate(rows)]
    if abbreviated:  # the whole matrix's size, under its corner
        cells.append(f'<TR><TD COLSPAN="{len(rows[0]) + 2}"><FONT POINT-SIZE="8">'
                     f'({html.escape(shape_text(item.value))}, corner shown)</FONT></TD></TR>')
    return '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="0">' + "".join(cells) + "</TABLE>"  # columns apart


def _entry(x: float | str, item: Mat, style: str = "unicode") -> str:
    return x if isinstance(x, str) else shown_styled(x, item.decimals, style=style)


def html_label(lines: list[Line]) -> str:
    """A Graphviz HTML-like label (a table when a line holds a matrix, which must sit in a cell)."""
    colour = {"fwd": FORWARD, "bwd": BACKWARD}
    if not any(_boxed(i) for line in lines for i in line.items):
        parts = []
        for line in lines:
            text = "".join(_html_item(i) for i in line.items)
            parts.append(f'<FONT COLOR="{colour[line.role]}">{text}</FONT>' if line.role else text)
        return "<" + "<BR/>".join(parts) + ">"
    # One row per line, the text before a matrix right-aligned in a first column, so "=" signs line up.
    rows = []
    for line in lines:
        paint = (lambda text: f'<FONT COLOR="{colour[line.role]}">{text}</FONT>' if text else "") \
            if line.role else (lambda text: text)
        split = next((n for n, i in enumerate(line.items) if _boxed(i)), None)
        if split is None:
            text = "".join(_html_item(i) for i in line.items)
            rows.append(f'<TR><TD COLSPAN="2">{paint(text)}</TD></TR>')
            continue
        before = "".join(_html_item(i) for i in line.items[:split])
        matrix = _html_item(line.items[split], colour.get(line.role, ""))
        rows.append(f'<TR><TD ALIGN="RIGHT">{paint(before)}</TD><TD ALIGN="LEFT">{paint(matrix)}</TD></TR>')
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"


def _latex_item(item: Item) -> str:
    if isinstance(item, str):  # only operators and spaces: " = ", "·"
        return item.replace("·", r"\cdot ")
    if isinstance(item, Sym):
        base = _base(item.base)[1]
        if item.base in WORDS and base == item.base:
            base = r"\operatorname{" + base + "}"
        return base + (f"^{{{item.sup}}}" if item.sup else "") + (f"_{{{item.sub}}}" if item.sub else "")
    if isinstance(item, Grad):
        return rf"\partial {_latex_item(item.of)}/\partial {_latex_item(item.wrt)}"
    if isinstance(item, Num):
        return _latex_blank(item.decimals) if item.blank else shown_styled(item.value, item.decimals, style="latex")
    rows, abbreviated = item.entries()
    dots = {"⋯": r"\cdots", "⋮": r"\vdots", "⋱": r"\ddots"}
    number = (lambda x: _latex_blank(item.decimals)) if item.blank else (lambda x: _entry(x, item, "latex"))
    body = r" \\ ".join(" & ".join(dots.get(x, x) if isinstance(x, str) else number(x) for x in row)
                         for row in rows)
    matrix = r"\begin{bmatrix}" + body + r"\end{bmatrix}"
    if abbreviated:
        matrix = r"\underset{\text{\tiny (" + shape_text(item.value).replace("×", r"$\times$") + r", corner shown)}}{" + matrix + "}"
    return matrix


def _latex_blank(decimals: int) -> str:
    """An empty box of the size Graphviz laid out (its frame drawn inside, in the line's colour)."""
    return (rf"\mbox{{\fboxsep=0pt\fbox{{\rule{{0pt}}{{{BLANK_HEIGHT - 1}bp}}"
            rf"\hspace{{{blank_width(decimals) - 1}bp}}}}}}")


def latex_label(lines: list[Line]) -> str:
    """The label as LaTeX for a TikZ node: one math line per line, coloured by role."""
    out = []
    for line in lines:
        math = "$" + "".join(_latex_item(i) for i in line.items) + "$"
        out.append(rf"{{\color{{tracer{line.role}}}{math}}}" if line.role else math)
    return r"\\ ".join(out)


# --------------------------------------------------------------------------- the graph


@dataclass
class Node:
    """A node of the drawn graph: its name, the value it sends on and the gradient that comes back to it."""

    id: str  # the trace's name, with an entry's index in the scalar view: "W1_0_1" is W1[0, 1]
    sym: Sym
    kind: str  # "input", "target", "parameter", "linear", "activation", "merge" or "cost"
    value: Num | Mat
    gradient: Num | Mat | None = None  # ∂cost/∂(this node); None for data, which gets no gradient
    note: tuple[Item, ...] = ()  # shown under the name, e.g. the activation function or a feature cross
    group: str = ""  # the example a scalar-view node belongs to (drawn in a box per example)
    row: str = ""  # nodes with the same row are drawn side by side (the layer view's W1, Z1, b1)
    quantity: str = ""  # the trace's name of the value (W1 for the scalar view's W1_0_1)
    entry: tuple[int, ...] | None = None  # the entry of `quantity` it is (the scalar view), or None


@dataclass
class Graph:
    """Nodes and arrows (tail → head, forward); `cost` is the cost's symbol, for naming gradients."""

    cost: Sym
    view: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    #: Arrows laid out head first, so that their tail lands right of the head in a row (b1 right of Z1).
    flipped: set[tuple[str, str]] = field(default_factory=set)
    #: The local-gradient view (`--local`): ∂head/∂tail on each arrow, as the article annotates its graphs.
    local: dict[tuple[str, str], Num | Mat] | None = None
    #: For each arrow, the graph node of its head (the engine's node that computes it), or "" for none.
    heads: dict[tuple[str, str], str] = field(default_factory=dict)

    def edge(self, tail: str, head: str, node: str = "") -> None:
        self.edges.append((tail, head))
        self.heads[(tail, head)] = node

    def add(self, node: Node) -> None:
        self.nodes[node.id] = node

    def abbreviated(self) -> bool:
        """Whether some matrix on the graph is shown by its corner (a big network)."""
        values = [v for n in self.nodes.values() for v in (n.value, n.gradient)] + list((self.local or {}).values())
        return any(isinstance(v, Mat) and v.entries()[1] for v in values)

    def quantities(self) -> set[str]:
        """The trace's names of the values and gradients on the graph ("A0", "W1", "dW1", "cost", …)."""
        out = set()
        for node in self.nodes.values():
            out.add(quantity(node))
            if node.gradient is not None:
                out.add(keys.grad(quantity(node)))
        return out

    def leave_blank(self, quantities: Iterable[str]) -> None:
        """Draw the values of these quantities (trace names: "Z1", "dW1", "cost") as empty boxes to fill in,
        every entry of them, wherever they are written (at a node or on its arrows): a worksheet's graph.
        A name not on the graph is refused, naming those that are."""
        names = set(quantities)
        unknown = names - self.quantities()
        if unknown:
            raise TracerError(f"blank: {', '.join(sorted(unknown))} is not on this graph; its quantities are "
                              + ", ".join(sorted(self.quantities())))
        for node in self.nodes.values():
            if quantity(node) in names:
                node.value = dataclasses.replace(node.value, blank=True)
            if node.gradient is not None and keys.grad(quantity(node)) in names:
                node.gradient = dataclasses.replace(node.gradient, blank=True)
        if self.local is not None and names:
            self.local = {edge: dataclasses.replace(v, blank=True) for edge, v in self.local.items()}

    def fan_out(self, node_id: str) -> int:
        return sum(1 for tail, _ in self.edges if tail == node_id)

    def on_node(self, node: Node) -> bool:
        """Where a node's value and gradient are written: at the node, or on the arrows out of it.

        A value that feeds several nodes is written once at its node instead of on every arrow; so are
        the layer view's data and parameter matrices, which keeps that view narrow enough for a page.
        """
        leaf = self.view == "layer" and node.kind in ("input", "target", "parameter")
        return node.kind == "cost" or leaf or self.fan_out(node.id) > 1 or self.crowds_the_cost(node)

    def crowds_the_cost(self, node: Node) -> bool:
        """A prediction or label of the scalar view when several examples meet at the cost: its numbers go
        on the node, or the labels of all their arrows would pile up around the cost."""
        into_cost = [tail for tail, head in self.edges if head == "cost"]
        return self.view == "scalar" and node.id in into_cost and len(into_cost) > 2

    def shape(self, node: Node, lines: int = 1) -> str:
        """The node's outline: a circle for an operation, but a rounded box for one whose matrix is written
        inside it (a value that feeds several nodes, in the layer view), and an ellipse round a name and
        its numbers (`lines` of them: a circle round more than two would be as tall as it is wide)."""
        if node.kind in ("linear", "activation", "merge") and isinstance(node.value, Mat) and self.on_node(node):
            return "box"
        return "ellipse" if SHAPES[node.kind] == "circle" and lines > 2 else SHAPES[node.kind]

    def rounded(self, node: Node) -> bool:
        return node.kind in ("input", "target") or (self.shape(node) == "box" and node.kind != "parameter")

    def node_lines(self, node: Node) -> list[Line]:
        lines = [Line((node.sym,))]
        if node.note:
            lines.append(Line(node.note))
        if self.on_node(node):
            lines = _named(node.sym, node.value, "fwd") + lines[1:]
            if node.gradient is not None:
                lines += _named(Grad(self.cost, node.sym), node.gradient, "bwd")
        return lines

    def edge_lines(self, tail: Node) -> tuple[list[Line], list[Line]] | None:
        """(forward label, backward label) on the arrows out of `tail`, or None when they are on the node."""
        if self.on_node(tail):
            return None
        backward = _named(Grad(self.cost, tail.sym), tail.gradient, "bwd") if tail.gradient is not None else []
        return [Line((tail.value,), "fwd")], backward

    def arrow(self, tail_id: str, head_id: str) -> tuple[list[Line], list[Line] | None]:
        """(forward label, backward label or None for no backward arrow) of the arrow tail → head.

        The backward arrow carries the gradient of the cost that flows back, or in the local view the
        local gradient ∂head/∂tail that the chain rule multiplies it by.
        """
        tail, head = self.nodes[tail_id], self.nodes[head_id]
        labels = self.edge_lines(tail)
        forward, backward = labels if labels else ([], [])
        if self.local is not None:
            value = self.local.get((tail_id, head_id))
            return forward, (_named(Grad(head.sym, tail.sym), value, "bwd") if value is not None else None)
        if backward or (tail.gradient is not None and self.fan_out(tail_id) == 1):
            return forward, backward
        return forward, None


def quantity(node: Node) -> str:
    """The trace's name of a node's value: "W1" for the layer view's W1 and the scalar view's W1_0_1."""
    return node.quantity or node.id


def _named(name: Sym | Grad, value: Num | Mat, role: str) -> list[Line]:
    """'name = value' on one line; a matrix goes under its name, which keeps the label narrow."""
    if isinstance(value, Mat):
        return [Line((name, " ="), role), Line((value,), role)]
    return [Line((name, " = ", value), role)]


def default_view(trace: Trace) -> str:
    """Part I's scalar view for one example, the vectorized layer view for a batch."""
    return "scalar" if int(trace.meta["batch_size"]) == 1 and trace.X.ndim == 2 else "layer"


def computational_graph(chapter: Chapter, trace: Trace, step: int, view: str | None = None,
                        local: bool = False, blank: Iterable[str] = ()) -> Graph:
    """The graph of `chapter` at recorded `step`, in the "scalar" or "layer" view.

    `local=True` writes on each backward arrow the local gradient ∂head/∂tail (∂z/∂w = x, ∂ŷ/∂z = σ′(z),
    …) instead of the gradient of the cost that flows back. `blank`: quantities (trace names, "Z1",
    "dW1", "cost") whose values are drawn as empty boxes to fill in (see Graph.leave_blank); with
    `local`, any blank leaves the local gradients blank too.
    """
    view = view or default_view(trace)
    if view not in VIEWS:
        raise TracerError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
    values = trace.at(step)
    graph = (_scalar_graph if view == "scalar" else _layer_graph)(chapter, trace, values)
    if local:
        graph.local = local_gradients(chapter, graph, values, trace)
    graph.leave_blank(blank)
    return graph


def local_gradients(chapter: Chapter, graph: Graph, v: dict[str, Any], trace: Trace) -> dict[tuple[str, str], Num | Mat]:
    """∂head/∂tail for each arrow, from the head's own local gradients (`shown_locals`, read from the
    trace): a linear node's are the other input's value (∂z/∂w = a, ∂z/∂a = w; in the layer view A_prevᵀ
    and Wᵀ, as dW = dZ·A_prevᵀ and dA_prev = Wᵀ·dZ) and 1 for a bias; an activation's its recorded
    local gradient (a softmax's, its Jacobian: in the layer view the first example's); the cost's is
    its gradient. Data going into the cost (the labels) gets none."""
    net = trace.network
    out: dict[tuple[str, str], Num | Mat] = {}
    shown: dict[str, dict[str, np.ndarray]] = {}
    for tail_id, head_id in graph.edges:
        tail, head = graph.nodes[tail_id], graph.nodes[head_id]
        wrt = quantity(tail)
        if head.kind == "cost":
            if tail.kind != "target":
                out[(tail_id, head_id)] = _entry_of(chapter, keys.grad(wrt), v, tail.entry)
            continue
        node = net.node(graph.heads[(tail_id, head_id)])
        if node.name not in shown:
            shown[node.name] = node.shown_locals({n: v[n] for n in node.inputs}, {p: v[p] for p in node.params},
                                                 v[node.name], {w: v[keys.local(node.name, w)] for w in node.locals})
        local = np.asarray(shown[node.name][wrt], dtype=float)
        source = node.local_quantity(wrt)
        places = 0 if source is None else _places(chapter, source, v[source])  # a bias's 1 is whole
        if tail.entry is None:  # the layer view: the matrix (a Jacobian: the first example's)
            matrix = local[..., 0] if local.ndim == 3 else local
            out[(tail_id, head_id)] = Mat(matrix, places)
            continue
        out[(tail_id, head_id)] = Num(float(local[node.local_entry(wrt, head.entry, tail.entry)]), places)
    return out


def _entry_of(chapter: Chapter, name: str, v: dict[str, Any], entry: tuple[int, ...] | None) -> Num | Mat:
    value = np.asarray(v[name], dtype=float)
    if entry is None:
        return Mat(value, _places(chapter, name, value))
    return Num(float(value[entry]), _places(chapter, name, value))


#: Data written as whole numbers when it is whole, as the documents write it (the article's x₁ = 0, y = 1).
WHOLE_DATA = ("A0", "Y")


def _places(chapter: Chapter, name: str, values: Any = None) -> int:
    """The decimals a quantity is shown with: the chapter's, or none for whole data."""
    if name in WHOLE_DATA and values is not None and np.all(np.mod(values, 1) == 0):
        return 0
    return chapter.display.decimals_of(name)


def _cross_note(chapter: Chapter, k: int) -> tuple[Item, ...]:
    """'= x₁·x₂' under an input that is a feature cross (the crosses are the last rows of X)."""
    first = chapter.n_features
    if k < first:
        return ()
    items: list[Item] = ["= "]
    for n, i in enumerate(chapter.feature_crosses[k - first]):
        items += (["·"] if n else []) + [Sym("x", str(i + 1))]
    return tuple(items)


def _scalar_graph(chapter: Chapter, trace: Trace, v: dict[str, Any]) -> Graph:
    """One node per input, weight and unit of each example, as Part I of seed 000 draws its network."""
    net = trace.network
    drawn = [node for node in net.nodes[:-1] if node.name in net.on_path]
    m = v[INPUT].shape[1]
    size = m * (v[INPUT].shape[0] + sum(v[n.name].shape[0] for n in drawn) + v[TARGET].shape[0]) + \
        sum(int(np.size(v[p])) for p in net.parameter_names)
    if size > MAX_SCALAR_NODES:
        raise TracerError(f"the scalar view of this network at {m} examples would have about {size} nodes; "
                          "use the layer view (--view layer)")
    graph = Graph(Sym("Cost"), "scalar")  # one name for the cost in the graph and the text
    several = len(net.linear) > 1
    example = (lambda j: f"({j + 1})") if m > 1 else (lambda j: "")
    group = (lambda j: str(j + 1)) if m > 1 else (lambda j: "")
    unit = lambda i, n: str(i + 1) if n > 1 else ""  # noqa: E731
    # Z₁, A₁, b₁ as in the text (an entry's row after a comma when the node has several units)
    entry = lambda l, i, n: f"{l},{i + 1}" if n > 1 and l else (str(i + 1) if n > 1 else l)  # noqa: E731
    num = lambda name, *index: Num(float(v[name][index]), _places(chapter, name, v[name]))  # noqa: E731

    def ident(name: str, *index: int) -> str:
        return "_".join([name, *map(str, index)])

    def add(name: str, sym: Sym, kind: str, index: tuple[int, ...], grad: bool = True, **more: Any) -> None:
        gradient = num(keys.grad(name), *index) if grad and keys.grad(name) in v else None
        graph.add(Node(ident(name, *index), sym, kind, num(name, *index), gradient, quantity=name, entry=index,
                       **more))

    for j in range(m):
        for k in range(v[INPUT].shape[0]):
            add(INPUT, Sym("x", str(k + 1), example(j)), "input", (k, j), grad=False, note=_cross_note(chapter, k),
                group=group(j), row="inputs")
    for node in drawn:
        stem, label = keys.stem_and_index(node.name)
        n = v[node.name].shape[0]
        if isinstance(node, Linear):
            n_prev = v[node.inputs[0]].shape[0]
            tag = f"[{label}]" if several else ""
            for i in range(n):
                for k in range(n_prev):
                    sub = f"{k + 1}" if n == 1 else (f"{i + 1}{k + 1}" if max(n, n_prev) < 10 else f"{i + 1},{k + 1}")
                    add(node.W, Sym("w", sub, tag), "parameter", (i, k))
                if node.b:
                    add(node.b, Sym("b", entry(label, i, n)), "parameter", (i, 0))
        kind = "linear" if isinstance(node, Linear) else node.kind
        note = (Sym(node.glyph),) if node.kind == "activation" else ()
        for j in range(m):
            for i in range(n):
                add(node.name, Sym(stem, entry(label, i, n), example(j)), kind, (i, j), note=note, group=group(j))
                head = ident(node.name, i, j)
                if isinstance(node, Linear):
                    for k in range(v[node.inputs[0]].shape[0]):
                        graph.edge(ident(node.inputs[0], k, j), head, node.name)
                        graph.edge(ident(node.W, i, k), head, node.name)
                    if node.b:
                        graph.edge(ident(node.b, i, 0), head, node.name)
                elif node.elementwise or node.kind == "merge":
                    for name in node.inputs:
                        graph.edge(ident(name, i, j), head, node.name)
                else:  # each output of a column-wise node reads its example's whole column
                    for name in node.inputs:
                        for k in range(v[name].shape[0]):
                            graph.edge(ident(name, k, j), head, node.name)
    prediction = net.prediction
    for j in range(m):
        for i in range(v[prediction].shape[0]):
            graph.edge(ident(prediction, i, j), COST)
        for o in range(v[TARGET].shape[0]):  # the example's labels, beside its predictions
            add(TARGET, Sym("y", unit(o, v[TARGET].shape[0]), example(j)), "target", (o, j), grad=False,
                group=group(j))
            graph.edge(ident(TARGET, o, j), COST)
    graph.add(Node(COST, graph.cost, "cost", Num(v[COST], _places(chapter, COST)), quantity=COST))
    return graph


def _sym(name: str) -> Sym:
    """A matrix's name in a graph: W with subscript 1; batch normalisation's γ and β of layer 1 as γ^[1], β^[1]
    (never read as Adam's β₁)."""
    stem, index = keys.stem_and_index(name)
    return Sym(stem, "", f"[{index}]") if stem in keys.BRACKETED and index else Sym(stem, index)


def _layer_graph(chapter: Chapter, trace: Trace, v: dict[str, Any]) -> Graph:
    """One node per matrix (X, W1, b1, Z1, A1, …), as the article's vectorized part draws it."""
    net = trace.network
    graph = Graph(Sym("Cost"), "layer")

    def mat(name: str) -> Mat | None:
        return Mat(np.asarray(v[name], dtype=float), _places(chapter, name, v[name])) if name in v else None

    def add(name: str, kind: str, **more: Any) -> None:
        sym = Sym("X") if name == INPUT else Sym("Y") if name == TARGET else _sym(name)
        gradient = mat(keys.grad(name)) if kind not in ("input", "target") else None
        graph.add(Node(name, sym, kind, mat(name), gradient, quantity=name, **more))

    add(INPUT, "input")
    for node in net.nodes[:-1]:
        if node.name not in net.on_path and not getattr(node, "drawn", False):  # the sigmoid a cost from logits
            continue  # does without (a dropout mask is drawn: no gradient reaches it, yet it is read)
        if node in net.weighted:  # a linear or convolution node
            row = f"row {node.name}"  # W_l → Z_l ← b_l side by side, the layers running down the page
            add(node.W, "parameter", row=row)
            add(node.name, "linear", row=row)
            graph.edge(node.inputs[0], node.name, node.name)
            graph.edge(node.W, node.name, node.name)
            if node.b:
                add(node.b, "parameter", row=row)
                graph.edge(node.b, node.name, node.name)
                graph.flipped.add((node.b, node.name))
            continue
        row = f"row {node.name}" if node.params else None  # batch norm's γ, β beside the node they scale
        for p in node.params:
            add(p, "parameter", row=row)
        add(node.name, node.kind, note=(Sym(node.glyph),) if node.kind == "activation" else (),
            **({"row": row} if row else {}))
        for name in node.inputs + node.params:
            graph.edge(name, node.name, node.name)
    add(TARGET, "target")
    graph.edge(net.prediction, COST)
    graph.edge(TARGET, COST)
    graph.add(Node(COST, graph.cost, "cost", Num(v[COST], _places(chapter, COST)), quantity=COST))
    return graph


# --------------------------------------------------------------------------- Graphviz and TikZ

#: Every graph runs top to bottom, forward: both views, every chapter (down the page, where a layer
#: view's matrices have room; left to right they shrink a graph to an unreadable strip).
RANKDIR = "TB"

SHAPES = {"input": "box", "target": "box", "parameter": "box", "linear": "circle", "activation": "circle",
          "merge": "circle", "pooling": "circle", "reshape": "circle", "normalisation": "circle", "dropout": "circle",
          "cost": "ellipse"}


def to_dot(graph: Graph, sizes: tuple[int, int] = SVG_SIZES) -> Any:
    """The graph as a `graphviz.Digraph`: forward arrows solid blue, gradient arrows dashed vermillion."""
    import graphviz

    dot = graphviz.Digraph("computational_graph")
    node_size, label_size = sizes
    dot.attr(rankdir=RANKDIR, nodesep="0.15", ranksep="0.35",
             fontname=FONT, fontsize=str(label_size), bgcolor="white", pad="0.05", newrank="true")
    dot.attr("node", fontname=FONT, fontsize=str(node_size), margin="0.04,0.02", height="0.3", width="0.3")
    dot.attr("edge", fontname=FONT, fontsize=str(label_size), arrowsize="0.6")
    _dot_nodes(dot, graph, lambda line, node: _dot_node(line, graph, node))
    _in_reading_order(dot, graph)
    for tail_id, head_id in graph.edges:
        forward, backward = graph.arrow(tail_id, head_id)
        ends, flip = _ends(graph, tail_id, head_id)
        dot.edge(*ends, html_label(forward) if forward else None, id=f"f:{tail_id}:{head_id}",
                 color=FORWARD, fontcolor=FORWARD, dir="back" if flip else "forward")
        if backward is not None:
            # Laid out tail → head like the forward arrow, so the layout keeps its direction; drawn back.
            dot.edge(*ends, html_label(backward) if backward else None, id=f"b:{tail_id}:{head_id}",
                     dir="forward" if flip else "back", style="dashed", color=BACKWARD, fontcolor=BACKWARD)
    return dot


def _in_reading_order(dot: Any, graph: Graph) -> None:
    """The scalar view left to right as a reader counts it: example 1 first (the examples in the order they
    are given), x₁ before x₂ (invisible arrows between an example's inputs, on one rank, which dot sets
    tail left of head)."""
    if graph.view != "scalar":
        return
    dot.attr(mclimit="0.01")  # dot's crossing minimisation would reorder the examples (4, 2, 3, 1)
    inputs: dict[str, list[str]] = {}
    for n in graph.nodes.values():
        if n.kind == "input":
            inputs.setdefault(n.group, []).append(n.id)
    for names in inputs.values():
        for tail, head in zip(names, names[1:]):
            dot.edge(tail, head, style="invis", id=f"i:{tail}:{head}")  # "i:": drawn by nobody


def _dot_nodes(dot: Any, graph: Graph, add: Any) -> None:
    """Each node through `add(subgraph, node)`: an example's nodes in its box (the scalar view), a row's
    side by side (rank=same: the layer view's W1, Z1, b1)."""
    boxes: dict[str, dict[str, list[Node]]] = {}
    for node in graph.nodes.values():
        boxes.setdefault(node.group, {}).setdefault(node.row, []).append(node)
    for group, rows in boxes.items():
        with dot.subgraph(name=f"cluster_{group}" if group else None) as box:
            if group:
                box.attr(label=f"example {group}", color="#999999", style="dashed", fontcolor="#555555")
            for row, nodes in rows.items():
                with box.subgraph() as line:
                    if row:
                        line.attr(rank="same")
                    for node in nodes:
                        add(line, node)


def _ends(graph: Graph, tail_id: str, head_id: str) -> tuple[tuple[str, str], bool]:
    """(the ends an arrow is laid out between, whether it is flipped: head first, drawn back)."""
    flip = (tail_id, head_id) in graph.flipped
    return ((head_id, tail_id) if flip else (tail_id, head_id)), flip


def _dot_node(dot: Any, graph: Graph, node: Node) -> None:
    style = "rounded" if graph.rounded(node) else {"parameter": "filled", "cost": "bold"}.get(node.kind, "")
    lines = graph.node_lines(node)
    dot.node(node.id, html_label(lines), id=f"n:{node.id}", shape=graph.shape(node, len(lines)),
             style=style, fillcolor=PARAMETER_FILL if node.kind == "parameter" else "white",
             peripheries="2" if node.kind == "cost" else "1")


# --------------------------------------------------------------------------- the names-only layout


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
    """A graph laid out by its names only: nodes and forward arrows in the graph's order, the bounding box (points)."""

    nodes: tuple[Placed, ...]
    arrows: tuple[Arrow, ...]
    width: float
    height: float


def names_dot(graph: Graph, rankdir: str = RANKDIR, name_pt: int = SVG_SIZES[0], node_size: float = 0.34,
              rank_gap: float = 0.5) -> Any:
    """The graph's nodes and forward arrows without values, as a `graphviz.Digraph`: every node
    `node_size` inches (the cost wider), its name set at `name_pt`; arrows named `tail:head`.
    For pictures that write the numbers in themselves (slides, web page), one layout for every step."""
    import graphviz

    dot = graphviz.Digraph("outline")
    dot.attr(rankdir=rankdir, nodesep="0.12", ranksep=f"{rank_gap:g}", pad="0.04", fontsize=str(name_pt))
    dot.attr("node", fontsize=str(name_pt), fixedsize="true", width=str(node_size), height=str(node_size))
    dot.attr("edge", arrowsize="0.6")
    _dot_nodes(dot, graph, lambda line, node: line.node(
        node.id, node.id, shape=SHAPES[node.kind], width=f"{node_size * (1.6 if node.kind == 'cost' else 1):.2f}"))
    for tail_id, head_id in graph.edges:
        ends, flip = _ends(graph, tail_id, head_id)
        dot.edge(*ends, id=f"{tail_id}:{head_id}", **({"dir": "back"} if flip else {}))
    return dot


def names_layout(graph: Graph, rankdir: str = RANKDIR, name_pt: int = SVG_SIZES[0],
                 node_size: float = 0.34, rank_gap: float = 0.5) -> Outline:
    """Where Graphviz puts the graph's nodes and arrows when only their names are drawn (see names_dot),
    in points from the bottom left."""
    layout = json.loads(_pipe(names_dot(graph, rankdir, name_pt, node_size, rank_gap), "json"))
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
    order = {edge: i for i, edge in enumerate(graph.edges)}
    arrows.sort(key=lambda a: order[(a.tail, a.head)])  # in the graph's order, as its nodes
    return Outline(tuple(placed[n] for n in graph.nodes if n in placed), tuple(arrows), x1 - x0, y1 - y0)


def graphviz_available() -> bool:
    """Whether Graphviz's `dot`, which lays out the graphs, is on the PATH."""
    return shutil.which("dot") is not None


def _run_dot(graph: Graph, fmt: str, sizes: tuple[int, int] = SVG_SIZES) -> str:
    return _pipe(to_dot(graph, sizes), fmt)


def _pipe(dot: Any, fmt: str) -> str:
    import graphviz

    try:
        return dot.pipe(format=fmt, encoding="utf-8", quiet=True)
    except graphviz.ExecutableNotFound:
        raise TracerError("drawing a graph needs Graphviz's `dot` program (Debian: apt install graphviz)") from None
    except graphviz.CalledProcessError as exc:  # pragma: no cover - dot rejecting our own input is a bug
        if exc.returncode == -signal.SIGINT:  # Ctrl-C reached dot first
            raise KeyboardInterrupt from None
        raise TracerError(f"Graphviz could not lay out the graph: {exc.stderr!r}") from None


def graph_svg(graph: Graph) -> str:
    """The graph as SVG, drawn by us from dot's layout (the same layout the TikZ picture uses).

    Graphviz's own SVG leaves sub- and superscripts to `baseline-shift` (ignored by Firefox and
    GitHub's viewer: "W 1 =") and sizes text for its fonts, not the reader's. Here every text span is
    placed where dot put it and held to the width dot measured (`textLength`), so matrix brackets
    stay where they belong in any font; sub- and superscripts are smaller and moved by `dy`, which
    every SVG viewer follows; minus signs are U+2212.
    """
    return layout_svg(json.loads(_run_dot(graph, "json")))


#: Sub- and superscripts: their size as a fraction of the text's, and how far they move (in em).
SCRIPT_SIZE, SUB_DROP, SUP_RISE = 0.72, 0.28, 0.38
#: The font the reader's SVG viewer is asked for: Times, which dot's text widths are measured for.
SVG_FONT = "'Times New Roman',Times,'Liberation Serif','Nimbus Roman',serif"
_SVG_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="{w:.1f}pt" height="{h:.1f}pt" '
             'viewBox="{x0:.2f} {y0:.2f} {w:.2f} {h:.2f}" font-family="{font}">\n')


def layout_svg(layout: dict[str, Any]) -> str:
    """SVG from a Graphviz `json` layout (its xdot drawing operations); public so other pictures can reuse it.

    Each node, cluster and edge becomes a `<g>` with its Graphviz `id` (the graph's element ids:
    `n:W1`, `f:W1:Z1`, `b:W1:Z1`). Text spans that are sub- or superscripts carry
    `class="sub"` / `class="sup"`.
    """
    x0, y0, x1, y1 = (float(c) for c in layout["bb"].split(","))
    flip = lambda y: y1 + y0 - y  # noqa: E731 - dot's y runs up, SVG's down
    out = [_SVG_HEAD.format(x0=x0, y0=y0, w=x1 - x0, h=y1 - y0, font=html.escape(SVG_FONT, quote=True)),
           f'<rect x="{x0:.2f}" y="{y0:.2f}" width="{x1 - x0:.2f}" height="{y1 - y0:.2f}" fill="white"/>\n']
    for obj in layout.get("objects", []) + layout.get("edges", []):
        ops = [op for key in ("_draw_", "_hdraw_", "_tdraw_", "_ldraw_", "_hldraw_", "_tldraw_")
               for op in obj.get(key, [])]
        if not ops:
            continue
        ident = obj.get("id") or obj.get("name", "")
        out.append(f'<g id="{html.escape(str(ident), quote=True)}">\n')
        out += _xdot_svg(ops, flip)
        out.append("</g>\n")
    return "".join(out) + "</svg>\n"


def _xdot_svg(ops: list[dict[str, Any]], flip: Any) -> list[str]:
    """SVG elements for a list of xdot operations (pen and fill colour, style, shapes, fonts, text)."""
    pen, fill, dash, width = "#000000", "none", "", 1.0
    size, chars = 14.0, 0
    out: list[str] = []
    spans: list[dict[str, Any]] = []
    pts = lambda points: " ".join(f"{x:.2f},{flip(y):.2f}" for x, y in points)  # noqa: E731

    def paint(filled: bool) -> str:
        stroke = f' stroke="{pen}"' + (f' stroke-width="{width:g}"' if width != 1 else "") + dash
        return f' fill="{fill if filled else "none"}"' + stroke

    for op in ops:
        kind = op["op"]
        if kind == "c":
            pen = _svg_colour(op["color"])
        elif kind == "C":
            fill = _svg_colour(op["color"])
        elif kind == "S":
            style = op["style"]
            if style in ("dashed", "dotted"):
                dash = ' stroke-dasharray="5,2"' if style == "dashed" else ' stroke-dasharray="1,5"'
            elif style == "bold":
                width = 2.0
            elif style.startswith("setlinewidth("):
                width = float(style[13:-1])
            elif style == "solid":
                dash = ""
        elif kind in ("e", "E"):
            cx, cy, rx, ry = op["rect"]
            out.append(f'<ellipse cx="{cx:.2f}" cy="{flip(cy):.2f}" rx="{rx:.2f}" ry="{ry:.2f}"{paint(kind == "E")}/>\n')
        elif kind in ("p", "P"):
            out.append(f'<polygon points="{pts(op["points"])}"{paint(kind == "P")}/>\n')
        elif kind == "L":
            out.append(f'<polyline points="{pts(op["points"])}"{paint(False)}/>\n')
        elif kind in ("b", "B"):
            p = op["points"]
            d = f"M{p[0][0]:.2f},{flip(p[0][1]):.2f}C" + " ".join(f"{x:.2f},{flip(y):.2f}" for x, y in p[1:])
            out.append(f'<path d="{d}"{paint(kind == "B")}/>\n')
        elif kind == "F":
            size = float(op["size"])
        elif kind == "t":
            chars = int(op["fontchar"])
        elif kind == "T":
            x, w = float(op["pt"][0]), float(op["width"])
            left = x - {"l": 0, "c": w / 2, "r": w}[op["align"]]
            spans.append({"left": left, "y": float(op["pt"][1]), "width": w, "text": _true_minus(op["text"]),
                          "size": size, "colour": pen, "chars": chars, "align": op["align"], "x": x})
    return out + [_svg_text(run, flip) for run in _text_runs(spans)]


def _text_runs(spans: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Spans dot set edge to edge on one baseline (a name, its scripts, " = 0.031") as one run of text.

    A matrix's cells are apart (cell spacing), so each stays a run of its own, placed by dot.
    """
    runs: list[list[dict[str, Any]]] = []
    for span in spans:
        last = runs[-1][-1] if runs else None
        if last and abs(last["y"] - span["y"]) < 0.01 and abs(last["left"] + last["width"] - span["left"]) < 0.6:
            runs[-1].append(span)
        else:
            runs.append([span])
    return runs


_NUMBER = re.compile(r"\u2212?\d+(\.\d+)?")


def _svg_text(run: list[dict[str, Any]], flip: Any) -> str:
    """One run of text: a lone number ending where dot ended it (columns and brackets stay put in any
    font); anything else flowed by the viewer and centred where dot centred it, its sub- and
    superscripts smaller and moved with `dy` (which every SVG viewer follows, unlike `baseline-shift`)."""
    first = run[0]
    size, colour = first["size"], first["colour"]
    y = flip(first["y"])
    if len(run) == 1 and _NUMBER.fullmatch(first["text"]) and not first["chars"] & 24:
        # A number ends where dot ended it: a matrix's columns stay right-aligned inside their brackets.
        # Held to the width dot measured for it (Times): in a wider font (a browser's serif fallback) the
        # columns would otherwise run into each other (−0.703−0.752).
        centred = first["align"] == "c"
        x = first["left"] + first["width"] / (2 if centred else 1)
        return (f'<text x="{x:.2f}" y="{y:.2f}" text-anchor="{"middle" if centred else "end"}" '
                f'font-size="{size:.2f}" fill="{colour}" textLength="{first["width"]:.2f}" '
                f'lengthAdjust="spacingAndGlyphs">{html.escape(first["text"], quote=False)}</text>\n')
    centre = first["left"] + sum(span["width"] for span in run) / 2
    parts, raised, previous, previous_text = [], 0.0, "", ""
    for span in run:
        chars = span["chars"]
        script = "sub" if chars & 16 else "sup" if chars & 8 else ""
        attrs = ""
        shift = 0.0
        if script:
            shift = span["size"] * (SUB_DROP if script == "sub" else -SUP_RISE)
            attrs += f' class="{script}" font-size="{span["size"] * SCRIPT_SIZE:.2f}"'
            if script == "sup" and previous == "sub":  # stacked over the subscript, as TeX sets x₁⁽¹⁾
                attrs += f' dx="{-_script_width(previous_text, span["size"]):.2f}"'
        if shift != raised:
            attrs += f' dy="{shift - raised:.2f}"'
            raised = shift
        attrs += ' font-style="italic"' if chars & 2 else ""
        attrs += ' font-weight="bold"' if chars & 1 else ""
        attrs += f' fill="{span["colour"]}"' if span["colour"] != colour else ""
        parts.append(f"<tspan{attrs}>{html.escape(span['text'], quote=False)}</tspan>")
        previous, previous_text = script, span["text"]
    # A number in powers of ten (−2.4 × 10⁻⁵) is held to dot's width too, as a lone number is.
    held = (f' textLength="{sum(span["width"] for span in run):.2f}" lengthAdjust="spacingAndGlyphs"'
            if _NUMBER.match(first["text"]) and "×" in first["text"] else "")
    return (f'<text x="{centre:.2f}" y="{y:.2f}" text-anchor="middle" font-size="{size:.2f}" fill="{colour}"{held}>'
            + "".join(parts) + "</text>\n")


def _script_width(text: str, size: float) -> float:
    """About how wide a script is (half an em a character): how far a superscript steps back to stack."""
    return 0.5 * len(text) * size * SCRIPT_SIZE


def _svg_colour(colour: str) -> str:
    """'#rrggbbaa' (dot's transparent) as 'none'; other colours as given."""
    return "none" if len(colour) == 9 and colour.endswith("00") else colour[:7] if len(colour) == 9 else colour


_MINUS = re.compile(r"-(?=[\d.])")


def _true_minus(text: str) -> str:
    """A hyphen before a digit is a minus sign: U+2212, as a reader and a typesetter write it."""
    return _MINUS.sub("\u2212", text)


def graph_tikz(graph: Graph) -> str:
    """The graph as a TikZ picture in dot's layout, its labels typeset by LaTeX.

    Needs \\usepackage{amsmath} and \\usepackage{tikz} (TIKZ_PREAMBLE). A picture wider than the
    line is scaled down to the line width.
    """
    layout = json.loads(_run_dot(graph, "json", TIKZ_SIZES))
    node_pt, label_pt = TIKZ_SIZES
    pt = lambda x, y: f"({x:.2f},{y:.2f})"  # noqa: E731
    out = [r"\begingroup%",
           rf"\definecolor{{tracerfwd}}{{HTML}}{{{FORWARD[1:]}}}\definecolor{{tracerbwd}}{{HTML}}{{{BACKWARD[1:]}}}%",
           rf"\definecolor{{tracerparam}}{{HTML}}{{{PARAMETER_FILL[1:]}}}%",
           r"\ifdefined\tracergraphbox\else\newsavebox\tracergraphbox\fi%",
           r"\sbox\tracergraphbox{%",
           r"\arraycolsep=2pt\relax%",  # matrices as compact as Graphviz sized them
           # Font sizes fixed to those Graphviz laid the picture out for, whatever the document's size.
           r"\begin{tikzpicture}[x=1bp, y=1bp, inner sep=1.5pt,",
           rf"  font=\fontsize{{{node_pt}}}{{{node_pt + 1}}}\selectfont,",
           r"  every node/.style={align=center},",
           rf"  lbl/.style={{font=\fontsize{{{label_pt}}}{{{label_pt + 1}}}\selectfont, inner sep=0pt}}]"]
    for obj in layout.get("objects", []):
        if "nodes" in obj or obj["name"] not in graph.nodes:  # a subgraph: draw an example's box
            if obj["name"].startswith("cluster_") and "bb" in obj:
                x0, y0, x1, y1 = (float(c) for c in obj["bb"].split(","))
                out.append(rf"\draw[gray, dashed, thin] {pt(x0, y0)} rectangle {pt(x1, y1)};")
                if "lp" in obj:
                    x, y = (float(c) for c in obj["lp"].split(","))
                    out.append(rf"\node[lbl, gray] at {pt(x, y)} {{{obj.get('label', '')}}};")
            continue
        node = graph.nodes[obj["name"]]
        x, y = (float(c) for c in obj["pos"].split(","))
        w, h = float(obj["width"]) * 72, float(obj["height"]) * 72
        # The outline is drawn at dot's size (so arrows meet it), with core TikZ only: no libraries needed.
        shape = graph.shape(node)
        if shape == "box":
            corners = ", rounded corners=3bp" if graph.rounded(node) else ""
            fill = "tracerparam" if node.kind == "parameter" else "white"
            corner, opposite = pt(x - w / 2, y - h / 2), pt(x + w / 2, y + h / 2)
            out.append(rf"\draw[thin, fill={fill}{corners}] {corner} rectangle {opposite};")
        else:
            out.append(rf"\draw[thin, fill=white] {pt(x, y)} ellipse ({w / 2:.2f} and {h / 2:.2f});")
            if node.kind == "cost":
                out.append(rf"\draw[thick] {pt(x, y)} ellipse ({w / 2 - 4:.2f} and {h / 2 - 4:.2f});")
        out.append(rf"\node at {pt(x, y)} {{{latex_label(graph.node_lines(node))}}}; % n:{node.id}")
    for edge in layout.get("edges", []):
        ident = edge["id"]  # f:tail:head or b:tail:head, as to_dot names the arrows (i: an invisible one)
        role, tail, head = ident.split(":")
        if role == "i":
            continue
        backward = role == "b"
        colour = "tracerbwd" if backward else "tracerfwd"
        style = f"{colour}, thin" + (", dashed" if backward else "")
        for op in edge.get("_draw_", []):
            if op["op"] == "b":
                p = op["points"]
                path = pt(*p[0]) + "".join(f" .. controls {pt(*p[i])} and {pt(*p[i + 1])} .. {pt(*p[i + 2])}"
                                           for i in range(1, len(p) - 2, 3))
                out.append(rf"\draw[{style}] {path};")
        for key in ("_hdraw_", "_tdraw_"):
            for op in edge.get(key, []):
                if op["op"] in ("P", "p"):
                    out.append(rf"\fill[{colour}] " + " -- ".join(pt(*q) for q in op["points"]) + " -- cycle;")
        forward, back = graph.arrow(tail, head)
        lines = (back or []) if backward else forward
        if lines and "lp" in edge:
            x, y = (float(c) for c in edge["lp"].split(","))
            out.append(rf"\node[lbl] at {pt(x, y)} {{{latex_label(lines)}}}; % {ident}")
    out += [r"\end{tikzpicture}}%",
            # Scaled down to the line's width, then to most of the page's height (a big network is tall).
            r"\ifdim\wd\tracergraphbox>\linewidth\sbox\tracergraphbox{\resizebox{\linewidth}{!}{\usebox\tracergraphbox}}\fi%",
            r"\ifdim\ht\tracergraphbox>0.75\textheight\sbox\tracergraphbox{\resizebox{!}{0.75\textheight}{\usebox\tracergraphbox}}\fi%",
            r"\usebox\tracergraphbox%",
            r"\endgroup"]
    return "\n".join(out) + "\n"


#: The macros document_figures' LaTeX uses (the documents' preamble has them too, from here).
FIGURE_MACROS = r"""\makeatletter
% \tracerneed{length}: a new page here unless that much room is left on this one (needspace's rule, which
% texlive's recommended collection lacks). Headings and figures use it: neither is left alone at a page's foot.
\newcommand\tracerneed[1]{\par\penalty-100\begingroup\setlength{\dimen@}{#1}\dimen@ii\pagegoal
  \advance\dimen@ii-\pagetotal\ifdim\dimen@>\dimen@ii\ifdim\dimen@ii>\z@\vfil\fi\break\fi\endgroup}
% A figure placed where the text refers to it, not floated (a float can land between two lines of a pass):
% an unbreakable block with a numbered figure caption.
\newsavebox\tracerfigbox
\newenvironment{tracerfigure}{\par\medskip\noindent\begin{minipage}{\linewidth}\def\@captype{figure}\centering}%
  {\end{minipage}\par\medskip}
% One of two figures side by side in a tracerfigure, with its own caption.
\newenvironment{tracerpanel}[1]{\begin{minipage}[t]{#1}\def\@captype{figure}\centering}{\end{minipage}}
% \tracerpos{kind}{name}: where this point of the text lands (page, height from the page's foot in sp),
% written to the log at shipout; the tests read the layout from it.
\newcommand\tracerpos[2]{\ifdefined\pdfsavepos\pdfsavepos\write-1{tracerpos:#1:#2:\thepage:\the\pdflastypos}\fi}
\makeatother
"""
#: What a LaTeX document needs for graph_tikz pictures and included PDF figures.
TIKZ_PREAMBLE = "\\usepackage{amsmath}\n\\usepackage{graphicx}\n\\usepackage{tikz}\n\\usepackage{flafter}\n" + FIGURE_MACROS


def tikz_document(body: str) -> str:
    """A small complete LaTeX document around a TikZ picture (for `tracer figure -o graph.tex`)."""
    return ("\\documentclass[11pt]{article}\n\\usepackage[margin=2cm]{geometry}\n" + TIKZ_PREAMBLE
            + "\\pagestyle{empty}\n\\begin{document}\n\\noindent\n" + body + "\\end{document}\n")


# --------------------------------------------------------------------------- learning curve and boundary


def preload_plotting() -> None:
    """Import matplotlib with its SVG and PDF writers (about a third of a second), and the graphviz
    package, now: worker processes forked afterwards start with them instead of importing them each."""
    import graphviz  # noqa: F401
    import matplotlib.backends.backend_pdf  # noqa: F401
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig: Any, fmt: str) -> bytes:
    """The figure as SVG or PDF bytes, identical from run to run."""
    import io

    import matplotlib

    metadata = {"svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}[fmt]
    buffer = io.BytesIO()
    # Type 3 fonts in PDF: embedding Type 42 subsets (fontTools) takes most of the time of a figure.
    with matplotlib.rc_context({"svg.hashsalt": "tracer", "svg.fonttype": "none", "pdf.fonttype": 3}):
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


#: A cost axis spanning more than this many decades is drawn on a log scale (the linear view is an option).
LOG_DECADES = 2.0
CURVE_SCALES = ("auto", "log", "linear")


def curve_scale(costs: np.ndarray, scale: str = "auto") -> str:
    """"log" or "linear": the given one, or for "auto" log when the costs span more than LOG_DECADES decades
    (on a linear axis such a curve lies flat along the bottom for most of its length)."""
    if scale not in CURVE_SCALES:
        raise TracerError(f"curve scale {scale!r}: expected one of {', '.join(CURVE_SCALES)}")
    if scale != "auto":
        return scale
    positive = costs[np.isfinite(costs) & (costs > 0)]
    if positive.size < 2 or positive.size < costs[np.isfinite(costs)].size:
        return "linear"  # a log axis cannot show a zero cost
    return "log" if np.log10(positive.max() / positive.min()) > LOG_DECADES else "linear"


def learning_curve(chapter: Chapter, trace: Trace, fmt: str = "svg", scale: str = "auto") -> bytes:
    """The cost at every step run, with the recorded steps marked when there are few of them.

    The last point is labelled at the precision of the document's cost table. `scale` is "auto"
    (log when the cost spans more than two decades), "log" or "linear" (the article's view).
    """
    costs = np.asarray(trace.costs, dtype=float)
    scale = curve_scale(costs, scale)
    fig = _figure(5.0, 3.0)
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.16, top=0.95)
    ax = fig.add_subplot()
    steps = np.arange(len(costs))
    ax.plot(steps, costs, color=FORWARD, linewidth=1.5, label="cost")
    if len(trace.steps) <= MARKED_POINTS:
        ax.plot(trace.steps, trace.arrays["cost"], "o", color=FORWARD, markersize=3.5, label="recorded steps")
        ax.legend(frameon=False, loc="lower left")  # a falling curve leaves the lower left empty
    last = len(costs) - 1
    final = shown_styled(costs[last], document_spec(chapter).table_decimals, style="unicode")
    # The end point gets a marker; its label sits in the upper right, which a falling curve has left
    # (near its end the curve is at its lowest), joined to the point by a thin line so no curve crosses it.
    ax.plot([last], [costs[last]], "o", color=FORWARD, markersize=4)
    ax.annotate(f"step {last}: cost {final}".replace("-", "\u2212"), xy=(last, costs[last]),
                xytext=(0.97, 0.85), textcoords="axes fraction", ha="right", va="top", fontsize=9,
                arrowprops={"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkB": 3})
    ax.set_xlabel("step")
    ax.set_ylabel("cost (log scale)" if scale == "log" else "cost")
    ax.set_xlim(0, max(last, 1))
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if scale == "log":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
        # Decades written as a student reads them (0.1, 0.01, 0.001), not as typeset powers of ten.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.{max(0, -int(np.floor(np.log10(y))))}f}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))  # few ticks: text is most of the drawing time
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, fmt)


# --------------------------------------------------------------------------- the learned kernels
# Each convolution's kernels before training and after the last update, each kernel (one filter over one
# channel) a grid of cells shaded by its weights on one diverging scale per convolution (blue below zero,
# vermillion above, white at zero: the arrows' colours), each cell labelled with its weight.


def kernel_count(chapter: Chapter) -> int:
    """How many kernels (filters × channels, over every convolution) the picture draws."""
    shapes = chapter.network.parameter_shapes(chapter.n_inputs)
    return sum(shapes[n.W][0] * shapes[n.W][1] for n in chapter.network.nodes if isinstance(n, Conv2d))


def has_kernels(chapter: Chapter) -> bool:
    """Does the chapter's network have a convolution whose kernels can be drawn?"""
    return any(isinstance(n, Conv2d) for n in chapter.network.nodes)


def learned_kernels(chapter: Chapter, trace: Trace, fmt: str = "svg") -> bytes:
    """Every kernel of every convolution, at step 0 (top row) and after the last update (bottom row)."""
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list("tracer", [FORWARD, "#ffffff", BACKWARD])
    convs = [n for n in chapter.network.nodes if isinstance(n, Conv2d)]
    first = trace.at(int(trace.steps[0]))
    panels = [(node, f, c) for node in convs for f in range(first[node.W].shape[0])
              for c in range(first[node.W].shape[1])]
    fig = _figure(1.6 * len(panels) + 0.8, 3.6)
    for k, (node, f, c) in enumerate(panels):
        for row, (weights, when) in enumerate(((first[node.W], "step 0"), (trace.final[node.W], "trained"))):
            kernel = np.asarray(weights, dtype=float)[f, c]
            scale = max(float(np.max(np.abs(trace.final[node.W]))), float(np.max(np.abs(first[node.W]))), 1e-12)
            ax = fig.add_subplot(2, len(panels), row * len(panels) + k + 1)
            ax.imshow(kernel, cmap=cmap, vmin=-scale, vmax=scale)
            decimals = min(chapter.display.decimals_of(node.W), 2)
            for (i, j), w in np.ndenumerate(kernel):
                ax.text(j, i, shown(w, decimals).replace("-", "\u2212"), ha="center", va="center", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            name = node.W + (f"[{f + 1}, {c + 1}]" if len(panels) > 1 else "")
            ax.set_title(f"{name}, {when}", fontsize=8)
    fig.tight_layout()
    return _save(fig, fmt)


def has_boundary(chapter: Chapter) -> bool:
    """A decision boundary is drawn over two input features: one output (a threshold) or one per class."""
    return chapter.X.ndim == 2 and chapter.n_features == 2


def boundary_grid(chapter: Chapter, trace: Trace, n: int = GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x₁ values, x₂ values, ŷ on the n × n grid: outputs × n × n) for the trained network over the
    input square.

    The square is the data's range widened by half its span on each side. The grid goes through the
    chapter's own graph (Graph.forward) with its feature crosses appended, as the chapter appends them
    to X.
    """
    if not has_boundary(chapter):
        raise TracerError(f"{chapter.name}: a decision boundary needs 2 input features; this chapter has "
                          + ("images" if chapter.X.ndim == 4 else f"{chapter.n_features}"))
    X = trace.X[:2]
    low, high = X.min(axis=1), X.max(axis=1)
    span = np.where(high > low, high - low, 1.0)
    x1 = np.linspace(low[0] - span[0] / 2, high[0] + span[0] / 2, n)
    x2 = np.linspace(low[1] - span[1] / 2, high[1] + span[1] / 2, n)
    g1, g2 = np.meshgrid(x1, x2)
    A0 = append_crosses(np.vstack([g1.ravel(), g2.ravel()]), chapter.feature_crosses)
    net = chapter.network
    out = {name: np.empty(shape) for name, shape in net.value_shapes(A0.shape[0], A0.shape[1]).items()}
    with np.errstate(all="ignore"):
        net.predict(trace.final, A0, out, trace.running)  # dropout off, batch norm by its running averages
    yhat = out[net.output.name]
    return x1, x2, yhat.reshape(yhat.shape[0], n, n)


def boundary_captions(chapter: Chapter) -> dict[bool, tuple[str, str]]:
    """(caption, what a sentence refers to it as) of the plain (False) and shaded (True) boundary figures."""
    regions = "two" if chapter.Y.shape[0] <= 2 else str(chapter.Y.shape[0])
    return {False: ("Decision boundary of the trained network, with the training points by class",
                    "where the trained network's decision changes"),
            True: (f"The same decision boundary, the {regions} regions shaded by the class the network gives them",
                   f"the {regions} regions the network tells apart")}


def _ticks(axis: np.ndarray) -> np.ndarray:
    """Ticks at the data's ends and middle (the input square widened by half a span each side)."""
    span = (axis[-1] - axis[0]) / 2
    return np.linspace(axis[0] + span / 2, axis[-1] - span / 2, 3)


def threshold(trace: Trace) -> float:
    """Where the decision changes: halfway between the two labels (0.5 for labels 0 and 1)."""
    return float(trace.Y.min() + trace.Y.max()) / 2


def decision_boundary(chapter: Chapter, trace: Trace, shaded: bool = False, fmt: str = "svg") -> bytes:
    """The trained network's decision boundary over the input square, the training points by class."""
    return decision_boundaries(chapter, trace, fmt)[shaded]


#: Okabe–Ito colours for the classes after the first two (blue, vermillion), and the markers of the classes.
CLASS_COLOURS = (FORWARD, BACKWARD, "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
CLASS_TINTS = (REGION_1, REGION_0, "#B3E0D2", "#F7DDA6", "#EBC9DC", "#C7E4F6", "#FAF5C2", "#D9D9D9")
CLASS_MARKERS = ("X", "o", "^", "s", "D", "v", "P", "*")


def decision_boundaries(chapter: Chapter, trace: Trace, fmt: str = "svg") -> dict[bool, bytes]:
    """{False: the plain boundary, True: the same with the regions shaded}, drawn once and saved twice.
    One output: the line where ŷ crosses halfway between the labels; one output per class: the lines
    between the regions where each class has the largest ŷ."""
    x1, x2, yhat = boundary_grid(chapter, trace)
    if yhat.shape[0] > 1:
        return _class_regions(chapter, trace, x1, x2, yhat, fmt)
    return _two_regions(chapter, trace, x1, x2, yhat[0], fmt)


def _axes(x1: np.ndarray, x2: np.ndarray) -> tuple[Any, Any]:
    # Narrow, the legend under the square: the plain and the shaded boundary sit side by side on a page
    # (and fit a phone's width) at their natural size, their text as large as the document's figures'.
    fig = _figure(3.4, 3.7)
    fig.subplots_adjust(left=0.17, right=0.96, bottom=0.31, top=0.98)
    ax = fig.add_subplot()
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_xlim(x1[0], x1[-1])
    ax.set_ylim(x2[0], x2[-1])
    ax.set_xticks(_ticks(x1))  # few ticks: cleaner, and text is most of a figure's drawing time
    ax.set_yticks(_ticks(x2))
    ax.set_aspect("equal")
    return fig, ax


_LEGEND = dict(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False, fontsize=8.5,
               columnspacing=1.2, handlelength=1.5)


def _two_regions(chapter: Chapter, trace: Trace, x1: np.ndarray, x2: np.ndarray, yhat: np.ndarray,
                 fmt: str) -> dict[bool, bytes]:
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cut = threshold(trace)
    low, high = shown_styled(float(trace.Y.min()), 0), shown_styled(float(trace.Y.max()), 0)
    level = shown_styled(cut, _places(chapter, trace.network.output.name), style="unicode")
    fig, ax = _axes(x1, x2)
    if yhat.min() < cut < yhat.max():
        ax.contour(x1, x2, yhat, levels=[cut], colors="black", linewidths=1.5)
    X, Y = trace.X[:2], trace.Y[0]
    ones, zeros = Y > cut, Y <= cut
    ax.scatter(X[0, ones], X[1, ones], marker="X", s=90, color=FORWARD, edgecolors="black", linewidths=0.6,
               label=f"y = {high}", zorder=3)
    ax.scatter(X[0, zeros], X[1, zeros], marker="o", s=70, color=BACKWARD, edgecolors="black", linewidths=0.6,
               label=f"y = {low}", zorder=3)
    handles = ax.get_legend_handles_labels()[0] + [Line2D([], [], color="black", linewidth=1.5, label=f"ŷ = {level}")]
    ax.legend(handles=handles, **_LEGEND)
    figures = {False: _save(fig, fmt)}
    ax.imshow(yhat >= cut, origin="lower", extent=(x1[0], x1[-1], x2[0], x2[-1]), interpolation="none",
              cmap=ListedColormap([REGION_0, REGION_1]), vmin=0, vmax=1, zorder=0)
    handles += [Patch(color=REGION_1, label=f"ŷ ≥ {level}: {high}"),
                Patch(color=REGION_0, label=f"ŷ < {level}: {low}")]
    ax.legend(handles=handles, **_LEGEND)
    figures[True] = _save(fig, fmt)
    return figures


def _class_regions(chapter: Chapter, trace: Trace, x1: np.ndarray, x2: np.ndarray, yhat: np.ndarray,
                   fmt: str) -> dict[bool, bytes]:
    """Each class's region (where its ŷ is the largest), its training points by marker and colour."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    k = yhat.shape[0]
    if k > len(CLASS_COLOURS):
        raise TracerError(f"{chapter.name}: a decision boundary draws at most {len(CLASS_COLOURS)} classes; "
                          f"this network has {k} outputs")
    winner = yhat.argmax(axis=0)
    fig, ax = _axes(x1, x2)
    present = sorted(set(np.unique(winner).tolist()))
    if len(present) > 1:
        ax.contour(x1, x2, winner, levels=[c + 0.5 for c in range(k - 1)], colors="black", linewidths=1.5)
    X, labels = trace.X[:2], trace.Y.argmax(axis=0)
    for c in range(k):
        mine = labels == c
        ax.scatter(X[0, mine], X[1, mine], marker=CLASS_MARKERS[c], s=80, color=CLASS_COLOURS[c], edgecolors="black",
                   linewidths=0.6, label=f"class {c + 1}", zorder=3)
    handles = ax.get_legend_handles_labels()[0] + [Line2D([], [], color="black", linewidth=1.5,
                                                          label="class boundary")]
    ax.legend(handles=handles, **_LEGEND)
    figures = {False: _save(fig, fmt)}
    ax.imshow(winner, origin="lower", extent=(x1[0], x1[-1], x2[0], x2[-1]), interpolation="none",
              cmap=ListedColormap(list(CLASS_TINTS[:k])), vmin=-0.5, vmax=k - 0.5, zorder=0)
    handles += [Patch(color=CLASS_TINTS[c], label=f"ŷ picks class {c + 1}") for c in range(k)]
    ax.legend(handles=handles, **_LEGEND)
    figures[True] = _save(fig, fmt)
    return figures


# --------------------------------------------------------------------------- files and documents


def worked_steps(chapter: Chapter, trace: Trace) -> list[int]:
    """The steps a document works by hand (its [document] worked_steps), each drawn as a graph."""
    return sorted(set(document_spec(chapter).worked_steps))


def _stem(chapter: Chapter) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", chapter.name)


def figure_bytes(chapter: Chapter, trace: Trace, kind: str, fmt: str, step: int | None = None,
                 view: str | None = None, shaded: bool = False, local: bool = False,
                 scale: str = "auto") -> bytes:
    """One figure as the bytes of a file: graph (.svg, .tex), curve or boundary (.svg, .pdf)."""
    if kind not in KINDS:
        raise TracerError(f"figure kind {kind!r}: expected one of {', '.join(KINDS)}")
    allowed = {"graph": ("svg", "tex"), "curve": ("svg", "pdf"), "boundary": ("svg", "pdf")}[kind]
    if fmt not in allowed:
        got = f".{fmt}" if fmt else "a name without a suffix"
        raise TracerError(f"a {kind} figure is written as {' or '.join('.' + a for a in allowed)}, not {got}")
    if kind == "graph":
        graph = computational_graph(chapter, trace, int(trace.steps[0]) if step is None else step, view, local)
        text = graph_svg(graph) if fmt == "svg" else tikz_document(graph_tikz(graph))
        return text.encode("utf-8")
    if kind == "curve":
        return learning_curve(chapter, trace, fmt, scale)
    return decision_boundary(chapter, trace, shaded, fmt)


def default_name(chapter: Chapter, kind: str, fmt: str, step: int | None = None, view: str | None = None,
                 shaded: bool = False, local: bool = False) -> str:
    """E.g. 01-or-one-example-graph-step-0-scalar.svg, 03-xor-feature-cross-boundary-shaded.pdf."""
    parts = [_stem(chapter), kind]
    if kind == "graph":
        parts += [f"step-{step}"] + ([view] if view else []) + (["local"] if local else [])
    if kind == "boundary" and shaded:
        parts.append("shaded")
    return "-".join(parts) + "." + fmt


def document_figures(chapter: Chapter, trace: Trace, out_dir: Path, fmt: str,
                     view: str | None = None, graphs_from: Trace | None = None,
                     written: list[Path] | None = None,
                     extra: Callable[[str], tuple[bytes, str, str]] | None = None) -> dict[str, str]:
    """Write the chapter's figures under `out_dir`; return, per place in a document, the text to put there.

    Keys: "graph_step_<N>" for each worked step, "curve" when the chapter runs more than FEW_STEPS
    steps, "boundary" and "boundary_shaded" when its input has two features (plus crosses). Figures
    are numbered in that order, as a document shows them. For fmt "md" the text is a Markdown image
    of an SVG with a visible caption line under it ("*Figure 2. …*", not only alt text); for "tex" a
    sentence referring to the figure and a float (a TikZ picture or an \\includegraphics of a PDF)
    with a numbered \\caption and a \\label. Files go to `out_dir`/figures/ and are linked by paths relative to
    `out_dir`, the folder of the documents. Without Graphviz's `dot` there are no graph keys (the
    documents are built without those pictures; `tracer build` says so once). The graphs are drawn
    from `graphs_from` when given (the documents pass their hand-carried trace: the worked lines' figures).
    Each file written is appended to `written` when given (`tracer build` lists them). `extra`, when
    given, draws one more figure of the long run, last, under the key "compare": called with the file
    format, it gives (the picture, its caption, what a sentence refers to it as).
    """
    if fmt not in ("md", "tex"):
        raise TracerError(f"document format {fmt!r}: expected 'md' or 'tex'")
    out_dir = Path(out_dir)
    file_fmt = "svg" if fmt == "md" else "pdf"
    # Graphviz runs in its own process: lay the graphs out in threads while matplotlib draws.
    with ThreadPoolExecutor(max_workers=2) as pool:
        steps = worked_steps(chapter, trace) if graphviz_available() else []
        hand = set(graphs_from.steps.tolist()) if graphs_from is not None else set()
        graphs = {step: computational_graph(chapter, graphs_from if step in hand else trace, step, view)
                  for step in steps}
        drawn = {step: pool.submit(graph_svg if fmt == "md" else graph_tikz, graph) for step, graph in graphs.items()}
        # (key, picture: bytes of a file or TikZ text, file name, caption, what the text says it shows, width)
        pictures: list[tuple[str, bytes | str, str, str, str, str]] = []
        long_run = int(trace.meta["steps_run"]) > FEW_STEPS
        if long_run:
            scale = curve_scale(np.asarray(trace.costs, dtype=float))
            pictures.append(("curve", learning_curve(chapter, trace, file_fmt), default_name(chapter, "curve", file_fmt),
                             "Learning curve: the cost at every step" + (", on a log scale" if scale == "log" else ""),
                             "the cost at every step", r"0.65\linewidth"))
        if long_run and has_kernels(chapter):
            pictures.append(("kernels", learned_kernels(chapter, trace, file_fmt), default_name(chapter, "kernels", file_fmt),
                             "The kernels before training and after the last update, each weight a shaded cell",
                             "what each kernel learned", f"{min(0.8, 0.1 + 0.22 * kernel_count(chapter)):.2f}\\linewidth"))
        if has_boundary(chapter) and long_run:
            boundaries, captions = decision_boundaries(chapter, trace, file_fmt), boundary_captions(chapter)
            pictures.append(("boundary", boundaries[False], default_name(chapter, "boundary", file_fmt),
                             *captions[False], r"\linewidth"))
            pictures.append(("boundary_shaded", boundaries[True], default_name(chapter, "boundary", file_fmt, shaded=True),
                             *captions[True], r"\linewidth"))
        if extra is not None:
            picture, caption, shows = extra(file_fmt)
            pictures.append(("compare", picture, default_name(chapter, "compare", file_fmt), caption, shows,
                             r"\linewidth"))
        graph_pictures = []
        for step, graph in graphs.items():
            caption = (f"Computational graph at step {step}: forward values on solid blue arrows, gradients of the "
                       "cost on dashed vermillion arrows")
            if graph.abbreviated():
                caption += (f". Matrices with more than {MAX_SHOWN} rows or columns are shown by their top-left "
                            f"{CORNER} × {CORNER} corner and their size")
            picture = drawn[step].result()
            graph_pictures.append((f"graph_step_{step}", picture.encode("utf-8") if fmt == "md" else picture,
                                   default_name(chapter, "graph", "svg", step), caption,
                                   f"the computational graph at step {step}", ""))
    placed: dict[str, str] = {}
    panels: dict[str, tuple[str, str, str, str]] = {}  # LaTeX: (picture, label, caption, what it shows)
    # Numbered in the order a document shows them: the worked steps' graphs, then the long run's figures.
    for number, (key, picture, name, caption, shows, width) in enumerate(graph_pictures + pictures, start=1):
        if fmt == "md":
            path = write_atomic(out_dir / FIGURES_DIR / name, picture)
            if written is not None:
                written.append(path)
            placed[key] = f"![Figure {number}: {caption}]({FIGURES_DIR}/{name})\n\n*Figure {number}. {caption}.*"
            continue
        if isinstance(picture, bytes):
            path = write_atomic(out_dir / FIGURES_DIR / name, picture)
            if written is not None:
                written.append(path)
            picture = rf"\includegraphics[width={width}]{{{FIGURES_DIR}/{name}}}" + "\n"
        label = "fig:" + key.replace("_", "-")
        tex_caption = caption.replace("×", r"$\times$")
        # Set in the text where it is referred to, never floated into a pass (the preamble's tracerfigure);
        # measured first, so that the sentence, the picture and its caption start a page together when
        # they do not fit on this one. A graph's measure goes before its step's heading ("…_before").
        measure = (rf"\sbox\tracerfigbox{{{picture.strip()}}}%" + "\n"
                   + rf"\tracerneed{{\dimexpr\ht\tracerfigbox+\dp\tracerfigbox+{TEX_FIGURE_LINES}\baselineskip\relax}}")
        shown = (rf"\noindent\tracerpos{{ref}}{{{label}}}Figure~\ref{{{label}}} shows {shows}." + "\n"
                 + rf"\begin{{tracerfigure}}\tracerpos{{figure}}{{{label}}}\usebox\tracerfigbox" + "\n"
                 + rf"\caption{{{tex_caption}.}}\label{{{label}}}" + "\n\\end{tracerfigure}")
        panels[key] = (picture.strip(), label, tex_caption, shows)
        if key.startswith("graph_step_"):
            placed[key + "_before"] = measure
            placed[key] = shown
        else:  # after the worked steps: a float, which never comes before its reference (flafter)
            placed[key] = _float(picture.strip(), label, tex_caption, f"Figure~\\ref{{{label}}} shows {shows}.", [label])
    if fmt == "tex" and "boundary" in panels and "boundary_shaded" in panels:
        placed["boundary"], placed["boundary_shaded"] = _side_by_side(panels["boundary"], panels["boundary_shaded"]), ""
    return placed


def _float(body: str, label: str | None, caption: str | None, sentence: str, labels: list[str]) -> str:
    """The sentence that refers to a figure, then the figure as a float at the top or bottom of a page or on
    a page of floats: the text fills the rest of the page (LaTeX; the preamble's flafter keeps a float from
    coming before its reference)."""
    refs = "".join(rf"\tracerpos{{ref}}{{{name}}}" for name in labels)
    marks = "" if label is None else rf"\tracerpos{{figure}}{{{label}}}"
    # The sentence's paragraph ends before the float: a float met inside a paragraph belongs to wherever the
    # paragraph started, which can be the page before the sentence (and flafter would let it go first).
    # Near a page's foot the sentence starts the next page: TeX could still push it there after reading the
    # float, which would then take the top of that page, above its reference.
    return (rf"\tracerneed{{5\baselineskip}}\noindent{refs}{sentence}" + "\n\n\\begin{figure}[tbp]\n\\centering" + marks + "\n" + body + "\n"
            + (rf"\caption{{{caption}.}}\label{{{label}}}" + "\n" if caption else "") + "\\end{figure}")


def _side_by_side(left: tuple[str, str, str, str], right: tuple[str, str, str, str]) -> str:
    """Two figures side by side in one float, each with its own numbered caption (LaTeX)."""
    box = "".join(rf"\begin{{tracerpanel}}{{0.47\linewidth}}\tracerpos{{figure}}{{{label}}}{picture}"
                  rf"\caption{{{caption}.}}\label{{{label}}}\end{{tracerpanel}}" + ("\\hfill" if i == 0 else "")
                  for i, (picture, label, caption, _) in enumerate((left, right)))
    sentence = rf"Figures~\ref{{{left[1]}}} and~\ref{{{right[1]}}} show {left[3]} and {right[3]}."
    return _float(box, None, None, sentence, [left[1], right[1]])


#: Lines of text a figure is measured with besides its picture: the sentence that refers to it, its
#: caption, the space around it, and (for a step's graph) the step's heading above it.
TEX_FIGURE_LINES = 5


def write_figure(chapter: Chapter, trace: Trace, kind: str, path: Path | None = None, step: int | None = None,
                 view: str | None = None, shaded: bool = False, local: bool = False, scale: str = "auto") -> Path:
    """Write one figure to `path` (its suffix says the format) or to its default .svg name; return the path."""
    if kind == "graph" and step is None:
        step = int(trace.steps[0])
    path = Path(path) if path is not None else Path(default_name(chapter, kind, "svg", step, view, shaded, local))
    try:
        data = figure_bytes(chapter, trace, kind, path.suffix.lstrip(".").lower(), step, view, shaded, local, scale)
    except TracerError as exc:
        raise TracerError(f"{path}: {exc}") from None
    return write_atomic(path, data)

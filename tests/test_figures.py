"""Figures: numbers read back out of the drawn graphs, determinism, LaTeX compilation, the curved boundary."""

from __future__ import annotations

import re
from decimal import Decimal
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import needs

import tracer
from tracer.cli import main
from tracer.documents import figures
from tracer.rounding import decimals_in, format_number, round_half_up, shown_styled

SVG = "{http://www.w3.org/2000/svg}"
#: A number as format_number writes it: plain, or "2.3 × 10⁻⁴" (SVG) / "2.3 \times 10^{-4}" (LaTeX).
SVG_NUMBER = re.compile(r"[-\u2212]?\d+(?:\.\d+)?(?: × 10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?")
TEX_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?: \\times 10\^\{-?\d+\})?")
#: Indices of names in LaTeX (w_{12}, z^{[1](2)}), which are not numbers shown.
TEX_INDEX = re.compile(r"_\{[^}]*\}|\^\{[(\[][^}]*\}")
pdflatex = needs("pdflatex")
#: Every graph is laid out by Graphviz's dot.
pytestmark = needs("dot")


def chapter_and_trace(trace_of, name: str) -> tuple[tracer.Chapter, tracer.Trace]:
    return tracer.load_chapter(name), trace_of(name)


# --------------------------------------------------------------------------- reading numbers back


def svg_numbers(svg: str) -> dict[tuple[str, str], list[str]]:
    """{(element id, "fwd" | "bwd"): the numbers written in it, in order}, told apart by their colour."""
    roles = {figures.FORWARD.lower(): "fwd", figures.BACKWARD.lower(): "bwd"}
    found: dict[tuple[str, str], list[str]] = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        ident = group.get("id", "")
        if not ident[:2] in ("n:", "f:", "b:"):
            continue
        for text in group.iter(f"{SVG}text"):
            # A subscript or superscript of a name (w₁, z⁽²⁾) is not a number shown.
            shown = [text.text or ""] + [span.text or "" for span in text if span.get("class") not in ("sub", "sup")]
            role = roles.get((text.get("fill") or "").lower())
            numbers = SVG_NUMBER.findall("".join(shown))
            if role and numbers:
                found.setdefault((ident, role), []).extend(numbers)
    return found


def tikz_numbers(tikz: str) -> dict[tuple[str, str], list[str]]:
    """The same read from a TikZ picture: each label line ends with "% <element id>"."""
    found: dict[tuple[str, str], list[str]] = {}
    for line in tikz.splitlines():
        match = re.search(r"% ([nfb]:\S+)$", line)
        if not match:
            continue
        for role, math in re.findall(r"\\color\{tracer(fwd|bwd)\}\$(.*?)\$\}", line):
            numbers = [n.replace(r" \times 10^{", " × 10^{") for n in TEX_NUMBER.findall(TEX_INDEX.sub("", math))]
            found.setdefault((match.group(1), role), []).extend(numbers)
    return found


def expected(chapter: tracer.Chapter, trace: tracer.Trace, step: int, quantity: str, role: str,
             style: str) -> list[str]:
    """What the trace says an element must show: the value (fwd) or gradient (bwd) of `quantity`.

    `quantity` is an element's node: "cost", a matrix "W1" (layer view) or an entry "W1_0_1" (scalar view).
    """
    values = trace.at(step)
    name, *index = quantity.split("_")
    if name == "cost":
        array, key = np.asarray(values["cost"]), "cost"
    else:
        key = name if role == "fwd" else "d" + name
        array = values[key][tuple(int(i) for i in index)] if index else values[key]
    decimals = chapter.display.decimals_of(key)
    if key in ("A0", "Y") and np.all(np.mod(values[key], 1) == 0):
        decimals = 0  # data that is whole is written whole, as in the documents (x₁ = 0, y = 1)
    out = [shown_styled(x, decimals, style=style) for x in np.ravel(array)]  # as the worked lines print
    if style == "unicode":  # the SVG sets a minus sign as a minus sign, U+2212
        out = [re.sub(r"^-", "\u2212", x) for x in out]
    return [s.replace(r" \times 10^{", " × 10^{") for s in out]


def check_against_trace(chapter, trace, step, found, style):
    """Every number on the graph is the trace's, and every node's value and gradient is shown somewhere."""
    assert found, "no numbers found on the graph"
    valued, graded = set(), set()
    for (ident, role), numbers in found.items():
        quantity = ident.split(":")[1]  # a node, or the tail of an arrow (what flows along it)
        assert numbers == expected(chapter, trace, step, quantity, role, style), (ident, role)
        (valued if role == "fwd" else graded).add(quantity)
    nodes = {ident.split(":")[1] for ident, _ in found if ident.startswith("n:")}
    return valued, graded, nodes


DRAWN = {"svg": (figures.graph_svg, svg_numbers, "unicode"), "tikz": (figures.graph_tikz, tikz_numbers, "latex")}


@pytest.mark.parametrize("name, view, fmt", [
    ("01-or-one-example", "scalar", "svg"), ("02-or-batch", "layer", "svg"), ("02-or-batch", "scalar", "svg"),
    ("03-xor-feature-cross", "scalar", "svg"), ("04-xor-hidden-layer", "layer", "svg"),
    ("01-or-one-example", "scalar", "tikz"), ("04-xor-hidden-layer", "layer", "tikz"),
    ("06-xor-relu-adam", "layer", "tikz"), ("06-xor-relu-adam", "scalar", "tikz"),
])
def test_numbers_on_the_graph_are_the_trace_rounded(trace_of, name, view, fmt):
    chapter, trace = chapter_and_trace(trace_of, name)
    graph = figures.computational_graph(chapter, trace, 0, view)
    draw, read, style = DRAWN[fmt]
    check_graph(chapter, trace, 0, graph, read(draw(graph)), style)


def check_graph(chapter, trace, step, graph, found, style):
    valued, graded, _ = check_against_trace(chapter, trace, step, found, style)
    assert valued == set(graph.nodes)  # every node's value is written, on the node or its arrow
    assert graded == {n.id for n in graph.nodes.values() if n.gradient is not None}


@pytest.mark.parametrize("view", ["scalar", "layer"])
def test_a_cost_from_logits_takes_the_last_z_directly(view):
    raw = tomllib.loads(tracer.load_chapter("06-xor-relu-adam").path.read_text(encoding="utf-8"))
    raw["train"].update(from_logits=True, steps=3)
    chapter = tracer.parse_chapter(raw, name="from-logits")
    trace = tracer.run(chapter)
    graph = figures.computational_graph(chapter, trace, 1, view)
    assert ("Z2" if view == "layer" else "Z2_0_0", "cost") in graph.edges
    assert not any(node.startswith("A2") for node in graph.nodes)
    check_graph(chapter, trace, 1, graph, svg_numbers(figures.graph_svg(graph)), "unicode")


def test_part_1_graph_shows_the_articles_figures(trace_of):
    # Seed 000, Part I, x₁ = x₂ = 0, y = 0, w = (0.1, 0.6), b = 0:
    # z = 0, ŷ = σ(0) = 0.5, L = ½(0 − 0.5)² = 0.125; ∂L/∂ŷ = ŷ − y = 0.5,
    # ∂L/∂z = 0.5 · σ'(0) = 0.5 · 0.25 = 0.125, ∂L/∂w = 0.125 · x = 0, ∂L/∂b = 0.125.
    chapter, trace = chapter_and_trace(trace_of, "01-or-one-example")
    found = svg_numbers(figures.graph_svg(figures.computational_graph(chapter, trace, 0)))
    assert found[("n:cost", "fwd")] == ["0.125"]
    assert found[("f:A0_0_0:Z1_0_0", "fwd")] == found[("f:Y_0_0:cost", "fwd")] == ["0"]  # data, written whole
    assert found[("f:W1_0_1:Z1_0_0", "fwd")] == ["0.600"]
    assert found[("f:Z1_0_0:A1_0_0", "fwd")] == ["0.000"]
    assert found[("f:A1_0_0:cost", "fwd")] == ["0.500"]
    assert found[("b:A1_0_0:cost", "bwd")] == ["0.500"]
    assert found[("b:Z1_0_0:A1_0_0", "bwd")] == ["0.125"]
    assert found[("b:W1_0_0:Z1_0_0", "bwd")] == found[("b:W1_0_1:Z1_0_0", "bwd")] == ["0.000"]
    assert found[("b:b1_0_0:Z1_0_0", "bwd")] == ["0.125"]
    assert ("b:A0_0_0:Z1_0_0", "bwd") not in found  # no gradient flows into the data


def test_vectorized_graph_after_one_update_shows_the_articles_exercise_answer(trace_of):
    # "∂Cost/∂W = [-0.044, -0.035] and ∂Cost/∂b = [-0.031]" at the second step, cost 0.084.
    chapter, trace = chapter_and_trace(trace_of, "02-or-batch")
    found = svg_numbers(figures.graph_svg(figures.computational_graph(chapter, trace, 1, "layer")))
    assert found[("n:W1", "bwd")] == ["\u22120.044", "\u22120.035"]  # minus signs, U+2212
    assert found[("n:b1", "bwd")] == ["\u22120.031"]
    assert found[("n:cost", "fwd")] == ["0.084"]


def test_gradient_arrows_are_dashed_and_forward_arrows_solid(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "04-xor-hidden-layer")
    root = ET.fromstring(figures.graph_svg(figures.computational_graph(chapter, trace, 0)))
    for group in root.iter(f"{SVG}g"):
        ident = group.get("id", "")
        if ident[:2] in ("f:", "b:"):
            path = group.find(f"{SVG}path")
            assert (path.get("stroke-dasharray") is not None) == ident.startswith("b:"), ident


def test_a_feature_cross_input_is_named_as_the_product(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "03-xor-feature-cross")
    svg = figures.graph_svg(figures.computational_graph(chapter, trace, 0, "scalar"))
    node = next(g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("id") == "n:A0_2_0")
    text = "".join(node.itertext())
    assert "".join(text.split()) == "x3(1)=x1·x2"


# --------------------------------------------------------------------------- determinism


def test_two_builds_are_byte_identical(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "03-xor-feature-cross")

    def build() -> list[bytes]:
        graph = figures.computational_graph(chapter, trace, 0)
        boundaries = figures.decision_boundaries(chapter, trace, "svg")
        return [figures.graph_svg(graph).encode(), figures.graph_tikz(graph).encode(),
                figures.learning_curve(chapter, trace, "svg"), figures.learning_curve(chapter, trace, "pdf"),
                boundaries[False], boundaries[True], figures.decision_boundary(chapter, trace, True, "pdf")]

    first, second = build(), build()
    assert first == second
    svg, _, curve_svg, curve_pdf, *_ = first
    assert b"<!--" not in svg  # Graphviz's version comment is stripped
    assert b"<dc:date>" not in curve_svg and b"CreationDate" not in curve_pdf


# --------------------------------------------------------------------------- LaTeX


@pdflatex
def test_tikz_graphs_and_figures_compile_and_render_a_page(trace_of, tmp_path):
    parts = []
    for name in ("01-or-one-example", "04-xor-hidden-layer", "03-xor-feature-cross"):
        chapter, trace = chapter_and_trace(trace_of, name)
        placed = figures.document_figures(chapter, trace, tmp_path, "tex")
        parts += [placed[key] for key in sorted(placed)]
    body = "\n\n".join(parts)
    assert r"\begin{tikzpicture}" in body and r"\includegraphics" in body
    document = ("\\documentclass{article}\n" + figures.TIKZ_PREAMBLE + "\\begin{document}\n"
                + "Worked example: the graph of step 0.\n\n" + body + "\n\\end{document}\n")
    (tmp_path / "doc.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "doc.pdf", "page"],
                       cwd=tmp_path, check=True, timeout=60)
        page = next(tmp_path.glob("page*.png")).read_bytes()
        assert page[:8] == b"\x89PNG\r\n\x1a\n" and len(page) > 5_000


# --------------------------------------------------------------------------- decision boundary


def crossings(x1: np.ndarray, x2: np.ndarray, yhat: np.ndarray, level: float) -> np.ndarray:
    """(x₁, x₂) where ŷ crosses `level` along each grid column and each row, by linear interpolation."""
    def along(across: np.ndarray, down: np.ndarray, values: np.ndarray) -> list[tuple[float, float]]:
        points = []
        for c in range(len(across)):
            line = values[:, c] - level
            for r in np.nonzero(np.sign(line[:-1]) * np.sign(line[1:]) < 0)[0]:
                t = line[r] / (line[r] - line[r + 1])
                points.append((across[c], down[r] + t * (down[r + 1] - down[r])))
        return points

    by_row = [(a, b) for b, a in along(x2, x1, yhat.T)]
    return np.array(along(x1, x2, yhat) + by_row)


def line_misfit(points: np.ndarray) -> float:
    """The largest distance of the points from their best straight line (total least squares)."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred)[2][-1]
    return float(np.max(np.abs(centred @ normal)))


def test_feature_cross_boundary_is_curved_and_matches_a_hand_computed_network(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "03-xor-feature-cross")
    x1, x2, (yhat,) = figures.boundary_grid(chapter, trace)
    # By hand: ŷ = σ(w₁x₁ + w₂x₂ + w₃·x₁x₂ + b) with the trained weights.
    (w1, w2, w3), b = trace.final["W1"][0], trace.final["b1"][0, 0]
    g1, g2 = np.meshgrid(x1, x2)
    np.testing.assert_allclose(yhat, 1 / (1 + np.exp(-(w1 * g1 + w2 * g2 + w3 * g1 * g2 + b))), rtol=1e-12)
    # The grid includes the four XOR points, all on the right side: no straight line can do that.
    at = lambda a, b: yhat[np.argmin(abs(x2 - b)), np.argmin(abs(x1 - a))]  # noqa: E731
    assert at(0, 1) > 0.5 and at(1, 0) > 0.5 and at(0, 0) < 0.5 and at(1, 1) < 0.5
    assert line_misfit(crossings(x1, x2, yhat, 0.5)) > 0.1


def test_or_boundary_is_straight(trace_of):
    # The check above must be able to see a straight line: one sigmoid unit on x₁, x₂ gives one.
    chapter, trace = chapter_and_trace(trace_of, "02-or-batch")
    x1, x2, (yhat,) = figures.boundary_grid(chapter, trace)
    assert line_misfit(crossings(x1, x2, yhat, 0.5)) < 1e-3


def test_boundary_needs_two_input_features(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "05-xor-no-bias")
    with pytest.raises(tracer.TracerError, match="2 input features"):
        figures.boundary_grid(chapter, trace)


# --------------------------------------------------------------------------- documents and command line


@pytest.mark.parametrize("name, keys", [
    ("01-or-one-example", {"graph_step_0"}),  # 2 steps: no curve, no boundary of an untrained network
    ("02-or-batch", {"graph_step_0", "curve", "boundary", "boundary_shaded"}),
    ("05-xor-no-bias", {"graph_step_0", "curve"}),  # three input features: no boundary
])
def test_document_figures_places_each_picture_once(trace_of, tmp_path, name, keys):
    chapter, trace = chapter_and_trace(trace_of, name)
    placed = figures.document_figures(chapter, trace, tmp_path, "md")
    assert set(placed) == keys
    numbers = []
    for key, text in placed.items():
        # An image, then a visible caption line under it (alt text alone is invisible on GitHub).
        link = re.fullmatch(r"!\[Figure (\d+): ([^\]]+)\]\(([^)]+\.svg)\)\n\n\*Figure \1\. \2\.\*", text)
        assert link, text
        numbers.append(int(link.group(1)))
        assert (tmp_path / link.group(3)).read_bytes().lstrip().startswith(b"<?xml")
    assert sorted(numbers) == list(range(1, len(placed) + 1))


def test_worked_steps_come_from_the_document_section(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "02-or-batch")
    assert figures.worked_steps(chapter, trace) == chapter.raw["document"]["worked_steps"]


def test_figure_command_writes_the_format_of_the_suffix(trace_of, tmp_path, capsys):
    out = tmp_path / "curve.pdf"
    assert main(["figure", "02-or-batch", "--kind", "curve", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    tex = tmp_path / "graph.tex"
    assert main(["figure", "01-or-one-example", "--kind", "graph", "--step", "1", "-o", str(tex)]) == 0
    assert r"\begin{tikzpicture}" in tex.read_text() and r"\documentclass" in tex.read_text()


def test_figure_command_refuses_a_format_it_cannot_write(tmp_path, capsys):
    out = tmp_path / "curve.tex"
    assert main(["figure", "01-or-one-example", "--kind", "curve", "-o", str(out)]) == 2
    assert "curve figure is written as .svg or .pdf" in capsys.readouterr().err
    assert not out.exists()


def test_figure_command_names_an_unrecorded_step(tmp_path, capsys):
    assert main(["figure", "01-or-one-example", "--kind", "graph", "--step", "5", "-o", str(tmp_path / "g.svg")]) == 2
    assert "step 5" in capsys.readouterr().err


def test_without_graphviz_the_documents_are_built_without_the_graphs(monkeypatch, tmp_path):
    from tracer.documents import figures
    from tracer.documents.build import build

    real_which = figures.shutil.which
    monkeypatch.setattr(figures.shutil, "which", lambda name: None if name == "dot" else real_which(name))
    notes: list[str] = []
    written = build(["02-or-batch"], tmp_path, ["md"], note=notes.append)
    text = written[0].read_text(encoding="utf-8")
    assert "-graph-" not in text and "-curve.svg" in text
    assert notes == ["graphs skipped: Graphviz's dot is not on the PATH (Debian: apt install graphviz); "
                     "the documents have the other figures"]


# --------------------------------------------------------------------------- SVG text as a reader sees it


@pytest.mark.parametrize("name, view", [
    ("01-or-one-example", "scalar"), ("02-or-batch", "scalar"), ("02-or-batch", "layer"),
    ("03-xor-feature-cross", "scalar"), ("04-xor-hidden-layer", "layer"), ("06-xor-relu-adam", "layer"),
])
def test_svg_sets_minus_signs_and_subscripts_as_a_typesetter_would(trace_of, name, view):
    chapter, trace = chapter_and_trace(trace_of, name)
    root = ET.fromstring(figures.graph_svg(figures.computational_graph(chapter, trace, 0, view)))
    texts = list(root.iter(f"{SVG}text"))
    assert texts
    scripts = 0
    for text in texts:
        whole = "".join(text.itertext())
        assert not re.search(r"-\d", whole), whole  # a minus sign is U+2212, never a hyphen
        size = float(text.get("font-size"))
        for span in text:
            kind = span.get("class")
            if kind in ("sub", "sup"):
                scripts += 1
                assert float(span.get("font-size")) < size, whole
                dy = float(span.get("dy", "0"))
                assert (dy > 0) if kind == "sub" else (dy < 0), whole  # moved off the baseline by dy
            elif span.get("font-style") == "italic":  # a name: its index is never set beside it ("W1", "W 1")
                assert not re.search(r"\d", span.text or ""), whole
        assert text.get("baseline-shift") is None  # ignored by Firefox and GitHub's image view
    assert scripts >= 3  # W₁, z₁, … are there as subscripts


# --------------------------------------------------------------------------- a big network


def digits_shaped_chapter() -> tracer.Chapter:
    """A 64-32-10 network on 1,797 examples (the shape of the digits data set; the data is made up here)."""
    rng = np.random.default_rng(0)
    raw = {"title": "Digits-shaped", "data": {"X": rng.integers(0, 17, size=(1797, 64)).tolist(),
                                              "Y": np.eye(10, dtype=int)[rng.integers(0, 10, 1797)].tolist()},
           "network": {"layers": [{"units": 32, "activation": "relu"}, {"units": 10, "activation": "sigmoid"}]},
           "init": {"seed": 1, "scheme": "xavier"},
           "train": {"cost": "binary_cross_entropy", "learning_rate": 0.01, "steps": 1}}
    return tracer.parse_chapter(raw, name="digits")


def test_a_big_network_is_drawn_with_its_matrices_abbreviated():
    chapter = digits_shaped_chapter()
    trace = tracer.run(chapter)
    graph = figures.computational_graph(chapter, trace, 0)
    svg, tikz = figures.graph_svg(graph), figures.graph_tikz(graph)
    assert len(svg) < 200_000 and len(tikz) < 50_000
    text = "".join(ET.fromstring(svg).itertext())
    for shape in ("64 × 1797", "32 × 64", "32 × 1797", "10 × 32", "10 × 1797"):
        assert f"({shape}, corner shown)" in text
    # The corner shown is the matrix's own top-left entries.
    found = svg_numbers(svg)[("n:W1", "fwd")]
    k = figures.CORNER
    assert found[:k] == [format_number(x, 3).replace("-", "\u2212") for x in trace.at(0)["W1"][0, :k]]
    assert r"\vdots" in tikz and r"\cdots" in tikz and r"\ddots" in tikz


# --------------------------------------------------------------------------- the local-gradient view


def test_the_local_view_writes_the_articles_local_gradients(trace_of):
    # Seed 000, Part I: z = w₁x₁ + w₂x₂ + b with x = (0, 0), w = (0.1, 0.6): ∂z/∂w₁ = x₁ = 0,
    # ∂z/∂x₂ = w₂ = 0.6, ∂z/∂b = 1; ŷ = σ(0): ∂ŷ/∂z = σ(0)(1 − σ(0)) = 0.25; L = ½(y − ŷ)²: ∂L/∂ŷ = ŷ − y = 0.5.
    chapter, trace = chapter_and_trace(trace_of, "01-or-one-example")
    graph = figures.computational_graph(chapter, trace, 0, local=True)
    for found in (svg_numbers(figures.graph_svg(graph)), tikz_numbers(figures.graph_tikz(graph))):
        assert found[("b:W1_0_0:Z1_0_0", "bwd")] == ["0"]
        assert found[("b:A0_1_0:Z1_0_0", "bwd")] == ["0.600"]
        assert found[("b:b1_0_0:Z1_0_0", "bwd")] == ["1"]
        assert found[("b:Z1_0_0:A1_0_0", "bwd")] == ["0.250"]
        assert found[("b:A1_0_0:cost", "bwd")] == ["0.500"]
        assert not any(ident.startswith("b:Y") for ident, _ in found)  # the label gets no gradient
    arrow = next(g for g in ET.fromstring(figures.graph_svg(graph)).iter(f"{SVG}g")
                 if g.get("id") == "b:Z1_0_0:A1_0_0")
    assert "".join("".join(arrow.itertext()).split()) == "∂A1/∂Z1=0.250"  # the text's names: Z₁, A₁


def test_the_local_view_of_a_layer_is_the_transpose_that_multiplies(trace_of):
    # dW1 = dZ1·A0ᵀ: the local gradient on W1 → Z1 is A0ᵀ (here Xᵀ), and on A0 → Z1 it is W1ᵀ.
    chapter, trace = chapter_and_trace(trace_of, "04-xor-hidden-layer")
    found = svg_numbers(figures.graph_svg(figures.computational_graph(chapter, trace, 0, "layer", local=True)))
    v = trace.at(0)
    assert found[("b:W1:Z1", "bwd")] == [format_number(x, 0) for x in v["A0"].T.ravel()]
    assert found[("b:Z1:A1", "bwd")] == [format_number(x, 3).replace("-", "\u2212") for x in v["dA1_dZ1"].ravel()]


# --------------------------------------------------------------------------- the learning curve


@pytest.mark.parametrize("name, last, article", [("02-or-batch", "0.00053", "0.0005"),
                                                  ("04-xor-hidden-layer", "0.00089", "0.0009")])
def test_the_curve_labels_its_last_point_as_the_table_prints_it(trace_of, name, last, article):
    """By the one rule (two significant digits for a small figure), which rounds to the article's "about" figure."""
    chapter, trace = chapter_and_trace(trace_of, name)
    text = "".join(ET.fromstring(figures.learning_curve(chapter, trace, "svg")).itertext())
    assert f"step {len(trace.costs) - 1}: cost {last}" in text
    assert round_half_up(float(last), decimals_in(article)) == Decimal(article)


def test_a_cost_over_more_than_two_decades_gets_a_log_axis_and_the_linear_view_stays_available(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "04-xor-hidden-layer")
    costs = np.asarray(trace.costs)
    assert np.log10(costs.max() / costs.min()) > 2  # 0.129 down to 0.0009
    auto = "".join(ET.fromstring(figures.learning_curve(chapter, trace, "svg")).itertext())
    linear = "".join(ET.fromstring(figures.learning_curve(chapter, trace, "svg", "linear")).itertext())
    assert "cost (log scale)" in auto and "0.001" in auto and "0.01" in auto
    assert "log scale" not in linear
    assert figures.curve_scale(np.array([0.5, 0.2, 0.1])) == "linear"


@pytest.mark.parametrize("fmt", ["svg", "tikz"])
def test_blank_quantities_are_empty_boxes_and_the_rest_the_trace(trace_of, fmt):
    # A worksheet's graph: Part I's graph with z, ∂Cost/∂w and the cost left as boxes to fill in.
    chapter, trace = chapter_and_trace(trace_of, "01-or-one-example")
    graph = figures.computational_graph(chapter, trace, 0, blank=["Z1", "dW1", "cost"])
    draw, read, style = DRAWN[fmt]
    text = draw(graph)
    tex_box = re.compile(r"\\mbox\{\\fboxsep=0pt\\fbox\{\\rule\{0pt\}\{\d+bp\}\\hspace\{\d+bp\}\}\}")
    found = {k: v for k, v in read(tex_box.sub("", text)).items() if v}  # a box's size is not a number shown
    valued, graded, _ = check_against_trace(chapter, trace, 0, found, style)  # what is written is the trace's
    assert valued == set(graph.nodes) - {"Z1_0_0", "cost"}
    assert graded == {"Z1_0_0", "A1_0_0", "b1_0_0"}  # ∂Cost/∂w₁, ∂Cost/∂w₂ blank
    # One box per blank value: z forward, ∂Cost/∂w₁ and ∂Cost/∂w₂ back, the cost.
    if fmt == "svg":
        boxes = {(g.get("id"), p.get("stroke")) for g in ET.fromstring(text).iter(f"{SVG}g")
                 for p in g.iter(f"{SVG}polygon") if p.get("fill") == "none" and g.get("id", "")[:2] in "n:f:b:"}
        boxes = {(ident, (colour or "").upper()) for ident, colour in boxes}
        assert {("f:Z1_0_0:A1_0_0", figures.FORWARD), ("b:W1_0_0:Z1_0_0", figures.BACKWARD),
                ("b:W1_0_1:Z1_0_0", figures.BACKWARD), ("n:cost", figures.FORWARD)} <= boxes
    else:
        assert len(tex_box.findall(text)) == 4
    with pytest.raises(tracer.TracerError, match="blank: dZ9 is not on this graph; its quantities are A0, A1, W1"):
        figures.computational_graph(chapter, trace, 0, blank=["dZ9"])


def test_the_names_only_layout_places_every_node_and_points_each_arrow_at_its_head(trace_of):
    chapter, trace = chapter_and_trace(trace_of, "04-xor-hidden-layer")
    graph = figures.computational_graph(chapter, trace, 0, "layer")
    layout = figures.names_layout(graph, rankdir="LR")
    assert [n.id for n in layout.nodes] == list(graph.nodes)
    assert [(a.tail, a.head) for a in layout.arrows] == graph.edges
    at = {n.id: n for n in layout.nodes}
    for arrow in layout.arrows:  # the arrowhead's point touches the head (b1 → Z1 too, laid out head first)
        head = at[arrow.head]
        tip = min(arrow.tip, key=lambda p: (p[0] - head.x) ** 2 + (p[1] - head.y) ** 2)
        assert abs(tip[0] - head.x) <= head.w / 2 + 1 and abs(tip[1] - head.y) <= head.h / 2 + 1, arrow
    assert max(layout.nodes, key=lambda n: n.x).id == "cost"  # forward runs left to right
    # Names only: another step's graph has the same layout, byte for byte.
    assert figures.names_layout(figures.computational_graph(chapter, trace, int(trace.steps[-1]), "layer"),
                                rankdir="LR") == layout


def _text_boxes(layout: dict) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(owner id, (left, bottom, right, top)) of every text span Graphviz placed, in points."""
    boxes = []
    for obj in layout.get("objects", []) + layout.get("edges", []):
        size = 10.0
        for key in ("_ldraw_", "_hldraw_", "_tldraw_"):
            for op in obj.get(key, []):
                if op["op"] == "F":
                    size = float(op["size"])
                elif op["op"] == "T":
                    x, y, w = float(op["pt"][0]), float(op["pt"][1]), float(op["width"])
                    left = x - {"l": 0, "c": w / 2, "r": w}[op["align"]]
                    boxes.append((obj.get("id") or obj.get("name"), (left, y - 0.25 * size, left + w, y + 0.75 * size)))
    return boxes


@pytest.mark.parametrize("name", ["02-or-batch", "03-xor-feature-cross"])
def test_the_scalar_view_runs_in_the_order_a_reader_counts_and_no_two_labels_collide(trace_of, name):
    """Example 1 on the left, then 2, 3, 4; in each example x₁ before x₂; no text over another's."""
    import json

    chapter, trace = chapter_and_trace(trace_of, name)
    graph = figures.computational_graph(chapter, trace, 0, view="scalar")
    layout = json.loads(figures._run_dot(graph, "json"))
    x = {obj["name"]: float(obj["pos"].split(",")[0]) for obj in layout["objects"] if "pos" in obj}
    m, features = trace.X.shape[1], trace.X.shape[0]
    assert [x[f"Z1_0_{j}"] for j in range(m)] == sorted(x[f"Z1_0_{j}"] for j in range(m))
    assert all(x[f"A0_{k}_{j}"] < x[f"A0_{k + 1}_{j}"] for j in range(m) for k in range(features - 1))
    boxes = _text_boxes(layout)
    overlapping = [(a, b) for i, (a, (l1, b1, r1, t1)) in enumerate(boxes) for b, (l2, b2, r2, t2) in boxes[i + 1:]
                   if a != b and l1 < r2 - 0.5 and l2 < r1 - 0.5 and b1 < t2 - 0.5 and b2 < t1 - 0.5]
    assert not overlapping

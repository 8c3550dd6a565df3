"""The chapter as one self-contained web page: the worked example and a step explorer.

The explorer has a slider over the recorded steps and the computational graph; choosing a node (a
click, or the keyboard's focus) shows its value, local gradient, the gradient it receives and what
it passes on at that step, and the learning curve marks the step. Every number is formatted here,
from the trace, half-up as in the documents; the page only looks them up. KaTeX (its script, its
styles and its fonts) is inlined, so the page makes no network request at all.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

from tracer.abbreviation import as_matrix
from tracer.documents.lecture import Lecture, lecture, long_run_pictures
from tracer.documents.model import symbol
from tracer.documents.outline import Placed, outline, outline_svg
from tracer.documents.render import document_context, environment, render_html
from tracer.engine.chapter import Chapter
from tracer.engine import keys
from tracer.engine.trace import Trace
from tracer.resources import bundled_path
from tracer.rounding import shown

TEMPLATE = "page.html.j2"
#: At most this many recorded steps go into the page (evenly spread, first, last and worked steps kept).
MAX_STEPS = 100
#: Points of the learning curve drawn (the run's costs, evenly thinned).
CURVE_POINTS = 400
CURVE_SIZE = (560, 200)
#: Data quantities shown as whole numbers when they are whole.
WHOLE = ("A0", "Y")
KIND_WORDS = {"input": "the input X", "target": "the labels Y", "parameter": "a parameter",
              "linear": "a linear node", "activation": "an activation node", "merge": "a sum of two paths",
              "pooling": "a pooling node", "reshape": "a flatten node",
              "normalisation": "a batch-normalisation node", "dropout": "a dropout node", "cost": "the cost"}


def kept_steps(trace: Trace, must: list[int]) -> list[int]:
    """The recorded steps the page keeps: all of them, or MAX_STEPS evenly spread plus those it must show."""
    steps = [int(s) for s in trace.steps]
    if len(steps) <= MAX_STEPS:
        return steps
    picks = {steps[round(i * (len(steps) - 1) / (MAX_STEPS - 1))] for i in range(MAX_STEPS)}
    return sorted(picks | ({s for s in must if s in set(steps)}))


def _numbers(chapter: Chapter, quantity: str, value: Any, whole: bool = False) -> list[list[str]]:
    """A value as rows of printed numbers, half-up to the quantity's decimals (whole data stays whole)."""
    array = as_matrix(np.atleast_2d(np.asarray(value, dtype=float)))  # an image: its stacked matrix
    q = keys.before_update(quantity)
    drawn = getattr(chapter.network.by_name.get(q), "drawn", False)  # a dropout mask: 0 or 1
    if (whole or q in WHOLE or drawn) and np.all(np.mod(array, 1) == 0):
        return [[str(int(x)) for x in row] for row in array]
    decimals = chapter.display.decimals_of(q)
    return [[shown(x, decimals) for x in row] for row in array]


def _of(node: str, wrt: str) -> str:
    return rf"\frac{{\partial {symbol(node)}}}{{\partial {symbol(wrt)}}}"


def explorer_data(chapter: Chapter, trace: Trace, steps: list[int], hand: Trace | None = None,
                  worked: tuple[int, ...] = ()) -> dict[str, Any]:
    """Per kept step, per graph node: value, local gradients, received and passed-on gradients (printed).

    At a step the document works (`worked`), from the hand-carried trace `hand`, so the explorer shows
    the worked lines' figures; at every other step from `trace`, every digit carried. Both by the one
    rule of `rounding.shown`."""
    at, costs = [], []
    for step in steps:
        step_trace = hand if hand is not None and step in worked else trace
        costs.append(shown(step_trace.at(step)["cost"], chapter.display.decimals_of("cost")))
        nodes: dict[str, Any] = {}
        for rec in step_trace.nodes(step):
            value_name = "cost" if rec.kind == "cost" else rec.name
            nodes[rec.name] = {
                "value": _numbers(chapter, value_name, rec.value),
                "local": [_local(chapter, trace, rec.name, k, g) for k, g in rec.local.items()],
                "receives": None if rec.upstream is None or rec.kind == "cost"
                else [symbol(keys.grad(rec.name)), _numbers(chapter, keys.grad(rec.name), rec.upstream)],
                "passes": [[symbol(k), _numbers(chapter, k, g)] for k, g in rec.passes.items()],
            }
        for p in step_trace.parameters(step):
            nodes[p.name] = {"value": _numbers(chapter, p.name, p.before), "local": [],
                             "receives": [symbol(keys.grad(p.name)), _numbers(chapter, keys.grad(p.name), p.gradient)],
                             "passes": [], "after": _numbers(chapter, p.name, p.after)}
        nodes["Y"] = {"value": _numbers(chapter, "Y", step_trace.batch(step)[1]), "local": [], "receives": None,
                      "passes": []}
        at.append(nodes)
    return {"steps": steps, "cost": costs, "carried": [s for s in steps if hand is not None and s in worked],
            "at": at}


def _local(chapter: Chapter, trace: Trace, node: str, wrt: str, value: Any) -> list[Any]:
    """[symbol, rows] of a local gradient; a Jacobian per example (units × units × examples) by its
    first example's, the symbol saying so."""
    source = _local_quantity(trace, node, wrt)
    name = _of(node, wrt)
    if np.ndim(value) == 3:
        value, name = np.asarray(value)[:, :, 0], keys.symbol(keys.local(node, wrt), trace.names, example=1)
    return [name, _numbers(chapter, source or keys.grad(wrt), value, source is None and node != keys.COST)]


def _local_quantity(trace: Trace, node: str, wrt: str) -> str | None:
    """The quantity whose decimals a local gradient is shown with: A1/Z1 → dA1_dZ1; Z1/W1 → A0; Z1/A0 → W1;
    the cost's, the gradient it passes on; None for a whole 1 (a bias's)."""
    if node == keys.COST:
        return keys.grad(wrt)
    return trace.network.node(node).local_quantity(wrt)


def _curve(trace: Trace, steps: list[int]) -> dict[str, Any]:
    """The learning curve as an SVG polyline, and where each kept step's marker goes."""
    costs = np.asarray(trace.costs, dtype=float)
    n = len(costs)
    width, height = CURVE_SIZE
    left, right, top, bottom = 56, 12, 10, 30
    top_cost = float(costs.max()) or 1.0
    x = lambda s: left + (width - left - right) * (s / max(n - 1, 1))  # noqa: E731
    y = lambda c: top + (height - top - bottom) * (1 - c / top_cost)  # noqa: E731
    index = sorted(set(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int).tolist()))
    points = " ".join(f"{x(i):.1f},{y(costs[i]):.1f}" for i in index)
    ticks = [{"y": f"{y(c):.1f}", "label": shown(c, 2)} for c in (0.0, top_cost / 2, top_cost)]
    return {"width": width, "height": height, "points": points, "left": left, "bottom": height - bottom,
            "right": width - right, "top": top, "ticks": ticks, "last": n - 1,
            "markers": [[round(x(s), 1), round(y(costs[s]), 1)] for s in steps]}


def _katex_assets() -> tuple[str, str]:
    """KaTeX's script, and its styles with every font inlined as a data URI (woff2 only: current browsers)."""
    folder = bundled_path("templates") / "katex"
    script = (folder / "katex.min.js").read_text(encoding="utf-8")
    css = (folder / "katex.min.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((folder / "fonts" / f"{match[1]}.woff2").read_bytes()).decode("ascii")
        return f'url(data:font/woff2;base64,{data}) format("woff2")'

    css = re.sub(r'url\(fonts/([\w-]+)\.woff2\) format\("woff2"\)(?:,url\(fonts/[\w-]+\.woff\) format\("woff"\))?'
                 r'(?:,url\(fonts/[\w-]+\.ttf\) format\("truetype"\))?', inline, css)
    return script, css


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def webpage(chapter: Chapter, trace: Trace, lec: Lecture | None = None, user_templates=None) -> str:
    """The page's HTML text, byte-identical from run to run."""
    lec = lec or lecture(chapter, trace)
    trace = lec.full
    steps = kept_steps(trace, lec.shown_steps)
    graph = outline(chapter, trace)

    def describe(node: Placed) -> str:
        name = {"A0": "X", "cost": "Cost"}.get(node.id, node.id)
        return f"{name}, {KIND_WORDS[node.kind]}"

    script, css = _katex_assets()
    context = {
        **document_context(chapter, fmt="html", model=lec.model),
        "model": lec.model, "pictures": long_run_pictures(chapter, trace),
        "graph_svg": outline_svg(graph, describe),
        "explorer_json": _script_json({**explorer_data(chapter, trace, steps, lec.hand, tuple(lec.shown_steps)),
                                       "curve": _curve(trace, steps)}),
        "carried_steps": [s for s in lec.shown_steps if s in steps],
        "curve": _curve(trace, steps), "kept": len(steps), "recorded": len(trace.steps),
        "steps_run": int(trace.meta["steps_run"]),
        "katex_js": script.replace("</", "<\\/"), "katex_css": css,
    }
    env = environment(user_templates)  # an .html.j2 template is autoescaped
    return render_html(env, TEMPLATE, context)

"""The practice page of a public practice sheet: one offline HTML file that judges each number as it is typed.

The page's verdicts are the Python checker's. This module asks a `StepChecker` for everything a verdict
can depend on and writes it into the page as data, so the page's script only compares the numbers
typed with intervals (exactly, in decimal: BigInt), and combines the comparisons as `StepChecker.judge`
does. Nothing in the page computes a network:
- per quantity of the step (the asked ones and, for the student's working, every intermediate node),
  per number: the accepted intervals (the rule of `tolerance`) at the asked decimals and at fewer, for
  "not precise enough";
- per catalogued mistake: its values as intervals (a mistake is named when the student's numbers
  are what it gives, at the decimals they wrote);
- error carried forward from the student's own earlier answers: for each mistake, the step carried
  from that mistake's numbers as the sheet's rounding writes them down (for the asked answers alone,
  and for every node), with which earlier answers each result depends on. An earlier slip the
  catalogue does not know cannot be carried by the page, and the page says so: the checking command
  on the sheet reruns the step from any numbers.

Only a public practice set gets a page: the page holds its answers, and a secret set's would hand
them out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from typing import Any

import numpy as np

from tracer.engine import keys
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.exercises import tolerance
from tracer.exercises.answers import Answer, StepChecker, stacked_shape
from tracer.rounding import format_number

TEMPLATE = "practice.html.j2"
SECRET_REFUSED = ("--format practice: a practice page holds its answers (it checks each number as it is typed), "
                  "so only a public practice set (--seed S) gets one; a secret set's page would hand out its key")


def page_quantities(v: Any) -> list[str]:
    """The step's quantities in the order they are computed (a topological order of the graph)."""
    at = v.trace.at(v.spec.step)
    return [q for q in v.trace.network.step_order() if q in at]


def _typed_form(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The layout the page's grid is typed as: a number, a flat list for a row or column, else rows."""
    size = int(np.prod(shape)) if shape else 1
    if size == 1:
        return ()
    if len(shape) < 2 or 1 in shape:
        return (size,)
    return tuple(shape)


def _fits(shape: tuple[int, ...], other: tuple[int, ...]) -> bool:
    """Would an answer typed in the page's grid for `shape` be read as a value of shape `other`?"""
    size = int(np.prod(shape)) if shape else 1
    layout = _typed_form(shape)
    return Answer("", "", ("0",) * size, layout).fit(tuple(other)) is not None


def _intervals(accepted: list[tuple[Decimal, ...]], decimals: int, every: bool) -> list:
    """Per number: the intervals at the asked decimals, or (every) at each number of decimals 0 … asked."""
    if every:
        return [[tolerance.bounds(c, d) for d in range(decimals + 1)] for c in accepted]
    return [tolerance.bounds(c, decimals) for c in accepted]


def practice_data(v: Any, checker: StepChecker | None = None) -> dict[str, Any]:
    """Everything the page's verdicts read, as JSON-ready data (see the module docstring)."""
    from tracer.exercises.sheets import _symbol

    spec = v.spec
    d = spec.decimals
    checker = checker or StepChecker(v.chapter, spec.step, Traces(v.chapter, v.trace, v.hand, carry="full"))
    order = page_quantities(v)
    shapes = {q: tuple(np.shape(checker.exact[q])) for q in order}
    params = checker.parameters
    points = dict(zip(spec.ask, spec.points))
    quantities = []
    for q in order:
        quantities.append({
            "q": q, "symbol": _symbol(q), "shape": list(stacked_shape(shapes[q]) if len(shapes[q]) > 2 else shapes[q]) or [1], "asked": q in points,
            "points": tolerance.text(Decimal(repr(float(points[q])))) if q in points else None,
            "shares": [tolerance.text(s) for s in tolerance.shares(points[q], int(np.prod(shapes[q]) or 1))]
            if q in points else None,
            "parameter": q in params, "truth": _intervals(checker.accepted(q), d, every=True)})
    variants = checker.mistake_values()
    mistakes = [_mistake(checker, m, order, shapes, d) for m in variants]
    return {"decimals": d, "step": spec.step, "order": order, "asked": list(spec.ask), "quantities": quantities,
            "mistakes": mistakes, "rates": _rates(checker, variants, mistakes, order, shapes, set(points), d),
            "scenarios": _scenarios(checker, variants, order, shapes, params, set(points), d)}


def _mistake(checker: StepChecker, variant: tuple, order: list[str], shapes: dict, d: int) -> dict[str, Any]:
    """One mistake's values as intervals per quantity (None: not of a shape the page's grid can be read as), and
    `typed`: its numbers as the sheet's rounding writes them down (what a carried scenario starts from)."""
    key, says, values, hand_values = variant
    mine, typed = {}, {}
    for q in order:
        if q not in values:
            continue
        fits = _fits(shapes[q], np.shape(values[q]))
        mine[q] = _intervals(checker.accepted_in(values, hand_values, q), d, every=True) if fits else None
        if fits and np.shape(values[q]) == shapes[q]:
            typed[q] = _typed(values, hand_values, q, d)
    return {"key": key, "says": says, "values": mine, "typed": typed}


def _rates(checker: StepChecker, variants: list, mistakes: list[dict], order: list[str], shapes: dict,
           asked: set[str], d: int) -> list[dict[str, Any]]:
    """The learning-rate mistake at the rate a student's updated parameters suggest, for the updated
    parameters a catalogued mistake gives (typed as the sheet rounds): `when` those numbers are the
    student's updated parameters (every one they entered), its variants follow the catalogue's."""
    after = [q for q in order if keys.is_after(q)]
    fixed = {(k, s) for k, s, _, _ in variants}
    seen: set[tuple] = set()
    out = []
    for m in mistakes:
        for chosen in ([q for q in after if q in m["typed"]], [q for q in after if q in m["typed"] and q in asked]):
            when = {q: m["typed"][q] for q in chosen}
            key = tuple(sorted((q, tuple(t)) for q, t in when.items()))
            if not when or key in seen:
                continue
            seen.add(key)
            numbers = {q: np.array([float(x) for x in t]).reshape(shapes[q]) for q, t in when.items()}
            extra = [v for v in checker.mistake_values(numbers) if (v[0], v[1]) not in fixed]
            if extra:
                out.append({"when": when, "variants": [_mistake(checker, v, order, shapes, d)
                                                       for v in extra]})
    return out


def _scenarios(checker: StepChecker, variants: list, order: list[str], shapes: dict, params: set[str],
               asked: set[str], d: int) -> list[dict[str, Any]]:
    """Errors carried forward from a catalogued mistake's numbers, typed as the sheet's rounding writes them.

    A scenario is a set of earlier wrong answers with their numbers. For each quantity q after one of
    them, the page needs the intervals of q carried from the scenario's answers before q, and, for
    each of those, the intervals without it (to name only the answers q follows from)."""
    seen: set[tuple] = set()
    out = []
    cache: dict[tuple, tuple[dict, dict]] = {}

    def carried(given: dict[str, list[str]]) -> tuple[dict, dict]:
        key = tuple(sorted((u, tuple(t)) for u, t in given.items()))
        if key not in cache:
            cache[key] = checker.carried({u: np.array([float(x) for x in t]).reshape(shapes[u])
                                          for u, t in given.items()})
        return cache[key]

    for _, _, values, hand_values in variants:
        typed = {}
        for u in order:
            if u in params or u not in values or np.shape(values[u]) != shapes[u]:
                continue
            numbers = _typed(values, hand_values, u, d)
            right = all(tolerance.accepts(t, c, d) for t, c in zip(numbers, checker.accepted(u)))
            if not right:
                typed[u] = numbers
        for chosen in (typed, {u: t for u, t in typed.items() if u in asked}):
            key = tuple(sorted((u, tuple(t)) for u, t in chosen.items()))
            if not chosen or key in seen:
                continue
            seen.add(key)
            follows = {}
            for i, q in enumerate(order):
                before = {u: chosen[u] for u in order[:i] if u in chosen}
                if not before:
                    continue
                full, hand = carried(before)
                if q not in full or np.shape(full[q]) != shapes[q]:
                    continue
                without = {}
                for p in before:
                    rest = {u: t for u, t in before.items() if u != p}
                    if rest:
                        f, h = carried(rest)
                        without[p] = tolerance.entry_centres(f[q], [h.get(q)])
                    else:
                        without[p] = checker.accepted(q)
                follows[q] = {"from": list(before),
                              "intervals": _intervals(tolerance.entry_centres(full[q], [hand.get(q)]), d, False),
                              "without": {p: _intervals(c, d, False) for p, c in without.items()}}
            out.append({"typed": chosen, "follows": follows})
    return out


def _typed(values: dict, hand_values: dict, q: str, decimals: int) -> list[str]:
    """A mistake's numbers for q as a student who rounds as they go writes them (its hand-mode values)."""
    hand = hand_values.get(q)
    source = hand if hand is not None and np.shape(hand) == np.shape(values[q]) else values[q]
    return [format_number(float(x), decimals) for x in np.ravel(source)]


def _script_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


def script_hash(text: str) -> str:
    """The CSP source that allows exactly this inline script (or style): 'sha256-…'."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def practice_page(v: Any, chapter: Any, seed: int, count: int, graph_svg: str | None = None,
                  user_templates: Any = None) -> str:
    """The page's HTML, byte-identical from run to run."""
    from markupsafe import Markup

    from tracer.documents.render import UserText, environment, render
    from tracer.documents.webpage import _katex_assets
    from tracer.exercises.sheets import sheet_context
    from tracer.resources import bundled_path

    if seed is None:
        raise TracerError(SECRET_REFUSED)
    context = sheet_context(v, chapter, seed, count, "html")
    data = practice_data(v)
    katex_js, katex_css = _katex_assets()
    katex_js = katex_js.replace("</", "<\\/")
    page_js = (bundled_path("templates") / "practice.js").read_text(encoding="utf-8")
    env = environment(user_templates)
    env.autoescape = True
    env.filters["text"] = lambda value: value.text if isinstance(value, UserText) else value
    style = render(env, "practice.css.j2", {}).strip()
    picture = None
    if graph_svg is not None:
        picture = "data:image/svg+xml;base64," + base64.b64encode(graph_svg.encode("utf-8")).decode("ascii")
    scripts = [katex_js, page_js]
    csp = ("default-src 'none'; script-src " + " ".join(script_hash(s) for s in scripts)
           + f"; style-src {script_hash(katex_css)} {script_hash(style)}; font-src data:; img-src data:; "
             "base-uri 'none'; form-action 'none'")
    return render(env, TEMPLATE, {
        **context, "rule": tolerance.rule_words(v.spec.decimals), "data_json": Markup(_script_json(data)),
        "quantities": data["quantities"], "katex_js": Markup(katex_js), "katex_css": Markup(katex_css),
        "page_js": Markup(page_js), "style": Markup(style), "csp": csp, "graph": picture,
        "start_tex": r", \qquad ".join(f"{p['symbol']} = {p['value']}" for p in context["start"]),
    })

"""`tracer verify`: every number of a chapter checked against independent witnesses, and the article's own.

Two kinds of checks, kept apart because they mean different things:

* the project's own numbers (derivations, local gradients, the whole-network oracle, finite
  differences): a disagreement is a bug, and `verify` exits 3;
* the source article's figures and formulas, listed in the chapter's [article] section: a figure the
  article printed wrong, or a false formula, is content; it is reported ("article differs", "false")
  with what is right, and the exit status stays 0.

[article] keys (checked here with chapter.Section):

    [[article.figures]]
    step = 1                  # the step (from 0) whose value the article printed
    quantity = "cost"         # cost, or any name of the trace: A1, Z1, dW1, db1, W1_after, b1_after, …
    value = "0.084"           # as printed: a string keeps trailing zeros ("0.500"); a number works too;
                              # a list gives every entry of the quantity in row order (["-0.044", "-0.035"])
    index = [0, 1]            # optional: the entry of a matrix quantity (row, column)
    source = "…"              # optional: the article's sentence
    note = "…"                # optional

    [[article.formulas]]
    claim = "diff((y - yhat)**2/2, yhat) == -(y - yhat)"    # the restricted grammar of tracer/formulas.py
    where = { yhat = "1/(1 + exp(-z))" }                    # optional: names used in the claim
    source = "…"              # optional
    note = "…"                # optional
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from tracer.engine.chapter import Chapter, Section, chapter_section
from tracer.engine.nodes import costs
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.maths_text import latex_to_unicode
from tracer.rounding import decimals_in, round_half_up, truncate

#: A figure printed with at least this many significant digits is a program's float output (the
#: notebooks' "Cost at epoch#4600: 0.001018305488651183"); float64 keeps about 16, and the last one or
#: two depend on the order of summation, so such a figure is compared to a relative FULL_PRECISION_RTOL.
FULL_PRECISION_DIGITS = 15
FULL_PRECISION_RTOL = 1e-12
#: How many extra decimals an "already-rounded intermediate" may have had (0.10949 → 0.1095 → 0.110).
DOUBLE_ROUNDING_DEPTH = 6


# --------------------------------------------------------------------------- report entries


@dataclass
class Check:
    """One line of the report: what was compared, the two values, the tolerance and the verdict."""

    section: str  # derivation, local gradient, chain rule, oracle, finite differences, article figure, article formula
    subject: str
    expected: Any
    computed: Any
    tolerance: str
    verdict: str  # agrees / disagrees / skipped; matches / article differs; true / false
    own: bool  # True: the project's own number (a disagreement is a bug)
    node: str | None = None
    step: int | None = None
    index: list[int] | None = None
    detail: str = ""
    correct: str = ""  # article checks: the correct rounding of a figure, the right-hand side that makes a claim true

    @property
    def failed(self) -> bool:
        return self.own and self.verdict == "disagrees"


@dataclass
class FigureCheck:
    """A figure the article printed, against the engine's value rounded the way the article rounds."""

    quantity: str
    step: int
    index: tuple[int, ...] | None
    printed: str  # as the article printed it
    computed: float  # the engine's exact (float64) value
    correct: str  # `computed` rounded half-up to the printed decimals
    verdict: str  # "matches" or "article differs"
    explanation: str  # one sentence, usable in an erratum note
    decimals: int = 0
    how: list[str] = field(default_factory=list)  # what the printed figure equals: truncation, double rounding, …
    source: str = ""
    note: str = ""


@dataclass
class FormulaCheck:
    """A formula the article stated, judged by SymPy."""

    claim: str
    verdict: str  # "true" or "false"
    correct: str  # the right-hand side that makes it true (when false)
    factor: str  # a constant the claimed side is off by ("-1": a sign slip)
    method: str
    latex: str
    correct_latex: str
    where: dict[str, str] = field(default_factory=dict)
    source: str = ""
    note: str = ""


@dataclass
class Report:
    """Everything `verify` found for one chapter."""

    chapter: str
    title: str
    checks: list[Check]
    figures: list[FigureCheck]
    formulas: list[FormulaCheck]

    @property
    def ok(self) -> bool:
        """True when the project's own numbers all agree (the article may still differ)."""
        return not any(c.failed for c in self.checks)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 3

    def disagreements(self, section: str | None = None) -> list[Check]:
        """The failing checks of the project's own numbers (of one witness, if given), in report order:
        the first is where a bug shows first (forward values, then gradients from the cost backwards)."""
        return [c for c in self.checks if c.failed and (section is None or c.section == section)]

    def to_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "title": self.title, "ok": self.ok, "exit_status": self.exit_status,
                "checks": [_plain(asdict(c)) for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def table(self) -> str:
        return report_table(self)


# --------------------------------------------------------------------------- running every check


def verify(chapter: Chapter, traces: Traces | Trace | None = None) -> Report:
    """Run every check of `chapter` on the command's traces (a Trace given is reused)."""
    from tracer.checks import symbolic, window_derivatives

    traces = Traces.of(chapter, traces)
    trace = traces.full
    checks: list[Check] = []
    for name in derivations_used(chapter):
        steps = symbolic.derivation(name)
        ok = symbolic.derivation_ok(name)
        checks.append(Check("derivation", name, steps[-2].latex, steps[-1].latex, "SymPy: simplify(a − b) = 0",
                            "agrees" if ok else "disagrees", True,
                            detail=" → ".join(s.label for s in steps) + ", each step checked equal by SymPy"))
    checks += [_from_comparison(c) for c in symbolic.local_gradient_checks(trace)]
    checks += [_from_comparison(c) for c in window_derivatives.window_checks(trace)]
    if symbolic.oracle_fits(trace):
        checks += [_from_comparison(c) for c in symbolic.oracle_checks(trace)]
    else:
        n, m = symbolic.oracle_size(trace)
        checks.append(Check("oracle", f"network of {n} parameters, {m} examples per step", None, None, "",
                            "skipped", True, detail=f"the oracle builds networks up to "
                            f"{symbolic.ORACLE_MAX_PARAMETERS} parameters and {symbolic.ORACLE_MAX_EXAMPLES} examples"))
    if symbolic.finite_differences_fit(trace):
        checks += [_from_comparison(c) for c in symbolic.finite_difference_checks(trace)]
    else:
        checks.append(Check("finite differences", "network too large", None, None, "", "skipped", True,
                            detail=f"finite differences run up to {symbolic.FD_MAX_ENTRIES} gradient entries a step"))
    figures = article_figures(chapter, traces)
    formulas = article_formulas(chapter)
    checks += [_figure_check(f) for f in figures] + [_formula_check(f) for f in formulas]
    return Report(chapter.name, chapter.title, checks, figures, formulas)


def derivations_used(chapter: Chapter) -> list[str]:
    """The activations and the cost the chapter's graph uses (and the cost meeting the activation it
    simplifies with, cross-entropy after a sigmoid or a softmax, when it does)."""
    graph = chapter.network
    names = list(dict.fromkeys(node.op for node in graph.nodes if node.kind == "activation"))
    names.append(graph.cost.op)
    base = costs()[chapter.cost]
    if base.meets and graph.output.op == base.meets:
        names.append(f"{chapter.cost}+{base.meets}")
    return names


def _from_comparison(c: Any) -> Check:
    subject = f"{c.quantity} (node {c.node})"
    detail = f"{c.detail}; {c.steps}; largest error {c.error:.3g} at step {c.step}" + \
        (f", entry {list(c.index)}" if c.index else "")
    return Check(c.witness, subject, c.expected, c.computed, c.tolerance, "agrees" if c.ok else "disagrees", True,
                 c.node, c.step, list(c.index) if c.index else None, detail)


# --------------------------------------------------------------------------- the article's figures


def article_figures(chapter: Chapter, traces: Traces | Trace | None = None) -> list[FigureCheck]:
    """Each [[article.figures]] entry against the engine's value, rounded half-up to the printed decimals."""
    traces = Traces.of(chapter, traces)
    trace = traces.full
    article, entries, _ = _article(chapter)
    specs = [spec for i, entry in enumerate(entries) for spec in _figure_specs(article, i, entry, chapter, trace)]
    # The hand-carried trace explains the figures that do not match: one run, through the last of them.
    differ = sorted({step for quantity, step, index, printed, exact, *_ in specs
                     if judge_figure(printed, exact).verdict != "matches"})
    hand = traces.hand(differ) if differ else None
    results = []
    for quantity, step, index, printed, exact, source, note in specs:
        result = judge_figure(printed, exact)
        if result.verdict != "matches":
            hand_value = np.asarray(_value(hand, quantity, step, index), dtype=float)
            result = judge_figure(printed, exact, float(hand_value.reshape(-1)[0]))
        results.append(FigureCheck(quantity, step, index, printed, exact, result.correct, result.verdict,
                                   result.explanation, result.decimals, result.how, source, note))
    return results


@dataclass
class Judgement:
    verdict: str
    correct: str
    decimals: int
    how: list[str]
    explanation: str


def judge_figure(printed: str, exact: float, hand: float | None = None) -> Judgement:
    """Is `printed` what rounding `exact` half-up to the printed decimals gives? If not, what gives it.

    `hand` is the same quantity from a hand-mode run (every intermediate rounded as it is computed).
    """
    p = Decimal(printed)
    d = decimals_in(printed)
    correct = round_half_up(exact, d)
    shown = f"{correct:.{d}f}"
    digits = len(p.as_tuple().digits) if p else 0
    if digits >= FULL_PRECISION_DIGITS:
        close = abs(Decimal(repr(float(exact))) - p) <= Decimal(FULL_PRECISION_RTOL) * abs(p)
        if close:
            return Judgement("matches", shown, d, ["full precision"],
                             f"The printed {printed} is a program's full-precision output and agrees with the "
                             f"engine's {exact!r} to a relative {FULL_PRECISION_RTOL:g} (the last digits depend on "
                             "the order of summation).")
    if correct == p:
        return Judgement("matches", shown, d, [],
                         f"The exact value {exact:.10g} rounds half-up to {shown}, as printed.")
    how, reasons = [], []
    if truncate(exact, d) == p:
        how.append("truncation")
        reasons.append(f"the exact value truncated (digits cut) to {d} decimals")
    for k in range(d + 1, d + 1 + DOUBLE_ROUNDING_DEPTH):
        first = round_half_up(exact, k)
        if round_half_up(float(first), d) == p:
            how.append(f"double rounding from {k} decimals")
            reasons.append(f"what rounding an already-rounded {first:.{k}f} ({k} decimals) to {d} gives")
            break
    if hand is not None and round_half_up(hand, d) == p:
        how.append("hand mode")
        reasons.append(f"what a hand calculation that rounds every intermediate gives ({hand:.10g})")
    if Decimal(repr(round(float(exact), d))) == p:
        how.append("round half to even")
        reasons.append("what Python's round() (half to even, on the binary value) gives")
    because = " and ".join(reasons) if reasons else "neither a truncation nor a rounding of an already-rounded value"
    return Judgement("article differs", shown, d, how,
                     f"The exact value is {exact:.10g}, which rounds half-up to {shown}; the printed {printed} is "
                     f"{because}.")


def _article(chapter: Chapter) -> tuple[Section, list[Any], list[Any]]:
    """The chapter's [article] section, checked: its figures and its formulas (both may be absent)."""
    article = chapter_section(chapter, "article")
    figures, formulas = _table_list(article, "figures"), _table_list(article, "formulas")
    article.text("note")
    for key in CITATION:
        article.link(key) if key == "link" else article.text(key)
    article.done()
    return article, figures, formulas


#: The [article] keys that cite the source text.
CITATION = ("author", "title", "link")


def article_citation(chapter: Chapter) -> dict[str, str]:
    """The source the chapter follows: [article] author, title and link (each "" when not given), and its note."""
    article, _, _ = _article(chapter)
    return {key: article.data.get(key, "") for key in CITATION + ("note",)}


def _table_list(article: Section, key: str) -> list[Any]:
    value = article.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        article.fail(key, f"a list of tables, written [[article.{key}]]", _describe(value))
    return value


def _figure_specs(article: Section, i: int, entry: dict[str, Any], chapter: Chapter,
                  trace: Trace) -> list[tuple[str, int, tuple[int, ...] | None, str, float, str, str]]:
    fig = Section(entry, article.file, f"article.figures[{i}]")
    step = fig.integer("step", required=True, minimum=0, maximum=chapter.steps - 1)
    quantity = fig.text("quantity", required=True)
    raw_value = fig.get("value", required=True)
    raw_index = fig.get("index")
    source = fig.text("source")
    note = fig.text("note")
    fig.done()
    try:
        value = np.asarray(_value(trace, quantity, step, None), dtype=float)
    except TracerError as exc:
        fig.fail("quantity" if "quantity" in str(exc) else "step", "a quantity recorded at that step", str(exc))
    index = None
    if raw_index is not None:
        if not isinstance(raw_index, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw_index) \
                or len(raw_index) != value.ndim or any(not 0 <= x < n for x, n in zip(raw_index, value.shape)):
            fig.fail("index", f"a list of {value.ndim} whole numbers within the shape {list(value.shape)} of {quantity}",
                     _describe(raw_index))
        index = tuple(raw_index)
    if isinstance(raw_value, list):
        if index is not None or len(raw_value) != value.size:
            fig.fail("value", f"a list of all {value.size} entries of {quantity} in row order (and no index)",
                     f"a list of {len(raw_value)}" + (" with an index" if index is not None else ""))
        out = []
        for k, v in enumerate(raw_value):
            ix = tuple(int(x) for x in np.unravel_index(k, value.shape))
            out.append((quantity, step, ix, _printed(fig, v), float(value[ix]), source, note))
        return out
    if index is None and value.size != 1:
        fig.fail("index", f"the entry of {quantity} (shape {list(value.shape)}), e.g. index = "
                 f"{[0] * value.ndim}, or a list of values", "no index")
    exact = float(value[index]) if index is not None else float(value.reshape(-1)[0])
    return [(quantity, step, index, _printed(fig, raw_value), exact, source, note)]


def _printed(fig: Section, value: Any) -> str:
    """The figure as the article printed it; a TOML number has lost its trailing zeros, a string has not."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        fig.fail("value", "a number, or a string as printed (\"0.500\")", _describe(value))
    text = value.strip().replace("−", "-") if isinstance(value, str) else repr(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        fig.fail("value", "a number as printed, e.g. \"0.084\"", _describe(value))
    return text


def _value(trace: Trace, quantity: str, step: int, index: tuple[int, ...] | None) -> Any:
    if quantity == "cost":
        run_steps = trace.meta["steps_run"]
        if not 0 <= step < run_steps:
            raise TracerError(f"step {step}: this run has steps 0 to {run_steps - 1}")
        value = np.asarray(trace.costs[step])
    else:
        value = np.asarray(trace.value(quantity, step))
    if index is None:
        return value
    return float(value[index])


def _figure_check(f: FigureCheck) -> Check:
    where = f"{f.quantity}{list(f.index) if f.index else ''} at step {f.step}"
    return Check("article figure", where, f.printed, f.computed, f"half-up to {f.decimals} decimals", f.verdict,
                 False, step=f.step, index=list(f.index) if f.index else None,
                 detail=f"correct rounding {f.correct}. {f.explanation}", correct=f.correct)


# --------------------------------------------------------------------------- the article's formulas


def article_formulas(chapter: Chapter) -> list[FormulaCheck]:
    """Each [[article.formulas]] claim judged by SymPy."""
    from tracer.checks.formulas import FormulaError, check_claim

    article, _, entries = _article(chapter)
    out = []
    for i, entry in enumerate(entries):
        sec = Section(entry, article.file, f"article.formulas[{i}]")
        claim = sec.text("claim", required=True)
        where_table = sec.table("where")
        where = {k: where_table.text(k, required=True) for k in where_table.keys()}
        source, note = sec.text("source"), sec.text("note")
        sec.done()
        try:
            result = check_claim(claim, where)
        except FormulaError as exc:
            sec.fail("claim" if "where" not in str(exc) else "where", "a formula of the claim grammar", str(exc))
        out.append(FormulaCheck(claim, "true" if result.holds else "false", result.correct, result.factor,
                                result.method, result.latex, result.correct_latex, where, source, note))
    return out


def _formula_check(f: FormulaCheck) -> Check:
    detail = "" if f.verdict == "true" else f"correct right-hand side: {f.correct}" + \
        (f" (off by a factor {f.factor})" if f.factor else "")
    claimed = f.claim.split("==", 1)[1].strip()
    return Check("article formula", f.claim, f.correct or claimed, claimed, f"SymPy ({f.method})", f.verdict, False,
                 detail=detail, correct=f.correct)


# --------------------------------------------------------------------------- the human table


def report_table(report: Report) -> str:
    """The report for a reader: one line per check, grouped by witness, and a summary; maths in
    Unicode (dσ/dz = σ(z)(1 − σ(z))), as a terminal shows it, never LaTeX."""
    lines = [f"{report.title}  ({report.chapter})"]
    section = None
    formulas = iter(report.formulas)  # the formula checks come in the same order
    for c in report.checks:
        if c.section != section:
            section = c.section
            lines.append(f"  {section}")
        text = _formula_line(next(formulas)) if c.section == "article formula" else _line(c)
        lines.append(f"    {c.verdict:<16} {text}")
    own = [c for c in report.checks if c.own]
    agree = sum(c.verdict == "agrees" for c in own)
    skipped = sum(c.verdict == "skipped" for c in own)
    differs = sum(f.verdict != "matches" for f in report.figures)
    false = sum(f.verdict == "false" for f in report.formulas)
    summary = f"  {agree} of {len(own) - skipped} checks of the project's own numbers agree"
    summary += f" ({skipped} skipped)" if skipped else ""
    if report.figures:
        summary += f"; article figures: {len(report.figures) - differs} match, {differs} " + \
            ("differs" if differs == 1 else "differ")
    if report.formulas:
        summary += f"; article formulas: {len(report.formulas) - false} true, {false} false"
    lines.append(summary)
    lines.append("  verdict: " + ("the project's numbers all agree" if report.ok
                                  else "DISAGREEMENT in the project's own numbers (exit status 3)"))
    return "\n".join(lines)


def _formula_line(f: FormulaCheck) -> str:
    """An article formula as the reader reads it: its maths in Unicode, its conditions, the correct form."""
    from tracer.checks.formulas import parse_expression, reader_latex

    symbols: dict[str, Any] = {}
    where = [latex_to_unicode(f"{reader_latex(parse_expression(name, symbols))} = "
                              f"{reader_latex(parse_expression(text, symbols))}") for name, text in f.where.items()]
    text = latex_to_unicode(f.latex) + (f"   with {', '.join(where)}" if where else "")
    if f.verdict != "true" and f.correct_latex:
        text += f"   → correct: {latex_to_unicode(f.correct_latex)}" + (
            " (a sign slip)" if f.factor == "-1" else f" (off by a factor {f.factor})" if f.factor else "")
    return text


def _line(c: Check) -> str:
    if c.section == "derivation":
        return f"{c.subject}: {latex_to_unicode(c.computed)}   [{c.detail}]"
    if c.section == "article figure":
        return f"{c.subject}: printed {c.expected}, exact {c.computed:.10g} — {c.detail}"
    if c.section == "article formula":
        return c.subject + (f"   → {c.detail}" if c.detail else "")
    if c.verdict == "skipped":
        return f"{c.subject}: {c.detail}"
    where = ("first wrong" if c.failed else "closest call") + f" at step {c.step}" + (f" {c.index}" if c.index else "")
    return (f"{c.subject}: {where}: witness {c.expected:.12g}, trace {c.computed:.12g}; "
            f"tolerance {c.tolerance}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _describe(value: Any) -> str:
    from tracer.engine.chapter import _describe as describe

    return describe(value)

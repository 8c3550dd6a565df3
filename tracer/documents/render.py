"""Worked-example documents: a chapter's trace written out the way a person works it by hand.

`build` renders each chapter through Jinja templates to Markdown (`$…$` maths) and LaTeX (a
standalone amsmath article), and compiles the LaTeX to PDF when pdflatex is on the PATH.
Every number comes from the trace through the public filters below (`num`, `matrix`,
`calculation`), rounded half-up by tracer.rounding with the chapter's per-quantity decimals.
Every piece of text a chapter's author wrote reaches the templates as `UserText`, which refuses
to print itself: a template must pass it through `tex` or `md`, which escape it.

The calculations (formula, the same formula with numbers substituted, the result) are built here
as LaTeX maths, the same for both formats; the templates decide where they go and how they look,
and an instructor's folder (`--templates DIR`) can override any template by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from jinja2.sandbox import SandboxedEnvironment

from tracer.checks.symbolic import derivation
from tracer.checks.verify import article_figures, derivations_used
from tracer.engine.chapter import (
    Chapter,
    Display,
    chapter_section,
    exercise_spec,
)
from tracer.engine.graph import ACTIVATIONS, COSTS
from tracer.engine.optimizers import DEFAULTS, OPTIMIZERS
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.resources import bundled_path
from tracer.rounding import format_number

#: The template each format starts from; partials are included by name and overridable too.
MAIN_TEMPLATE = {"md": "chapter.md.j2", "tex": "chapter.tex.j2"}
#: Data quantities written as whole numbers when they are whole (the article's x₁ = 0, y = 1).
EXACT_DATA = ("A0", "X", "Y")
#: Rows of the long-run cost table when a chapter does not choose its steps.
TABLE_ROWS = 10


class TemplateError(TracerError):
    """A template that cannot be rendered: a misspelt variable, a syntax error, a missing file."""


# --------------------------------------------------------------------------- user text and escaping


class UserText:
    """Text a chapter's author wrote. Printing it raw is refused: use the `tex` or `md` filter."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        raise TemplateError("user text printed without escaping: pass it through the `tex` or `md` filter "
                            f"({self.text[:40]!r})")

    def __bool__(self) -> bool:
        return bool(self.text.strip())

    def __repr__(self) -> str:
        return f"UserText({self.text!r})"


_TEX_SPECIALS = {
    "\\": r"\textbackslash{}", "%": r"\%", "&": r"\&", "_": r"\_", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
#: Characters pdflatex's utf8 input does not know, written as LaTeX (chapter titles use x₁, ŷ, α, …).
_TEX_UNICODE = {
    **{chr(0x2080 + i): rf"\textsubscript{{{i}}}" for i in range(10)},
    **{c: rf"\textsuperscript{{{d}}}" for c, d in zip("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")},
    "⁻": r"\textsuperscript{-}", "ₜ": r"\textsubscript{t}", "ᵣ": r"\textsubscript{r}",
    "ₐ": r"\textsubscript{a}", "ᵢ": r"\textsubscript{i}", "ₙ": r"\textsubscript{n}",
    "·": r"\textperiodcentered{}", "×": r"\texttimes{}", "−": "-", "→": r"\textrightarrow{}",
    "←": r"\textleftarrow{}", "≈": r"$\approx$", "≤": r"$\leq$", "≥": r"$\geq$", "≠": r"$\neq$",
    "∂": r"$\partial$", "Σ": r"$\Sigma$", "√": r"$\surd$", "⋅": r"\textperiodcentered{}",
    "ŷ": r"$\hat{y}$", "Ŷ": r"$\hat{Y}$", "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$",
    "δ": r"$\delta$", "Δ": r"$\Delta$", "ε": r"$\varepsilon$", "η": r"$\eta$", "θ": r"$\theta$",
    "λ": r"$\lambda$", "μ": r"$\mu$", "π": r"$\pi$", "σ": r"$\sigma$", "τ": r"$\tau$",
    "φ": r"$\phi$", "ω": r"$\omega$", "…": r"\ldots{}", "–": "--", "—": "---",
    "‘": "`", "’": "'", "“": "``", "”": "''", "ⅰ": "i", "Ⅰ": "I", "Ⅱ": "II", "🙌": "", "🔥": "", "🙃": "",
}
_MD_SPECIALS = set("\\`*_[]<>#$|~^&")


def tex_escape(text: UserText | str) -> str:
    """User text for LaTeX: its specials (% & _ # $ { } ~ ^ \\) escaped and its Unicode made LaTeX."""
    raw = text.text if isinstance(text, UserText) else str(text)
    out = []
    for ch in raw:
        if ch in _TEX_SPECIALS:
            out.append(_TEX_SPECIALS[ch])
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        elif ord(ch) > 0x24F:  # beyond Latin: pdflatex would stop; show a placeholder instead
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def md_escape(text: UserText | str) -> str:
    """User text for Markdown: every character Markdown or its maths would read is backslash-escaped."""
    raw = text.text if isinstance(text, UserText) else str(text)
    return "".join("\\" + ch if ch in _MD_SPECIALS else ch for ch in raw)


# --------------------------------------------------------------------------- numbers and matrices


def num(value: Any, quantity: str = "", display: Display | None = None) -> str:
    """One number as LaTeX maths: half-up to the quantity's decimals (data that is whole stays whole)."""
    x = float(np.asarray(value, dtype=float).reshape(-1)[0]) if np.ndim(value) else float(value)
    quantity = quantity.removesuffix("_after")  # a parameter after its update is shown as the parameter
    if quantity in EXACT_DATA and x.is_integer():
        return str(int(x))
    decimals = (display or Display()).decimals_of(quantity) if quantity else (display or Display()).decimals
    return format_number(x, decimals, style="latex")


def matrix(value: Any, quantity: str = "", display: Display | None = None, transpose: bool = False) -> str:
    """An array as LaTeX maths: a bmatrix (a single number when it has one entry)."""
    array = np.asarray(value, dtype=float)
    if array.size == 1:
        return num(array.reshape(-1)[0], quantity, display)
    rows = array.reshape(1, -1) if array.ndim < 2 else array
    if transpose:
        rows = rows.T
    body = r" \\ ".join(" & ".join(num(x, quantity, display) for x in row) for row in rows)
    return rf"\begin{{bmatrix}} {body} \end{{bmatrix}}"


def factor(value: Any, quantity: str = "", display: Display | None = None, transpose: bool = False) -> str:
    """`matrix`, in parentheses when it is a negative number or in scientific notation (to multiply it)."""
    text = matrix(value, quantity, display, transpose)
    return f"({text})" if text.startswith("-") or r"\times" in text else text


def chapter_number(x: float, digits: str = "g") -> str:
    """A number the chapter's author typed (a learning rate), as typed: 1, 0.05, 10^{-8} (LaTeX maths)."""
    text = format(float(x), digits)
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \times {power}"


@dataclass
class Calculation:
    """One line worked by hand: the formula, the same with numbers substituted, the result (LaTeX maths)."""

    formula: str
    substituted: str | None
    result: str
    quantity: str = ""  # the trace's name for the result, for notes and errata


def calculation(calc: Calculation) -> str:
    """'formula = substituted = result' as an aligned block, one equals sign per line (maths mode)."""
    lhs, sign, rhs = calc.formula, "=", ""
    for candidate in (" := ", " = "):
        if candidate in calc.formula:
            lhs, rhs = calc.formula.split(candidate, 1)
            sign = candidate.strip()
            break
    lines = [f"{lhs} &{sign} {rhs}"] if rhs else []
    lines += [f"&= {part}" for part in (calc.substituted, calc.result) if part]
    if not rhs:
        lines[0] = f"{lhs} {lines[0]}"
    return r"\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}"


def symbol(quantity: str) -> str:
    """The maths symbol of a trace quantity: W1 → W_{1}, dW1 → ∂Cost/∂W_{1}, dA1_dZ1 → ∂A_{1}/∂Z_{1}."""
    if quantity == "cost":
        return r"\mathrm{Cost}"
    if quantity.startswith("d") and "_d" in quantity:
        of, wrt = quantity[1:].split("_d", 1)
        return rf"\frac{{\partial {symbol(of)}}}{{\partial {symbol(wrt)}}}"
    if quantity.startswith("d") and quantity[1:2].isalpha():
        return rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial {symbol(quantity[1:])}}}"
    stem = quantity.rstrip("0123456789")
    index = quantity[len(stem):]
    return f"{stem}_{{{index}}}" if index else stem


# --------------------------------------------------------------------------- the hand calculations

#: The local gradient ∂A/∂Z of each activation, with <A> and <Z> standing for the node's values.
LOCAL_GRADIENT = {
    "sigmoid": r"<A> \odot \left(1 - <A>\right)",
    "tanh": r"1 - <A> \odot <A>",
    "relu": r"\mathbf{1}\left[<Z> > 0\right]",
    "identity": "1",
}
#: ∂Cost/∂A_L (∂Cost/∂Z_L for a from-logits cost), with <A>, <Z>, <Y> and <m>.
COST_GRADIENT = {
    "squared_error": r"\frac{1}{<m>}\left(<A> - <Y>\right)",
    "sum_of_squares": r"2\left(<A> - <Y>\right)",
    "binary_cross_entropy": r"\frac{1}{<m>}\left(<A> - <Y>\right) \oslash \left(<A> \odot \left(1 - <A>\right)\right)",
    "binary_cross_entropy_from_logits": r"\frac{1}{<m>}\left(\sigma\left(<Z>\right) - <Y>\right)",
}
#: Each optimizer's update of a parameter <P> with gradient <dP>, after its state (STATE_RULE) is updated.
UPDATE_RULE = {
    "gd": r"<P> - \alpha <dP>",
    "momentum": r"<P> - \alpha \, v_{<P>}",
    "rmsprop": r"<P> - \alpha \, <dP> \oslash \left(\sqrt{s_{<P>}} + \varepsilon\right)",
    "adam": r"<P> - \alpha \, \frac{v_{<P>}}{1 - \beta_1^{t}} \oslash \left(\sqrt{\frac{s_{<P>}}{1 - \beta_2^{t}}} + \varepsilon\right)",
}
HYPER_SYMBOL = {"beta": r"\beta", "beta1": r"\beta_1", "beta2": r"\beta_2", "epsilon": r"\varepsilon"}
#: The optimizer state it keeps per parameter, each updated from its previous value and the gradient.
STATE_RULE = {
    "momentum": {"v": r"\beta \, v_{<P>} + (1 - \beta) <dP>"},
    "rmsprop": {"s": r"\beta_2 \, s_{<P>} + (1 - \beta_2) <dP> \odot <dP>"},
    "adam": {"v": r"\beta_1 \, v_{<P>} + (1 - \beta_1) <dP>",
             "s": r"\beta_2 \, s_{<P>} + (1 - \beta_2) <dP> \odot <dP>"},
}
#: The cost as scale · Σ terms: the scale with <m>, one example's term with <y>, <a> (ŷ) and <z>.
COST_TERMS = {
    "squared_error": (r"\frac{1}{2 \cdot <m>}", r"(<y> - <a>)^2"),
    "sum_of_squares": ("", r"(<y> - <a>)^2"),
    "binary_cross_entropy": (r"\frac{1}{<m>}", r"-<y> \log <a> - (1 - <y>) \log(1 - <a>)"),
    "binary_cross_entropy_from_logits": (r"\frac{1}{<m>}",
                                         r"\max(<z>, 0) - <z> \cdot <y> + \log\left(1 + e^{-|<z>|}\right)"),
}


def _fill(pattern: str, **values: str) -> str:
    for key, value in values.items():
        pattern = pattern.replace(f"<{key}>", value)
    return pattern


def _activation_symbol(name: str) -> str:
    """σ, \\tanh, relu, … : the activation's formula up to its '(z)'."""
    return ACTIVATIONS[name].formula.split("(z)")[0]


@dataclass
class Note:
    """A footnote on a node: the figure the other carry mode prints (or an erratum about the article)."""

    id: str
    kind: str  # "carry" or "erratum"
    symbol: str  # maths
    value: str = ""  # maths: the other mode's figure
    mode: str = ""  # the other mode's name
    printed: str = ""
    correct: str = ""
    exact: str = ""
    explanation: UserText | None = None


@dataclass
class Node:
    """One node of the graph at one step: a label (maths), its calculations and its footnotes."""

    name: str
    kind: str
    label: str
    calculations: list[Calculation]
    notes: list[Note] = field(default_factory=list)


@dataclass
class WorkedStep:
    step: int
    previous: int | None  # the step before it that the document shows, for "what changed"
    changes: list[dict[str, str]]
    forward: list[Node]
    cost: Node
    backward: list[Node]
    update: list[Node]
    values: dict[str, Any]  # everything the trace recorded at this step (raw arrays, for templates)
    errata: list[Note]


class Calculator:
    """Writes the calculations of one step of one chapter, every number from the trace."""

    def __init__(self, chapter: Chapter, trace: Trace, other: Trace | None, notes: list[Note]):
        self.chapter, self.trace, self.other = chapter, trace, other
        self.display = chapter.display
        self.meta = trace.meta
        self.notes = notes

    def m(self, q: str, value: Any, transpose: bool = False) -> str:
        return matrix(value, q, self.display, transpose)

    def f(self, q: str, value: Any, transpose: bool = False) -> str:
        return factor(value, q, self.display, transpose)

    def note_for(self, quantity: str, step: int, value: Any, node: Node, shown_as: str | None = None) -> None:
        """Footnote the figure when the other carry mode prints it differently."""
        if self.other is None or step not in set(self.other.steps.tolist()):
            return
        values = self.other.at(step)
        if quantity not in values:
            return
        mine, theirs = self.m(quantity, value), self.m(quantity, values[quantity])
        if mine != theirs:
            note = Note(f"n{len(self.notes) + 1}", "carry", shown_as or symbol(quantity), value=theirs,
                        mode=self.other.meta["carry"])
            self.notes.append(note)
            node.notes.append(note)

    def node(self, name: str, kind: str, label: str, step: int, calcs: list[Calculation]) -> Node:
        node = Node(name, kind, label, calcs)
        v = self.trace.at(step)
        for calc in calcs:
            if calc.quantity in v:
                self.note_for(calc.quantity, step, v[calc.quantity], node)
        return node

    # ----------------------------------------------------------------- forward

    def forward(self, step: int) -> list[Node]:
        v = self.trace.at(step)
        nodes = []
        for l, layer in enumerate(self.chapter.layers, start=1):
            Z, A, W, b, P = f"Z{l}", f"A{l}", f"W{l}", f"b{l}", f"A{l - 1}"
            bias = self.chapter.bias
            formula = f"{symbol(Z)} = {symbol(W)} {symbol(P)}" + (f" + {symbol(b)}" if bias else "")
            if v[W].shape[0] == 1 and v[P].shape[1] == 1:  # one unit, one example: the article's scalar form
                inputs = range(1, v[W].shape[1] + 1)
                x = "x" if l == 1 else f"a^{{[{l - 1}]}}"
                formula = f"{symbol(Z)} = " + " + ".join(
                    [f"w_{{{j}}} {x}_{{{j}}}" for j in inputs] + ([symbol(b)] if bias else []))
                terms = [f"{self.f(W, w)} \\cdot {self.f(P, a)}" for w, a in zip(v[W][0], v[P][:, 0])]
                substituted = " + ".join(terms + ([self.f(b, v[b])] if bias else []))
            else:
                substituted = f"{self.m(W, v[W])} {self.m(P, v[P])}" + (f" + {self.f(b, v[b])}" if bias else "")
            nodes.append(self.node(Z, "linear", symbol(Z), step,
                                   [Calculation(formula, substituted, self.m(Z, v[Z]), Z)]))
            act = layer.activation
            fn = _activation_symbol(act)
            calc = Calculation(f"{symbol(A)} = {fn}\\left({symbol(Z)}\\right)",
                               f"{fn}\\left({self.m(Z, v[Z])}\\right)", self.m(A, v[A]), A)
            nodes.append(self.node(A, "activation", symbol(A), step, [calc]))
        return nodes

    def cost(self, step: int) -> Node:
        v = self.trace.at(step)
        L = len(self.chapter.layers)
        name = self._cost_name()
        formula = COSTS[name].formula
        substituted = None
        if name in COST_TERMS:
            scale, term = COST_TERMS[name]
            A, Z, Y = v[f"A{L}"].ravel(), v[f"Z{L}"].ravel(), v["Y"].ravel()
            terms = [_fill(term, y=self.f("Y", y), a=self.f(f"A{L}", a), z=self.f(f"Z{L}", z))
                     for y, a, z in zip(Y, A, Z)]
            body = " + ".join(terms)
            scale = _fill(scale, m=str(self.trace.meta["batch_size"]))
            substituted = f"{scale}\\left[{body}\\right]" if scale and len(terms) > 1 else f"{scale}{body}"
        return self.node("cost", "cost", symbol("cost"), step,
                         [Calculation(formula, substituted, self.m("cost", v["cost"]), "cost")])

    def _cost_name(self) -> str:
        return f"{self.chapter.cost}_from_logits" if self.chapter.from_logits else self.chapter.cost

    # ----------------------------------------------------------------- backward

    def backward(self, step: int) -> list[Node]:
        v = self.trace.at(step)
        L = len(self.chapter.layers)
        m = str(self.trace.meta["batch_size"])
        name = self._cost_name()
        into = f"Z{L}" if self.chapter.from_logits else f"A{L}"
        dinto = "d" + into
        pattern = COST_GRADIENT.get(name)
        sym = dict(A=symbol(f"A{L}"), Z=symbol(f"Z{L}"), Y="Y", m="m")
        num_ = dict(A=self.m(f"A{L}", v[f"A{L}"]), Z=self.m(f"Z{L}", v[f"Z{L}"]), Y=self.m("Y", v["Y"]), m=m)
        first = Calculation(f"{symbol(dinto)} = " + (_fill(pattern, **sym) if pattern else r"\cdots"),
                            _fill(pattern, **num_) if pattern else None, self.m(dinto, v[dinto]), dinto)
        nodes = [self.node("cost", "cost", symbol("cost"), step, [first])]
        for l in range(L, 0, -1):
            Z, A, W, P = f"Z{l}", f"A{l}", f"W{l}", f"A{l - 1}"
            if not (self.chapter.from_logits and l == L):
                act = self.chapter.layers[l - 1].activation
                local = f"d{A}_d{Z}"
                lp = LOCAL_GRADIENT.get(act)
                calcs = [Calculation(
                    f"{symbol(local)} = " + (_fill(lp, A=symbol(A), Z=symbol(Z)) if lp else r"\cdots"),
                    _fill(lp, A=self.m(A, v[A]), Z=self.m(Z, v[Z])) if lp and lp != "1" else None,
                    self.m(local, v[local]), local)]
                times = r" \odot " if v[A].size > 1 else r" \cdot "
                calcs.append(Calculation(
                    f"{symbol('d' + Z)} = {symbol('d' + A)}{times}{symbol(local)}",
                    f"{self.f('d' + A, v['d' + A])}{times}{self.f(local, v[local])}",
                    self.m("d" + Z, v["d" + Z]), "d" + Z))
                nodes.append(self.node(A, "activation", symbol(A), step, calcs))
            calcs = [self._dW(v, l)]
            if self.chapter.bias:
                calcs.append(self._db(v, l))
            if l > 1:
                calcs.append(Calculation(
                    f"{symbol('d' + P)} = {symbol(W)}^{{T}} {symbol('d' + Z)}",
                    f"{self.m(W, v[W], transpose=True)} {self.f('d' + Z, v['d' + Z])}",
                    self.m("d" + P, v["d" + P]), "d" + P))
            nodes.append(self.node(Z, "linear", symbol(Z), step, calcs))
        return nodes

    def _dW(self, v: dict[str, Any], l: int) -> Calculation:
        Z, W, P = f"Z{l}", f"W{l}", f"A{l - 1}"
        dZ, A_prev = v["d" + Z], v[P]
        formula = f"{symbol('d' + W)} = {symbol('d' + Z)} \\, {symbol(P)}^{{T}}"
        if dZ.shape == (1, 1):  # one unit, one example: each weight's gradient is dz times its input
            products = [f"{self.f('d' + Z, dZ)} \\cdot {self.f(P, x)}" for x in A_prev[:, 0]]
            substituted = r"\begin{bmatrix} " + " & ".join(products) + r" \end{bmatrix}"
        else:
            substituted = f"{self.f('d' + Z, dZ)} {self.m(P, A_prev, transpose=True)}"
        return Calculation(formula, substituted, self.m("d" + W, v["d" + W]), "d" + W)

    def _db(self, v: dict[str, Any], l: int) -> Calculation:
        Z, b = f"Z{l}", f"b{l}"
        dZ = v["d" + Z]
        formula = f"{symbol('d' + b)} = \\sum_{{i=1}}^{{m}} \\frac{{\\partial \\mathrm{{Cost}}}}{{\\partial z_{{{l}}}^{{(i)}}}}"
        if dZ.shape[0] == 1:
            substituted = " + ".join(self.f("d" + Z, x) for x in dZ[0]) if dZ.shape[1] > 1 else None
        else:
            substituted = rf"\textstyle\sum_{{\text{{columns}}}} {self.m('d' + Z, dZ)}"
        return Calculation(formula, substituted, self.m("d" + b, v["d" + b]), "d" + b)

    # ----------------------------------------------------------------- update

    def update(self, step: int) -> list[Node]:
        """Each parameter: the optimizer's state (if any), then the update rule, with numbers for gd."""
        v = self.trace.at(step)
        optimizer = self.chapter.optimizer
        nodes = []
        for p in self.chapter.parameter_names:
            after = p + "_after"
            names = dict(P=symbol(p), dP=symbol("d" + p))
            if p in self.meta["frozen"]:
                calcs = [Calculation(f"{symbol(p)} = {symbol(p)}", None, self.m(p, v[after]))]
            else:
                calcs = [Calculation(f"{state}_{{{symbol(p)}}} := " + _fill(rule, **names), None,
                                     self.m(p, v[state + p]))
                         for state, rule in STATE_RULE.get(optimizer, {}).items() if state + p in v]
                rule = UPDATE_RULE.get(optimizer, rf"\operatorname{{{optimizer}}}\left(<P>, <dP>\right)")
                substituted = (f"{self.m(p, v[p])} - {chapter_number(self.chapter.learning_rate)} \\cdot "
                               f"{self.f('d' + p, v['d' + p])}") if optimizer == "gd" else None
                calcs.append(Calculation(f"{symbol(p)} := " + _fill(rule, **names), substituted,
                                         self.m(p, v[after]), after))
            node = Node(p, "parameter", symbol(p), calcs)
            self.note_for(after, step, v[after], node, symbol(p))
            nodes.append(node)
        return nodes


# --------------------------------------------------------------------------- the [document] section


@dataclass
class DocumentSpec:
    """What a chapter's [document] section asks for. It names steps and quantities, never values."""

    intro: UserText | None
    closing: UserText | None
    worked_steps: list[int]
    forward_steps: list[int]
    table_steps: list[int]
    table_decimals: int
    exercise: dict[str, Any] | None


def document_spec(chapter: Chapter) -> DocumentSpec:
    """Read and check the chapter's [document] section (defaults: step 0 worked, ~10 table rows)."""
    section = chapter_section(chapter, "document")
    intro = section.text("intro")
    closing = section.text("closing")
    last = chapter.steps - 1
    worked = _steps(section, "worked_steps", last) or [0]
    forward = [s for s in _steps(section, "forward_steps", last) if s not in worked]
    table = _steps(section, "table_steps", last)
    if not table and chapter.steps > max(worked + forward) + 1:
        stride = max(1, -(-chapter.steps // TABLE_ROWS))
        table = sorted(set(range(0, chapter.steps, stride)) | {last})
    table_decimals = section.integer("table_decimals", default=chapter.display.decimals_of("cost"),
                                     minimum=0, maximum=15)
    exercise = None
    prompt = section.text("exercise_prompt")
    if prompt:  # the document sets the chapter's [exercise] (its step and asked quantities), in these words
        asked = exercise_spec(chapter)
        exercise = {"step": asked.step, "prompt": UserText(prompt), "quantities": list(asked.ask)}
    section.done()
    return DocumentSpec(UserText(intro) if intro else None, UserText(closing) if closing else None,
                        worked, forward, table, table_decimals, exercise)


def _steps(section: Any, key: str, last: int) -> list[int]:
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        section.fail(key, "a list of step numbers", repr(value))
    for s in value:
        if not 0 <= s <= last:
            section.fail(key, f"steps from 0 to {last} (steps are counted from 0)", str(s))
    return sorted(set(value))


# --------------------------------------------------------------------------- the render context


def document_context(chapter: Chapter, traces: Traces | Trace | None = None, fmt: str = "md",
                     figures: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the templates see for one chapter (public: the exercise sheets reuse it).

    `traces`: what the command trained (a Trace is reused as its carry's trace).
    """
    spec = document_spec(chapter)
    traces = Traces.of(chapter, traces)
    shown = sorted(set(spec.worked_steps) | set(spec.forward_steps))
    needed = sorted(set(shown) | ({spec.exercise["step"]} if spec.exercise else set()))
    trace = traces.get(traces.carry, needed)
    other = traces.other(needed)
    notes: list[Note] = []
    calc = Calculator(chapter, trace, other, notes)
    errata = _errata(chapter, traces)
    display = chapter.display

    worked = []
    previous = None
    for step in shown:
        v = trace.at(step)
        changes = []
        if previous is not None:
            before = trace.at(previous)
            changes = [{"symbol": symbol(p), "before": matrix(before[p], p, display), "now": matrix(v[p], p, display)}
                       for p in chapter.parameter_names]
            changes.append({"symbol": symbol("cost"), "before": matrix(before["cost"], "cost", display),
                            "now": matrix(v["cost"], "cost", display)})
        full = step in spec.worked_steps
        worked.append(WorkedStep(step, previous, changes, calc.forward(step), calc.cost(step),
                                 calc.backward(step) if full else [], calc.update(step) if full else [], v,
                                 [e for e in errata if e.step == step]))
        previous = step

    exercise = None
    if spec.exercise:
        ex = spec.exercise
        v = trace.at(ex["step"])
        answers = []
        holder = Node("exercise", "exercise", "", [])
        for q in ex["quantities"]:
            if q not in v:
                raise TracerError(f"{chapter.path or chapter.name}: [exercise] ask: expected names "
                                  f"the trace records ({', '.join(sorted(v))}), got {q!r}")
            before = len(holder.notes)
            calc.note_for(q, ex["step"], v[q], holder)
            answers.append({"quantity": q, "symbol": symbol(q), "value": matrix(v[q], q, display),
                            "notes": holder.notes[before:]})
        exercise = {**ex, "answers": answers}

    table = [{"step": s, "cost": format_number(trace.costs[s], spec.table_decimals, "latex")}
             for s in spec.table_steps]
    return {
        "format": fmt,
        "chapter": {
            "name": chapter.name, "title": UserText(chapter.title),
            "source": UserText(chapter.raw["source"]) if chapter.raw.get("source") else None,
            "m": chapter.m, "n_inputs": chapter.n_inputs, "steps": chapter.steps,
            "layers": [{"index": i, "units": l.units, "activation": l.activation,
                        "symbol": _activation_symbol(l.activation), "formula": ACTIVATIONS[l.activation].formula}
                       for i, l in enumerate(chapter.layers, start=1)],
            "bias": chapter.bias, "cost": chapter.cost, "from_logits": chapter.from_logits,
            "cost_formula": COSTS[calc._cost_name()].formula,
            "optimizer": chapter.optimizer, "learning_rate": chapter.learning_rate,
            "hyper": [{"symbol": HYPER_SYMBOL.get(k, k), "value": chapter_number(chapter.hyper.get(k, DEFAULTS[k]))}
                      for k in OPTIMIZERS[chapter.optimizer].uses],
            "learning_rate_text": chapter_number(chapter.learning_rate),
            "batch_size": trace.meta["batch_size"], "parameters": chapter.parameter_names,
            "frozen": list(chapter.frozen), "carry": trace.meta["carry"], "other_carry": other.meta["carry"],
        },
        "display": display,
        "document": spec,
        "data": {"X": matrix(trace.X, "X", display), "Y": matrix(trace.Y, "Y", display),
                 "X_symbol": "X", "Y_symbol": "Y"},
        "initial": [{"symbol": symbol(p), "value": matrix(trace.at(trace.steps[0])[p], p, display)}
                    for p in chapter.parameter_names] if trace.steps[0] == 0 else [],
        "derivations": _derivations(chapter),
        "worked": worked,
        "long_run": {"table": table, "steps": chapter.steps,
                     "final": [{"symbol": symbol(p), "value": matrix(trace.final[p], p, display)}
                               for p in chapter.parameter_names]} if table else None,
        "exercise": exercise,
        "errata": [e for e in errata if e.step not in set(shown)],
        "notes": notes,
        "figures": figures or {},
    }


@dataclass
class Erratum(Note):
    step: int = 0


def _errata(chapter: Chapter, traces: Traces) -> list[Erratum]:
    """The article's printed figures that `tracer verify` found to differ from the computed ones."""
    found = []
    for check in article_figures(chapter, traces):
        if check.verdict != "article differs":
            continue
        shown = symbol(check.quantity)
        if check.index:
            shown = rf"\left[{shown}\right]_{{{','.join(str(i) for i in check.index)}}}"
        erratum = Erratum(f"e{len(found) + 1}", "erratum", shown, printed=_figure(check.printed),
                          correct=_figure(check.correct), exact=_figure(check.computed),
                          explanation=UserText(str(check.explanation)) if check.explanation else None,
                          step=check.step)
        found.append(erratum)
    return found


def _figure(value: Any) -> str:
    """A figure from a verify check as maths: text kept as written, numbers and lists as they are."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("−", "-").strip()
    array = np.asarray(value, dtype=float)
    if array.size == 1:
        return _exact(array.reshape(-1)[0])
    return r"\left[" + ", ".join(_exact(x) for x in array.ravel()) + r"\right]"


def _exact(x: float) -> str:
    """A value to six significant digits, enough to show how a printed figure came about."""
    return chapter_number(x, ".6g")


def _derivations(chapter: Chapter) -> list[dict[str, Any]]:
    """The SymPy derivation steps for the chapter's activations and cost."""
    out = []
    for name in derivations_used(chapter):
        steps = derivation(name)
        out.append({"name": name, "title": UserText(name.replace("_", " ").replace("+", " with ")),
                    "steps": [{"label": UserText(str(s.label)), "latex": s.latex} for s in steps]})
    return out


# --------------------------------------------------------------------------- the Jinja environment


def environment(user_templates: Path | None = None) -> jinja2.Environment:
    """The Jinja environment: the user's templates first, then the bundled ones; strict about undefined names.

    Filters (public, stable): `tex` and `md` escape user text; `num(quantity)` and
    `matrix(quantity[, transpose])` write numbers and arrays as LaTeX maths with the chapter's
    decimals (read from the context's `display`); `calculation` writes a Calculation as an aligned
    block; `symbol` turns a trace name (W1, dW1, dA1_dZ1, cost) into its maths symbol.
    """
    loaders: list[jinja2.BaseLoader] = []
    if user_templates is not None:
        folder = Path(user_templates)
        if not folder.is_dir():
            raise TemplateError(f"{folder}: --templates expects a folder of templates, and this is not one")
        loaders.append(jinja2.FileSystemLoader(str(folder)))
    loaders.append(jinja2.FileSystemLoader(str(bundled_path("templates"))))
    # Sandboxed: a template (a --templates folder is anyone's) reaches no Python internals.
    env = SandboxedEnvironment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                               autoescape=False, keep_trailing_newline=True, trim_blocks=True,
                               lstrip_blocks=True)
    env.filters.update({
        "tex": tex_escape, "md": md_escape, "calculation": calculation, "symbol": symbol,
        "num": _num_filter, "matrix": _matrix_filter,
    })
    return env


@jinja2.pass_context
def _num_filter(context: jinja2.runtime.Context, value: Any, quantity: str = "") -> str:
    return num(value, quantity, context.get("display"))


@jinja2.pass_context
def _matrix_filter(context: jinja2.runtime.Context, value: Any, quantity: str = "", transpose: bool = False) -> str:
    return matrix(value, quantity, context.get("display"), transpose)


def render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> str:
    """Render one template; any template failure becomes a TemplateError naming the template and line."""
    try:
        return env.get_template(template).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename or exc.name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} not found (in --templates or the bundled templates)") from None
    except jinja2.UndefinedError as exc:
        where = _template_line(exc)
        raise TemplateError(f"template {where}: {exc.message} (a misspelt variable?)") from None
    except (TemplateError, jinja2.TemplateError) as exc:
        raise TemplateError(f"template {_template_line(exc)}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {_template_file(exc) or template}: not UTF-8 text ({exc.reason} at byte "
                            f"{exc.start})") from None
    except RecursionError as exc:
        raise TemplateError(f"template {_template_line(exc)}: includes or extends itself without end") from None
    except TracerError:
        raise
    except Exception as exc:  # a template's own code failing: 1/0, [].pop(), …
        raise TemplateError(f"template {_template_line(exc)}: {type(exc).__name__}: {exc}") from None


def _template_file(exc: BaseException) -> str | None:
    """The template file a loader was reading when `exc` happened (a non-UTF-8 file)."""
    tb, name = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "get_source" and "filename" in tb.tb_frame.f_locals:
            name = str(tb.tb_frame.f_locals["filename"])
        tb = tb.tb_next
    return name


def _template_line(exc: BaseException) -> str:
    where = "?"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where

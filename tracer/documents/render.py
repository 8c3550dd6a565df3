"""Rendering worked-example documents: the document model laid out through Jinja templates.

The templates see a context made from the chapter's document model (tracer.documents.model) and
nothing else: each worked line typeset as LaTeX maths (formula, the same with the printed numbers
substituted, the result), the same for Markdown (`$…$` maths) and LaTeX; the templates decide where
it goes and how it looks, and an instructor's folder (`--templates DIR`) can override any template
by name. Every piece of text a chapter's author wrote reaches the templates as `UserText`, which
refuses to print itself: a template must pass it through `tex` or `md`, which escape it; the
model's commentary goes through `prose`, which escapes its words and keeps its maths.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import jinja2
import numpy as np
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from tracer.abbreviation import as_matrix
from tracer.documents.figures import FIGURE_MACROS
from tracer.documents.model import (ABBREVIATE_PAST, CORNER, Document, Step, document_model, evaluate,
                                    recorded_needs, symbol)
from tracer.operations import OPERATIONS
from tracer.engine.chapter import LINK, Chapter, Display
from tracer.engine import keys
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.resources import bundled_path
from tracer.rounding import format_number

#: The template each format starts from; partials are included by name and overridable too.
MAIN_TEMPLATE = {"md": "chapter.md.j2", "tex": "chapter.tex.j2"}
#: Data quantities written as whole numbers when they are whole (the article's x₁ = 0, y = 1).
EXACT_DATA = ("A0", "X", "Y")


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
    "′": r"$'$", "″": r"$''$", "½": r"$\tfrac{1}{2}$",
}
#: A letter with Unicode sub- or superscripts in an author's text (x₁, w², Xₜᵣₐᵢₙ) is maths, set in the
#: maths italic of the formulas around it, not in upright text with \textsubscript.
_SCRIPTED = re.compile("([A-Za-z])(?=[₀₁₂₃₄₅₆₇₈₉ᵢⱼₙₜₐᵣₖ⁰¹²³⁴⁵⁶⁷⁸⁹⁻ⁿ])([₀₁₂₃₄₅₆₇₈₉ᵢⱼₙₜₐᵣₖ]*)([⁰¹²³⁴⁵⁶⁷⁸⁹⁻ⁿ]*)")
_MD_SPECIALS = set("\\`*_[]#$|~^")
#: Markdown passes HTML through, and not every Markdown reader honours a backslash before `<`
#: (Python-Markdown, MkDocs's, does not): these are written as entities, which every reader shows.
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def tex_escape(text: UserText | str) -> str:
    """User text for LaTeX: its specials (% & _ # $ { } ~ ^ \\) escaped and its Unicode made LaTeX; a letter
    with Unicode scripts (x₁, w²) set as maths, so that it reads as the formulas around it do."""
    raw = text.text if isinstance(text, UserText) else str(text)
    out = []
    pieces = _SCRIPTED.split(raw)
    if len(pieces) > 1:
        for i in range(0, len(pieces), 4):
            out.append(_tex_chars(pieces[i]))
            if i + 3 < len(pieces):
                letter, sub, sup = pieces[i + 1:i + 4]
                out.append(f"${letter}" + (f"_{{{''.join(_SUB[c] for c in sub)}}}" if sub else "")
                           + (f"^{{{''.join(_SUP[c] for c in sup)}}}" if sup else "") + "$")
        return "".join(out)
    return _tex_chars(raw)


def _tex_chars(raw: str) -> str:
    out = []
    raw = raw.replace("--", "-\x00-")  # "--" as typed (an option's dashes), not TeX's en dash
    for ch in raw:
        if ch == "\x00":
            out.append("{}")
            continue
        if ch in _TEX_SPECIALS:
            out.append(_TEX_SPECIALS[ch])
        elif ch in _TEX_UNICODE:
            out.append(_TEX_UNICODE[ch])
        else:
            out.append(ch)
    return "".join(out)


def md_escape(text: UserText | str) -> str:
    """User text for Markdown: every character Markdown or its maths would read is backslash-escaped."""
    raw = text.text if isinstance(text, UserText) else str(text)
    return "".join(_MD_ENTITIES[ch] if ch in _MD_ENTITIES else "\\" + ch if ch in _MD_SPECIALS else ch for ch in raw)


def html_escape(text: UserText | str) -> Markup:
    """User text for HTML: the five characters HTML reads escaped (safe in text and in quoted attributes)."""
    return escape(text.text if isinstance(text, UserText) else str(text))


#: The one escaping function of each format: every template's user text goes through it.
ESCAPES: dict[str, Callable[[Any], str]] = {"md": md_escape, "tex": tex_escape, "html": html_escape}

def url_escape(link: str, fmt: str) -> str:
    """A checked link (LINK) for `fmt`: Markdown writes it as an autolink's target, LaTeX as typewriter
    text with its specials escaped, HTML as escaped text. Anything else is refused."""
    if not isinstance(link, str) or not LINK.fullmatch(link):
        raise TemplateError("a link that is not an http(s) address reached a template")
    if fmt == "tex":  # a long address may break after a slash, a dash, an underscore or a dot, not run off the page
        text = ESCAPES[fmt](link)
        for mark in ("/", "-", r"\_", "."):
            text = text.replace(mark, mark + r"\allowbreak{}")
        return text
    return ESCAPES[fmt](link) if fmt != "md" else link


_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉ᵢⱼₙₜₐᵣₖ", "0123456789ijntark"))
_SUP = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻ⁿ", "0123456789-n"))
_MATH_UNICODE = {
    "−": "-", "-": "-", "·": r"\cdot ", "⋅": r"\cdot ", "×": r"\times ", "∂": r"\partial ", "Σ": r"\sum ",
    "→": r"\to ", "←": r"\leftarrow ", "½": r"\tfrac{1}{2}", "ŷ": r"\hat{y}", "Ŷ": r"\hat{Y}",
    "≈": r"\approx ", "≤": r"\leq ", "≥": r"\geq ", "≠": r"\neq ", "′": "'", "√": r"\sqrt ", "…": r"\ldots ",
    "α": r"\alpha ", "β": r"\beta ", "γ": r"\gamma ", "δ": r"\delta ", "Δ": r"\Delta ", "ε": r"\varepsilon ",
    "η": r"\eta ", "θ": r"\theta ", "λ": r"\lambda ", "μ": r"\mu ", "π": r"\pi ", "σ": r"\sigma ",
    "τ": r"\tau ", "φ": r"\phi ", "ω": r"\omega ",
    "\\": r"\backslash ", "{": r"\{", "}": r"\}", "%": r"\%", "&": r"\&", "#": r"\#", "~": r"\sim ",
    "^": r"\wedge ", "<": "<", ">": ">", "|": "|",
}
#: Outside LaTeX (Markdown, HTML) the maths may be read as text: no character there opens markup.
_MATH_MARKUP = {"<": r"\lt ", ">": r"\gt "}
_MATH_FUNCTIONS = {"log", "exp", "max", "min", "ln", "tanh"}


def unicode_maths(text: str, fmt: str = "tex") -> str:
    """An author's maths written in Unicode (`∂Cost/∂W₁ = (ŷⱼ − yⱼ)/m`) as LaTeX maths.

    Safe by construction: every character maps to a fixed piece of LaTeX (no author command passes),
    a word of two letters or more is upright (`Cost`, `_new` a subscript word), sub- and superscript
    digits become `_{…}` and `^{…}`. For Markdown, `<` and `>` are `\\lt` and `\\gt`, so a reader that
    does not set maths never sees markup.
    """
    out, i = [], 0
    symbols = {**_MATH_UNICODE, **_MATH_MARKUP} if fmt != "tex" else _MATH_UNICODE
    while i < len(text):
        ch = text[i]
        if ch in _SUB or ch in _SUP:
            table, mark = (_SUB, "_") if ch in _SUB else (_SUP, "^")
            j = i
            while j < len(text) and text[j] in table:
                j += 1
            out.append(f"{mark}{{{''.join(table[c] for c in text[i:j])}}}")
            i = j
        elif ch == "_" and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum():
            j = i + 1
            while j < len(text) and text[j].isascii() and text[j].isalnum():
                j += 1
            word = text[i + 1:j]
            out.append(f"_{{\\mathrm{{{word}}}}}" if len(word) > 1 else f"_{{{word}}}")
            i = j
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < len(text) and text[j].isascii() and text[j].isalpha():
                j += 1
            word = text[i:j]
            if word in _MATH_FUNCTIONS:
                out.append(f"\\{word} ")
            else:
                out.append(word if len(word) == 1 else f"\\mathrm{{{word}}}")
            i = j
        else:
            if ch in symbols:
                out.append(symbols[ch])
            elif ch.isascii():
                out.append(ch if ch not in "$_" else r"\_" if ch == "_" else r"\$")
            else:
                out.append(rf"\text{{{tex_escape(ch)}}}")
            i += 1
    return "".join(out).replace(" _", "_").replace(" ^", "^").strip()


def with_maths(text: UserText | str, fmt: str) -> str:
    """An author's note for `fmt` ("tex", "md" or "html"): its words escaped, its `$…$` spans set as maths
    by `unicode_maths` (on the web page, a span KaTeX sets from its data-tex, as the page's own maths);
    a `$` without a partner stays a dollar sign."""
    raw = text.text if isinstance(text, UserText) else str(text)
    escape = ESCAPES[fmt]
    pieces = raw.split("$")
    if len(pieces) % 2 == 0:  # an odd count of $: the last one is a dollar sign
        pieces[-2:] = [pieces[-2] + "$" + pieces[-1]]

    def maths(piece: str) -> str:
        tex = unicode_maths(piece, fmt)
        if fmt == "html":
            return Markup('<span class="math inline" data-tex="{0}">{0}</span>').format(tex)
        return f"${tex}$"

    text = "".join(maths(p) if i % 2 else escape(p) for i, p in enumerate(pieces))
    return Markup(text) if fmt == "html" else text  # every piece escaped already


# --------------------------------------------------------------------------- numbers and matrices


def num(value: Any, quantity: str = "", display: Display | None = None) -> str:
    """One number as LaTeX maths: half-up to the quantity's decimals (data that is whole stays whole)."""
    x = float(np.asarray(value, dtype=float).reshape(-1)[0]) if np.ndim(value) else float(value)
    quantity = keys.before_update(quantity)  # a parameter after its update is shown as the parameter
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
    stages: list[str] = field(default_factory=list)  # the substituted line worked out, level by level
    #: The result with every digit carried (LaTeX), when its printed digits differ from `result`.
    every_digit: str | None = None
    note: Any = None  # a Prose said under this line (why carried and every-digit figures differ)

    @property
    def every_digit_line(self) -> str | None:
        """'lhs = the every-digit result' (maths mode), or None when the two agree."""
        return f"{formula_sides(self.formula)[0]} = {self.every_digit}" if self.every_digit else None


def formula_sides(formula: str) -> tuple[str, str, str]:
    """(left side, sign, right side) of a line's formula: `W_{1} := W_{1} - …` gives W_{1}, :=, W_{1} - …."""
    for candidate in (" := ", " = "):
        if candidate in formula:
            lhs, rhs = formula.split(candidate, 1)
            return lhs, candidate.strip(), rhs
    return formula, "=", ""


def calculation(calc: Calculation) -> str:
    """'formula = substituted = result' as an aligned block, one equals sign per line (maths mode)."""
    lhs, sign, rhs = formula_sides(calc.formula)
    lines = [f"{lhs} &{sign} {rhs}"] if rhs else []
    lines += [f"&= {part}" for part in (calc.substituted, *calc.stages, calc.result) if part]
    if not rhs:
        lines[0] = f"{lhs} {lines[0]}"
    return r"\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}"


# --------------------------------------------------------------------------- typesetting the model's lines

#: Past this many rows or columns a matrix is shown by its top-left corner and its shape (the model
#: says so in the step's commentary, so both come from there).
MAX_SHOWN = ABBREVIATE_PAST


def number_tex(text: str) -> str:
    """A printed number (Python's float syntax) as LaTeX maths: 5.1e-05 → 5.1 \\times 10^{-5}."""
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


def printed_tex(value: Any, transpose: bool = False, beside: Any = None, cell: Callable[[str], str] | None = None) -> str:
    """A printed number or matrix (nested lists of strings) as LaTeX maths; big matrices abbreviated.
    `beside`: the same shape printed otherwise; a matrix's entries that differ from it are set in bold."""
    if isinstance(value, str):
        return number_tex(value)

    def matrix(a: Any) -> np.ndarray:
        a = np.asarray(a, dtype=object)
        if a.ndim < 2:
            a = a.reshape(1, -1)
        if a.ndim > 2:  # an image quantity outside a worked line: stacked, one column per last index
            a = as_matrix(a)
        return a.T if transpose else a

    rows = matrix(value)
    if rows.size == 1:
        return number_tex(str(rows.reshape(-1)[0]))
    if beside is not None:
        other = matrix(np.asarray(beside, dtype=object).reshape(np.shape(value)))
        rows = np.array([[rf"\mathbf{{{number_tex(str(x))}}}" if x != y else number_tex(str(x))
                          for x, y in zip(row, row_other)] for row, row_other in zip(rows, other)], dtype=object)
        return printed_tex(rows.tolist(), cell=str)
    r, c = rows.shape
    big = r > MAX_SHOWN or c > MAX_SHOWN
    keep_r, keep_c = (min(r, CORNER), min(c, CORNER)) if big else (r, c)
    lines = []
    for i in range(keep_r):
        cells = [(cell or number_tex)(str(x)) for x in rows[i, :keep_c]] + ([r"\cdots"] if keep_c < c else [])
        lines.append(" & ".join(cells))
    if keep_r < r:
        lines.append(" & ".join([r"\vdots"] * keep_c + ([r"\ddots"] if keep_c < c else [])))
    body = r"\begin{bmatrix} " + r" \\ ".join(lines) + r" \end{bmatrix}"
    return body + (rf"_{{{r} \times {c}}}" if big else "")


#: Past this many maps, or this many columns of maps side by side, an image quantity outside the worked
#: lines shows its first ones and says how many.
SHOWN_MAPS = 3
SHOWN_COLUMNS = 12


def maps_tex(value: Any, examples_last: bool = True) -> str:
    """An image quantity as its 2-D maps side by side: the data (channels × height × width × examples)
    one example after another, a kernel (filters × channels × height × width) one filter and channel
    after another; past SHOWN_MAPS maps, the first ones, then how many. Anything else: `printed_tex`."""
    a = np.asarray(value, dtype=object)
    if a.ndim != 4:
        return printed_tex(value)
    if examples_last:
        groups = [[a[c, :, :, n] for c in range(a.shape[0])] for n in range(a.shape[3])]
        what = "images"
    else:
        groups = [[a[f, c]] for f in range(a.shape[0]) for c in range(a.shape[1])]
        what = "kernels"
    if len(groups) == 1 and len(groups[0]) == 1:
        return printed_tex(groups[0][0].tolist())
    cols = sum(x.shape[-1] for x in groups[0])
    keep = max(1, min(SHOWN_MAPS, SHOWN_COLUMNS // cols))
    shown = [", ".join(printed_tex(x.tolist()) for x in g) for g in groups[:keep]]
    shown = [rf"\left[{g}\right]" if len(groups[0]) > 1 else g for g in shown]
    more = rf", \ldots \text{{ ({len(groups)} {what})}}" if len(groups) > keep else ""
    return r"\left(" + ", ".join(shown) + more + r"\right)"


def _shape(tree: Any) -> tuple[int, ...]:
    return np.shape(evaluate(tree))


def _is_matrix(tree: Any) -> bool:
    return int(np.prod(_shape(tree))) > 1


def _negative(text: str) -> bool:
    return text.startswith("-")


def typeset(tree: Any) -> str:
    """An expression tree of printed numbers as LaTeX maths, signs set as a reader writes them."""
    return _typeset(tree)[0]


#: A substituted line wider than this many numbers side by side is broken (inside `aligned`).
LINE_NUMBERS = 14
#: Where typeset_lines breaks a line (public: the slides measure the rows).
BREAK = _BREAK = r" \\ &\qquad "


def _width(tree: Any) -> int:
    """How many numbers a typeset expression puts side by side (a matrix counts its shown columns)."""
    if isinstance(tree, dict):
        if tree["op"] == "transpose" and not isinstance(tree["args"][0], dict):
            rows = np.asarray(tree["args"][0], dtype=object)
            return min(rows.shape[0], CORNER + 1) if rows.ndim == 2 and rows.shape[0] > MAX_SHOWN else (
                rows.shape[0] if rows.ndim == 2 else 1)
        # a sum over the examples is written with its Σ and brackets: about three numbers' room more
        return sum(_width(a) for a in tree["args"]) + (3 if tree["op"] == "sum" and tree.get("axis") else 0)
    wide = 2 if "e" in str(tree) else 1  # 1.3 × 10⁻⁶ takes about two numbers' room
    if isinstance(tree, list):
        cols = np.shape(np.asarray(tree, dtype=object))[-1]
        return wide * (min(cols, CORNER + 1) if cols > MAX_SHOWN else cols)
    return wide


def typeset_lines(tree: Any) -> str:
    """`typeset`, broken over lines of an `aligned` block when it is too wide for the page: a long sum
    of terms a few terms to a line, otherwise at its outermost operator."""
    if isinstance(tree, dict) and tree["op"] == "add" and len(tree["args"]) > 2 and \
            _width(tree) > 2 * LINE_NUMBERS // 3:  # the sum of three paths or more: two terms to a row
        return "".join((_BREAK.rstrip(" ") if i and i % 2 == 0 else "") + (" + " if i else "") + typeset(a)
                       for i, a in enumerate(tree["args"]))
    if isinstance(tree, dict) and tree["op"] == "add" and len(tree["args"]) == 2 and _width(tree) > LINE_NUMBERS // 2 \
            and _op_of(tree["args"][1]) == "mul" and _op_of(tree["args"][1]["args"][0]) == "div":
        return typeset(tree["args"][0]) + _BREAK + "+ " + typeset(tree["args"][1])  # a gradient, then L2's (λ/m)·W
    if _width(tree) <= LINE_NUMBERS or not isinstance(tree, dict):
        return typeset(tree)
    name, args = tree["op"], tree["args"]
    if name == "mul" and _op_of(args[0]) == "div" and _op_of(args[1]) == "add":
        rows, row, width = [], [], 0
        for term in args[1]["args"][: CORNER] if len(args[1]["args"]) > MAX_SHOWN else args[1]["args"]:
            if row and width + _width(term) > LINE_NUMBERS:
                rows.append(row)
                row, width = [], 0
            row.append(typeset(term))
            width += _width(term)
        rows.append(row)
        if len(args[1]["args"]) > MAX_SHOWN:
            rows[-1] += [r"\cdots", typeset(args[1]["args"][-1])]
        text = ""
        for i, row in enumerate(rows):
            for j, term in enumerate(row):
                first = i == 0 and j == 0
                sign = "" if first else (" - " if term.startswith("-") else " + ")
                text += (_BREAK.rstrip(" ") if j == 0 and i else "") + sign + (term[1:] if sign == " - " else term)
        return typeset(args[0]) + r"\Big[" + text + r"\Big]"
    if name == "add" and len(args) > 2:  # a long sum: as many terms to a row as fit, a wide term alone
        shown = args[: CORNER] + [args[-1]] if len(args) > MAX_SHOWN else args
        text, width = "", 0
        for i, term in enumerate(shown):
            wide = _width(term) > LINE_NUMBERS
            part = typeset_lines(term) if wide else typeset(term)
            if i == CORNER and len(args) > MAX_SHOWN:
                part = r"\cdots + " + part
            joined = "- " + part[1:] if part.startswith("-") else "+ " + part
            if i == 0:
                text, width = part, _width(term)
            elif wide or width + _width(term) > LINE_NUMBERS:
                text, width = text + _BREAK + joined, _width(term)
            else:
                text, width = text + " " + joined, width + _width(term)
        return text
    if len(args) != 2:  # one operand (a sum along a row, a root): nowhere to break it
        return typeset(tree)
    symbols = {"add": " + ", "sub": " - ", "matmul": " ", "mul": r" \odot " if _is_matrix(args[0]) and _is_matrix(
        args[1]) else r" \cdot ", "div": r" \oslash "}
    if name in symbols and len(args) == 2 and not (name == "div" and not _is_matrix(args[1])):
        right = _typeset(args[1])
        # a − b·c and a·(b ⊘ c) = a·b ⊘ c (element-wise) need no brackets, which could not span rows
        bracketed = right[1] < 2 and name != "add" and not (name in ("sub", "mul") and right[1] == 1)
        if not bracketed and _width(args[1]) > LINE_NUMBERS:  # still too wide: broken again
            right_text = typeset_lines(args[1])
        else:
            right_text = _paren(right[0]) if bracketed else right[0]
        left = _typeset(args[0])
        left_text = _paren(left[0]) if left[1] < (1 if name in ("add", "sub") else 2) else left[0]
        if name == "mul" and _width(args[0]) == 1:  # 0.05 · … stays on the row of what it multiplies
            return left_text + symbols[name] + right_text
        return left_text + _BREAK + symbols[name].strip() + " " + right_text
    return typeset(tree)


def _shown_rows(tree: Any) -> int:
    """Rows of numbers the typeset value of `tree` stacks (a big matrix: its corner and a row of dots)."""
    shape = _shape(tree)
    rows = shape[0] if len(shape) == 2 else 1
    return min(rows, CORNER + 1) if rows > MAX_SHOWN else rows


def _sqrt(arg: Any, text: str) -> str:
    """√ of a typeset argument. A matrix over a number (Adam's ŝ = s / (1 − β₂ᵗ)) is written with a slash,
    so the matrix stays centred and the brackets around the root fit it (a fraction's bar puts the matrix
    above the axis, and brackets sized to it reach as far below); a strut as tall as the matrix keeps
    the root's bar clear of its brackets."""
    if (_op_of(arg) == "div" and _is_matrix(arg["args"][0]) and not _is_matrix(arg["args"][1])
            and _shown_rows(arg["args"][0]) > 1):  # a row's bar puts little below the axis: it stays a fraction
        top, (bottom, prec) = _typeset(arg["args"][0])[0], _typeset(arg["args"][1])
        text = f"{top} / {bottom if prec == 2 else _paren(bottom)}"
    if not _is_matrix(arg):
        return rf"\sqrt{{{text}}}"
    # a bmatrix of r rows rises about 0.6r em above the baseline (rows 1.2 em apart, centred on the axis)
    strut = rf"\rule{{0pt}}{{{0.6 * _shown_rows(arg) + 0.4:.2f}em}}"
    return rf"\sqrt{{{strut}{text}}}"


def _op_of(tree: Any) -> str | None:
    return tree["op"] if isinstance(tree, dict) else None


def _paren(text: str) -> str:
    return rf"\left({text}\right)"


class _Typesetter:
    """What an operation's LaTeX form (tracer.operations) asks about the arguments of one tree node."""

    def __init__(self, tree: dict[str, Any]):
        self.tree = tree
        self.args = tree["args"]
        self.parts = [_typeset(a) for a in self.args]

    def part(self, i: int) -> tuple[str, int]:
        return self.parts[i]

    def operand(self, i: int, first: bool = False, below: int = 1) -> str:
        text, prec = self.parts[i]
        return _paren(text) if prec < below or (not first and _negative(text)) else text

    def is_matrix(self, i: int) -> bool:
        return _is_matrix(self.args[i])

    def op_of(self, i: int) -> str | None:
        return _op_of(self.args[i])

    def printed(self, i: int, transpose: bool = False) -> str | None:
        return None if isinstance(self.args[i], dict) else printed_tex(self.args[i], transpose=transpose)

    def paren(self, text: str) -> str:
        return _paren(text)

    def root(self, i: int) -> str:
        """√ of argument i, its brackets and bar sized to what it holds (see _sqrt)."""
        return _sqrt(self.args[i], self.parts[i][0])


def _typeset(tree: Any) -> tuple[str, int]:
    """(LaTeX, precedence): 0 a sum or difference, 1 a product or negation, 2 an atom."""
    if not isinstance(tree, dict):
        text = printed_tex(tree)
        return text, 1 if _negative(text) else 2
    if tree["op"] not in OPERATIONS:
        raise TemplateError(f"an expression with the unknown operation {tree['op']!r}")
    return OPERATIONS[tree["op"]].latex(_Typesetter(tree))


# --------------------------------------------------------------------------- the render context


class Prose:
    """A sentence of the model's commentary: ours with maths between $…$, or an author's note (all text)."""

    def __init__(self, text: str, authored: bool = False):
        self.text, self.authored = text, authored

    def __str__(self) -> str:
        raise TemplateError("commentary printed without the `prose` filter")

    def render(self, fmt: str) -> str:
        escape = ESCAPES[fmt]
        if self.authored:
            return with_maths(self.text, fmt)
        pieces = self.text.split("$")
        text = "".join(f"${escape(p) if fmt == 'html' else p}$" if i % 2 else escape(p) for i, p in enumerate(pieces))
        return Markup(text) if fmt == "html" else text  # every piece escaped already


@dataclass
class Node:
    """One node of the graph at one step as the templates lay it out: label, kind, lines, commentary."""

    name: str
    kind: str
    label: str
    calculations: list[Calculation]
    comments: list[Prose] = field(default_factory=list)


@dataclass
class WorkedStep:
    step: int
    previous: int | None
    changes: list[dict[str, str]]
    forward: list[Node]
    cost: Node
    backward: list[Node]
    update: list[Node]
    errata: list[dict[str, Any]]
    comparison: Prose | None
    comparison_at: str


def _kind(node: str, model: Document) -> str:
    """A node's kind in plain words: linear, sigmoid, squared error, updated by gradient descent."""
    net = model.network
    return net["kinds"].get(node) or f"updated by {net['optimizer_readable']}"


def _nodes(model: Document, step: Step, phase: str) -> list[Node]:
    nodes: list[Node] = []
    for i, line in enumerate(step.lines):
        if line.phase != phase:
            continue
        if not nodes or nodes[-1].name != line.node:
            nodes.append(Node(line.node, _kind(line.node, model), symbol(line.node), []))
        substituted, result = typeset_lines(line.expression), printed_tex(line.result)
        nodes[-1].calculations.append(Calculation(line.formula, None if substituted == result else substituted,
                                                  result, line.quantity, [typeset_lines(t) for t in line.stages],
                                                  printed_tex(line.every_digit, beside=line.result)
                                                  if line.every_digit else None,
                                                  Prose(step.rounding_note) if i == step.rounding_note_at else None))
    # Commentary sits under the node it is about, in the last phase that node appears in.
    for node in nodes:
        later = {l.node for l in step.lines if _PHASES.index(l.phase) > _PHASES.index(phase)}
        if node.name not in later:
            node.comments = [Prose(c.text, c.kind == "author") for c in step.comments if c.node == node.name]
    return nodes


_PHASES = ("forward", "cost", "backward", "update")


def document_context(chapter: Chapter, trace: Trace | None = None, fmt: str = "md",
                     figures: dict[str, str] | None = None, other: Trace | None = None,
                     model: Document | None = None) -> dict[str, Any]:
    """Everything the templates see for one chapter, laid out from its document model alone.

    `trace` and `other` are the full-precision and hand-carried traces (either order); what is
    missing is run. Public: the exercise sheets reuse it.
    """
    if model is None:
        model = document_model(chapter, *document_traces(chapter, trace, other))
    net = model.network
    worked = []
    article = model.article
    shown_steps = {s.step for s in model.steps}
    differs = [_figure(f) for f in article.figures if f.verdict != "matches"]
    for e in differs:  # explained beside its step when the document shows it: not twice
        e["shown"] = e["step"] in shown_steps
    kept = [f for f in article.figures if f.verdict == "matches"]
    matches = [_figure(f) for f in kept]
    asked = {(model.exercise["step"], a["quantity"]) for a in model.exercise["answers"]} if model.exercise else set()
    for f in matches:  # not given away just before the exercise that asks for it
        f["exercise"] = (f["step"], f["quantity"]) in asked
    for before, f, shown in zip([None, *kept], kept, matches):  # a note on several entries of one figure, said once
        if before is not None and (before.step, before.quantity, before.note) == (f.step, f.quantity, f.note):
            shown["note"] = None
    for step in model.steps:
        changes = [{"symbol": symbol(c.quantity), "before": printed_tex(c.before), "now": printed_tex(c.now)}
                   for c in step.changes]
        cost = _nodes(model, step, "cost")
        worked.append(WorkedStep(step.step, step.previous, changes, _nodes(model, step, "forward"), cost[0],
                                 _nodes(model, step, "backward"), _nodes(model, step, "update"),
                                 [e for e in differs if e["step"] == step.step],
                                 Prose(step.comparison) if step.comparison else None, step.comparison_at))
    exercise = None
    if model.exercise:
        ex = model.exercise
        exercise = {"step": ex["step"], "prompt": UserText(ex["prompt"]),
                    "answers": [{"quantity": a["quantity"], "symbol": symbol(a["quantity"]),
                                 "value": printed_tex(a["value"])} for a in ex["answers"]]}
    long_run = None
    if model.long_run:
        lr = model.long_run
        long_run = {"steps": lr["steps"], "decimals": lr["decimals"],
                    "table": [{"step": r["step"], "cost": number_tex(r["cost"]),
                               **{k: number_tex(r[k]) for k in ("data", "penalty") if k in r}} for r in lr["table"]],
                    "final": [{"symbol": symbol(p), "value": maps_tex(v, examples_last=False)}
                              for p, v in lr["final"].items()],
                    "running": [{"symbol": r["symbol"], "value": printed_tex(r["value"])} for r in lr.get("running", [])],
                    "reading": [Prose(r) for r in lr.get("reading", ())]}
    return {
        "format": fmt,
        "chapter": {
            "name": model.chapter, "title": UserText(model.title),
            "source": UserText(model.source) if model.source else None,
            "m": net["m"], "n_inputs": net["n_inputs"], "steps": net["steps"],
            "image": r" \times ".join(map(str, net["n_inputs"])) if isinstance(net["n_inputs"], (tuple, list)) else None,
            "layers": net["layers"], "bias": net["bias"], "cost_formula": net["cost_formula"],
            "cost_readable": net["cost_readable"], "optimizer": net["optimizer"],
            "optimizer_readable": net["optimizer_readable"],
            "hyper": [{"symbol": h["symbol"], "value": number_tex(h["value"])} for h in net["hyper"]],
            "learning_rate_text": number_tex(net["learning_rate"]),
            "batch_size": net["batch_size"], "parameters": net["parameters"], "frozen": net["frozen"],
        },
        "notation": [Prose(n) for n in model.notation],
        "display": chapter.display,
        "document": {"intro": UserText(model.intro) if model.intro else None,
                     "closing": UserText(model.closing) if model.closing else None},
        "data": {"X": maps_tex(model.data["X"]), "Y": printed_tex(model.data["Y"])},
        "initial": [{"symbol": symbol(p), "value": maps_tex(v, examples_last=False)} for p, v in model.initial.items()],
        "derivations": [{"name": d["name"], "title": UserText(d["title"]),
                         "steps": [{"label": UserText(s["label"]), "latex": s["latex"]} for s in d["steps"]]}
                        for d in model.derivations],
        "worked": worked,
        "long_run": long_run,
        "exercise": exercise,
        "errata": [e for e in differs if e["step"] not in shown_steps],
        "article": {
            "author": UserText(article.author) if article.author else None,
            "title": UserText(article.title) if article.title else None,
            "link": article.link or None,
            "note": UserText(article.note) if article.note else None,
            "matches": matches,
            "differs": differs,
            "formulas": [{"latex": f.latex, "true": f.verdict == "true", "correct": f.correct_latex,
                          "factor": f.factor, "where": list(f.where), "note": UserText(f.note) if f.note else None,
                          "source": UserText(f.source) if f.source else None}
                         for f in article.formulas],
        },
        "figures": figures or {},
    }


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def entry_words(index: tuple[int, ...] | None, shape: tuple[int, ...]) -> str:
    """Which entry of a quantity a figure is, as a reader says it, counted from 1: "The second entry of "
    for a vector (one row or one column), "The entry in row 2, column 1 of " for a matrix."""
    if not index:
        return ""
    if len(index) == 2 and len(shape) == 2 and 1 in shape:  # a row or a column: one number counts
        k = index[1] if shape[0] == 1 else index[0]
        return f"The {_ORDINALS[k]} entry of " if k < len(_ORDINALS) else f"Entry {k + 1} of "
    if len(index) == 2:
        return f"The entry in row {index[0] + 1}, column {index[1] + 1} of "
    return f"Entry {', '.join(str(i + 1) for i in index)} of "


def _figure(f: Any) -> dict[str, Any]:
    """An article figure for the templates: its symbol (and entry), what was printed and where, what is computed."""
    when = f"after the update of step {f.step}" if keys.is_after(f.quantity) else f"at step {f.step}"
    digits = len(Decimal(f.printed.replace("−", "-")).as_tuple().digits) if f.agree else 0
    return {"step": f.step, "quantity": f.quantity, "when": when, "symbol": symbol(f.quantity),
            "entry": entry_words(f.index, tuple(f.shape)), "printed": f.printed.replace("−", "-"), "correct": f.correct,
            "exact": f.exact, "explanation": UserText(f.explanation) if f.explanation else None,
            "note": UserText(f.note) if f.note else None, "agree": f.agree, "digits": digits,
            "source": UserText(f.source) if f.source else None,
            # a whole-number figure of a quantity that is not whole (a predicted class): show the value too
            "rounded": "." not in f.correct and f.exact != f.correct}


def document_traces(chapter: Chapter, trace: Traces | Trace | None = None,
                    other: Trace | None = None) -> tuple[Trace, Trace]:
    """(full-precision trace, hand-carried trace) recording every step the document shows.

    From the command's `Traces`; or Traces given (in either order), reused: what is missing or does
    not record the shown steps is run, once.
    """
    traces = trace if isinstance(trace, Traces) else Traces(chapter, *[t for t in (trace, other) if t is not None])
    needed = recorded_needs(chapter)
    return traces.get("full", needed), traces.hand(needed)


# --------------------------------------------------------------------------- the Jinja environment


def environment(user_templates: Path | None = None) -> jinja2.Environment:
    """The Jinja environment: the user's templates first, then the bundled ones; strict about undefined names.

    Filters (public, stable): `text` escapes user text by the context's format (ESCAPES; `tex` and
    `md` name two of them), `url` writes a checked link; `num(quantity)` and
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
    # HTML templates (*.html.j2) are autoescaped: anything not marked safe is text there.
    env = SandboxedEnvironment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                               autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                                   default_for_string=False, default=False),
                               keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.globals["figure_macros"] = FIGURE_MACROS  # the LaTeX the figures' placement uses, for preamble.tex.j2
    env.filters.update({
        "tex": tex_escape, "md": md_escape, "text": _text_filter, "url": _url_filter, "calculation": calculation,
        "symbol": symbol, "prose": _prose_filter, "note": _note_filter, "num": _num_filter, "matrix": _matrix_filter,
    })
    return env


@jinja2.pass_context
def _text_filter(context: jinja2.runtime.Context, value: UserText | str) -> str:
    """User text escaped by its format's one function (ESCAPES): `md`, `tex` or `html`."""
    return ESCAPES[context.get("format", "md")](_neutral(context, value))


def _neutral(context: jinja2.runtime.Context, value: Any) -> Any:
    """"x" for every piece of user text when the context asks (`neutral_text`: the web page's policy
    is computed from such a render, so no user text can add to what it allows)."""
    return "x" if context.get("neutral_text") and isinstance(value, (UserText, Prose)) else value


@jinja2.pass_context
def _url_filter(context: jinja2.runtime.Context, value: str) -> str:
    return url_escape(value, context.get("format", "md"))


@jinja2.pass_context
def _prose_filter(context: jinja2.runtime.Context, value: Prose) -> str:
    if context.get("neutral_text"):
        return "x"
    return value.render(context.get("format", "md"))


@jinja2.pass_context
def _note_filter(context: jinja2.runtime.Context, value: UserText) -> str:
    return with_maths(_neutral(context, value), context.get("format", "md"))


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


#: Every web page's Content-Security-Policy: nothing is fetched, and a script runs only if it is one of
#: the template's own (by its SHA-256), so markup that reached the page by mistake cannot run.
POLICY = ("default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; font-src data:; img-src data:; "
          "base-uri 'none'; form-action 'none'")
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def render_html(env: Any, template: str, context: dict[str, Any]) -> str:
    """Render an HTML template with a policy (`csp` in its context) that allows exactly its own scripts.

    The scripts are taken from a render in which every piece of user text is replaced by "x", so no
    chapter text can add a script to the allowed ones; a script in the real page that is not among
    them stops the build (an escaping bug would otherwise slip through the policy).
    """
    neutral = render(env, template, {**context, "neutral_text": True, "csp": ""})
    hashes = sorted({_hash(body) for attributes, body in _SCRIPT.findall(neutral) if _runs(attributes)})
    csp = POLICY.format(scripts=" ".join(hashes) or "'none'")
    page = render(env, template, {**context, "csp": csp})
    stray = [body[:60] for attributes, body in _SCRIPT.findall(page) if _runs(attributes) and _hash(body) not in hashes]
    if stray:
        raise TemplateError(f"template {template}: a script that is not the template's own reached the page "
                            f"({stray[0]!r}…); nothing was written")
    return page


def _runs(attributes: str) -> bool:
    """Whether a <script> element runs (a JSON data block does not, and the policy does not cover it)."""
    return "application/json" not in attributes.lower()


def _hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii") + "'"

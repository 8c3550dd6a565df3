"""LaTeX maths as one line of Unicode text, for the terminal: `\\frac{d\\sigma}{dz}` → dσ/dz.

The documents typeset maths; a terminal cannot. `latex_to_unicode` reads the small part of LaTeX the
project writes (fractions, sub- and superscripts, sums, Greek letters, `\\left(`…`\\right)`, `\\hat`,
`\\mathrm`, `cases`) and writes what a reader would write by hand: 1/(1 + e⁻ᶻ), ∂Cost/∂ŷᵢ, Σᵢ₌₁ᵐ.
A command it does not know is written as its name, never as a backslash.
"""

from __future__ import annotations

import re

_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "epsilon": "ε", "varepsilon": "ε",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "pi": "π", "sigma": "σ", "Sigma": "Σ", "tau": "τ",
    "phi": "φ", "omega": "ω", "partial": "∂", "cdot": "·", "times": "×", "odot": "⊙", "oslash": "⊘",
    "infty": "∞", "leq": "≤", "geq": "≥", "neq": "≠", "approx": "≈", "to": "→", "rightarrow": "→",
    "leftarrow": "←", "ldots": "…", "cdots": "⋯", "sum": "Σ", "prod": "Π", "in": "∈", "pm": "±",
    "qquad": "   ", "quad": "  ", ",": " ", ":": " ", ";": " ", "!": "", " ": " ", "{": "{", "}": "}",
    "%": "%", "&": "&", "#": "#", "_": "_", "$": "$", "backslash": "\\",
}
#: Commands whose argument is written as it is (upright text in LaTeX, plain text here).
_TEXT = {"mathrm", "operatorname", "text", "mathbf", "mathit", "textstyle", "displaystyle", "boldsymbol"}
#: Functions written as words before their argument.
_FUNCTIONS = {"log", "ln", "exp", "max", "min", "tanh", "sin", "cos"}
_SUB = dict(zip("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))
_SUP = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyzT",
                "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᵀ"))
_HATS = {"y": "ŷ", "Y": "Ŷ", "a": "â", "e": "ê", "o": "ô", "u": "û", "A": "Â"}
#: A space that tidying keeps (after d/dz, before what it acts on).
_KEEP = "\x00"
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}^_&]|\s+|[^\\{}^_&\s]")


def latex_to_unicode(latex: str) -> str:
    """One line of Unicode for a LaTeX maths string (see the module's docstring)."""
    tokens = _TOKEN.findall(latex)
    text, _ = _sequence(tokens, 0, stop=None)
    text = re.sub(_KEEP + r"\s*", " ", _tidy(text))
    return re.sub(r"\s+(?=[),;\]}])", "", text).strip()


def _sequence(tokens: list[str], i: int, stop: str | None) -> tuple[str, int]:
    """Tokens up to `stop` ("}" or an \\end), as text; returns (text, index after the stop)."""
    out: list[str] = []
    while i < len(tokens):
        token = tokens[i]
        if token == stop:
            return "".join(out), i + 1
        piece, i = _atom(tokens, i)
        if piece in ("^", "_"):
            script, i = _atom(tokens, i)
            out.append(_script(script, piece))
            continue
        out.append(piece)
    return "".join(out), i


def _group(tokens: list[str], i: int) -> tuple[str, int]:
    """The next argument: a {…} group or one token."""
    while i < len(tokens) and tokens[i].isspace():
        i += 1
    if i < len(tokens) and tokens[i] == "{":
        return _sequence(tokens, i + 1, stop="}")
    return _atom(tokens, i)


def _atom(tokens: list[str], i: int) -> tuple[str, int]:
    token = tokens[i]
    i += 1
    if token == "{":
        return _sequence(tokens, i, stop="}")
    if token in ("^", "_"):
        return token, i
    if token.isspace():
        return " ", i
    if not token.startswith("\\"):
        return {"-": "\u2212", "'": "′"}.get(token, token), i
    name = token[1:]
    if name == "frac" or name == "dfrac" or name == "tfrac":
        top, i = _group(tokens, i)
        bottom, i = _group(tokens, i)
        return _fraction(_tidy(top), _tidy(bottom)), i
    if name == "sqrt":
        inside, i = _group(tokens, i)
        inside = _tidy(inside)
        return "√" + (inside if _simple(inside) else f"({inside})"), i
    if name == "hat":
        inside, i = _group(tokens, i)
        inside = _tidy(inside)
        return _HATS.get(inside, inside + "\u0302"), i
    if name in _TEXT:
        if i < len(tokens) and tokens[i] == "{":
            inside, i = _group(tokens, i)
            return inside, i
        return "", i
    if name in ("left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr"):
        delimiter, i = (tokens[i], i + 1) if i < len(tokens) else ("", i)
        return {".": "", r"\{": "{", r"\}": "}", r"\|": "‖"}.get(delimiter, delimiter), i
    if name in _FUNCTIONS:
        return f" {name}", i
    if name == "begin":
        env, i = _group(tokens, i)
        body, i = _sequence(tokens, i, stop=r"\end")
        _, i = _group(tokens, i)  # {env} of \end{env}
        rows = [" ".join(cell.strip() for cell in row.split("&")) for row in body.split("\\\\")]
        rows = [_tidy(r) for r in rows if r.strip()]
        if env == "cases":
            return "{" + "; ".join(rows) + "}", i
        return "[" + "; ".join(rows) + "]", i
    if name == "\\":
        return "\\\\", i
    return _SYMBOLS.get(name, name), i


def _script(text: str, mark: str) -> str:
    """A sub- or superscript in Unicode when every character has one (ᵢ, ², ⁻ᶻ), else _(…) or ^(…)."""
    text = _tidy(text).replace("\u2212", "-").replace(" ", "")
    table = _SUB if mark == "_" else _SUP
    if text and all(c in table for c in text):
        return "".join(table[c] for c in text)
    text = text.replace("-", "\u2212")
    return mark + (text if text.isalnum() else f"({text})")


#: A term a fraction's bar can take without parentheses: a number, a name with its scripts (dσ, ∂ŷᵢ,
#: e⁻ᶻ), a call or a bracket (σ(z), (1 + e⁻ᶻ)²).
_SCRIPTS = "[" + re.escape("".join(_SUB.values()) + "".join(_SUP.values()) + "′") + "]*"
_ATOM = re.compile(r"[0-9.]+|(?:[A-Za-z\u0370-\u03ffŷŶ∂]+\u0302?" + _SCRIPTS + r")?(?:√?\(.*\)" + _SCRIPTS + ")?")


def _simple(text: str) -> bool:
    """A term that needs no parentheses in a fraction (1/m, ∂Cost/∂ŷᵢ, 1/(2m), (ŷ − y)/m)."""
    if not text or not _ATOM.fullmatch(text):
        return False
    depth = 0  # "(a)(b)" is a product, not one bracket
    for k, c in enumerate(text):
        depth += 1 if c in "([{" else -1 if c in ")]}" else 0
        if depth == 0 and c in ")]}" and not re.fullmatch(_SCRIPTS, text[k + 1:]):
            return False
    return True


def _fraction(top: str, bottom: str) -> str:
    if top in ("d", "∂") and bottom.startswith(top):  # d/dz, ∂/∂ŷ: the operator, then what it acts on
        return f"{top}/{bottom.replace(' ', '')}{_KEEP}"
    top = top if _simple(top) else f"({top})"
    bottom = bottom if _simple(bottom) else f"({bottom})"
    return f"{top}/{bottom}{_KEEP}"  # 1/m (A − Y): what follows a fraction multiplies it, not its bar


def _tidy(text: str) -> str:
    """One space around + − = and none elsewhere a reader would not put one."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s*([=<>≤≥≈→])\s*", r" \1 ", text)
    text = re.sub(r"(?<=[^\s(\[{,;])\s*([+\u2212])\s*", r" \1 ", text)  # binary: spaced
    text = re.sub(r"(^|[(\[{,;]|[=+\u2212] )\s*\u2212\s+", "\\1\u2212", text)  # unary: tight
    text = re.sub(r"∂\s+", "∂", text)
    text = re.sub(r"(?<=\d)\s+(?=[A-Za-z\u0370-\u03ffŷ](?![A-Za-z]))", "", text)  # 2m, 2ŷᵢ
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+\)", ")", text)
    text = re.sub(r"(?<=[0-9A-Za-z\u0302\u00c0-\u024f\u0370-\u03ff₀-₉ᵢⱼₖₘₙ⁰-⁹ᵀ′)])\s+(?=[(√])", "", text)
    return re.sub(r"\s+", " ", text).strip()


__all__ = ["latex_to_unicode"]

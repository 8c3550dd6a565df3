"""Formula claims from a chapter's [[article.formulas]]: a small grammar, parsed by hand into SymPy.

An article's derivative formula is transcribed as `claim = "diff((y - yhat)**2, yhat) == 2*(y - yhat)"`
and judged by SymPy. The text is a chapter author's, so it never reaches `eval`, `sympify` or
`parse_expr`: a tokenizer and a recursive-descent parser accept exactly

    claim   := expr "==" expr
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("+" | "-") unary | power
    power   := atom ("**" unary)?
    atom    := NUMBER | NAME | NAME "[" expr "]" | FUNCTION "(" args ")" | "(" expr ")"

with FUNCTION one of exp, log, diff, Sum (`diff(f, x)`, `diff(f, x, y)`, `Sum(f, (i, 1, m))`),
NAME a letter followed by letters, digits or single underscores, and `y[i]` an indexed name. Anything
else (attribute access, Python keywords, dunder names, strings, unknown functions, very long or
deeply nested input) is refused with a `FormulaError` saying where and why.

SymPy is imported inside the functions, so loading this module costs nothing.
"""

from __future__ import annotations

import functools
import keyword
import re
import dataclasses
from dataclasses import dataclass
from typing import Any

from tracer.errors import TracerError

#: Longest claim accepted, in characters; an article's formula fits in a line or two.
MAX_LENGTH = 400
#: Deepest nesting of parentheses, calls and powers accepted.
MAX_DEPTH = 24
FUNCTIONS = ("exp", "log", "diff", "Sum")
#: Largest exponent and longest number accepted: 9**9**9 or 1e999999999 would keep SymPy busy for ever.
MAX_EXPONENT = 1000
MAX_NUMBER_LENGTH = 40
#: Largest numeric bound of a Sum (it may be written out term by term).
MAX_SUM_TERMS = 100
#: Values tried for a symbolic upper bound of a Sum when SymPy cannot settle the claim in general.
SUM_INSTANCES = range(1, 6)


class FormulaError(TracerError):
    """A claim outside the grammar, or one that cannot be judged (exit status 2)."""


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    pos: int


_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>\*\*|==|[-+*/()\[\],]))")


def tokenize(text: str) -> list[Token]:
    """The claim's tokens; a clear FormulaError for anything the grammar does not have."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula too long ({len(text)} characters; at most {MAX_LENGTH})")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            start = len(text) - len(text[pos:].lstrip())
            raise FormulaError(_unexpected(text, start))
        kind = match.lastgroup or "op"
        value = match.group(kind)
        start = match.start(kind)
        if kind == "name":
            _check_name(text, value, start)
            if match.end() < len(text) and text[match.end()] == ".":
                raise FormulaError(f"attribute access ('{value}.') at character {match.end() + 1} "
                                   "is not part of the formula grammar")
        tokens.append(Token(kind, value, start))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _check_name(text: str, name: str, pos: int) -> None:
    where = f"at character {pos + 1}"
    if name.startswith("_") or "__" in name or name.endswith("_"):
        raise FormulaError(f"the name {name!r} {where} is not allowed (names start with a letter and use "
                           "single underscores only)")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise FormulaError(f"{name!r} {where} is a Python keyword, not part of the formula grammar")


def _unexpected(text: str, pos: int) -> str:
    char = text[pos]
    if char == ".":
        return f"attribute access ('.') at character {pos + 1} is not part of the formula grammar"
    if char in "'\"":
        return f"strings (quote at character {pos + 1}) are not part of the formula grammar"
    return (f"unexpected character {char!r} at character {pos + 1}; the grammar has names, numbers, "
            "+ - * / **, parentheses, [index], ==, and the functions " + ", ".join(FUNCTIONS))


class _Parser:
    """Recursive descent over the tokens, building SymPy objects as it goes."""

    def __init__(self, text: str, symbols: dict[str, Any]):
        import sympy as sp

        self.sp = sp
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.symbols = symbols
        # Names used as a summation index, Sum(f, (i, …)), or inside brackets, y[j], are integers.
        t = self.tokens
        self.indices = {t[k + 2].text for k in range(len(t) - 3) if t[k].text == "," and t[k + 1].text == "("
                        and t[k + 2].kind == "name" and t[k + 3].text == ","}
        self.indices |= {t[k + 1].text for k in range(len(t) - 2) if t[k].text == "[" and t[k + 1].kind == "name"
                         and t[k + 2].text == "]"}
        # Names in a sum's bounds, Sum(f, (i, 1, m)), are counts: positive integers.
        self.counts: set[str] = set()
        for k in range(len(t) - 3):
            if t[k].text == "," and t[k + 1].text == "(" and t[k + 2].kind == "name" and t[k + 3].text == ",":
                depth, q = 1, k + 4
                while q < len(t) and depth:
                    depth += {"(": 1, ")": -1}.get(t[q].text, 0)
                    if t[q].kind == "name":
                        self.counts.add(t[q].text)
                    q += 1

    # ---------------------------------------------------------------- helpers

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self, text: str | None = None) -> Token:
        tok = self.tok
        if text is not None and tok.text != text:
            raise FormulaError(self.expected(repr(text)))
        self.i += 1
        return tok

    def expected(self, what: str) -> str:
        tok = self.tok
        got = "the end of the formula" if tok.kind == "end" else repr(tok.text)
        return f"expected {what} at character {tok.pos + 1}, got {got}"

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula nested too deeply (more than {MAX_DEPTH} levels)")

    def symbol(self, name: str) -> Any:
        if name not in self.symbols:
            if name in self.counts:
                self.symbols[name] = self.sp.Symbol(name, integer=True, positive=True)
            elif name in self.indices:
                self.symbols[name] = self.sp.Symbol(name, integer=True)
            else:
                self.symbols[name] = self.sp.Symbol(name, real=True)
        return self.symbols[name]

    # ---------------------------------------------------------------- grammar

    def claim(self) -> tuple[Any, Any]:
        left = self.expr()
        if self.tok.text != "==":
            raise FormulaError(self.expected("'==' (a claim reads LEFT == RIGHT)"))
        self.take("==")
        right = self.expr()
        if self.tok.kind != "end":
            raise FormulaError(self.expected("the end of the formula"))
        return left, right

    def whole(self) -> Any:
        value = self.expr()
        if self.tok.kind != "end":
            raise FormulaError(self.expected("the end of the expression"))
        return value

    def expr(self) -> Any:
        return self.chain(self.term, {"+": lambda a, b: a + b, "-": lambda a, b: a - b})

    def term(self) -> Any:
        return self.chain(self.unary, {"*": lambda a, b: a * b, "/": lambda a, b: a / b})

    def chain(self, operand: Any, operators: dict[str, Any]) -> Any:
        """operand (op operand)*, left to right: the shape of both sums and products."""
        value = operand()
        while self.tok.text in operators:
            combine = operators[self.take().text]
            value = combine(value, operand())
        return value

    def unary(self) -> Any:
        if self.tok.text in ("+", "-"):
            op = self.take().text
            self.nest()
            value = self.unary()
            self.depth -= 1
            return -value if op == "-" else value
        return self.power()

    def power(self) -> Any:
        base = self.atom()
        if self.tok.text == "**":
            self.take()
            self.nest()
            exponent = self.unary()
            self.depth -= 1
            if exponent.is_number and abs(exponent) > MAX_EXPONENT:
                raise FormulaError(f"exponent {exponent} too large (at most {MAX_EXPONENT} in size)")
            return base ** exponent
        return base

    def atom(self) -> Any:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            mantissa, _, power = tok.text.lower().partition("e")
            if len(tok.text) > MAX_NUMBER_LENGTH or (power and abs(int(power)) > 300):
                raise FormulaError(f"the number at character {tok.pos + 1} is too long or too large")
            return self.sp.Rational(tok.text)  # exact: 0.5 is 1/2
        if tok.text == "(":
            self.take()
            self.nest()
            value = self.expr()
            self.depth -= 1
            self.take(")")
            return value
        if tok.kind == "name":
            self.take()
            if self.tok.text == "(":
                return self.call(tok)
            if tok.text in FUNCTIONS:
                raise FormulaError(f"{tok.text} at character {tok.pos + 1} is a function: write {tok.text}(…)")
            if self.tok.text == "[":
                self.take()
                self.nest()
                index = self.expr()
                self.depth -= 1
                self.take("]")
                return self.sp.IndexedBase(tok.text, real=True)[index]
            return self.symbol(tok.text)
        raise FormulaError(self.expected("a number, a name or '('"))

    def call(self, name: Token) -> Any:
        sp = self.sp
        if name.text not in FUNCTIONS:
            raise FormulaError(f"unknown function {name.text!r} at character {name.pos + 1}; the grammar knows "
                               + ", ".join(FUNCTIONS))
        self.take("(")
        self.nest()
        args = [self.expr()]
        bounds = None
        while self.tok.text == ",":
            self.take()
            if name.text == "Sum" and self.tok.text == "(":
                bounds = self.bounds()
            else:
                args.append(self.expr())
        self.depth -= 1
        self.take(")")
        if name.text in ("exp", "log"):
            if len(args) != 1 or bounds:
                raise FormulaError(f"{name.text}() at character {name.pos + 1} takes one argument")
            return sp.exp(args[0]) if name.text == "exp" else sp.log(args[0])
        if name.text == "diff":
            if len(args) < 2 or bounds:
                raise FormulaError(f"diff() at character {name.pos + 1} takes an expression and the names to "
                                   "differentiate by: diff(f, x)")
            for v in args[1:]:
                if not isinstance(v, (sp.Symbol, sp.Indexed)):
                    raise FormulaError(f"diff() at character {name.pos + 1}: differentiate by a name, got {v}")
            return sp.Derivative(args[0], *args[1:])
        if len(args) != 1 or bounds is None:
            raise FormulaError(f"Sum() at character {name.pos + 1} is written Sum(f, (i, first, last))")
        return sp.Sum(args[0], bounds)

    def bounds(self) -> tuple[Any, Any, Any]:
        self.take("(")
        index = self.tok
        if index.kind != "name":
            raise FormulaError(self.expected("the summation index (a name)"))
        self.take()
        self.take(",")
        first = self.expr()
        self.take(",")
        last = self.expr()
        self.take(")")
        for bound in (first, last):
            if bound.is_number and abs(bound) > MAX_SUM_TERMS:
                raise FormulaError(f"a Sum's bound of {bound} is too large (at most {MAX_SUM_TERMS})")
        return self.symbol(index.text), first, last


def parse_expression(text: str, symbols: dict[str, Any] | None = None) -> Any:
    """One expression of the grammar as a SymPy object (derivatives left unevaluated)."""
    return _Parser(text, {} if symbols is None else symbols).whole()


def parse_claim(text: str, symbols: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """`LEFT == RIGHT` as two SymPy objects (derivatives left unevaluated)."""
    return _Parser(text, {} if symbols is None else symbols).claim()


@dataclass
class ClaimResult:
    """SymPy's judgement of one claim: true, or false with the right-hand side that would be true."""

    claim: str
    holds: bool
    correct: str  # the right-hand side that makes the claim true ('' when it holds)
    factor: str  # when the claimed right side is off by a constant factor (e.g. '-1', a sign slip), that factor
    method: str  # "symbolic", or "sums written out for the upper bound = 1…5"
    latex: str  # the claim as the article wrote it, as LaTeX
    correct_latex: str  # the true equation as LaTeX ('' when the claim holds)


def check_claim(text: str, where: dict[str, str] | None = None) -> ClaimResult:
    """Judge `LEFT == RIGHT` with SymPy; `where` defines names used in it (yhat = "1/(1 + exp(-z))").

    A verdict depends only on the claim, this code and SymPy's version, so it is kept in the verify
    cache (tracer/checks/cache.py): SymPy judges each claim once per machine, not once per run."""
    from tracer.checks import cache

    items = tuple((where or {}).items())
    key = [text, [list(item) for item in items], cache.source_of(__file__)]
    return cache.cached("claim", key, lambda: _check_claim(text, items), dataclasses.asdict,
                        lambda value: _claim_result(value, text))


def _claim_result(value: Any, text: str) -> ClaimResult:
    """A stored verdict, checked field by field (a damaged entry raises and is judged again)."""
    names = [f.name for f in dataclasses.fields(ClaimResult)]
    if not isinstance(value, dict) or sorted(value) != sorted(names) or value["claim"] != text:
        raise ValueError("not a verdict")
    for name in names:
        if not isinstance(value[name], bool if name == "holds" else str):
            raise TypeError(f"{name}: wrong type")
    return ClaimResult(**value)


@functools.lru_cache(maxsize=256)
def _check_claim(text: str, where_items: tuple[tuple[str, str], ...]) -> ClaimResult:
    import sympy as sp

    where = dict(where_items)

    symbols: dict[str, Any] = {}
    left, right = parse_claim(text, symbols)
    as_written = f"{sp.latex(left)} = {sp.latex(right)}"
    definitions = [(symbols.get(name) or _define(name, symbols), parse_expression(expr, symbols))
                   for name, expr in where.items()]
    for _ in range(len(definitions)):
        left, right = left.subs(definitions), right.subs(definitions)
    claimed = parse_claim(text, {})[1]
    # At random points first: a claim false there needs no simplification to be judged, and one
    # true there is usually proved by one simplify of the difference rather than three.
    quick = _at_random_points(left, right, text)
    if quick is not None:
        equal, worked_left, worked_right, ratio = quick
        if equal and sp.simplify(worked_left - worked_right) == 0:
            return ClaimResult(text, True, "", "", "symbolic", as_written, "")
        if not equal and ratio is not None:
            factor, correct, correct_expr = _off_by(ratio, text, claimed)
            correct_latex = f"{as_written.split(' = ', 1)[0]} = {sp.latex(correct_expr)}"
            return ClaimResult(text, False, correct, factor, f"differs at {RANDOM_POINTS} random points",
                               as_written, correct_latex)
    left, right = _work_out(left), _work_out(right)
    holds, method = _equal(left, right)
    if holds:
        return ClaimResult(text, True, "", "", method, as_written, "")
    ratio = sp.simplify(left / right) if right != 0 else sp.nan
    if ratio.is_number and ratio.is_finite and ratio != 0:
        factor, correct, correct_expr = _off_by(ratio, text, claimed)
    else:
        factor = ""
        correct_expr = _fold(sp.simplify(left), definitions)
        correct = str(correct_expr)
    correct_latex = f"{as_written.split(' = ', 1)[0]} = {sp.latex(correct_expr)}"
    return ClaimResult(text, False, correct, factor, method, as_written, correct_latex)


#: How many random points a claim is evaluated at before SymPy simplifies it, and at what precision.
RANDOM_POINTS = 4
RANDOM_DIGITS = 30


def _off_by(ratio: Any, text: str, claimed: Any) -> tuple[str, str, Any]:
    """A claim whose right side is off by the constant `ratio`: (factor, correct text, correct SymPy)."""
    import sympy as sp

    right_text = text.split("==", 1)[1].strip()
    factor = str(ratio)
    correct = f"-({right_text})" if ratio == -1 else f"{factor}*({right_text})"
    if ratio == -1 and right_text.startswith("-"):
        try:  # "-(-x**2)" reads better as "x**2" when that is what it is
            if sp.expand(parse_expression(right_text[1:], {}) + claimed) == 0:
                correct = right_text[1:].strip()
        except FormulaError:
            pass
    return factor, correct, sp.Mul(ratio, claimed, evaluate=False)


def _at_random_points(left: Any, right: Any, text: str) -> tuple[bool, Any, Any, Any] | None:
    """Both sides, derivatives carried out, at RANDOM_POINTS points (each name uniform in 0.15…0.85,
    drawn from a generator seeded by the claim, so the verdict is the same every run).

    Returns (equal at every point, left, right, the constant ratio left/right when it is the same
    small fraction at every point, else None); None when the points cannot decide (sums, indices,
    piecewise results, or a value that is not a finite real number)."""
    import fractions
    import random

    import mpmath
    import sympy as sp

    worked_left, worked_right = left.doit().doit(), right.doit().doit()
    both = sp.Tuple(worked_left, worked_right)
    if both.has(sp.Sum, sp.Piecewise, sp.Derivative, sp.Indexed, sp.Integral):
        return None
    names = sorted(both.free_symbols, key=lambda s: s.name)
    function = sp.lambdify(names, [worked_left, worked_right], modules="mpmath")
    rng = random.Random(text)
    equal, ratios = True, []
    with mpmath.workdps(RANDOM_DIGITS):
        for _ in range(RANDOM_POINTS):
            point = [mpmath.mpf(rng.uniform(0.15, 0.85)) for _ in names]
            try:
                a, b = (mpmath.mpmathify(v) for v in function(*point))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                return None
            if not all(isinstance(v, mpmath.mpf) and mpmath.isfinite(v) for v in (a, b)):
                return None
            scale = max(mpmath.mpf(1), abs(a), abs(b))
            if abs(a - b) > mpmath.mpf(10) ** (10 - RANDOM_DIGITS) * scale:
                equal = False
            ratios.append(a / b if b != 0 else None)
    if equal or any(r is None for r in ratios):
        return equal, worked_left, worked_right, None
    fraction = fractions.Fraction(float(ratios[0])).limit_denominator(12)
    same = all(abs(r - mpmath.mpf(fraction.numerator) / fraction.denominator) <
               mpmath.mpf(10) ** (10 - RANDOM_DIGITS) * max(1, abs(r)) for r in ratios)
    return False, worked_left, worked_right, (sp.Rational(fraction.numerator, fraction.denominator)
                                              if same and fraction != 0 else None)


def _define(name: str, symbols: dict[str, Any]) -> Any:
    import sympy as sp

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*", name) or keyword.iskeyword(name):
        raise FormulaError(f"where: {name!r} is not a name of the formula grammar")
    symbols[name] = sp.Symbol(name, real=True)
    return symbols[name]


def _work_out(expr: Any) -> Any:
    """Carry out derivatives and sums. An index lies in its sum's range, so a result SymPy gives as
    "this if 1 <= j <= m, else 0" keeps its first branch."""
    import sympy as sp

    ranged = {s for total in expr.atoms(sp.Sum) for limit in total.limits for s in sp.Tuple(*limit[1:]).free_symbols}
    ranged |= {s for indexed in expr.atoms(sp.Indexed) for s in sp.Tuple(*indexed.indices).free_symbols}
    done = sp.simplify(expr.doit().doit())
    for piece in done.atoms(sp.Piecewise):
        first = piece.args[0]
        if first.cond.free_symbols and first.cond.free_symbols <= ranged:
            done = done.subs(piece, first.expr)
    return done


def _equal(left: Any, right: Any) -> tuple[bool, str]:
    import sympy as sp

    difference = sp.simplify(left - right)
    if difference == 0:
        return True, "symbolic"
    if not difference.has(sp.Sum):
        return False, "symbolic"
    # A sum with a symbolic upper bound SymPy cannot close: write it out for small bounds instead.
    bounds = {b for s in difference.atoms(sp.Sum) for (_i, _a, b) in s.limits if not b.is_number}
    for value in SUM_INSTANCES:
        instance = sp.simplify(difference.subs({b: value for b in bounds}).doit())
        if instance != 0:
            return False, f"sums written out for the upper bound = {value}"
    first, last = SUM_INSTANCES[0], SUM_INSTANCES[-1]
    return True, f"sums written out for the upper bound = {first}…{last}"


def _fold(expr: Any, definitions: list[tuple[Any, Any]]) -> Any:
    """Write a defined expression back as its name (1/(1 + exp(-z)) as yhat), where SymPy can."""
    for name, value in reversed(definitions):
        expr = expr.subs(value, name)
    return expr

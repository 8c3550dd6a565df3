"""A student's answers: read with a small grammar of numbers and brackets, judged at their own precision.

An answer is `QUANTITY = VALUE`: the quantity is any name the trace records at a step (Z1, A1,
dW1, db1, dZ1, dA0, W1, W1_after, cost, …, with a few friendlier aliases such as "new W1" or
"∂Cost/∂W1"), the value a number, a list `[a, b]` or a matrix `[[a, b], [c, d]]` written row by
row as in the documents (`[a, b; c, d]` also works). Nothing typed here reaches eval, sympify or a
template: the text is cut into number and bracket tokens by one regular expression, and every
number goes through `Decimal`.

Judging ("precision" mode, the default): a number written with d decimals is right when it is the
exact value rounded half-up to d decimals, or within half a unit of its last digit of the exact
value, or what a valid hand route gives rounded to d decimals: the hand trace (every value
rounded as it is written down, `tracer.Traces(chapter).hand()`) or the one-product route
(dZ = dA·∂A/∂Z in one product, ∂A/∂Z never rounded: `mistakes.one_product_route`). A number
with fewer decimals than asked is "too few digits" only when it is right at its own decimals;
otherwise it is wrong and its mistake is looked for. The other modes are the graders' usual ones:
`sigfig` (N significant digits), `decimals` (N decimals) and `relabs` (|given − exact| ≤ atol +
rtol·|exact|); they compare with the exact value only.

A wrong answer that is what the student's own other wrong answers give, carried through the step
(the step rerun with their numbers in place of the true ones), is "carried forward" and earns its
points (`StepChecker`, which trains a step once to judge a whole class against it).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from tracer.abbreviation import bracketed
from tracer.engine import keys
from tracer.engine.chapter import chapter_section
from tracer.engine.graph import Graph
from tracer.engine.keys import COST, INPUT
from tracer.errors import TracerError, quoted
from tracer.exercises import tolerance
from tracer.rounding import decimals_in, format_number, round_half_up, to_decimal

if TYPE_CHECKING:
    from tracer.engine.trace import Trace
    from tracer.engine.train import Traces

#: Longest answer text read (a 10 × 10 matrix at 6 decimals is well under this).
MAX_LENGTH = 10_000
#: Largest power of ten a number may be written with: beyond this it is not a hand calculation.
MAX_EXPONENT = 300

EXAMPLE = '"dW1 = [-0.044, -0.035]" or "db1 = -0.031"'
VALUE_FORMS = "a number (-0.031), a list ([-0.044, -0.035]) or a matrix written row by row ([[0.1, 0.2], [0.3, 0.4]])"

_TOKEN = re.compile(r"\s*(?:(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<symbol>[\[\],;]))")
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2010": "-", "\u2011": "-"})


class AnswerError(TracerError):
    """An answer that cannot be read: says which answer, where, and what was expected."""

    quantity: str | None = None  # the quantity it answers, when the answer was read but has the wrong shape


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Answer:
    """One answer as written: the quantity's name, the numbers as typed and the layout they were typed in.

    `numbers` are the number strings in reading order (row by row); `layout` is () for a number,
    (n,) for a flat list and (rows, columns) for a matrix.
    """

    text: str
    name: str
    numbers: tuple[str, ...]
    layout: tuple[int, ...]

    @property
    def decimals(self) -> list[int]:
        return [decimals_in(n) for n in self.numbers]

    def fit(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The numbers (as strings) laid out in `shape`, or None if they were not written that way.

        A number fits a 1 × 1 value; a flat list fits a value with one row or one column (db1 of a
        hidden layer may be written [a, b, c]); a matrix must have the value's rows and columns.
        """
        shape = tuple(shape)
        size = int(np.prod(shape)) if shape else 1
        if len(self.numbers) != size:
            return None
        ok = (len(self.layout) < 2 and (len(shape) < 2 or 1 in shape)) or self.layout == shape \
            or (len(self.layout) == 2 and shape == () and self.layout == (1, 1)) \
            or (len(shape) > 2 and self.layout == stacked_shape(shape))
        if not ok:
            return None
        return np.array(self.numbers, dtype=object).reshape(shape)


def parse_answer(text: str) -> Answer:
    """Read one `QUANTITY = VALUE` answer; an AnswerError says what was expected where."""
    if not isinstance(text, str):
        raise AnswerError(f"an answer must be text such as {EXAMPLE}")
    shown = _show(text)
    if len(text) > MAX_LENGTH:
        raise AnswerError(f"answer {shown}: longer than {MAX_LENGTH} characters; expected one quantity "
                          f"and its value, e.g. {EXAMPLE}")
    line = text.translate(_MINUS).strip()
    sep = re.search(r"[=:]", line)
    if not sep:
        raise AnswerError(f"answer {shown}: expected QUANTITY = VALUE, e.g. {EXAMPLE}")
    name, value = line[:sep.start()].strip(), line[sep.end():]
    if not name:
        raise AnswerError(f"answer {shown}: no quantity before '{sep.group()}'; expected QUANTITY = VALUE, "
                          f"e.g. {EXAMPLE}")
    if not re.fullmatch(r"[\w∂/' ]+", name):
        raise AnswerError(f"answer {shown}: {quoted(name)} is not a quantity name; expected a name such as dW1, "
                          f"db1, A1, W1_after or cost")
    numbers, layout = _parse_value(value, shown, sep.end())
    return Answer(text, " ".join(name.split()), tuple(numbers), layout)


def parse_answers(texts: Iterable[str]) -> list[Answer]:
    """Several answers; blank lines and lines starting with # (in an answers file) are skipped."""
    answers = [parse_answer(t) for t in texts if t.strip() and not t.lstrip().startswith("#")]
    seen: set[str] = set()
    for a in answers:
        if a.name in seen:
            raise AnswerError(f"answer {_show(a.text)}: {a.name} is answered twice; give each quantity once")
        seen.add(a.name)
    return answers


def _parse_value(text: str, shown: str, offset: int) -> tuple[list[str], tuple[int, ...]]:
    """Cut VALUE into tokens and read it as a number, a list or a matrix."""
    tokens: list[tuple[str, str, int]] = []  # (kind, text, column)
    pos = 0
    stripped_end = len(text.rstrip())
    while pos < stripped_end:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            col = offset + pos + (len(text[pos:]) - len(text[pos:].lstrip())) + 1
            bad = text[pos:].split()[0][:12]
            raise AnswerError(f"answer {shown}: {quoted(bad)} at column {col} is not a number or a bracket; "
                              f"expected {VALUE_FORMS}")
        kind = "number" if m.lastgroup == "number" else m.group("symbol")
        start = m.start(m.lastgroup)
        if kind == "number" and m.end() < len(text) and re.match(r"[\w.+-]", text[m.end()]):
            bad = re.match(r"[\w.+-]+", text[start:]).group()
            raise AnswerError(f"answer {shown}: {quoted(bad)} at column {offset + start + 1} is not a number; expected "
                              f"{VALUE_FORMS}, numbers separated by commas")
        tokens.append((kind, m.group(m.lastgroup), offset + start + 1))
        pos = m.end()
    if not tokens:
        raise AnswerError(f"answer {shown}: no value after the '='; expected {VALUE_FORMS}")
    _balanced(tokens, shown)
    reader = _Reader(tokens, shown)
    numbers, layout = reader.value(depth=0)
    if reader.i < len(tokens):
        kind, tok, col = tokens[reader.i]
        raise AnswerError(f"answer {shown}: {quoted(tok)} at column {col} after the value ended; expected one value, "
                          f"{VALUE_FORMS} (put several numbers inside brackets)")
    return [_number(n, shown) for n in numbers], layout


def _balanced(tokens: list[tuple[str, str, int]], shown: str) -> None:
    stack: list[int] = []
    for kind, _, col in tokens:
        if kind == "[":
            stack.append(col)
        elif kind == "]":
            if not stack:
                raise AnswerError(f"answer {shown}: unbalanced brackets: ']' at column {col} closes nothing; "
                                  f"expected {VALUE_FORMS}")
            stack.pop()
    if stack:
        raise AnswerError(f"answer {shown}: unbalanced brackets: '[' at column {stack[-1]} is never closed; "
                          f"expected {VALUE_FORMS}")


class _Reader:
    """Recursive descent over the tokens: value := NUMBER | '[' row (';' row)* ']', row := value (','? value)*."""

    def __init__(self, tokens: list[tuple[str, str, int]], shown: str):
        self.tokens, self.shown, self.i = tokens, shown, 0

    def fail(self, what: str) -> None:
        raise AnswerError(f"answer {self.shown}: {what}; expected {VALUE_FORMS}")

    def value(self, depth: int) -> tuple[list[str], tuple[int, ...]]:
        kind, tok, col = self.tokens[self.i]
        if kind == "number":
            self.i += 1
            return [tok], ()
        if kind != "[":
            self.fail(f"{quoted(tok)} at column {col} where a number or '[' should be")
        if depth >= 2:
            self.fail(f"brackets nested three deep at column {col} (a matrix has two levels: [[a, b], [c, d]])")
        self.i += 1
        rows: list[list[tuple[list[str], tuple[int, ...]]]] = [[]]
        expect_item = True
        while True:
            kind, tok, col = self.tokens[self.i]
            if kind == "]":
                self.i += 1
                break
            if kind in (",", ";"):
                if expect_item:
                    self.fail(f"{quoted(tok)} at column {col} with no number before it")
                if kind == ";":
                    rows.append([])
                self.i += 1
                expect_item = True
                continue
            rows[-1].append(self.value(depth + 1))
            expect_item = False
        if expect_item and any(rows):
            self.fail(f"a ',' or ';' with no number after it before column {col}")
        if not any(rows):
            self.fail(f"empty brackets ending at column {col}")
        items = [item for row in rows for item in row]
        nested = [layout != () for _, layout in items]
        if any(nested) and not all(nested):
            self.fail(f"a list that mixes numbers and lists (ending at column {col})")
        if len(rows) > 1:  # [a, b; c, d]
            if any(nested):
                self.fail(f"';' between lists (ending at column {col}); write either [a, b; c, d] or [[a, b], [c, d]]")
            widths = [len(r) for r in rows]
            if len(set(widths)) > 1:
                bad = next(i for i, w in enumerate(widths) if w != widths[0])
                self.fail(f"row {bad + 1} has {widths[bad]} numbers but row 1 has {widths[0]}")
            return [n for row in rows for (ns, _) in row for n in ns], (len(rows), widths[0])
        if any(nested):
            widths = [len(ns) for ns, _ in items]
            if len(set(widths)) > 1:
                bad = next(i for i, w in enumerate(widths) if w != widths[0])
                self.fail(f"row {bad + 1} has {widths[bad]} numbers but row 1 has {widths[0]}")
            return [n for ns, _ in items for n in ns], (len(items), widths[0])
        return [ns[0] for ns, _ in items], (len(items),)


def _number(text: str, shown: str) -> str:
    """A number as written, if it is an ordinary finite number (not 1e999)."""
    try:
        d = Decimal(text)
    except InvalidOperation:  # the token pattern admits only numbers; kept as a guard
        raise AnswerError(f"answer {shown}: {quoted(text)} is not a number; expected {VALUE_FORMS}") from None
    exponent = d.adjusted() if d != 0 else 0
    if abs(exponent) > MAX_EXPONENT or abs(d.as_tuple().exponent) > MAX_EXPONENT or not math.isfinite(float(d)):
        raise AnswerError(f"answer {shown}: {text} is not a number a hand calculation gives; expected an ordinary "
                          f"decimal number such as -0.044 (powers of ten up to 1e{MAX_EXPONENT})")
    return text.lstrip("+")


def _show(text: str) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --------------------------------------------------------------------------- names


def resolve_name(name: str, known: Sequence[str], graph: Graph) -> str:
    """The trace's name for a quantity as a student writes it ('new W1' → 'W1_after', '∂Cost/∂W1' → 'dW1',
    'ŷ' → the graph's output; in a network of one layer 'dW' → 'dW1')."""
    known_set = set(known)
    candidates = [name]
    m = re.fullmatch(r"(?:new|updated)\s+(\w+)|(\w+)(?:\s+|_)(?:after|new|updated)|(\w+)'", name, re.IGNORECASE)
    if m:
        base = next(g for g in m.groups() if g)
        candidates.append(keys.after(base))
    m = re.fullmatch(r"(?:∂|d)\s*(?:cost|c|j|l)\s*/\s*(?:∂|d)\s*(\w+)", name, re.IGNORECASE)
    if m:
        candidates.append(keys.grad(m.group(1)))
    output = graph.output.name
    aliases = {"x": INPUT, "yhat": output, "y_hat": output, "ŷ": output, "cost": COST, "j": COST}
    if name.lower() in aliases:
        candidates.append(aliases[name.lower()])
    if len(graph.linear) == 1:  # one layer: 'dW' and 'W after' are dW1 and W1_after
        family = {}
        for k in known:
            if k in (INPUT, keys.TARGET, keys.grad(INPUT)):
                continue
            base = keys.family(keys.before_update(k))
            family.setdefault(keys.after(base) if keys.is_after(k) else base, []).append(k)
        candidates += [family[c][0] for c in list(candidates) if len(family.get(c, ())) == 1]
    for c in candidates:
        if c in known_set:
            return c
    lower = {k.lower(): k for k in known}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise AnswerError(f"{quoted(name)} is not a quantity recorded at this step{hint}; expected one of "
                      f"{', '.join(sorted(known))} (W1_after, also written 'new W1', is W1 after the update)")


# --------------------------------------------------------------------------- judging


MODES = ("precision", "sigfig", "decimals", "relabs")


@dataclass(frozen=True)
class Mode:
    """How an answer is compared with the exact value (see the module docstring)."""

    name: str = "precision"
    digits: int | None = None
    rtol: float = 0.0
    atol: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in MODES:
            raise TracerError(f"--mode: expected one of {', '.join(MODES)}, got {quoted(self.name)}")
        if self.name in ("sigfig", "decimals"):
            low = 1 if self.name == "sigfig" else 0
            if self.digits is None or not low <= self.digits <= 15:
                raise TracerError(f"--mode {self.name}: expected --digits N with N from {low} to 15, "
                                  f"got {self.digits}")
        if self.name == "relabs":
            for flag, v in (("--rtol", self.rtol), ("--atol", self.atol)):
                if not (math.isfinite(v) and v >= 0):
                    raise TracerError(f"--mode relabs: expected {flag} a finite number ≥ 0, got {v}")
            if self.rtol == 0 and self.atol == 0:
                raise TracerError("--mode relabs: expected --rtol R and/or --atol A above 0 (with both 0 only "
                                  "the exact binary value would pass)")

    def describe(self) -> str:
        """How answers are judged, in plain words (the report's first line)."""
        if self.name == "precision":
            return "each number right within half a unit of the last decimal asked"
        if self.name == "relabs":
            return f"judged within a relative tolerance of {self.rtol:g} and an absolute one of {self.atol:g}"
        if self.name == "sigfig":
            return f"judged to {_count(self.digits, 'significant digit')}"
        return f"judged to {_count(self.digits, 'decimal')}"

    def entry_right(self, given: str, exact: float, hand: float | Sequence[float] | None = None,
                    decimals: int | None = None) -> bool:
        """Is the number written as `given` right for the value `exact` (hand: the values of the hand routes)?

        In precision mode this is the one rule of `tolerance`: within half a unit of the asked last decimal
        (`decimals`; the number's own when none is asked) of the exact value or of a hand route's."""
        if not math.isfinite(exact):
            return False
        if self.name == "precision":
            routes = [] if hand is None else [hand] if isinstance(hand, (int, float)) else list(hand)
            places = decimals_in(given) if decimals is None else decimals
            return tolerance.accepts(given, tolerance.centres([exact] + routes), places)
        g = Decimal(given)
        if self.name == "decimals":
            return round_half_up(float(g), self.digits) == round_half_up(exact, self.digits)
        if self.name == "sigfig":
            if exact == 0:
                return g == 0
            places = self.digits - 1 - to_decimal(exact).adjusted()
            return round_half_up(float(g), places) == round_half_up(exact, places)
        return abs(float(g) - exact) <= self.atol + self.rtol * abs(exact)

    def shortfall(self, numbers: Sequence[str], asked_decimals: int,
                  exact: Sequence[float] | None = None) -> str | None:
        """'you gave 2 decimals; this exercise asks for 3' when the answer is less precise than asked.

        A number equal to its exact value (a 0 or a 1 that is exactly 0 or 1) needs no more digits.
        """
        if exact is not None:
            numbers = [n for n, x in zip(numbers, exact) if Decimal(n) != to_decimal(x)]
        if self.name == "relabs" or not numbers:
            return None
        if self.name == "sigfig":
            given = min(_significant(n) for n in numbers)
            if given < self.digits:
                return f"you gave {_count(given, 'significant digit')}; this exercise asks for {self.digits}"
            return None
        asked = self.digits if self.name == "decimals" else asked_decimals
        given = min(decimals_in(n) for n in numbers)
        if given < asked:
            return f"you gave {_count(given, 'decimal')}; this exercise asks for {asked}"
        return None


def _significant(text: str) -> int:
    digits = Decimal(text).as_tuple().digits
    return max(1, len(digits) - next((i for i, d in enumerate(digits) if d), len(digits) - 1))


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Judgement:
    """The verdict on one answer (or on a quantity the exercise asks for that was not answered)."""

    quantity: str
    given: str | None  # the answer as written; None when not answered
    status: str  # "right", "wrong", "too_few_digits", "unanswered"
    numbers_right: int = 0
    numbers: int = 0
    message: str = ""
    mistakes: list[tuple[str, str]] = field(default_factory=list)  # (key, plain words)
    expected: str = ""  # shown only with reveal
    brief: str = ""  # expected as the terminal shows it: a big matrix abbreviated
    carried_from: list[str] = field(default_factory=list)  # the earlier wrong answers it follows from
    entries: tuple[bool, ...] = ()  # whether each number is right at the true values (row-major)
    also: list[str] = field(default_factory=list)  # a hand route's value where it differs from `expected`

    @property
    def right(self) -> bool:
        return self.status == "right"

    @property
    def credited(self) -> bool:
        """Right, or wrong only by what the student's earlier wrong answers carried into it."""
        return self.status in ("right", "carried_forward")

    def to_dict(self, reveal: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"quantity": self.quantity, "given": self.given, "status": self.status,
                               "right": self.right, "numbers_right": self.numbers_right, "numbers": self.numbers,
                               "message": self.message,
                               "mistakes": [{"mistake": k, "says": s} for k, s in self.mistakes],
                               "carried_from": list(self.carried_from)}
        if reveal:
            out["expected"] = self.expected
        return out


@dataclass
class Report:
    """Every answer's verdict and the score (answers right / quantities asked; points earned / possible)."""

    chapter: str
    step: int
    mode: Mode
    judgements: list[Judgement]
    variant: int | str | None = None
    exercise: tuple[str, ...] = ()  # the quantities an exercise asks for: only they count in the score
    points: tuple[float, ...] = ()  # the exercise's points per asked quantity (1 each when not given)
    decimals: int | None = None  # the decimals the exercise asks for

    def _scored(self) -> list[Judgement]:
        return [j for j in self.judgements if not self.exercise or j.quantity in self.exercise]

    def points_of(self, quantity: str) -> float:
        if quantity in self.exercise and self.points:
            return self.points[self.exercise.index(quantity)]
        return 1.0

    @property
    def right(self) -> int:
        return sum(j.right for j in self._scored())

    @property
    def carried_forward(self) -> int:
        return sum(j.status == "carried_forward" for j in self._scored())

    @property
    def asked(self) -> int:
        return len(self._scored())

    def earned_by(self, j: Judgement) -> Decimal:
        """A quantity's points: all of them when right or carried forward, else the shares of its right numbers."""
        points = self.points_of(j.quantity)
        if j.credited:
            return Decimal(repr(float(points)))
        return tolerance.earned(points, j.entries)

    @property
    def earned(self) -> float:
        """Points for right answers and for answers that carry an earlier error forward, and for each right
        number of the others (a quantity's points split over its numbers, as an LMS scores them)."""
        return float(sum((self.earned_by(j) for j in self._scored()), Decimal(0)))

    @property
    def possible(self) -> float:
        return sum(self.points_of(j.quantity) for j in self._scored())

    @property
    def score(self) -> float:
        return self.earned / self.possible if self.possible else 0.0

    @property
    def exit_status(self) -> int:
        """`tracer check`'s: 0 when every answer counted is right, 3 when any is wrong or missing."""
        return 0 if self.asked and self.right == self.asked else 3

    def to_dict(self, reveal: bool = False) -> dict[str, Any]:
        return {"chapter": self.chapter, "step": self.step, "variant": self.variant, "mode": self.mode.name,
                "score": {"right": self.right, "carried_forward": self.carried_forward, "asked": self.asked,
                          "points": _points(self.earned), "possible": _points(self.possible),
                          "fraction": round(self.score, 6)},
                "answers": [j.to_dict(reveal) for j in self.judgements]}

    def key_text(self, full: bool = False) -> str:
        """The asked values as an answer key (`tracer check --reveal` with no answers): each quantity's value,
        what a hand route gives where it differs, its points, and the rule they are judged by."""
        head = f"{self.chapter}{f', variant {self.variant}' if self.variant is not None else ''}, step {self.step}"
        lines = [f"{head}: the answer key"]
        width = max((len(j.quantity) for j in self.judgements), default=0)
        shown = {j.quantity: j.expected if full or not j.brief else j.brief for j in self.judgements}
        across = max((len(t) for t in shown.values()), default=0)
        for j in self.judgements:
            points = self.points_of(j.quantity)
            worth = f"   {_points(points)} point{'' if points == 1 else 's'}" if self.points else ""
            lines.append(f"  {j.quantity:<{width}} = {shown[j.quantity]:<{across}}{worth}".rstrip())
            lines += [f"  {'':<{width}}   also accepted (rounding as you go): {other}" for other in j.also]
        if self.mode.name == "precision" and self.decimals is not None:
            lines.append(f"give {tolerance.rule_words(self.decimals)}")
        return "\n".join(lines)

    def text(self, reveal: bool = False, full: bool = False) -> str:
        """The report for the terminal; `full` prints big expected matrices whole."""
        head = f"{self.chapter}{f', variant {self.variant}' if self.variant is not None else ''}, step {self.step}"
        lines = [f"{head} ({self.mode.describe()})"]
        width = max((len(j.given or j.quantity) for j in self.judgements), default=0)
        for j in self.judgements:
            verdict = VERDICTS[j.status]
            if j.status == "wrong" and j.numbers > 1:
                verdict += f" ({j.numbers_right} of {j.numbers} numbers right)"
            lines.append(f"  {(j.given or j.quantity):<{width}}   {verdict}")
            if j.message:
                lines.append(f"      {j.message}")
            if j.mistakes:
                lines.append("      your numbers are what you get if you:" if len(j.mistakes) == 1
                             else "      your numbers are what you get if you (any one of):")
                lines += [f"        - {says}" for _, says in j.mistakes]
            if reveal and j.expected:
                lines.append(f"      expected {j.quantity} = {j.expected if full or not j.brief else j.brief}")
        extra = len(self.judgements) - self.asked
        score = f"score: {self.right}/{self.asked} right"
        if self.carried_forward:
            score += f", {self.carried_forward} carried forward"
        if self.carried_forward or len(set(self.points)) > 1 or not float(self.earned).is_integer():
            score += f"; points {_points(self.earned)} of {_points(self.possible)}"
        lines.append(score + (f" (of the quantities the exercise asks for; {extra} more answered)" if extra else ""))
        return "\n".join(lines)


#: A verdict in plain words.
VERDICTS = {"right": "right", "wrong": "wrong", "too_few_digits": "not precise enough",
            "unanswered": "not answered", "carried_forward": "carried forward", "unreadable": "cannot be read"}


def _points(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 6)


def format_value(value: Any, decimals: int, full: bool = True) -> str:
    """A value as an answer is written: a number, a flat list for one row or column, else rows.

    `full=False` abbreviates a big matrix for the terminal (abbreviation.bracketed)."""
    a = np.asarray(value, dtype=float)
    if a.size == 1:
        return format_number(float(a.ravel()[0]), decimals)
    return bracketed(a, lambda shown: [format_number(x, decimals) for x in shown.ravel()], full=full, flat=True)


def entry_flags(answer: Answer, exact: np.ndarray, hand: np.ndarray | list[np.ndarray] | None, mode: Mode,
                decimals: int | None = None) -> list[bool] | None:
    """Whether each number of the answer is right (row-major), or None if the answer does not fit the shape.

    `hand` is the value a hand calculation gives, or a list of them (one per valid hand route);
    `decimals` the decimals asked (precision mode: see `tolerance`)."""
    exact = np.asarray(exact, dtype=float)
    given = answer.fit(exact.shape)
    if given is None:
        return None
    routes = hand if isinstance(hand, list) else [] if hand is None else [hand]
    flats = [np.asarray(h, dtype=float).ravel() for h in routes if h is not None and np.shape(h) == exact.shape]
    return [bool(mode.entry_right(g, float(e), [float(f[i]) for f in flats], decimals))
            for i, (g, e) in enumerate(zip(given.ravel(), exact.ravel()))]


def judge_numbers(answer: Answer, exact: np.ndarray, hand: np.ndarray | list[np.ndarray] | None,
                  mode: Mode, decimals: int | None = None) -> tuple[int, int] | None:
    """(numbers right, numbers) for an answer against a value, or None if the answer does not fit its shape."""
    flags = entry_flags(answer, exact, hand, mode, decimals)
    return None if flags is None else (sum(flags), len(flags))


def matches(answer: Answer, value: np.ndarray, hand: np.ndarray | list[np.ndarray] | None, mode: Mode,
            decimals: int, accepted: list[tuple[Decimal, ...]] | None = None) -> bool:
    """Does the answer give these numbers, at the precision it is written with (at most the asked one)?
    How a mistake is recognised: a wrong answer given to 2 decimals still has its mistake named.
    `accepted`: the values' accepted values per entry, when already known."""
    if mode.name == "precision":
        return right_at_own_digits(answer, value, hand, decimals, accepted)
    got = judge_numbers(answer, value, hand, mode, decimals)
    return got is not None and got[0] == got[1]


def right_at_own_digits(answer: Answer, exact: np.ndarray, hand: np.ndarray | list[np.ndarray] | None,
                        decimals: int, accepted: list[tuple[Decimal, ...]] | None = None) -> bool:
    """Is every number right at the decimals it has (at most the asked ones)? What "not precise enough" needs."""
    exact = np.asarray(exact, dtype=float)
    given = answer.fit(exact.shape)
    if given is None:
        return False
    if accepted is None:
        accepted = tolerance.entry_centres(exact, hand if isinstance(hand, list) else [] if hand is None else [hand])
    return all(tolerance.accepts(g, c, min(decimals_in(g), decimals)) for g, c in zip(given.ravel(), accepted))


def stacked_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The matrix an image quantity (or a kernel) is written as: its leading dimensions stacked into rows,
    one column per last index (tracer.abbreviation.as_matrix), so Z1 of 1 × 3 × 3 × 2 is 9 × 2."""
    return (int(np.prod(shape[:-1])), int(shape[-1]))


def shape_message(answer: Answer, quantity: str, shape: tuple[int, ...]) -> str:
    """What was expected for a value of `shape`, and what the answer gave."""
    if len(shape) > 2:
        rows, cols = stacked_shape(shape)
        want = (f"{' × '.join(map(str, shape))}, written as a {rows} × {cols} matrix: one column per "
                f"{'example' if cols > 1 else 'last index'}, its entries read map by map, row by row: [[…], …]")
    elif len(shape) < 2 or shape == (1, 1):
        want = "one number" if int(np.prod(shape)) == 1 else f"{int(np.prod(shape))} numbers"
    else:
        rows, cols = shape
        if rows == 1:
            want = f"a row of {cols} numbers, [a, b, …]"
        elif cols == 1:
            want = f"a column of {rows} numbers, written [a, b, …]"
        else:
            want = f"a {rows} × {cols} matrix, {rows} rows of {cols} numbers: [[…], …]"
    if not answer.layout:
        got = "one number"
    elif len(answer.layout) == 1:
        got = f"a list of {_count(len(answer.numbers), 'number')}"
    else:
        got = f"a {answer.layout[0]} × {answer.layout[1]} matrix"
    return f"answer {_show(answer.text)}: {quantity} is {want}; got {got}"


# --------------------------------------------------------------------------- checking a step


def check(chapter: Any, answers: Sequence[str | Answer], step: int, *, mode: Mode | None = None,
          asked: Sequence[str] = (), decimals: int | None = None, variant: int | str | None = None,
          diagnose: bool = True, points: Sequence[float] = (), traces: Traces | Trace | None = None) -> Report:
    """Judge `answers` about `step` of `chapter` (a Chapter); name the mistakes that explain wrong ones.

    `asked` are quantities an exercise asks for (counted as not answered when missing), `points`
    their weights (1 each by default) and `decimals` the decimals it asks for (default: the
    chapter's display decimals per quantity). A wrong answer that is what the student's own earlier
    wrong answers give is credited as carried forward. `traces` are the command's traces of
    `chapter` (engine.train.Traces; made here when not given).
    """
    return StepChecker(chapter, step, traces).judge(answers, mode=mode, asked=asked, decimals=decimals,
                                                    variant=variant, diagnose=diagnose, points=points)


class StepChecker:
    """One step of one chapter, trained once (full precision and hand mode), to judge many students' answers."""

    def __init__(self, chapter: Any, step: int, traces: Traces | Trace | None = None):
        from tracer.engine.train import Traces, hand_carry
        from tracer.exercises.mistakes import one_product_route

        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise TracerError(f"--step: expected a step number from 0 (steps are counted from 0), got {quoted(step)}")
        if step >= chapter.steps:
            raise TracerError(f"--step {step}: this chapter runs steps 0 to {chapter.steps - 1} "
                              "(steps are counted from 0)")
        self.chapter, self.step = chapter, step
        record = [s for s in (step - 1, step) if s >= 0]
        traces = Traces.of(chapter, traces, through=step)  # made here: no step after this one is read
        self.trace, self.hand = traces.get("full", record), traces.hand(range(step + 1))
        self.exact, self.rounded = self.trace.at(step), self.hand.at(step)
        # The other valid hand route (dZ = dA·A·(1 − A) in one product): its numbers are right too.
        self.routes = {q: [np.asarray(self.rounded[q], dtype=float), np.asarray(v, dtype=float)]
                       for q, v in one_product_route(chapter, self.hand, step, hand_carry(chapter)).items()
                       if q in self.rounded}
        self.known = sorted(self.exact)
        self._plain: list | None = None  # the mistakes' values that do not depend on the student's numbers
        self._by_rate: dict[tuple, list] = {}  # the learning-rate mistake's, per rate the student seems to have used
        self._formatted: dict[tuple, Any] = {}  # expected values as printed

    # ------------------------------------------------------------------ what a page or notebook precomputes

    def accepted(self, q: str) -> list[tuple[Decimal, ...]]:
        """Per entry of q, its accepted values by the rule: the exact value and each hand route's."""
        routes = self.routes.get(q, [self.rounded[q]])
        return tolerance.entry_centres(self.exact[q], routes if isinstance(routes, list) else [routes])

    def mistake_values(self, numbers: dict[str, np.ndarray] | None = None) -> list[tuple[str, str, dict, dict]]:
        """(key, plain words, values, hand-mode values) of every catalogued mistake, as a student's `numbers` make
        them (only the learning-rate mistake reads them: the rate their updated parameters suggest)."""
        return self._mistakes(numbers or {})

    def accepted_in(self, values: dict, hand_values: dict, q: str) -> list[tuple[Decimal, ...]]:
        """Per entry of q, the accepted values of a mistake's (or a carried calculation's) values."""
        return self._accepted(values, hand_values, q)

    def carried(self, given: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """The step (full, hand mode) with the student's own values in place of the true ones."""
        return self._carried(given)

    @property
    def parameters(self) -> set[str]:
        """The parameters before the update: never replaced by a student's numbers in a carried step."""
        return set(self.trace.parameter_names)

    # ------------------------------------------------------------------ the mistakes and what follows

    def _mistakes(self, numbers: dict[str, np.ndarray]) -> list[tuple[str, str, dict, dict]]:
        """(key, plain words, values, hand-mode values) of every way of making each catalogued mistake."""
        from tracer.engine.train import hand_carry
        from tracer.exercises.mistakes import CATALOGUE, estimated_rate, step_context, variants

        def made(keys: list[str], given: dict[str, np.ndarray]) -> list[tuple[str, str, dict, dict]]:
            full = {(v.mistake, v.says): v.values
                    for v in variants(step_context(self.chapter, self.trace, self.step), given, keys)}
            ctx = step_context(self.chapter, self.hand, self.step, hand_carry(self.chapter))
            by_hand = {(v.mistake, v.says): v.values for v in variants(ctx, given, keys)}
            return [(k, s, values, by_hand.get((k, s), {})) for (k, s), values in full.items()]

        # Only the learning-rate mistake reads the student's numbers, and only through the rate they seem to
        # have used: its variants are made once per rate estimated (a class shares a handful).
        if self._plain is None:
            self._plain = made([k for k in CATALOGUE if k != "learning_rate"], {})
            self._contexts = (step_context(self.chapter, self.trace, self.step),
                              step_context(self.chapter, self.hand, self.step, hand_carry(self.chapter)))
        rates = tuple(estimated_rate(ctx, numbers) for ctx in self._contexts)
        if rates not in self._by_rate:
            self._by_rate[rates] = made(["learning_rate"], numbers)
        return self._plain + self._by_rate[rates]

    def _carried(self, given: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """The step's values (full, hand mode) when the student's own values replace the true ones."""
        from tracer.engine.train import hand_carry
        from tracer.exercises.mistakes import rerun_step, step_context

        rounder = hand_carry(self.chapter)
        full = step_context(self.chapter, self.trace, self.step, lambda name, value: given.get(name, value))
        hand = step_context(self.chapter, self.hand, self.step,
                            lambda name, value: given[name] if name in given else rounder(name, value))
        return rerun_step(full), rerun_step(hand)

    # ------------------------------------------------------------------ judging

    def judge(self, answers: Sequence[str | Answer], *, mode: Mode | None = None, asked: Sequence[str] = (),
              decimals: int | None = None, variant: int | str | None = None, diagnose: bool = True,
              points: Sequence[float] = ()) -> Report:
        """Judge one student's answers (see `check`)."""
        chapter, step, exact, rounded = self.chapter, self.step, self.exact, self.rounded
        mode = mode or Mode()
        parsed = [a for a in answers if isinstance(a, Answer)] + parse_answers(a for a in answers if isinstance(a, str))
        by_quantity: dict[str, Answer] = {}
        for a in parsed:
            try:
                q = resolve_name(a.name, self.known, self.trace.network)
            except AnswerError as exc:
                raise AnswerError(f"answer {_show(a.text)}: {exc}") from None
            if q in by_quantity:
                raise AnswerError(f"answer {_show(a.text)}: {q} is answered twice; give each quantity once")
            by_quantity[q] = a
        for q in asked:
            if q not in exact:
                chapter_section(self.chapter, "exercise").fail(
                    "ask", f"quantities recorded at step {step} ({', '.join(sorted(exact))})", quoted(q),
                    suggest=sorted(exact), near=q)

        numbers = {}
        for q, a in by_quantity.items():
            fitted = a.fit(np.shape(exact[q]))
            if fitted is not None:
                numbers[q] = fitted.astype(float)
        cache: dict[str, list] = {}
        judgements: list[Judgement] = []
        places_of = lambda q: decimals if decimals is not None else chapter.display.decimals_of(q)  # noqa: E731
        briefs: dict[str, str] = {}  # the expected values as the terminal shows them (abbreviated when big)

        def explain(a: Answer, q: str, by: Mode) -> list[tuple[str, str]]:
            if not diagnose:
                return []
            if "v" not in cache:
                cache["v"] = self._mistakes(numbers)
            found: list[tuple[str, str]] = []
            agrees: list[bool] = []
            for key, says, values, hand_values in cache["v"]:
                if q not in values or (key == "learning_rate" and any(k == key for k, _ in found)):
                    continue  # one wrong learning rate is named: the catalogue's first, then the one estimated
                if matches(a, values[q], hand_values.get(q), by, places_of(q), self._accepted(values, hand_values, q)) \
                        and (key, says) not in found:
                    found.append((key, says))
                    agrees.append(all(matches(by_quantity[j.quantity], values[j.quantity],
                                              hand_values.get(j.quantity), mode, places_of(j.quantity),
                                              self._accepted(values, hand_values, j.quantity))
                                      for j in judgements if j.status == "right" and j.quantity in values))
            # A mistake that would also have changed an answer the student got right did not happen:
            # name the others (all of them, if none is consistent).
            return [f for f, ok in zip(found, agrees) if ok] or found

        order = list(dict.fromkeys(list(asked) + list(by_quantity)))
        for q in order:
            value, hand_value = np.asarray(exact[q], dtype=float), self.routes.get(q, rounded[q])
            places = places_of(q)
            a = by_quantity.get(q)
            if a is None:
                briefs[q] = self._shown(q, places, False)
                expected = self._shown(q, places, True)
                judgements.append(Judgement(q, None, "unanswered", 0, value.size, f"{q} is asked for but not answered",
                                            expected=expected, also=self._also(q, expected, places)))
                continue
            shown = max([places] + a.decimals)
            expected, briefs[q] = self._shown(q, shown, True), self._shown(q, shown, False)
            flags = entry_flags(a, value, hand_value, mode, places)
            if flags is None:
                found = explain(a, q, mode)
                if not found:
                    error = AnswerError(shape_message(a, q, np.shape(value)))
                    error.quantity = q
                    raise error
                judgements.append(Judgement(q, a.text, "wrong", 0, value.size,
                                            shape_message(a, q, np.shape(value)).split(": ", 1)[1],
                                            found, expected))
                continue
            right, count, entries = sum(flags), len(flags), tuple(flags)
            if right == count:
                judgements.append(Judgement(q, a.text, "right", right, count, expected=expected, entries=entries))
                continue
            short = mode.shortfall(list(a.fit(value.shape).ravel()), places, list(value.ravel()))
            # Too few digits only when right at the digits given; a number wrong at any precision is
            # wrong, and its mistake is looked for below.
            if short and right_at_own_digits(a, value, hand_value, places):
                judgements.append(Judgement(q, a.text, "too_few_digits", right, count,
                                            short + " (at the precision you gave, your numbers are right)",
                                            expected=expected, entries=entries))
                continue
            judgements.append(Judgement(q, a.text, "wrong", right, count, expected=expected, entries=entries))
        # Once every verdict is known: a wrong answer that the student's other wrong answers give
        # (carried through the step, so only those computed before it can matter) is carried
        # forward; the others get their mistakes named.
        for j in judgements:
            if j.status != "wrong" or j.mistakes or j.quantity not in numbers:
                continue
            a = by_quantity[j.quantity]
            carried = self._carried_forward(a, j.quantity, [o for o in judgements if o is not j], numbers, mode,
                                            places_of(j.quantity))
            if carried:
                j.status, j.carried_from = "carried_forward", carried
                j.message = (f"not the true value, but it follows from your own {' and '.join(carried)}: "
                             "credited (an error carried forward)")
                continue
            j.mistakes = explain(a, j.quantity, mode)
            j.message = "" if j.mistakes else "no mistake in the catalogue gives these numbers"
        for j in judgements:
            j.brief = briefs[j.quantity]
        return Report(chapter.name, step, mode, judgements, variant, tuple(asked), tuple(points), decimals)

    def _accepted(self, values: dict, hand_values: dict, q: str) -> list[tuple[Decimal, ...]]:
        """A mistake's accepted values per entry of q (its full and hand-mode values), made once per checker."""
        key = ("accepted", id(values), id(hand_values), q)
        if key not in self._formatted:
            # The dicts are kept with the result, so their ids stay theirs.
            self._formatted[key] = (tolerance.entry_centres(values[q], [hand_values.get(q)]), values, hand_values)
        return self._formatted[key][0]

    def _shown(self, q: str, places: int, full: bool) -> str:
        """The exact value of q as the terminal shows it (a class's students share it: made once)."""
        key = ("exact", q, places, full)
        if key not in self._formatted:
            self._formatted[key] = format_value(self.exact[q], places, full=full)
        return self._formatted[key]

    def _also(self, q: str, expected: str, places: int) -> list[str]:
        """What each hand route gives for q, at the asked decimals, where it differs from the exact value's rounding."""
        key = ("also", q, places, expected)
        if key not in self._formatted:
            routes = self.routes.get(q, [self.rounded[q]])
            shown = [format_value(r, places) for r in (routes if isinstance(routes, list) else [routes])]
            self._formatted[key] = [t for t in dict.fromkeys(shown) if t != expected]
        return list(self._formatted[key])

    def _carried_forward(self, a: Answer, q: str, others: list[Judgement], numbers: dict[str, np.ndarray],
                         mode: Mode, decimals: int | None = None) -> list[str]:
        """The other wrong answers whose values, carried through the step, give this answer (else [])."""
        params = set(self.trace.parameter_names)
        wrong = [j.quantity for j in others if j.status in ("wrong", "carried_forward", "too_few_digits")
                 and j.quantity in numbers and j.quantity not in params]
        if not wrong:
            return []
        full, hand = self._carried({p: numbers[p] for p in wrong})
        if q not in full:
            return []
        got = judge_numbers(a, full[q], hand.get(q), mode, decimals)
        if got is None or got[0] != got[1]:
            return []
        # Name only the earlier answers that matter: those whose true value would not give this answer.
        needed = []
        for p in wrong:
            rest = {r: numbers[r] for r in wrong if r != p}
            alone, alone_hand = self._carried(rest) if rest else ({q: self.exact[q]}, {q: self.routes.get(q, self.rounded[q])})
            again = judge_numbers(a, alone[q], alone_hand.get(q), mode, decimals)
            if again is None or again[0] != again[1]:
                needed.append(p)
        return needed or wrong

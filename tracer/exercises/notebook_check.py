"""The exercise at the end of a chapter's notebook: cells for the student's answers, and a cell that checks them.

The check cell is plain Python and NumPy (the notebook never imports tracer): it holds, for every
number the exercise asks for, the accepted intervals of the precision rule (`tolerance`) as tracer's
checker works them out, at the asked decimals and at fewer, and only compares the numbers written with
them: right, not precise enough (right only at the fewer decimals written) or wrong, as `tracer check`
says for the same answers at the true values. Naming mistakes and crediting errors carried forward
is left to `tracer check`, which reruns the step.
"""

from __future__ import annotations

import json
import numpy as np

from tracer.documents.render import with_maths
from tracer.engine.chapter import Chapter, exercise_spec
from tracer.engine.train import Traces
from tracer.exercises import tolerance
from tracer.exercises.answers import StepChecker

#: The names of the cells' variables, which the tests fill in.
ANSWERS = "my_answers"

CHECK = '''import numpy as np
from decimal import Decimal, InvalidOperation

# For each number asked: the accepted intervals (the exact value, and what a calculation that rounds as it
# goes gives, each give or take half a unit of the last decimal), when written with 0, 1, … decimals.
DECIMALS = {decimals}
ACCEPTED = json_loads({accepted!r})
SHAPES = json_loads({shapes!r})


def numbers_of(answer):
    """An answer as the decimal texts of its numbers, row by row (text keeps the decimals you wrote)."""
    if isinstance(answer, str):
        for mark in "[],;":
            answer = answer.replace(mark, " ")
        return answer.replace("\\u2212", "-").split()
    return [repr(float(x)) for x in np.ravel(np.asarray(answer, dtype=float))]


def decimals_of(text):
    exponent = Decimal(text).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def inside(x, intervals):
    return any(Decimal(low) <= x <= Decimal(high) for low, high in intervals)


def check(answers):
    for name, entries in ACCEPTED.items():
        answer = answers.get(name)
        if answer is None:
            print(f"{{name}}: not answered")
            continue
        try:
            texts = numbers_of(answer)
            values = [Decimal(t) for t in texts]
            if not all(v.is_finite() for v in values):
                raise InvalidOperation
        except (InvalidOperation, TypeError, ValueError):
            print(f"{{name}}: cannot be read; write numbers, a list [a, b] or rows [[a, b], [c, d]]")
            continue
        if len(values) != len(entries):
            print(f"{{name}}: expected {{len(entries)}} number{{'s' if len(entries) > 1 else ''}} "
                  f"({{' x '.join(map(str, SHAPES[name]))}}), got {{len(values)}}")
            continue
        marks = []
        for x, text, levels in zip(values, texts, entries):
            own = decimals_of(text)
            if inside(x, levels[DECIMALS]):
                marks.append("right")
            elif own < DECIMALS and inside(x, levels[own]):
                marks.append("short")
            else:
                marks.append("wrong")
        right = marks.count("right")
        if right == len(marks):
            print(f"{{name}}: right")
        elif all(m in ("right", "short") for m in marks):
            print(f"{{name}}: not precise enough (give {{DECIMALS}} decimals; at the decimals you gave, "
                  "your numbers are right)")
        else:
            print(f"{{name}}: wrong" + (f" ({{right}} of {{len(marks)}} numbers right)" if len(marks) > 1 else ""))


check({answers})'''


def exercise_cells(chapter: Chapter, traces: Traces) -> list[tuple[str, str]]:
    """("markdown" | "code", source) of the exercise's cells: the task, the answers to fill in, the check."""
    from tracer.exercises.sheets import _symbol

    spec = exercise_spec(chapter)
    checker = StepChecker(chapter, spec.step, traces)
    d = spec.decimals
    accepted = {q: [[tolerance.bounds(c, k) for k in range(d + 1)] for c in checker.accepted(q)] for q in spec.ask}
    shapes = {q: list(np.shape(checker.exact[q])) or [1] for q in spec.ask}
    task = (f"## Exercise: step {spec.step}, by hand\n\n" + (f"{with_maths(spec.prompt, 'md')}\n\n" if spec.prompt else "")
            + f"Work out, at step {spec.step} (steps are counted from 0), "
            + ", ".join(f"${_symbol(q)}$" for q in spec.ask)
            + f": give {tolerance.rule_words(d)}. Write each answer below as text, so that the decimals you wrote "
              "count (a number `\"-0.031\"`, a row or a column `\"[a, b]\"`, a matrix row by row `\"[[a, b], [c, d]]\"`), "
              "then run the next cell: it says, for each, right, not precise enough or wrong.")
    rows = [f"    {json.dumps(q)}: None,  # {_words(q, shapes[q])}" for q in spec.ask]
    answers = f"{ANSWERS} = {{\n" + "\n".join(rows) + "\n}"
    check = CHECK.format(decimals=d, accepted=json.dumps(accepted, separators=(",", ":")),
                         shapes=json.dumps(shapes, separators=(",", ":")), answers=ANSWERS)
    check = "from json import loads as json_loads\n" + check
    return [("markdown", task), ("code", answers), ("code", check)]


def _words(q: str, shape: list[int]) -> str:
    size = int(np.prod(shape))
    if size == 1:
        return "one number"
    return f"{shape[0]} x {shape[1]}: " + ("[a, b, ...]" if 1 in shape else "[[a, b, ...], ...]")

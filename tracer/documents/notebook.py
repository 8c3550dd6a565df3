"""The chapter as a Jupyter notebook a student runs top to bottom: the story in Markdown, every worked
step recomputed in plain NumPy in the article's names (W1, Z1, dZ1, …), printing the document's numbers.

The notebook never imports tracer: it needs only NumPy (and matplotlib for the learning curve). Its
starting values (X, Y, the initial parameters) are the trace's, written in full (Python's repr,
which round-trips), so its arithmetic reproduces the trace; it prints each result half-up to the
decimals the document shows. The training loop at the end runs the very lines the worked cells ran.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from tracer.documents.lecture import Lecture, lecture
from tracer.engine.chapter import Chapter
from tracer.engine.optimizers import DEFAULTS, OPTIMIZERS
from tracer.engine.trace import AFTER, Trace
from tracer.errors import TracerError

#: NumPy for each activation: A from Z, and its local gradient dA/dZ from A and Z (names filled in).
ACTIVATION_CODE = {
    "sigmoid": ("1 / (1 + np.exp(-{Z}))", "{A} * (1 - {A})"),
    "relu": ("np.maximum({Z}, 0)", "({Z} > 0) * 1.0"),
    "tanh": ("np.tanh({Z})", "1 - {A} ** 2"),
    "identity": ("{Z} * 1.0", "np.ones_like({Z})"),
}
#: NumPy for each cost and its gradient (∂Cost/∂A_L, or ∂Cost/∂Z_L from logits).
COST_CODE = {
    "squared_error": ("np.sum((Y - {A}) ** 2) / (2 * m)", "({A} - Y) / m"),
    "sum_of_squares": ("np.sum((Y - {A}) ** 2)", "2 * ({A} - Y)"),
    "binary_cross_entropy": ("np.sum(-Y * np.log({A}) - (1 - Y) * np.log(1 - {A})) / m",
                             "({A} - Y) / ({A} * (1 - {A}) * m)"),
    "binary_cross_entropy_from_logits": (
        "np.sum(np.maximum({Z}, 0) - {Z} * Y + np.log(1 + np.exp(-np.abs({Z})))) / m",
        "(1 / (1 + np.exp(-{Z})) - Y) / m"),
}
#: Each optimizer's update of parameter {P} with gradient {dP} at update number t (state lines first).
UPDATE_CODE = {
    "gd": ["{P} = {P} - learning_rate * {dP}"],
    "momentum": ["v{P} = beta * v{P} + (1 - beta) * {dP}", "{P} = {P} - learning_rate * v{P}"],
    "rmsprop": ["s{P} = beta2 * s{P} + (1 - beta2) * {dP} ** 2",
                "{P} = {P} - learning_rate * {dP} / (np.sqrt(s{P}) + epsilon)"],
    "adam": ["v{P} = beta1 * v{P} + (1 - beta1) * {dP}", "s{P} = beta2 * s{P} + (1 - beta2) * {dP} ** 2",
             "{P} = {P} - learning_rate * (v{P} / (1 - beta1 ** t)) / (np.sqrt(s{P} / (1 - beta2 ** t)) + epsilon)"],
}

OPTIMIZER_NAMES = {"gd": "gradient descent", "momentum": "momentum", "rmsprop": "RMSprop", "adam": "Adam"}
#: How an updated parameter is labelled in the notebook's output (the trace calls it W1_after).
UPDATED = " (updated)"

HELPERS = '''import numpy as np
from decimal import Decimal, ROUND_HALF_UP


def half_up(x, decimals):
    """x rounded half-up to `decimals` places, as the worked example prints it (never -0)."""
    d = Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(d) if d == 0 else d


def number(x, decimals):
    """x as the document prints it; a small non-zero value that would print as 0 gets 2 significant digits."""
    x = 0.0 if abs(x) < 1e-12 else float(x)
    d = half_up(x, decimals)
    if d != 0 or x == 0:
        return f"{d:.{decimals}f}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}e{int(exponent):+03d}"


def show(name, value, decimals):
    """Print `name = value`, a matrix row by row, every entry rounded half-up."""
    rows = np.atleast_2d(value)
    if rows.size == 1:
        print(f"{name} = {number(rows[0, 0], decimals)}")
        return
    cells = [[number(x, decimals) for x in row] for row in rows]
    width = max(len(c) for row in cells for c in row)
    print(f"{name} =")
    for row in cells:
        print("  [ " + "  ".join(c.rjust(width) for c in row) + " ]")
'''

CARRY_HELPER = '''

def carry(value, decimals):
    """Hand mode: every value is rounded as soon as it is computed, as with a calculator."""
    return np.vectorize(lambda x: float(half_up(x, decimals)))(np.asarray(value, dtype=float))
'''


class _Code:
    """The NumPy lines of one chapter's network: forward, cost, backward, update."""

    def __init__(self, chapter: Chapter, trace: Trace):
        self.chapter, self.trace = chapter, trace
        self.layers = [(l, layer.activation) for l, layer in enumerate(chapter.layers, start=1)]
        self.bias = bool(trace.meta["bias"])
        self.logits = bool(trace.meta["from_logits"])
        cost = f"{chapter.cost}_from_logits" if self.logits else chapter.cost
        for name in [a for _, a in self.layers]:
            if name not in ACTIVATION_CODE:
                raise TracerError(f"{chapter.name}: the notebook has no NumPy for activation {name!r}")
        if cost not in COST_CODE or chapter.optimizer not in UPDATE_CODE:
            raise TracerError(f"{chapter.name}: the notebook has no NumPy for {cost!r} with {chapter.optimizer!r}")
        self.cost = cost
        self.rounded = trace.meta["carry"] == "rounded"

    def decimals(self, quantity: str) -> int:
        return self.chapter.display.decimals_of(quantity.removesuffix(AFTER))

    def assign(self, name: str, expr: str, quantity: str | None = None) -> str:
        """`name = expr`, rounded at once in hand mode."""
        quantity = quantity or name
        if self.rounded:
            return f"{name} = carry({expr}, {self.decimals(quantity)})"
        return f"{name} = {expr}"

    def forward(self) -> list[tuple[str, list[str]]]:
        """(node, lines) in forward order."""
        out = []
        for l, act in self.layers:
            bias = f" + b{l}" if self.bias else ""
            out.append((f"Z{l}", [self.assign(f"Z{l}", f"W{l} @ A{l - 1}{bias}")]))
            if self.logits and l == len(self.layers):
                continue
            out.append((f"A{l}", [self.assign(f"A{l}", ACTIVATION_CODE[act][0].format(Z=f"Z{l}"))]))
        L = len(self.layers)
        out.append(("cost", [self.assign("cost", COST_CODE[self.cost][0].format(A=f"A{L}", Z=f"Z{L}"))]))
        return out

    def backward(self) -> list[tuple[str, list[str], list[str]]]:
        """(node, lines, quantities computed) from the cost back to the first layer."""
        L = len(self.layers)
        into = f"dZ{L}" if self.logits else f"dA{L}"
        out = [("cost", [self.assign(into, COST_CODE[self.cost][1].format(A=f"A{L}", Z=f"Z{L}"))], [into])]
        for l, act in reversed(self.layers):
            if not (self.logits and l == L):
                local = f"dA{l}_dZ{l}"
                out.append((f"A{l}", [self.assign(local, ACTIVATION_CODE[act][1].format(A=f"A{l}", Z=f"Z{l}")),
                                      self.assign(f"dZ{l}", f"dA{l} * {local}")], [local, f"dZ{l}"]))
            lines = [self.assign(f"dW{l}", f"dZ{l} @ A{l - 1}.T")]
            names = [f"dW{l}"]
            if self.bias:
                lines.append(self.assign(f"db{l}", f"np.sum(dZ{l}, axis=1, keepdims=True)"))
                names.append(f"db{l}")
            lines.append(self.assign(f"dA{l - 1}", f"W{l}.T @ dZ{l}"))
            names.append(f"dA{l - 1}")
            out.append((f"Z{l}", lines, names))
        return out

    def update(self) -> list[tuple[str, list[str]]]:
        out = []
        for p in self.trace.parameter_names:
            if p in self.trace.meta["frozen"]:
                continue
            lines = []
            for rule in UPDATE_CODE[self.chapter.optimizer]:
                target, expr = rule.format(P=p, dP="d" + p).split(" = ", 1)
                lines.append(self.assign(target, expr, target if target == p else None))
            out.append((p, lines))
        return out

    def state_names(self) -> list[str]:
        return [s + p for s in OPTIMIZERS[self.chapter.optimizer].state for p in self.trace.parameter_names]

    def step_function(self) -> str:
        """One whole training step as a function of the update number t, over the notebook's globals."""
        params = [p for p in self.trace.parameter_names if p not in self.trace.meta["frozen"]]
        body = [line for _, lines in self.forward() for line in lines]
        body += [line for _, lines, _ in self.backward() for line in lines]
        body += [line for _, lines in self.update() for line in lines]
        names = ", ".join(params + self.state_names())
        return ("def training_step(t):\n"
                "    \"\"\"One step (forward, cost, backward, update) with the lines worked above; returns its cost.\"\"\"\n"
                f"    global {names}\n" + "".join(f"    {line}\n" for line in body) + "    return cost\n")


def _literal(value: Any) -> str:
    """An array as np.array([...]) with every float written exactly (repr round-trips)."""
    array = np.asarray(value, dtype=float)
    return f"np.array({json.dumps(array.tolist())})"


def _show(name: str, code: _Code, updated: bool = False) -> str:
    label = name + UPDATED if updated else name
    return f"show({json.dumps(label)}, {name}, {code.decimals(name)})"


def notebook(chapter: Chapter, trace: Trace, lec: Lecture | None = None) -> Any:
    """The chapter's notebook as an nbformat v4 node (cells have fixed ids, so it is reproducible)."""
    import nbformat.v4 as nbf

    if trace.meta["batch_size"] != chapter.m or chapter.shuffle:
        raise TracerError(f"{chapter.name}: the notebook works full-batch chapters only (batch_size = m, no shuffle)")
    lec = lec or lecture(chapter, trace)
    code = _Code(chapter, trace)
    ctx = lec.context
    cells: list[Any] = []

    def md(text: str) -> None:
        cells.append(nbf.new_markdown_cell(text))

    def py(text: str, step: int | None = None) -> None:
        cell = nbf.new_code_cell(text.rstrip("\n"))
        if step is not None:
            cell.metadata["tracer"] = {"step": step}
        cells.append(cell)

    title = chapter.title
    intro = ctx["document"].intro
    md(f"# {title}\n\n" + (f"{intro.text}\n\n" if intro else "")
       + "Run the cells from top to bottom: each one computes a step of the worked example in plain NumPy, "
         "in the article's names, and prints its numbers rounded half-up as the worked example prints them. "
         "Only NumPy is needed (and matplotlib for the learning curve at the end).")
    py(HELPERS + (CARRY_HELPER if code.rounded else ""))

    first = 0
    start = {p: trace.at(int(trace.steps[0]))[p] for p in trace.parameter_names} if trace.steps[0] == first else None
    if start is None:
        from tracer.engine.train import initial_parameters

        start = initial_parameters(chapter)
    hyper = {k: chapter.hyper.get(k, DEFAULTS[k]) for k in OPTIMIZERS[chapter.optimizer].uses}
    md("## The data and the starting parameters\n\n"
       "`X` holds one example per column (features × examples) and `m` is the number of examples; "
       "`A0` is `X`, the input of the first layer.")
    setup = [f"X = {_literal(trace.X)}", f"Y = {_literal(trace.Y)}", "m = X.shape[1]", "A0 = X",
             f"learning_rate = {chapter.learning_rate!r}"]
    setup += [f"{k} = {v!r}" for k, v in hyper.items()]
    setup += [f"{p} = {_literal(v)}" for p, v in start.items()]
    setup += [f"{s} = np.zeros_like({s[1:]})" for s in code.state_names()]
    setup += ["START = {" + ", ".join(f"{json.dumps(p)}: {p}.copy()" for p in start) + "}"]
    setup += [_show(p, code) for p in start]
    py("\n".join(setup), 0 if trace.steps[0] == 0 else None)
    py(code.step_function())

    at = 0  # the notebook's parameters are those after `at` updates
    by_node: dict[tuple[int, str, str], list[str]] = {}
    for ln in lec.lines:
        by_node.setdefault((ln.step, ln.phase, ln.node), []).append(ln.latex)

    def worked(step: int, phase: str, node: str, lines: list[str], shown: list[str], heading: str) -> None:
        maths = "\n\n".join(f"$$\n{latex}\n$$" for latex in by_node.get((step, phase, node), []))
        md(f"#### {heading}\n\n{maths}".rstrip())
        updated = phase == "update"
        py("\n".join(lines + [_show(q, code, updated and q == node) for q in shown]), step)

    for step in lec.shown_steps:
        if step > at:
            md(f"## Steps {at} to {step - 1}\n\nThe same lines, run as one training step each, "
               f"bring the parameters to step {step}.")
            py(f"for t in range({at + 1}, {step + 1}):\n    training_step(t)")
            at = step
        full = step in lec.worked_steps
        md(f"## Step {step}" + ("" if full else ": the forward pass with the updated parameters"))
        md("### Forward pass")
        for node, lines in code.forward():
            phase = "cost" if node == "cost" else "forward"
            worked(step, phase, node, lines, [node], "The cost" if node == "cost" else f"Node {node}")
        if not full:
            continue
        md("### Backward pass\n\nEach node multiplies the gradient it receives by its local gradient "
           "and passes the product on.")
        for node, lines, names in code.backward():
            worked(step, "backward", node, lines, names, "From the cost" if node == "cost" else f"Node {node}")
        md(f"### Update ({OPTIMIZER_NAMES.get(chapter.optimizer, chapter.optimizer)})")
        t = f"t = {step + 1}  # the update number, counted from 1"
        for node, lines in code.update():
            shown = [ln.split(" = ")[0] for ln in lines]
            uses_t = any(re.search(r"\bt\b", ln) for ln in lines)
            worked(step, "update", node, ([t] if uses_t else []) + lines, shown, f"Parameter {node}")
        at = step + 1

    if lec.table_steps:
        md(f"## The whole run: {chapter.steps} steps\n\nFrom the starting parameters again, every step "
           "with the lines above; the cost at the steps the worked example tabulates.")
        restart = [f"{p} = START[{json.dumps(p)}].copy()" for p in start]
        restart += [f"{s} = np.zeros_like({s[1:]})" for s in code.state_names()]
        loop = (f"costs = []\nfor step in range({chapter.steps}):\n    costs.append(training_step(step + 1))\n"
                f"for step in {lec.table_steps!r}:\n"
                f"    print(f\"step {{step}}: cost = {{number(costs[step], {lec.table_decimals})}}\")")
        py("\n".join(restart) + "\n" + loop)
        py("import matplotlib\nmatplotlib.use(\"Agg\")\nimport matplotlib.pyplot as plt\n\n"
           "fig, ax = plt.subplots(figsize=(6, 3))\nax.plot(costs)\nax.set_xlabel(\"step\")\n"
           "ax.set_ylabel(\"cost\")\nax.set_title(\"Learning curve\")\nplt.show()")
    nb = nbf.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "tracer": {"chapter": chapter.name}})
    for i, cell in enumerate(nb.cells, start=1):
        cell.id = f"cell-{i:03d}"
    return nb


def notebook_text(chapter: Chapter, trace: Trace, lec: Lecture | None = None) -> str:
    """The notebook as .ipynb JSON text, byte-identical from run to run."""
    import nbformat

    return nbformat.writes(notebook(chapter, trace, lec)) + "\n"

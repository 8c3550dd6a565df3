"""The chapter as a Jupyter notebook a student runs top to bottom: the story in Markdown, every worked
step recomputed in plain NumPy in the article's names (W1, Z1, dZ1, …), printing the document's numbers.

The notebook never imports tracer: it needs only NumPy (and matplotlib for the learning curve). Its
code is written from the nodes' own expression trees (the same trees the document model prints), with
the article's names as leaves. Like the worked example, the worked cells carry every value as it is
printed (`keep = as_written`), so they print the document's figures; the long run at the end carries
every digit (`keep = every_digit`) and prints the document's cost table, by the same rule (`written`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from tracer.documents.lecture import PHASE_TITLES, Lecture, lecture, line_latex, long_run_pictures
from tracer.documents.render import (Prose, document_context, environment, formula_sides, md_escape, printed_tex, render,
                                    with_maths)
from tracer.engine.chapter import Chapter, has_section
from tracer.documents.model import Line, symbol
from tracer.engine import keys, penalties
from tracer.engine.graph import Graph
from tracer.engine.keys import COST, INPUT, TARGET
from tracer.engine.penalties import make_optimizer
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.exercises.notebook_check import exercise_cells
from tracer.operations import Name, to_code

#: How an updated parameter is labelled in the notebook's output (the trace calls it W1_after).
UPDATED = " (updated)"

#: The notebook's generator of dropout masks.
DRAWS = "dropout_draws"

HELPERS = '''import numpy as np
from decimal import Decimal, ROUND_HALF_UP


def half_up(x, places):
    """x rounded half-up to `places` decimals, on the digits you see (never -0). A value within a
    relative 1e-9 of a tie is the tie, and rounds up: (1 - 0.9) * 0.115 is 0.011499999999999998
    in floats, but the 0.1 * 0.115 = 0.0115 you work out by hand rounds to 0.012."""
    unit = Decimal(1).scaleb(-places)
    d = Decimal(repr(float(x)))
    y = abs(d) / unit
    if abs(y - int(y) - Decimal("0.5")) <= Decimal("1e-9") * max(y, 1):
        d = ((int(y) + 1) * unit).copy_sign(d)
    d = d.quantize(unit, rounding=ROUND_HALF_UP)
    return abs(d) if d == 0 else d


def written(x, decimals):
    """x as the worked example writes it: `decimals` places, small values with two significant digits."""
    x = 0.0 if abs(x) < 1e-12 else float(x)
    if decimals == 0 and x.is_integer():  # whole by definition: ReLU's slope 0 or 1
        return str(int(x))
    places = decimals if x == 0 else max(decimals, 1 - Decimal(repr(abs(x))).adjusted())
    d = half_up(x, places)
    if d != 0 and abs(d) < Decimal("0.0001"):
        return f"{d.scaleb(-d.adjusted()):.{places + d.adjusted()}f}e{d.adjusted():+03d}"
    return f"{d:.{places}f}"


def as_written(value, decimals):
    """Every entry rounded to the figure written down: what a calculator user carries to the next line."""
    return np.vectorize(lambda x: float(written(x, decimals)))(np.asarray(value, dtype=float))


def every_digit(value, decimals):
    """Every digit carried (the long run)."""
    return value


def show(name, value, decimals, image_map=False):
    """Print `name = value` as the worked example prints it, a matrix row by row (a stack of matrices,
    one per example, as each example's matrix; an image (`image_map`) map by map; a kernel kernel by kernel)."""
    if np.ndim(value) == 3 and not image_map:
        for i in range(value.shape[2]):
            show(f"{name} (example {i + 1})", value[:, :, i], decimals)
        return
    if np.ndim(value) == 4 and image_map:  # an image: each example's maps, channel after channel
        for n in range(value.shape[3]):
            show(f"{name} (example {n + 1})", value[..., n], decimals, True)
        return
    if np.ndim(value) >= 3:  # maps (channels, or a kernel's filters and channels) one under the other
        cells = [[[written(x, decimals) for x in row] for row in rows] for rows in value.reshape((-1,) + value.shape[-2:])]
        width = max(len(c) for rows in cells for row in rows for c in row)
        print(f"{name} =")
        for k, rows in enumerate(cells):
            if k:
                print()
            for row in rows:
                print("  [ " + "  ".join(c.rjust(width) for c in row) + " ]")
        return
    rows = np.atleast_2d(value)
    if rows.size == 1:
        print(f"{name} = {written(rows[0, 0], decimals)}")
        return
    cells = [[written(x, decimals) for x in row] for row in rows]
    width = max(len(c) for row in cells for c in row)
    print(f"{name} =")
    for row in cells:
        print("  [ " + "  ".join(c.rjust(width) for c in row) + " ]")
'''

#: The image operations in plain NumPy loops, window by window (added when the network has image layers).
#: An image batch is channels × height × width × examples; a kernel filters × channels × height × width.
IMAGE_HELPERS = '''

def padded(A, padding):
    """A with `padding` rows and columns of zeros around each map."""
    C, H, W, m = A.shape
    P = np.zeros((C, H + 2 * padding, W + 2 * padding, m))
    P[:, padding:padding + H, padding:padding + W, :] = A
    return P


def conv2d(K, A, bias=None, stride=1, padding=0):
    """Z[f, i, j, n]: the sum over the window under kernel f of kernel entry times input entry (+ the bias)."""
    P = padded(A, padding)
    F, C, kh, kw = K.shape
    rows, cols = (P.shape[1] - kh) // stride + 1, (P.shape[2] - kw) // stride + 1
    Z = np.zeros((F, rows, cols, A.shape[3]))
    for n in range(A.shape[3]):
        for f in range(F):
            for i in range(rows):
                for j in range(cols):
                    window = P[:, i * stride:i * stride + kh, j * stride:j * stride + kw, n]
                    Z[f, i, j, n] = np.sum(K[f] * window) + (bias[f, 0] if bias is not None else 0.0)
    return Z


def conv_weights(A, G, kernel, stride=1, padding=0):
    """dK[f, c, a, b]: each weight's gradient, the sum over every window of the gradient there times the
    input under that weight (the input correlated with the gradient)."""
    P = padded(A, padding)
    kh, kw = kernel
    dK = np.zeros((G.shape[0], A.shape[0], kh, kw))
    for n in range(G.shape[3]):
        for f in range(G.shape[0]):
            for i in range(G.shape[1]):
                for j in range(G.shape[2]):
                    dK[f] += G[f, i, j, n] * P[:, i * stride:i * stride + kh, j * stride:j * stride + kw, n]
    return dK


def conv_input(K, G, A, stride=1, padding=0):
    """dA: each output's gradient sent back through its window's weights to the inputs it read (the full
    convolution of the gradient with the flipped kernel)."""
    F, C, kh, kw = K.shape
    dP = np.zeros(padded(A, padding).shape)
    for n in range(G.shape[3]):
        for f in range(F):
            for i in range(G.shape[1]):
                for j in range(G.shape[2]):
                    dP[:, i * stride:i * stride + kh, j * stride:j * stride + kw, n] += G[f, i, j, n] * K[f]
    return dP[:, padding:padding + A.shape[1], padding:padding + A.shape[2], :]


def filter_sum(G):
    """db[f]: the gradient summed over filter f's map and every example."""
    return np.array([[np.sum(G[f])] for f in range(G.shape[0])])


def pool(A, size, stride, take):
    """Each size × size window of each map, moved `stride` at a time, turned into one number by `take`."""
    C, H, W, m = A.shape
    rows, cols = (H - size) // stride + 1, (W - size) // stride + 1
    out = np.zeros((C, rows, cols, m))
    for n in range(m):
        for c in range(C):
            for i in range(rows):
                for j in range(cols):
                    out[c, i, j, n] = take(A[c, i * stride:i * stride + size, j * stride:j * stride + size, n])
    return out


def maxpool(A, size=2, stride=2):
    return pool(A, size, stride, np.max)


def avgpool(A, size=2, stride=2):
    return pool(A, size, stride, np.mean)


def maxpool_back(A, G, size=2, stride=2):
    """Each window's gradient to the entry that won it (the first largest in row order), 0 elsewhere."""
    dA = np.zeros(A.shape)
    for n in range(A.shape[3]):
        for c in range(A.shape[0]):
            for i in range(G.shape[1]):
                for j in range(G.shape[2]):
                    window = A[c, i * stride:i * stride + size, j * stride:j * stride + size, n]
                    a, b = divmod(int(np.argmax(window)), size)  # argmax: the first largest, row by row
                    dA[c, i * stride + a, j * stride + b, n] += G[c, i, j, n]
    return dA


def avgpool_back(G, A, size=2, stride=2):
    """Each window's gradient shared equally by its size × size entries."""
    dA = np.zeros(A.shape)
    for n in range(A.shape[3]):
        for c in range(A.shape[0]):
            for i in range(G.shape[1]):
                for j in range(G.shape[2]):
                    dA[c, i * stride:i * stride + size, j * stride:j * stride + size, n] += G[c, i, j, n] / size ** 2
    return dA


def flatten(A):
    """Each example's maps read row by row into one column."""
    return A.reshape(-1, A.shape[-1])


def unflatten(G, A):
    """Each example's column put back as maps of A's shape."""
    return G.reshape(A.shape)
'''


def numpy_code(tree: Any) -> str:
    """An expression tree over Names and constants as NumPy code, with only the parentheses it needs
    (each operation's code is its entry in tracer.operations)."""
    return to_code(tree, lambda leaf: leaf.name if isinstance(leaf, Name) else str(leaf))


def _every_digit(line: Line, note: str | None) -> str:
    """What carrying every digit gives for `line`, when its printed digits differ, as the Markdown document
    writes it under the line (and, the first time, the note on why)."""
    if line.every_digit is None:
        return ""
    every = printed_tex(line.every_digit, beside=line.result)
    text = f"\n\n*With every digit carried:* ${formula_sides(line.formula)[0]} = {every}$"
    return text + (f"\n\n> {Prose(note).render('md')}" if note else "")


class _Code:
    """The NumPy lines of one chapter's network, node by node, from the nodes' expression trees."""

    def __init__(self, chapter: Chapter, net: Graph):
        self.chapter, self.net = chapter, net
        self.optimizer = make_optimizer(chapter)

    def decimals(self, quantity: str) -> int:
        return self.chapter.display.decimals_of(keys.before_update(quantity))

    def kept(self, target: str, tree: Any) -> str:
        """`target = keep(…)`: rounded as written in the worked cells, every digit in the long run."""
        return f"{target} = keep({numpy_code(tree)}, {self.decimals(target)})"

    def forward(self) -> list[tuple[str, list[str]]]:
        """(node, lines) in forward order, the cost last."""
        out = []
        for node in self.net.nodes[:-1]:
            drawn = getattr(node, "draw_code", None)  # a dropout mask: drawn as the training run draws it
            out.append((node.name, [drawn(DRAWS) if drawn else
                                    self.kept(node.name, node.expression(*[Name(n) for n in node.inputs + node.params]))]))
        output = self.net.output
        data = self.net.cost.total_expression(Name(TARGET), Name(output.name), Name(output.inputs[0]), Name("m"))
        penalty = penalties.penalty_expression(self.net, Name, Name("m"))
        if penalty is None:
            out.append((COST, [self.kept(COST, data)]))
        else:  # with an L2 penalty: the data term, the penalty, their sum
            out.append((COST, [self.kept(keys.DATA_COST, data), self.kept(keys.PENALTY, penalty),
                               self.kept(COST, {"op": "add", "args": [Name(keys.DATA_COST), Name(keys.PENALTY)]})]))
        return out

    def draws(self) -> list[str]:
        """The generator of the dropout masks, seeded as the training run seeds it (none without dropout)."""
        if not any(getattr(n, "drawn", False) for n in self.net.nodes):
            return []
        return [f"{DRAWS} = np.random.RandomState({self.chapter.dropout_seed})  # the dropout masks, step after step"]

    def backward(self) -> list[tuple[str, list[str]]]:
        """(node, lines) from the cost back to the first layer."""
        net, cost, output = self.net, self.net.cost, self.net.output
        tree = cost.gradient_expression(Name(TARGET), Name(output.name), Name(output.inputs[0]), Name("m"))
        out = [(COST, [self.kept(keys.grad(net.prediction), tree)])]
        for node in reversed(net.nodes[:-1]):
            lines = []
            feeds = net.feeds.get(node.name, [])
            if len(feeds) > 1:
                lines.append(self.kept(keys.grad(node.name), {"op": "add", "args": [
                    Name(keys.part(node.name, u.name)) for u in feeds]}))
            if node.name in net.on_path:
                lines += [self._local(node, wrt) for wrt in node.locals]
                local = {wrt: Name(keys.local(node.name, wrt)) for wrt in node.locals}
                names = {n: Name(n) for n in node.inputs + node.params}
                lines += [self.kept(target, node.backward_expression(wrt, Name(keys.grad(node.name)), names, local))
                          for wrt, target in net.passes(node.name) if wrt != INPUT]
            if lines:
                out.append((node.name, lines))
        return out

    def _local(self, node: Any, wrt: str) -> str:
        local = keys.local(node.name, wrt)
        if node.elementwise:
            tree = node.local_expression(Name(wrt), Name(node.name))
            return self.kept(local, tree) if tree is not None else f"{local} = np.ones_like({wrt})"
        code = getattr(node, "jacobian_code", None)
        if code is None:
            raise TracerError(f"the notebook has no NumPy for the Jacobian of a {node.op} node")
        return f"{local} = keep({code(node.name, wrt)}, {self.decimals(local)})"

    def update(self) -> list[tuple[str, list[str]]]:
        """(parameter, lines): the optimizer's state (kept as written, as the worked example carries it), then
        the update."""
        opt = self.optimizer
        hyper = {k: Name(k) for k in opt.uses}
        out = []
        for p in self.net.parameter_names:
            if p in self.chapter.frozen:
                continue
            dp = Name(keys.grad(p))
            lines = [self.kept(keys.state(s, p), opt.state_expression(s, Name(keys.state(s, p)), dp, hyper))
                     for s in opt.state]
            tree = opt.expression(Name(p), dp, Name("learning_rate"), {s: Name(keys.state(s, p)) for s in opt.state},
                                  hyper, Name("t"))
            if p in getattr(opt, "decayed", ()):  # weight decay: − αλP
                tree = opt.with_decay(tree, Name(p), Name("learning_rate"))
            lines.append(self.kept(p, tree))
            out.append((p, lines))
        return out

    def state_names(self) -> list[str]:
        return [keys.state(s, p) for s in self.optimizer.state for p in self.net.parameter_names]

    def step_function(self) -> str:
        """One whole training step (update number t), with exactly the lines of the worked cells."""
        body = [line for part in (self.forward(), self.backward(), self.update()) for _, lines in part
                for line in lines]
        names = [p for p in self.net.parameter_names if p not in self.chapter.frozen] + self.state_names()
        return ("def training_step(t):\n"
                "    \"\"\"Forward, cost, backward, update (t counts updates from 1); returns the cost.\"\"\"\n"
                f"    global {', '.join(names)}\n" + "".join(f"    {line}\n" for line in body) + "    return cost\n")


def _literal(value: Any) -> str:
    """An array as np.array([...]) with every float written exactly (repr round-trips)."""
    return f"np.array({json.dumps(np.asarray(value, dtype=float).tolist())})"


#: The documents' own sections (Markdown partials), rendered into the notebook's story cells.
STORY = {"rounding": "rounding.md.j2", "network": "network.md.j2", "derivations": "derivations.md.j2", "against": "against.md.j2",
         "colophon": "colophon.md.j2"}


def _story(chapter: Chapter, lec: Lecture, user_templates: Any = None) -> dict[str, str]:
    """The documents' sections as Markdown, from the same context and partials as the Markdown document."""
    env = environment(user_templates)
    context = document_context(chapter, fmt="md", model=lec.model)
    return {key: render(env, template, context).strip() for key, template in STORY.items()}


def notebook(chapter: Chapter, trace: Trace, lec: Lecture | None = None, user_templates: Any = None) -> Any:
    """The chapter's notebook as an nbformat v4 node (cells have fixed ids, so it is reproducible)."""
    import nbformat.v4 as nbf

    if trace.meta["batch_size"] != chapter.m or chapter.shuffle:
        raise TracerError(f"{chapter.name}: the notebook works full-batch chapters only (batch_size = m, no shuffle)")
    lec = lec or lecture(chapter, trace)
    model, hand, full = lec.model, lec.hand, lec.full
    net = chapter.network
    code = _Code(chapter, net)
    cells: list[Any] = []

    def md(text: str) -> None:
        cells.append(nbf.new_markdown_cell(text))

    def py(text: str, step: int | None = None, trace_name: str = "hand") -> None:
        cell = nbf.new_code_cell(text.rstrip("\n"))
        if step is not None:
            cell.metadata["tracer"] = {"step": step, "trace": trace_name}
        cells.append(cell)

    story = _story(chapter, lec, user_templates)
    md(f"# {md_escape(model.title)}\n\n" + (f"{with_maths(model.intro, 'md')}\n\n" if model.intro else "")
       + "Run the cells from top to bottom. Each one computes a step of the worked example in plain NumPy, "
         "in the article's names, and prints its numbers as the worked example prints them. "
         "Only NumPy is needed (and matplotlib for the learning curve at the end).\n\n"
       + story["rounding"] + "\n\n"
       + "\n".join(f"- {n}" for n in model.notation))
    md(story["network"])
    if story["derivations"]:
        md(story["derivations"])
    images = full.X.ndim == 4
    py(HELPERS + (IMAGE_HELPERS if images else ""))

    opt = code.optimizer
    start_hand = hand.at(0) if 0 in set(hand.steps.tolist()) else None
    if start_hand is None:
        raise TracerError(f"{chapter.name}: the notebook starts from step 0, which the hand-carried trace must record")
    md("## In code: the data and the starting parameters\n\n"
       + ("`X` holds one image per example (channels × height × width × examples, the examples last) "
          if images else "`X` holds one example per column (features × examples) ")
       + "and `m` is the number of examples; "
       "`A0` is `X`, the input of the first layer. The parameters are written as the worked example writes them. "
       "Like the worked example, the cells below carry every value as it is written down (`keep = as_written`), "
       "as you would with a calculator.")
    setup = [f"X = {_literal(full.X)}", f"Y = {_literal(full.Y)}", "m = X.shape[-1]", "A0 = X",
             f"learning_rate = {chapter.learning_rate!r}"]
    setup += [f"{k} = {opt.hyper[k]!r}" for k in opt.uses]
    setup += [f"{p} = {_literal(start_hand[p])}" for p in net.parameter_names]
    setup += [f"{s} = np.zeros_like({s[1:]})" for s in code.state_names()]
    setup += code.draws()
    setup += ["keep = as_written"]
    setup += [f"show({json.dumps(p)}, {p}, {code.decimals(p)})" for p in net.parameter_names]
    py("\n".join(setup), 0)
    py(code.step_function())

    def cell(step: int, phase: str, node: str, lines: list[str], heading: str, updated: bool = False) -> None:
        worked = lec.at(step, phase, node)
        maths = "\n\n".join(f"$$\n{line_latex(ln)}\n$$" + _every_digit(ln, notes.get(id(ln))) for ln in worked)
        comments = []
        for c in comments_of.get(step, ()):
            if c.node == node and id(c) not in said and (c.kind == "author" or phase in ("backward", "update")):
                said.add(id(c))
                comments.append(Prose(c.text, c.kind == "author").render("md"))  # as the Markdown document
        md(f"#### {heading}\n\n{maths}".rstrip() + ("\n\n" + "\n\n".join(comments) if comments else ""))
        shows = []
        for ln in worked:
            q = keys.before_update(ln.quantity)
            label = q + UPDATED if keys.is_after(ln.quantity) else q
            whole = all("." not in t and "e" not in t for t in np.ravel(np.asarray(ln.result, dtype=object)))
            image = np.ndim(hand.at(step)[q]) == 4 and net.names().node_of(q) not in net.parameter_names
            shown = (f"show({json.dumps(label)}, {q}, {0 if whole else code.decimals(q)}"  # ReLU's 0 and 1
                     + (", image_map=True)" if image else ")"))
            if shown not in shows:  # a quantity worked example by example is shown once, whole
                shows.append(shown)
        py("\n".join(lines + shows), step)

    comments_of = {st.step: st.comments for st in model.steps}
    notes = {id(st.lines[st.rounding_note_at]): st.rounding_note for st in model.steps if st.rounding_note}
    said: set[int] = set()
    at = 0  # the notebook's parameters are those after `at` updates
    for st in model.steps:
        step = st.step
        if step > at:
            md(f"## Steps {at} to {step - 1}\n\nThe same lines, one training step each, bring the parameters "
               f"to step {step}.")
            py(f"for t in range({at + 1}, {step + 1}):\n    training_step(t)")
            at = step
        full_step = st.kind == "worked"
        md(f"## Step {step}" + ("" if full_step else ": the forward pass with the updated parameters")
           + (f"\n\n{Prose(st.comparison).render('md')}" if st.comparison else ""))
        md(f"### {PHASE_TITLES['forward']}")
        for node, lines in code.forward():
            phase = "cost" if node == "cost" else "forward"
            cell(step, phase, node, lines, "The cost" if node == "cost" else f"Node ${symbol(node)}$")
        if not full_step:
            continue
        md(f"### {PHASE_TITLES['backward']}\n\nEach node multiplies the gradient it receives by its local gradient "
           "and passes the product on.")
        for node, lines in code.backward():
            cell(step, "backward", node, lines, "From the cost" if node == "cost" else f"Node ${symbol(node)}$")
        md(f"### {PHASE_TITLES['update']} ({model.network['optimizer_readable']})")
        for node, lines in code.update():
            uses_t = any(re.search(r"\bt\b", line) for line in lines)
            cell(step, "update", node, ([f"t = {step + 1}  # the update number, counted from 1"] if uses_t else [])
                 + lines, f"Parameter ${symbol(node)}$")
        at = step + 1

    if model.long_run:
        run_ = model.long_run
        first = full.at(int(full.steps[0])) if int(full.steps[0]) == 0 else None
        if first is None:
            raise TracerError(f"{chapter.name}: the notebook's long run starts from step 0, "
                              "which the trace must record")
        md(f"## The whole run: {run_['steps']} steps\n\nFrom the starting parameters again, every step with the "
           "lines above, now carrying every digit (`keep = every_digit`): the cost at the steps the worked "
           "example tabulates.")
        restart = ["keep = every_digit"] + [f"{p} = {_literal(first[p])}" for p in net.parameter_names]
        restart += code.draws()
        restart += [f"{s} = np.zeros_like({s[1:]})" for s in code.state_names()]
        steps = [row["step"] for row in run_["table"]]
        loop = (f"costs = [training_step(step + 1) for step in range({run_['steps']})]\n"
                f"for step in {steps!r}:\n"
                f"    print(f\"step {{step}}: cost = {{written(costs[step], {run_['decimals']})}}\")")
        py("\n".join(restart) + "\n" + loop, 0, "full")
        py("import matplotlib.pyplot as plt  # Jupyter shows the figure under the cell\n\n"
           "fig, ax = plt.subplots(figsize=(6, 3))\nax.plot(costs)\nax.set_xlabel(\"step\")\n"
           "ax.set_ylabel(\"cost\")\nax.set_title(\"Learning curve\")\nfig.tight_layout()\nplt.show()")
        last = int(run_["steps"]) - 1
        md("### Parameters after the last update\n\nThe run's parameters, every digit carried, printed as the "
           "worked example prints them.")
        py("\n".join(f"show({json.dumps(p + UPDATED)}, {p}, {code.decimals(p)})" for p in net.parameter_names
                      if p not in chapter.frozen), last, "full")
        shown = [f for f in long_run_pictures(chapter, full).values() if f is not None and f["number"] > 1]
        if shown:
            md("### Where the trained network decides\n\n" + "\n\n".join(
                f"![Figure {f['number']}: {f['caption']}]({f['src']})\n\n*{f['caption']}.*" for f in shown))
        if run_.get("reading"):
            md("### What the trained network's numbers say\n\n"
               + "\n\n".join(Prose(r).render("md") for r in run_["reading"]))
    if story["against"]:
        md(story["against"])
    if has_section(chapter, "exercise"):  # the student's turn: answers to write in, and a cell that checks them
        for kind, source in exercise_cells(chapter, Traces(chapter, full, hand, carry="full")):
            if kind == "markdown":
                md(source)
            else:
                py(source)
                cells[-1].metadata["tracer"] = {"exercise": True}
    md(story["colophon"])
    nb = nbf.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "tracer": {"chapter": chapter.name}})
    for i, c in enumerate(nb.cells, start=1):
        c.id = f"cell-{i:03d}"
    return nb


def notebook_text(chapter: Chapter, trace: Trace, lec: Lecture | None = None, user_templates: Any = None) -> str:
    """The notebook as .ipynb JSON text, byte-identical from run to run."""
    import nbformat

    return nbformat.writes(notebook(chapter, trace, lec, user_templates)) + "\n"



"""The `tracer` command: a thin shell over the Python API.

Exit status: 0 success, 1 a numerical failure (NaN or overflow), 2 bad input, 3 what was checked
did not pass (verify: the project's numbers disagree; check and grade: an answer wrong or missing),
128 + the signal's number when stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP (129): nothing written.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tracer.abbreviation import CORNER, LIMIT, MORE, bracketed
from tracer.engine.chapter import Chapter, Display, bundled_chapters, load_chapter
from tracer.engine import keys
from tracer.engine.optimizers import OPTIMIZERS
from tracer.engine.trace import Trace
from tracer.engine.train import Traces
from tracer import interrupts, progress
from tracer.errors import TracerError
from tracer.interrupts import Interrupted
from tracer.output import announce, staged
from tracer.rounding import shown_array

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return register


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, wrapping only at spaces: a chapter name such as 01-or-one-example stays whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False, break_long_words=False)


class _Parser(argparse.ArgumentParser):
    """The parser of `tracer` and of each sub-command (they share the help layout)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


#: What `tracer` alone suggests trying first.
FIRST = "tracer build 01-or-one-example   (it prints the files it writes; open the .md)"


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("tracer")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed; pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tracer",
        description="Step-by-step hand-calculation tracer for neural networks: every node's value and "
                    "gradient at every training step, from a chapter file (TOML).",
        epilog="A CHAPTER is a path to a .toml file or the name of a bundled chapter "
               f"({', '.join(p.stem for p in bundled_chapters())}). "
               "Exit status: 0 success, 1 numerical failure, 2 bad input, 3 what was checked did not pass "
               "(verify, check, grade), 130/143/129 interrupted by Ctrl-C, SIGTERM or SIGHUP (nothing written).")
    parser.add_argument("--version", action="version", version=f"tracer {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="train a chapter and print its cost table",
                       description="Train each chapter and print the cost at its recorded steps and the final "
                                   "parameters. With no CHAPTER, every bundled chapter.")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter file or bundled chapter name")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object per chapter: steps, cost (one per recorded step), params (final)")
    p.add_argument("--all", action="store_true", help="print every recorded step, not a sample of about 20")
    _full_option(p)
    p.add_argument("--carry", choices=("full", "rounded"),
                   help="full precision (default) or hand mode: round every value as it is computed")
    p.add_argument("--save", metavar="FILE",
                   help="also save the trace to FILE (.npz) for `tracer trace FILE --step N`; with several "
                        "chapters, a folder (DIR/) that gets one <chapter>.npz each")

    p = sub.add_parser("trace", help="show every node of the graph at one step",
                       description="Every node at step N: value, local gradients, the gradient of the cost "
                                   "reaching it and what it passes on; every parameter before, its gradient "
                                   "and after the update. Steps are counted from 0.")
    p.add_argument("chapter", metavar="CHAPTER", help="chapter file, bundled chapter name, or a saved trace (.npz)")
    p.add_argument("--step", type=int, required=True, metavar="N", help="the step to show (0 is the first)")
    p.add_argument("--json", action="store_true", help="nested lists, full double precision")
    p.add_argument("--carry", choices=("full", "rounded"), help="as for `tracer run`")
    _full_option(p)

    # Each later sub-command adds its parser here, in its own block.
    # --- verify parser (issue 3)
    p = sub.add_parser("verify", help="check every number against SymPy, an exact oracle and finite differences",
                       description="Derive each activation and cost with SymPy, check every recorded local "
                                   "gradient against it, every gradient against a 50-digit forward and "
                                   "backward pass built from each node's SymPy derivative, and finite differences, and the article's own figures and "
                                   "formulas ([article] in the chapter). With no CHAPTER, every bundled chapter. "
                                   "Exit status: 0 the project's numbers agree (an article that differs is "
                                   "listed, not a failure), 3 they disagree, 2 bad input.")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter file or bundled chapter name")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per chapter: every check with expected, computed, tolerance, verdict")
    # --- build parser (issue 4)
    p = sub.add_parser("build", help="write the worked-example documents (Markdown, LaTeX, PDF)",
                       description="Write each chapter's worked example: the network and data, the forward "
                                   "pass, cost, backward pass and update node by node (formula, numbers "
                                   "substituted, result), the cost table of a long run, the article's exercise "
                                   "and its answers. With no CHAPTER, every bundled chapter.")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter file or bundled chapter name")
    _document_options(p, "tracer-build", "the documents", None,
                      "comma-separated formats among md, tex, pdf, json, slides, ipynb, html (json: the document "
                      "model; slides: Beamer <chapter>-slides.tex and .pdf; ipynb: a NumPy notebook; html: a "
                      "self-contained page with a step explorer; default: md, tex, and pdf when pdflatex is "
                      "installed; pdf asked for without pdflatex is an error)")
    # --- check / exercises parsers (issue 5)
    p = sub.add_parser("check", help="check a student's answers for one step; name the likely mistake",
                       description="Judge each answer (QUANTITY = VALUE) against the step as tracer computes it, "
                                   "at the answer's own precision: right if it is the exact value rounded half-up "
                                   "to the decimals written, the value of a hand calculation carrying rounded "
                                   "figures, or within half a unit of its last digit of the exact value. For a "
                                   "wrong answer, reruns the step with each common mistake and names those that "
                                   "give the student's numbers. Exit status 0 when every asked answer is right, 3 "
                                   "when any is wrong or missing, 2 for an answer that cannot be read.")
    p.__class__ = _IntermixedParser  # answers may come before or after the options
    p.add_argument("chapter", metavar="CHAPTER",
                   help="chapter file, bundled chapter name, or a folder written by `tracer exercises`")
    p.add_argument("answers", nargs="*", metavar="ANSWER",
                   help='e.g. "dW1 = [-0.044, -0.035]" "db1 = -0.031"; a matrix row by row: "W1 = [[0.1, 0.2], '
                        '[0.3, 0.4]]"; any recorded quantity (Z1, A1, dZ1, dW1, db1, dA0, W1, W1_after or '
                        '"new W1", cost)')
    p.add_argument("--step", type=int, metavar="N",
                   help="the step the answers are about, counted from 0 (default: the chapter's [exercise] step)")
    p.add_argument("--answers", dest="answers_file", metavar="FILE",
                   help="read answers from FILE too, one per line (# comments; - for standard input)")
    p.add_argument("--variant", metavar="CODE",
                   help="check against one variant of an exercise set: the code on the sheet (K7QF), or the "
                        "number of a public practice sheet")
    p.add_argument("--key", type=Path, metavar="FILE",
                   help="the instructor key a secret set was made with (or give the sheets folder, whose "
                        "answers.json serves)")
    p.add_argument("--seed", type=int, metavar="S",
                   help="a public practice set's seed, for --variant N with a chapter (a sheets folder knows it)")
    p.add_argument("--mode", choices=("precision", "sigfig", "decimals", "relabs"), default="precision",
                   help="precision (default: each number at its own decimals), sigfig --digits N, "
                        "decimals --digits N, or relabs --rtol R --atol A")
    p.add_argument("--digits", type=int, metavar="N", help="significant digits or decimals for --mode sigfig/decimals")
    p.add_argument("--rtol", type=float, default=0.0, metavar="R", help="relative tolerance for --mode relabs")
    p.add_argument("--atol", type=float, default=0.0, metavar="A", help="absolute tolerance for --mode relabs")
    p.add_argument("--reveal", action="store_true", help="also show the expected values")
    _full_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object: score and a verdict per answer")

    p = sub.add_parser("exercises", help="write per-student exercise variants with answer keys",
                       description="Draw VARIANTS versions of the chapter's [exercise] (starting weights, and "
                                   "where the section allows inputs and learning rate, as numbers with one "
                                   "decimal) with readable, distinct answers; write per variant a worksheet and "
                                   "its answer key (Markdown and LaTeX), answers.csv and answers.json, "
                                   "exercises.json + chapter.toml so `tracer check DIR --variant CODE` and "
                                   "`tracer grade DIR` work from the folder, and with --format moodle,qti quiz "
                                   "banks for Moodle and Canvas. With an instructor key (--key, or --new-key to "
                                   "make one) each sheet prints only a secret variant code; with --seed the "
                                   "sheets are public practice sheets anyone can check. The same key or seed "
                                   "gives the same files byte for byte.")
    p.add_argument("chapter", metavar="CHAPTER", help="chapter file or bundled chapter name (with an [exercise] section)")
    p.add_argument("--variants", type=int, default=40, metavar="N", help="how many variants (default 40)")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--key", type=Path, metavar="FILE",
                        help="the instructor key: the variants' numbers derive from it and each sheet's code")
    secret.add_argument("--new-key", type=Path, metavar="FILE",
                        help="make a new random instructor key in FILE (mode 600), then use it")
    secret.add_argument("--seed", type=int, metavar="S",
                        help="public practice sheets: anyone with the seed can check (and reveal) the answers")
    _document_options(p, "sheets", "the sheets", "md,tex",
                      "comma-separated: md, tex (sheets and keys), pdf (compiled from the .tex, with pdflatex), practice "
                      "(a self-contained web page per sheet that checks each number as it is typed; public sets "
                      "only), moodle (Moodle XML: a Cloze question per variant), qti (QTI 1.2 zip for Canvas: a quiz "
                      "per variant); default md,tex")
    # --- grade parser (issue 12)
    p = sub.add_parser("grade", help="grade a class: one row per student from an LMS export",
                       description="Grade every row of a CSV (student id, variant code, one column per asked "
                                   "quantity, in the answer grammar of `tracer check`) against the sheets folder "
                                   "written by `tracer exercises`. Writes one row per student (score, each "
                                   "quantity's verdict, the named mistake, carried-forward credit) and "
                                   "grades-report.md and .html beside it (the score histogram and how often each "
                                   "mistake occurred). A row that cannot be read is reported with its line "
                                   "number and the rest are graded. Exit status 0 when every row was graded, "
                                   "3 when some could not be, 2 for bad input.")
    p.add_argument("sheets", metavar="SHEETS_DIR", type=Path, help="the folder written by `tracer exercises`")
    p.add_argument("--answers", required=True, type=Path, metavar="CSV",
                   help="one row per student: columns student (or id), variant, and one per asked quantity")
    p.add_argument("-o", "--output", type=Path, default=Path("grades.csv"), metavar="FILE",
                   help="the grades (default grades.csv); the report goes beside it")
    p.add_argument("--key", type=Path, metavar="FILE", help="the instructor key, if the folder has no answers.json")
    # --- figure parser (issue 6)
    p = sub.add_parser("figure", help="draw one figure: computational graph, learning curve or decision boundary",
                       description="Draw one of the chapter's pictures from its trace. graph: the computational "
                                   "graph at step N, forward values on solid blue arrows and gradients of the cost "
                                   "on dashed vermillion ones (.svg, or .tex: a LaTeX document with a TikZ "
                                   "picture). curve: the cost at every step (.svg or .pdf). boundary: the trained "
                                   "network's decision boundary over its two input features (.svg or .pdf). The "
                                   "format is taken from the suffix of FILE.")
    p.add_argument("chapter", metavar="CHAPTER", help="chapter file or bundled chapter name")
    p.add_argument("--kind", choices=("graph", "curve", "boundary"), required=True, help="which picture")
    p.add_argument("--step", type=int, metavar="N", help="graph: the recorded step to draw (default: the first)")
    p.add_argument("--view", choices=("scalar", "layer"),
                   help="graph: one node per weight and example (scalar) or per matrix (layer); "
                        "default scalar for one example, layer for a batch")
    p.add_argument("--local", action="store_true",
                   help="graph: write on each backward arrow the local gradient ∂head/∂tail (∂z/∂w = x, "
                        "∂ŷ/∂z = σ′(z), …), as the article annotates its graphs, instead of the gradient of the cost")
    p.add_argument("--scale", choices=("auto", "log", "linear"), default="auto",
                   help="curve: the cost axis; auto (default) is logarithmic when the cost spans more than two "
                        "decades, linear (the article's view) otherwise")
    p.add_argument("--shaded", action="store_true", help="boundary: shade the two decision regions")
    p.add_argument("--carry", choices=("full", "rounded"), help="as for `tracer run`")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="where to write (.svg, .pdf, .tex); default CHAPTER-KIND….svg in the current folder")
    return parser


def _full_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--full", action="store_true",
                   help=f"print matrices whole (without it, one past {LIMIT} rows or columns shows a corner and "
                        "its shape; --json always has every entry)")


def _document_options(p: argparse.ArgumentParser, folder: str, what: str, formats: str | None,
                      formats_help: str) -> None:
    """-o, --format and --templates, as `build` and `exercises` both take them."""
    p.add_argument("-o", "--output", type=Path, default=Path(folder), metavar="DIR",
                   help=f"folder for {what} (default: {folder}/)")
    p.add_argument("--format", default=formats, metavar="LIST", help=formats_help)
    p.add_argument("--templates", type=Path, metavar="DIR",
                   help="a folder of templates that override the bundled ones by file name")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tracer` with `argv` (default: the command line) and return its exit status.

    Ctrl-C, SIGTERM and SIGHUP stop a command as a failure does (tracer.interrupts): its workers are
    ended, no output is changed, one line is printed, and the status is 128 + the signal's number.
    Called with `argv`, as the tests do, the signal handlers are put back on return; as the command
    itself, they stay settled until the process exits, so a late Ctrl-C cannot print a traceback.
    """
    # A library's warning is not one of ours: matplotlib's "could not save font cache" on a full disk
    # would be a second line after the one that says what failed.
    logging.getLogger("matplotlib").setLevel(logging.ERROR)
    progress.enable(sys.stderr.isatty())  # a long run says how far it is, on a terminal only
    try:
        with interrupts.handled(restore=argv is not None):
            try:
                parser = build_parser()
                argv = sys.argv[1:] if argv is None else list(argv)
                if not argv:  # `tracer` alone: what it can do, and where to start
                    print(parser.format_help().rstrip() + f"\n\nStart with:  {FIRST}\n"
                          "Each command's options:  tracer COMMAND --help")
                    return 0
                args = parser.parse_args(argv)
            except (Interrupted, KeyboardInterrupt) as exc:  # before the command started: nothing to undo
                return _interrupted(exc, None)
            return _outcome(args)
    finally:
        progress.enable(False)


#: What to try when a command runs out of memory.
MEMORY_ADVICE = {"grade": "a class file this large does not fit: grade it in parts",
                 "exercises": "ask for fewer --variants at a time",
                 "check": "record fewer steps: [record] every or steps"}


def _outcome(args: argparse.Namespace) -> int:
    """The command's exit status; every failure (and an interruption) as one line on stderr."""
    staging = None
    try:
        with staged() as staging:  # outputs move into place only when the whole command succeeds
            return COMMANDS[args.command](args)
    except (Interrupted, KeyboardInterrupt) as exc:
        return _interrupted(exc, staging)
    except TracerError as exc:
        print(f"tracer: {exc}", file=sys.stderr)
        return exc.exit_status
    except MemoryError:
        advice = MEMORY_ADVICE.get(args.command, "record fewer steps: [record] every or steps, or a smaller network")
        print(f"tracer: out of memory; no output was changed ({advice})", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `tracer run | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")
        return 0


def _interrupted(exc: BaseException, staging: Any) -> int:
    stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
    done = staging is not None and staging.committed
    print(f"tracer: interrupted ({stop.name}); "
          + ("every output had already been put in place" if done else "no output was changed"), file=sys.stderr)
    return stop.exit_status


def _chapters(names: list[str]) -> list[Chapter]:
    """The chapters named, or every bundled chapter when none is."""
    return [load_chapter(c) for c in names] if names else [load_chapter(p) for p in bundled_chapters()]


def _formats(text: str) -> list[str]:
    """--format md,tex → ["md", "tex"]."""
    return [f.strip() for f in text.split(",") if f.strip()]


# --------------------------------------------------------------------------- run


@command("run")
def _run(args: argparse.Namespace) -> int:
    chapters = _chapters(args.chapters)
    saves = _save_paths(args.save, chapters) if args.save else {}
    results = []
    for chapter in chapters:
        trace = Traces(chapter, carry=args.carry).main
        if chapter.name in saves:
            trace.save(saves[chapter.name])
            print(f"tracer run: saved the trace of {chapter.name} to {saves[chapter.name]}", file=sys.stderr)
        results.append((chapter, trace))
    for i, (chapter, trace) in enumerate(results):
        if args.json:
            print(json.dumps(run_summary(trace)))
        else:
            print(("\n" if i else "") + cost_table(chapter, trace, everything=args.all, full=args.full))
    return 0


def _save_paths(text: str, chapters: list[Chapter]) -> dict[str, Path]:
    """Where `--save` puts each chapter's trace: the file named for one chapter; for several, a folder
    (one that exists, or a name ending in /) gets one <chapter>.npz each, and a single file name is refused."""
    save = Path(text)
    if len(chapters) == 1:
        if save.is_dir():
            return {chapters[0].name: save / f"{chapters[0].name}.npz"}
        return {chapters[0].name: save}
    if not (save.is_dir() or text.endswith(("/", os.sep))):
        raise TracerError(f"--save {save}: {len(chapters)} chapters make {len(chapters)} traces, and one file cannot "
                          f"hold them; give a folder (--save {save.with_suffix('')}/) to get one <chapter>.npz each")
    names = [c.name for c in chapters]
    if len(set(names)) < len(names):
        raise TracerError(f"--save {save}: two chapters are named {next(n for n in names if names.count(n) > 1)}; "
                          "save them one at a time")
    return {c.name: save / f"{c.name}.npz" for c in chapters}


def run_summary(trace: Trace) -> dict[str, Any]:
    """The `tracer run --json` object: recorded steps, their costs, and the final parameters."""
    return {"chapter": trace.meta["chapter"], "steps": trace.steps.tolist(),
            "cost": trace.arrays["cost"].tolist(),
            "params": {k: np.asarray(v).tolist() for k, v in trace.final.items()}}


def carry_words(carry: str) -> str:
    """A trace's carry as the terminal says it."""
    return "computed in full precision" if carry == "full" else \
        "hand mode: every value rounded to its printed decimals as it is computed"


def cost_table(chapter: Chapter, trace: Trace, everything: bool = False, rows: int = 20, full: bool = False) -> str:
    steps = trace.steps.tolist()
    if not everything and len(steps) > rows + 1:
        stride = -(-len(steps) // rows)
        steps = steps[::stride] + ([steps[-1]] if (len(steps) - 1) % stride else [])
    lines = [f"{chapter.title}  ({chapter.name})",
             f"{chapter.network.summary(chapter.n_inputs)}; {OPTIMIZERS[chapter.optimizer].readable}, "
             f"learning rate {chapter.learning_rate:g}; {chapter.steps} steps; {carry_words(trace.meta['carry'])}",
             f"{'step':>8}  cost"]
    lines += [f"{s:>8}  {trace.at(s)['cost']:.10g}" for s in steps]
    lines.append("final parameters:")
    lines += [f"  {k} = {_matrix(v, chapter.display.decimals, full)}" for k, v in trace.final.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- trace


@command("trace")
def _trace(args: argparse.Namespace) -> int:
    if args.chapter.endswith(".npz"):
        trace = Trace.load(args.chapter)
        decimals = Display(**trace.meta.get("display", {})).decimals_of  # as the chapter showed it
    else:
        chapter = load_chapter(args.chapter)
        # Train up to the asked step and record only it (outside the run, the full run names the error).
        through = args.step if 0 <= args.step < chapter.steps else None
        traces = Traces(chapter, carry=args.carry, steps=[args.step] if through is not None else [], through=through)
        trace, decimals = traces.main, chapter.display.decimals_of
    if args.json:
        print(json.dumps(trace.step_dict(args.step)))
        return 0
    print(step_report(trace, args.step, decimals, full=args.full))
    return 0


def step_report(trace: Trace, step: int, decimals: int | Callable[[str], int], full: bool = False) -> str:
    """Every node and parameter at `step`, rounded for reading (`--json` has full precision);
    big matrices abbreviated unless `full`."""
    places = decimals if callable(decimals) else (lambda _name: decimals)
    show = lambda name, value: _matrix(value, places(name), full)  # noqa: E731
    lines = [f"{trace.meta['title']}: step {step} ({carry_words(trace.meta['carry'])})", "", "nodes (forward order):"]
    for node in trace.nodes(step):
        said = "Cost" if node.kind == "cost" else node.name  # as the documents write it
        lines += _per_map(f"  {said} [{node.kind}]", node.value, lambda v: show(node.name, v))
        for wrt, g in node.local.items():
            lines += _per_example(f"      local ∂{said}/∂{wrt}", g, lambda v: show(keys.grad(node.name), v), full)
        for name, g in node.parts.items():
            lines.append(f"      receives {name} = {show(name, g)}")
        if node.upstream is not None and node.kind != "cost":
            total = "receives ∂Cost/∂" if not node.parts else "their sum ∂Cost/∂"
            lines += _per_map(f"      {total}{node.name}", node.upstream, lambda v: show(keys.grad(node.name), v))
        for name, g in node.passes.items():
            if trace.names.node_of(name) in trace.parameter_names:
                lines.append(f"      passes on {name} = {show(name, g)}")
            else:
                lines += _per_map(f"      passes on {name}", g, lambda v, name=name: show(name, v))
    v = trace.at(step)
    lines += [f"  {name} = {show(name, v[name])}" for name in (keys.DATA_COST, keys.PENALTY) if name in v]  # L2's parts
    lines += ["", "parameters:"]
    for p in trace.parameters(step):
        frozen = "  (frozen)" if p.frozen else ""
        lines.append(f"  {p.name}: before {show(p.name, p.before)}   gradient {show(keys.grad(p.name), p.gradient)}"
                     f"   after {show(p.name, p.after)}{frozen}")
        for name, value in p.state.items():
            lines.append(f"      {keys.state(name, p.name)} = {show(p.name, value)}")
    return "\n".join(lines)


def _per_example(label: str, value: Any, show: Callable[[Any], str], full: bool) -> list[str]:
    """`label = value`; a stack of matrices, one per example on the last axis (a softmax's Jacobian,
    classes × classes × examples), as one line per example, as the documents work them."""
    array = np.asarray(value)
    if array.ndim < 3:
        return [f"{label} = {show(value)}"]
    if array.ndim == 4:
        return _per_map(label, value, show)
    m = array.shape[-1]
    shown = range(m) if full or m <= LIMIT else [*range(CORNER), m - 1]
    lines = [f"{label}, example {j + 1} = {show(array[..., j])}" for j in shown]
    if len(shown) < m:
        lines.insert(CORNER, f"{label}, examples {CORNER + 1}–{m - 1}: {MORE}")
    return lines


def _per_map(label: str, value: Any, show: Callable[[Any], str]) -> list[str]:
    """`label = value`; an image quantity (channels × height × width × examples) as one line per map, as the
    documents work them: example by example, channel by channel."""
    array = np.asarray(value)
    if array.ndim != 4:
        return [f"{label} = {show(value)}"]
    c = array.shape[0]
    return [f"{label}, example {n + 1}" + (f", channel {k + 1}" if c > 1 else "") + f" = {show(array[k, :, :, n])}"
            for n in range(array.shape[3]) for k in range(c)]


def _matrix(value: Any, decimals: int, full: bool = False) -> str:
    """A value for the terminal, each figure by the documents' rule (`rounding.shown`: 0.00051, not 0.001);
    past abbreviation.LIMIT rows or columns, a corner and the shape."""
    return bracketed(value, lambda rows: shown_array(rows, decimals), full=full)


# --------------------------------------------------------------------------- verify (issue 3)


@command("verify")
def _verify(args: argparse.Namespace) -> int:
    from tracer.checks.verify import verify

    chapters = _chapters(args.chapters)
    tty = sys.stderr.isatty() and len(chapters) > 1
    reports = []
    for i, chapter in enumerate(chapters, start=1):
        if tty:  # a whole verify takes seconds per chapter: say where it is
            print(f"tracer verify [{i}/{len(chapters)}] {chapter.name}", file=sys.stderr, flush=True)
        reports.append(verify(chapter))
    for i, report in enumerate(reports):
        print(report.to_json() if args.json else ("\n" if i else "") + report.table())
    return max(r.exit_status for r in reports)

# --------------------------------------------------------------------------- build (issue 4)


@command("build")
def _build(args: argparse.Namespace) -> int:
    from tracer.documents.build import build

    formats = _formats(args.format or "md,tex,pdf")
    chapters = _chapters(args.chapters)
    tty = sys.stderr.isatty()
    progress = (lambda message: print(f"tracer build {message}", file=sys.stderr)) if tty else None
    for path in build(chapters, args.output, formats, user_templates=args.templates, progress=progress,
                      pdf_optional=args.format is None):
        announce(str(path))  # once every file is in place
    return 0

# --------------------------------------------------------------------------- check, exercises (issue 5)


class _IntermixedParser(_Parser):
    """`tracer check CHAPTER --step 1 "dW1 = …"`: positionals after options (argparse reads them in one run)."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


@command("check")
def _check(args: argparse.Namespace) -> int:
    from tracer.exercises.answers import Mode
    from tracer.exercises.keys import read_key
    from tracer.exercises.sheets import check_answers

    answers = list(args.answers)
    if args.answers_file:
        answers += _answer_lines(args.answers_file)
    if not answers and not args.reveal:
        raise TracerError('no answers: give them as arguments, e.g. "dW1 = [-0.044, -0.035]", or with --answers FILE '
                          "(--reveal alone shows the exercise's expected values)")
    mode = Mode(args.mode, args.digits, args.rtol, args.atol)
    key = read_key(args.key) if args.key else None
    report = check_answers(args.chapter, answers, step=args.step, variant=args.variant, seed=args.seed, key=key,
                           mode=mode)
    if not answers and not report.judgements:
        raise TracerError(f"--reveal: nothing is asked at step {report.step} (no [exercise] at that step): "
                          "give the answers to check")
    if not answers:  # --reveal alone shows the key; it judges nothing
        print(json.dumps(report.to_dict(True)) if args.json else report.key_text(full=args.full))
        return 0
    print(json.dumps(report.to_dict(args.reveal)) if args.json else report.text(args.reveal, full=args.full))
    return report.exit_status


def _answer_lines(name: str) -> list[str]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TracerError(f"--answers {name}: cannot be read ({exc})") from None
    return text.splitlines()


@command("exercises")
def _exercises(args: argparse.Namespace) -> int:
    from tracer.exercises.keys import new_key, read_key
    from tracer.exercises.sheets import check_formats, write_exercises

    formats = check_formats(_formats(args.format), public=args.seed is not None)  # before a new key is written
    chapter = load_chapter(args.chapter)
    key = None
    if args.new_key:
        # Staged with the sheets: the key file appears only if the whole set is written.
        key = new_key(args.new_key)
        announce(f"wrote a new instructor key to {args.new_key} (mode 600): keep it, and keep it from students")
    elif args.key:
        key = read_key(args.key)
    paths = write_exercises(chapter, args.output, args.variants, args.seed, formats, args.templates, key=key)
    kind = f"public practice set, seed {args.seed}" if key is None else "secret set: each sheet shows only its code"
    announce(f"wrote {args.variants} variants ({kind}) to {args.output}: {len(paths)} files")
    return 0


@command("grade")
def _grade(args: argparse.Namespace) -> int:
    from tracer.exercises.grade import grade_class
    from tracer.exercises.keys import read_key

    result = grade_class(args.sheets, args.answers, args.output, key=read_key(args.key) if args.key else None)
    announce(result.source)  # how the file was read: its encoding, delimiter and shape
    for problem in result.problems:
        announce(f"tracer grade: {problem}", error=True)
    for path in result.written:
        announce(str(path))
    announce(f"graded {result.graded} of {result.rows} rows; mean score {result.mean:.1%}")
    return 3 if result.problems else 0

# --------------------------------------------------------------------------- figure (issue 6)


@command("figure")
def _figure(args: argparse.Namespace) -> int:
    from tracer.documents.figures import write_figure

    chapter = load_chapter(args.chapter)
    path = write_figure(chapter, Traces(chapter, carry=args.carry).main, args.kind, args.output, step=args.step,
                        view=args.view, shaded=args.shaded, local=args.local, scale=args.scale)
    announce(str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `tracer` command: a thin shell over the Python API.

Exit status: 0 success, 1 a numerical failure (NaN or overflow), 2 bad input; a sub-command may
add its own (verify: 3 when the project's own numbers disagree).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .chapter import Chapter, bundled_chapters, load_chapter
from .errors import TracerError
from .rounding import format_number
from .trace import Trace
from .train import run

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn
    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracer",
        description="Step-by-step hand-calculation tracer for neural networks: every node's value and "
                    "gradient at every training step, from a chapter file (TOML).",
        epilog="A CHAPTER is a path to a .toml file or the name of a bundled chapter "
               f"({', '.join(p.stem for p in bundled_chapters())}). "
               "Exit status: 0 success, 1 numerical failure, 2 bad input.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="train a chapter and print its cost table",
                       description="Train each chapter and print the cost at its recorded steps and the final "
                                   "parameters. With no CHAPTER, every bundled chapter.")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter file or bundled chapter name")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object per chapter: steps, cost (one per recorded step), params (final)")
    p.add_argument("--all", action="store_true", help="print every recorded step, not a sample of about 20")
    p.add_argument("--carry", choices=("full", "rounded"),
                   help="full precision (default) or hand mode: round every value as it is computed")
    p.add_argument("--save", metavar="FILE", type=Path,
                   help="also save the trace to FILE (.npz) for `tracer trace FILE --step N`")

    p = sub.add_parser("trace", help="show every node of the graph at one step",
                       description="Every node at step N: value, local gradients, the gradient of the cost "
                                   "reaching it and what it passes on; every parameter before, its gradient "
                                   "and after the update. Steps are counted from 0.")
    p.add_argument("chapter", metavar="CHAPTER", help="chapter file, bundled chapter name, or a saved trace (.npz)")
    p.add_argument("--step", type=int, required=True, metavar="N", help="the step to show (0 is the first)")
    p.add_argument("--json", action="store_true", help="nested lists, full double precision")
    p.add_argument("--carry", choices=("full", "rounded"), help="as for `tracer run`")

    # Each later sub-command adds its parser here, in its own block.
    # --- verify parser (issue 3)
    # --- build parser (issue 4)
    # --- check / exercises parsers (issue 5)
    # --- figure parser (issue 6)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TracerError as exc:
        print(f"tracer: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tracer run | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")
        return 0


# --------------------------------------------------------------------------- run


@command("run")
def _run(args: argparse.Namespace) -> int:
    chapters = [load_chapter(c) for c in args.chapters] if args.chapters else \
        [load_chapter(p) for p in bundled_chapters()]
    results = []
    for chapter in chapters:
        trace = run(chapter, carry=args.carry)
        if args.save:
            trace.save(args.save if len(chapters) == 1 else args.save.with_name(f"{chapter.name}.npz"))
        results.append((chapter, trace))
    for i, (chapter, trace) in enumerate(results):
        if args.json:
            print(json.dumps(run_summary(trace)))
        else:
            print(("\n" if i else "") + cost_table(chapter, trace, everything=args.all))
    return 0


def run_summary(trace: Trace) -> dict[str, Any]:
    """The `tracer run --json` object: recorded steps, their costs, and the final parameters."""
    return {"chapter": trace.meta["chapter"], "steps": trace.steps.tolist(),
            "cost": trace.arrays["cost"].tolist(),
            "params": {k: np.asarray(v).tolist() for k, v in trace.final.items()}}


def cost_table(chapter: Chapter, trace: Trace, everything: bool = False, rows: int = 20) -> str:
    steps = trace.steps.tolist()
    if not everything and len(steps) > rows + 1:
        stride = -(-len(steps) // rows)
        steps = steps[::stride] + ([steps[-1]] if (len(steps) - 1) % stride else [])
    layers = " → ".join([str(chapter.n_inputs)] + [f"{l.units} {l.activation}" for l in chapter.layers])
    lines = [f"{chapter.title}  ({chapter.name})",
             f"{layers}; {chapter.cost}{' (from logits)' if chapter.from_logits else ''}; {chapter.optimizer}, "
             f"learning rate {chapter.learning_rate:g}; {chapter.steps} steps; carry {trace.meta['carry']}",
             f"{'step':>8}  cost"]
    lines += [f"{s:>8}  {trace.at(s)['cost']:.10g}" for s in steps]
    lines.append("final parameters:")
    lines += [f"  {k} = {_matrix(v, chapter.display.decimals)}" for k, v in trace.final.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- trace


@command("trace")
def _trace(args: argparse.Namespace) -> int:
    if args.chapter.endswith(".npz"):
        trace, decimals = Trace.load(args.chapter), 6
    else:
        chapter = load_chapter(args.chapter)
        trace, decimals = run(chapter, carry=args.carry), chapter.display.decimals_of
    if args.json:
        print(json.dumps(trace.step_dict(args.step)))
        return 0
    print(step_report(trace, args.step, decimals))
    return 0


def step_report(trace: Trace, step: int, decimals: int | Callable[[str], int]) -> str:
    """Every node and parameter at `step`, rounded for reading (`--json` has full precision)."""
    places = decimals if callable(decimals) else (lambda _name: decimals)
    show = lambda name, value: _matrix(value, places(name))  # noqa: E731
    lines = [f"{trace.meta['title']}: step {step} (carry {trace.meta['carry']})", "", "nodes (forward order):"]
    for node in trace.nodes(step):
        lines.append(f"  {node.name} [{node.kind}] = {show(node.name, node.value)}")
        for wrt, g in node.local.items():
            lines.append(f"      local ∂{node.name}/∂{wrt} = {show('d' + node.name, g)}")
        if node.upstream is not None and node.kind != "cost":
            lines.append(f"      receives ∂cost/∂{node.name} = {show('d' + node.name, node.upstream)}")
        for name, g in node.passes.items():
            lines.append(f"      passes on {name} = {show(name, g)}")
    lines += ["", "parameters:"]
    for p in trace.parameters(step):
        frozen = "  (frozen)" if p.frozen else ""
        lines.append(f"  {p.name}: before {show(p.name, p.before)}   gradient {show('d' + p.name, p.gradient)}"
                     f"   after {show(p.name, p.after)}{frozen}")
        for name, value in p.state.items():
            lines.append(f"      {name}{p.name} = {show(p.name, value)}")
    return "\n".join(lines)


def _matrix(value: Any, decimals: int) -> str:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return format_number(float(array), decimals)
    rows = array if array.ndim == 2 else array.reshape(1, -1)
    return "[" + ", ".join("[" + ", ".join(format_number(x, decimals) for x in row) + "]" for row in rows) + "]"


# --------------------------------------------------------------------------- verify (issue 3)

# --------------------------------------------------------------------------- build (issue 4)

# --------------------------------------------------------------------------- check, exercises (issue 5)

# --------------------------------------------------------------------------- figure (issue 6)


if __name__ == "__main__":
    sys.exit(main())

"""The `tracer` command line: outputs, exit statuses and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tracer
from conftest import bundled_lecture, worked_results
from tracer.cli import main


def test_run_json_has_steps_cost_and_final_params(capsys, trace_of):
    assert main(["run", "02-or-batch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    trace = trace_of("02-or-batch")
    assert data["steps"] == list(range(5000))
    assert data["cost"][1] == trace.costs[1]
    assert data["params"]["W1"] == trace.final["W1"].tolist()


def test_run_prints_the_cost_table(capsys):
    assert main(["run", "01-or-one-example"]) == 0
    out = capsys.readouterr().out
    assert "       0  0.125\n" in out and "       1  0.1098823258\n" in out and "b1 = [[-0.242]]" in out


def test_trace_shows_every_node_and_parameter(capsys):
    assert main(["trace", "02-or-batch", "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "passes on dW1 = [[-0.044, -0.035]]" in out and "passes on db1 = [[-0.031]]" in out
    assert "Cost [cost] = 0.084" in out


def test_trace_json_and_a_saved_trace_agree(capsys, tmp_path):
    saved = tmp_path / "t.npz"
    assert main(["run", "04-xor-hidden-layer", "--save", str(saved)]) == 0
    capsys.readouterr()
    assert main(["trace", "04-xor-hidden-layer", "--step", "4600", "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert main(["trace", str(saved), "--step", "4600", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == fresh
    assert fresh["cost"] == pytest.approx(0.001018305488651183, rel=1e-9)


def test_run_with_no_chapter_runs_every_bundled_chapter(capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "(01-or-one-example)" in out and "(06-xor-relu-adam)" in out


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracer.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_a_bad_chapter_exits_2_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\n[data]\nX = [[0, 0]]\nY = [[0]]\n[network]\nlayers = [{units = 1}]\n'
                   "[train]\nlearning_rate = -1\nsteps = 2\n[init]\nseed = 1\n")
    result = run_cli("run", str(bad), "--save", str(tmp_path / "out.npz"))
    assert result.returncode == 2
    assert result.stderr == f"tracer: {bad}: [train] learning_rate: expected a number above 0, got -1\n"
    assert "Traceback" not in result.stderr and not (tmp_path / "out.npz").exists()


def test_a_numerical_failure_exits_1_and_names_the_step(tmp_path):
    bad = tmp_path / "diverge.toml"
    bad.write_text('title = "x"\n[data]\nX = [[0, 1], [1, 1]]\nY = [[1], [0]]\n'
                   '[network]\nlayers = [{units = 1, activation = "identity"}]\n'
                   "[init]\nseed = 1\n[train]\nlearning_rate = 1000\nsteps = 500\n")
    result = run_cli("run", str(bad))
    assert result.returncode == 1 and result.stderr.startswith("tracer: step ") and "Traceback" not in result.stderr


def test_an_unrecorded_step_exits_2():
    result = run_cli("trace", "01-or-one-example", "--step", "7")
    assert result.returncode == 2 and "steps 0 to 1" in result.stderr


def test_help_explains_every_option():
    result = run_cli("trace", "--help")
    assert result.returncode == 0 and "--step N" in result.stdout and "--json" in result.stdout


def test_tracer_alone_lists_the_commands_and_suggests_a_first_one(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("run", "trace", "verify", "build", "check", "exercises", "figure"):
        assert f"\n    {name} " in out or f"\n    {name}\n" in out
    assert "Start with:  tracer build 01-or-one-example" in out


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"tracer {version('tracer')}"


@pytest.mark.parametrize("columns", ["50", "63", "80"])
def test_help_never_breaks_a_chapter_name_at_its_hyphens(columns, monkeypatch, capsys):
    from tracer.engine.chapter import bundled_chapters

    monkeypatch.setenv("COLUMNS", columns)
    with pytest.raises(SystemExit):
        main(["--help"])
    words = capsys.readouterr().out.split()
    for path in bundled_chapters():
        assert any(path.stem in word for word in words), path.stem


class _Terminal:
    """stderr as a terminal (isatty) or a pipe, keeping what is written."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_verify_shows_progress_per_chapter_on_a_terminal_only(tty, monkeypatch, capsys):
    from tracer.checks import verify

    monkeypatch.setattr(verify, "verify", lambda chapter: verify.Report(chapter.name, chapter.title, [], [], []))
    stderr = _Terminal(tty)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["verify", "01-or-one-example", "02-or-batch"]) == 0
    progress = ["tracer verify [1/2] 01-or-one-example", "tracer verify [2/2] 02-or-batch"]
    assert stderr.text.splitlines() == (progress if tty else [])


def test_trace_trains_up_to_the_asked_step_and_records_only_it(capsys, monkeypatch, trace_of):
    from tracer.cli import step_report
    from tracer.engine import train

    calls = []
    real = train.run
    monkeypatch.setattr(train, "run", lambda chapter, **kw: calls.append(kw) or real(chapter, **kw))
    assert main(["trace", "04-xor-hidden-layer", "--step", "30"]) == 0
    assert calls[0]["steps"] == 31 and calls[0]["record"] == [30]
    # The same numbers, printed the same, as from the chapter's own full run.
    full = step_report(trace_of("04-xor-hidden-layer"), 30, tracer.load_chapter("04-xor-hidden-layer").display.decimals_of)
    assert capsys.readouterr().out.strip() == full.strip()


def test_a_saved_trace_prints_exactly_as_a_live_one(capsys, tmp_path):
    saved = tmp_path / "t.npz"
    assert main(["run", "02-or-batch", "--save", str(saved)]) == 0
    capsys.readouterr()
    assert main(["trace", "02-or-batch", "--step", "1"]) == 0
    live = capsys.readouterr().out
    assert main(["trace", str(saved), "--step", "1"]) == 0
    assert capsys.readouterr().out == live and "passes on db1 = [[-0.031]]" in live


def test_documents_go_to_a_folder_nothing_else_writes_to():
    from pathlib import Path

    from tracer.cli import build_parser

    assert build_parser().parse_args(["build"]).output == Path("tracer-build")  # setuptools uses ./build/


def test_the_terminal_speaks_in_the_documents_words(capsys):
    # The readable names the nodes and optimizers own, not the chapter file's keys.
    assert main(["run", "02-or-batch"]) == 0
    head = capsys.readouterr().out.splitlines()[1]
    assert head.startswith("2 → 1 sigmoid; squared error cost; gradient descent, learning rate 1;")
    assert head.endswith("computed in full precision") and "squared_error" not in head and "carry" not in head
    assert main(["trace", "02-or-batch", "--step", "0"]) == 0
    out = capsys.readouterr().out
    assert "receives ∂Cost/∂Z1" in out and "∂cost" not in out
    assert main(["check", "02-or-batch", "db1 = -0.031"]) == 3  # dW1 unanswered
    out = capsys.readouterr().out
    assert "(each number right within half a unit of the last decimal asked)" in out and "((" not in out
    assert main(["check", "02-or-batch", "dW1 = [1]"]) == 2
    assert "got a list of 1 number\n" in capsys.readouterr().err


def test_run_save_with_several_chapters_wants_a_folder_and_names_what_it_wrote(capsys, tmp_path):
    one = tmp_path / "one.npz"
    assert main(["run", "01-or-one-example", "02-or-batch", "--save", str(one)]) == 2
    assert "one file cannot hold them" in capsys.readouterr().err and not one.exists()
    folder = str(tmp_path / "traces") + "/"
    assert main(["run", "01-or-one-example", "02-or-batch", "--save", folder]) == 0
    err = capsys.readouterr().err
    for name in ("01-or-one-example", "02-or-batch"):
        path = tmp_path / "traces" / f"{name}.npz"
        assert path.exists() and f"saved the trace of {name} to {path}" in err
    assert main(["run", "01-or-one-example", "--save", str(one)]) == 0
    assert f"to {one}" in capsys.readouterr().err and one.exists()


def test_trace_prints_each_figure_by_the_documents_rule(capsys, trace_of):
    """Every digit carried, each figure rounded as the documents round it: a small figure keeps two
    significant digits (chapter 4, step 0: dW1[0, 0] is 0.00051, which 3 fixed decimals would print as 0.001)."""
    assert main(["trace", "04-xor-hidden-layer", "--step", "0"]) == 0
    out = capsys.readouterr().out
    assert abs(trace_of("04-xor-hidden-layer").at(0)["dW1"][0, 0] - 0.00051) < 5e-6
    assert "passes on dW1 = [[0.00051, -0.0013], " in out
    assert "receives ∂Cost/∂Z1 = [[-0.0097, 0.0055, " in out  # the documents print dZ1[0, 1] as 0.0055 too


def _bracketed(result, decimals: int | None = None) -> str:
    """A line's printed result as the terminal brackets it; with `decimals`, a whole figure (ReLU's slope,
    written 0 or 1 in the documents) at that many places."""
    if isinstance(result, str):
        return f"{int(result):.{decimals}f}" if decimals is not None and result.lstrip("-").isdigit() else result
    return "[" + ", ".join(_bracketed(r, decimals) for r in result) + "]"


@pytest.mark.parametrize("name", [p.stem for p in tracer.bundled_chapters()])
def test_trace_carry_rounded_prints_the_worked_steps_figures(capsys, name):
    """Hand mode at a worked step prints every result of the document's worked lines, digit for digit."""
    lec = bundled_lecture(name)
    step = lec.worked_steps[0]
    assert main(["trace", name, "--step", str(step), "--carry", "rounded"]) == 0
    out = capsys.readouterr().out
    said = lambda text: f"= {text}\n" in out or f"= {text}   " in out or f"after {text}" in out  # noqa: E731
    missing = [(quantity, _bracketed(result)) for quantity, result in worked_results(lec.at(step)).items()
               if not said(_bracketed(result)) and not said(_bracketed(result, 3))]
    # one example's Jacobian (a softmax's), which the terminal prints example by example
    missing += [(ln.quantity, ln.part) for ln in lec.at(step) if ln.part and len(ln.part) == 3
                and f", example {ln.part[2] + 1} = {_bracketed(ln.result)}\n" not in out]
    assert not missing, missing

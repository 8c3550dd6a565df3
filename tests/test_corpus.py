"""Every command under bad input, extreme numbers, crafted files and failing disks (issue 10).

Each case runs `tracer` in-process from a scratch folder holding an `out/` folder with a file in
it, and asserts: the documented exit status, no traceback and no Python warning, a message
naming the file and the key (or the path, the template and its line), and every folder exactly
as it was (a listing with sizes and SHA-256) unless the command succeeded. Chapter files are in
tests/corpus/, each with its command and expectations in its opening comments; cases that must be
generated (nesting 100,000 deep, crafted traces, template folders, unwritable outputs) are below.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import tracer.output
from conftest import bundled_trace, needs
from tracer.cli import main

CORPUS = Path(__file__).parent / "corpus"
GOOD = (CORPUS / "learning-rate-1e300.toml").read_text(encoding="utf-8").replace("learning_rate = 1e300",
                                                                                  "learning_rate = 0.5")


@dataclass
class Case:
    id: str
    argv: str  # {chapter} is the case's file
    exit: tuple[int, ...]
    says: list[str] = field(default_factory=list)  # on stderr
    says_out: list[str] = field(default_factory=list)  # on stdout
    files: dict[str, str | bytes] = field(default_factory=dict)  # written into the scratch folder first
    chapter: str = "case.toml"


def corpus_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        head = dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("# ") and ": " in line)
        cases.append(Case(path.stem, head["command"], tuple(int(x) for x in head["exit"].split()),
                          [s.strip() for s in head.get("says", "").split(" | ") if s.strip()],
                          [s.strip() for s in head.get("says-out", "").split(" | ") if s.strip()],
                          {path.name: text}, path.name))
    return cases


def generated_cases() -> list[Case]:
    deep = 'title = "x"\nX = ' + "[" * 100_000 + "]" * 100_000 + "\n"
    return [
        Case("toml-nested-100000-deep", "run {chapter}", (2,), ["case.toml: line 2, key X:", "nested too deeply"],
             files={"case.toml": deep}),
        Case("toml-integer-of-5000-digits", "run {chapter}", (2,), ["case.toml", "4300 digits"],
             files={"case.toml": GOOD.replace("steps = 3", "steps = " + "9" * 5000)}),
        Case("chapter-not-utf8", "run {chapter}", (2,), ["case.toml", "cannot be read"],
             files={"case.toml": GOOD.encode() + b"# \xff\xfe\n"}),
        Case("chapter-missing", "run nowhere.toml", (2,), ["nowhere.toml", "no such file"]),
        Case("chapter-is-a-folder", "run out", (2,), ["out", "cannot be read"]),
        # outputs that cannot be written
        Case("build-o-onto-a-file", "build {chapter} -o out/keep.md --format md", (2,), ["out/keep.md", "is a file"],
             files={"case.toml": GOOD}),
        Case("run-save-under-a-file", "run {chapter} --save out/keep.md/t.npz", (2,), ["out/keep.md/t.npz", "is a file"],
             files={"case.toml": GOOD}),
        Case("figure-o-under-a-file", "figure {chapter} --kind curve -o out/keep.md/c.svg", (2,),
             ["out/keep.md/c.svg", "is a file"], files={"case.toml": GOOD}),
        Case("exercises-o-onto-a-file", "exercises {chapter} --seed 1 --variants 2 -o out/keep.md", (2,),
             ["out/keep.md"], files={"case.toml": GOOD + '[exercise]\nask = ["dW1"]\n'}),
        Case("build-pdf-without-pdflatex", "build {chapter} -o out --format md,pdf", (2,),
             ["pdflatex is not on the PATH", "texlive-latex-base", "texlive-latex-recommended", "texlive-pictures",
              "nothing was written"], files={"case.toml": GOOD, "bin/.keep": ""}),
    ] + template_cases() + trace_cases() + long_value_cases()


#: A value of a megabyte where a name or a short value belongs: a message echoes about 80 characters of it.
MEGA = "k" * 2**20


def long_value_cases() -> list[Case]:
    def chapter(extra: str, replace: tuple[str, str] = ("", "")) -> dict[str, str]:
        return {"case.toml": GOOD.replace(*replace) + extra}

    ex = '[exercise]\nask = ["dW1"]\n'
    return [
        Case("key-of-a-megabyte", "run {chapter}", (2,), ["case.toml", "unknown key 'kkkk", "(1,048,576 characters)"],
             files=chapter(f"{MEGA} = 1\n")),
        Case("train-key-of-a-megabyte", "run {chapter}", (2,), ["case.toml: [train] kkkk", "1,048,576 characters"],
             files=chapter("", ("steps = 3", f"steps = 3\n{MEGA} = 1"))),
        Case("cost-of-a-megabyte", "run {chapter}", (2,), ["case.toml: [train] cost", "(1,048,576 characters)"],
             files=chapter("", ("steps = 3", f'steps = 3\ncost = "{MEGA}"'))),
        Case("answer-name-of-a-megabyte", f"check {{chapter}} --step 0 {MEGA}=1", (2,), ["longer than 10000 characters"],
             files=chapter(ex)),
        Case("answer-value-of-a-megabyte", f"check {{chapter}} --step 0 dW1={MEGA}", (2,), ["answer 'dW1="],
             files=chapter(ex)),
        Case("variant-of-a-megabyte", f"check {{chapter}} --seed 1 --variant {MEGA} dW1=0", (2,),
             ["variant code 'kkk", "(1,048,576 characters)"],
             files=chapter(ex)),
        Case("format-of-a-megabyte", f"build {{chapter}} -o out --format {MEGA}", (2,), ["--format", "characters)"],
             files=chapter("")),
        Case("exercise-ask-unknown", "check {chapter} dW1=[0,0]", (2,), ["case.toml: [exercise] ask", "'dW9'"],
             files=chapter('[exercise]\nask = ["dW9"]\nstep = 1\n')),
    ]


def template_cases() -> list[Case]:
    raising = {"division": "{{ 1/0 }}", "pop": "{{ [].pop() }}", "self-include": '{% include "chapter.md.j2" %}',
               "sandbox": "{{ cycler.__init__.__globals__.os.system('touch pwned') }}",
               "undefined": "{{ no_such_name }}"}
    says = {"division": ["ZeroDivisionError"], "pop": ["IndexError"], "self-include": ["itself"],
            "sandbox": ["unsafe"], "undefined": ["no_such_name"]}
    cases = [Case(f"template-{name}", "build {chapter} -o out --format md --templates tpl", (2,),
                  ["template", "chapter.md.j2", "line 2"] + says[name],
                  files={"case.toml": GOOD, "tpl/chapter.md.j2": f"# A document\n{body}\n"})
             for name, body in raising.items()]
    cases.append(Case("template-not-utf8", "build {chapter} -o out --format md --templates tpl", (2,),
                      ["tpl/chapter.md.j2", "not UTF-8"], files={"case.toml": GOOD, "tpl/chapter.md.j2": b"\xff\xfe{{ x }}"}))
    return cases


def _trace_file(index: object = None, members: dict[str, object] | None = None, drop: tuple[str, ...] = (),
                raw_index: bytes | None = None) -> bytes:
    """A saved trace of the corpus chapter, then tampered with."""
    saved = io.BytesIO(_saved_trace())
    out = io.BytesIO()
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            if name in drop:
                continue
            data = src.read(name)
            if name == "index.json" and (index is not None or raw_index is not None):
                data = raw_index if raw_index is not None else json.dumps(index(json.loads(data))).encode()
            if members and name in members:
                data = members[name]  # type: ignore[assignment]
            dst.writestr(name, data)
    return out.getvalue()


def _saved_trace() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return Path(bundled_trace("01-or-one-example").save(Path(tmp) / "t.npz")).read_bytes()


def _npy(array: np.ndarray, claim: tuple[int, ...] | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=True)
    data = out.getvalue()
    if claim is not None:
        data = data.replace(repr(array.shape).encode(), repr(claim).encode().ljust(len(repr(array.shape))), 1)
    return data


def trace_cases() -> list[Case]:
    def case(name: str, data_factory, says: list[str]) -> Case:
        return Case(f"trace-{name}", "trace t.npz --step 0", (2,), ["t.npz"] + says, files={"t.npz": data_factory},
                    chapter="t.npz")

    return [
        case("not-a-zip", lambda: b"PK\x03\x04 not really", ["cannot be read"]),
        case("index-a-list", lambda: _trace_file(index=lambda ix: [ix]), ["not an object"]),
        case("no-meta", lambda: _trace_file(index=lambda ix: {k: v for k, v in ix.items() if k != "meta"}), ["meta"]),
        case("no-graph", lambda: _trace_file(index=lambda ix: {**ix, "meta": {k: v for k, v in ix["meta"].items()
                                                                              if k != "graph"}}), ["graph"]),
        case("graph-of-unknown-nodes", lambda: _trace_file(index=lambda ix: {**ix, "meta": {
            **ix["meta"], "graph": [{"op": "os.system", "name": "Z1", "inputs": ["A0"]}]}}), ["graph", "known nodes"]),
        case("steps-a-string", lambda: _trace_file(members={"steps.npy": _npy(np.array(["0", "1"]))}), ["steps.npy"]),
        case("cost-empty", lambda: _trace_file(members={"costs.npy": _npy(np.array([]))}), ["costs"]),
        case("header-claims-1e12-floats", lambda: _trace_file(members={"X.npy": _npy(np.zeros((2, 1)),
                                                                                      claim=(10**6, 10**6))}),
             ["X.npy", "claims"]),
        case("index-17-MB", lambda: _trace_file(raw_index=b" " * (17 * 2**20) + b"{}"), ["index.json", "bytes"]),
        case("pickled-member", lambda: _trace_file(members={"X.npy": _npy(np.array([object()], dtype=object))}),
             ["X.npy"]),
        case("member-missing", lambda: _trace_file(drop=("arrays/Z1.npy",)), ["arrays/Z1.npy"]),
        case("batch-out-of-range", lambda: _trace_file(members={"arrays/batch.npy": _npy(np.array([[7], [7]]))}),
             ["arrays/batch"]),
        case("wrong-format", lambda: _trace_file(index=lambda ix: {**ix, "format": "other/9"}), ["format"]),
    ]


CASES = corpus_cases() + generated_cases()


def listing(root: Path) -> dict[str, object]:
    """Every file and folder under `root` with its size and SHA-256: 'exactly as it was'."""
    return {str(p.relative_to(root)): ("folder" if p.is_dir() else (p.stat().st_size,
                                                                      hashlib.sha256(p.read_bytes()).hexdigest()))
            for p in sorted(root.rglob("*"))}


def run_in(folder: Path, argv: list[str], monkeypatch, capsys) -> tuple[int, str, str, list]:
    monkeypatch.chdir(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err, list(caught)


def scratch(tmp_path: Path, files: dict[str, object]) -> Path:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.md").write_text("written before the command\n")
    for name, data in files.items():
        data = data() if callable(data) else data
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_exits_as_documented_with_one_clear_line(case, tmp_path, monkeypatch, capsys):
    folder = scratch(tmp_path, case.files)
    if case.id == "build-pdf-without-pdflatex":
        monkeypatch.setenv("PATH", str(folder / "bin"))
    before = listing(folder)
    status, out, err, caught = run_in(folder, case.argv.format(chapter=case.chapter).split(), monkeypatch, capsys)
    assert status in case.exit, err
    assert "Traceback" not in err and "Warning" not in err and not caught, err + str([str(w.message) for w in caught])
    assert "\x1b" not in err and "\x07" not in err
    assert max(map(len, err.splitlines() or [""])) < 1000, f"a line of {max(map(len, err.splitlines()))} characters"
    for fragment in case.says:
        assert fragment in err, err
    for fragment in case.says_out:
        assert fragment in out, out
    if status in (1, 2):  # failed: one line says why (3 is a verdict, reported on stdout)
        assert err.startswith("tracer: ") and err.count("\n") == 1, err
    if status:
        assert listing(folder) == before
    assert not (folder / "pwned").exists()
    assert not list(folder.rglob(tracer.output.STAGING_PREFIX + "*")), "a staging folder was left behind"


# --------------------------------------------------------------------------- failing disks


READ_ONLY_COMMANDS = {
    "build": "build case.toml -o out/docs --format md",
    "figure": "figure case.toml --kind curve -o out/c.svg",
    "exercises": "exercises case.toml --seed 1 --variants 2 -o out/sheets",
    "run --save": "run case.toml --save out/t.npz",
}


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_read_only_file_system_exits_2_naming_the_path(command, tmp_path, monkeypatch, capsys):
    folder = scratch(tmp_path, {"case.toml": GOOD + '[exercise]\nask = ["dW1"]\n'})
    before = listing(folder)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tracer.output.tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(tracer.output.tempfile, "mkstemp", read_only)
    status, out, err, caught = run_in(folder, READ_ONLY_COMMANDS[command].split(), monkeypatch, capsys)
    assert status == 2 and err.startswith("tracer: out/") and "read-only file system" in err, err
    assert "Traceback" not in err and err.count("\n") == 1 and not caught
    assert listing(folder) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_exits_2_naming_the_path(tmp_path, monkeypatch, capsys):
    folder = scratch(tmp_path, {"case.toml": GOOD})
    (folder / "out").chmod(0o555)
    try:
        status, _, err, _ = run_in(folder, "build case.toml -o out --format md".split(), monkeypatch, capsys)
    finally:
        (folder / "out").chmod(0o755)
    assert status == 2 and "out/" in err and "permission denied" in err


@needs("pdflatex")
def test_a_failing_pdflatex_leaves_the_output_folder_as_it_was(tmp_path, monkeypatch, capsys):
    broken = "\\documentclass{article}\n\\begin{document}\n\\undefinedcommand\n\\end{document}\n"
    folder = scratch(tmp_path, {"case.toml": GOOD, "tpl/chapter.tex.j2": broken})
    before = listing(folder)
    status, _, err, _ = run_in(folder, "build case.toml -o out --format md,tex,pdf --templates tpl".split(),
                               monkeypatch, capsys)
    assert status == 2 and "pdflatex failed" in err and "Undefined control sequence" in err, err
    # Nothing half-written: the one new file is pdflatex's log, which the message names (issue 13).
    assert "log: out/case.log" in err and "Undefined control sequence" in (folder / "out" / "case.log").read_text()
    after = listing(folder)
    assert {k: v for k, v in after.items() if k != "out/case.log"} == before


def test_a_successful_build_replaces_only_its_own_files(tmp_path, monkeypatch, capsys):
    folder = scratch(tmp_path, {"case.toml": GOOD})
    status, out, err, caught = run_in(folder, "build case.toml -o out --format md".split(), monkeypatch, capsys)
    assert status == 0 and not caught
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["case.md", "figures", "keep.md"]
    assert out.split() == ["out/case.md", "out/figures/case-graph-step-0.svg"]  # every file it wrote


#: Commands run with the size of any file they write limited (RLIMIT_FSIZE: every write past the limit
#: fails, as on a full disk), at limits that stop them at different writes.
FULL_DISK = {
    "exercises --new-key": "exercises case.toml --new-key new.key --variants 3 -o out/sheets --format md,tex",
    "build": "build case.toml -o out/docs --format md,tex,json,html" + (",pdf" if shutil.which("pdflatex") else ""),
    "run --save": "run case.toml --save out/t.npz",
    "grade": "grade out/sheets --answers class.csv -o out/grades.csv",
}


@pytest.mark.skipif(not hasattr(os, "setrlimit") and sys.platform != "linux", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("limit", [0, 300, 5000, 60000])
@pytest.mark.parametrize("command", FULL_DISK)
def test_a_full_disk_at_any_write_exits_2_in_one_line_and_changes_nothing(command, limit, tmp_path):
    import resource

    folder = scratch(tmp_path, {"case.toml": GOOD + '[exercise]\nask = ["dW1"]\n'})
    if command == "grade":
        subprocess.run([sys.executable, "-m", "tracer.cli", "exercises", "case.toml", "--seed", "1", "--variants", "2",
                        "-o", "out/sheets"], cwd=folder, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                       check=True, capture_output=True)
        (folder / "class.csv").write_text("student,variant,dW1\namy,1,\"[0.1, 0.2]\"\n")
    before = listing(folder)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", "tracer.cli", *FULL_DISK[command].split()], cwd=folder, env=env,
                          capture_output=True, text=True, preexec_fn=limited, timeout=300)
    if done.returncode == 0:  # everything it writes fits under the limit (never under a limit of 0)
        assert limit > 0, done.stderr
        return
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("tracer: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and ("file too large" in done.stderr.lower()), done.stderr
    # Nothing half-written; a failed compile's log, which the message names, may be kept (as far as it fits).
    kept = ("out/docs", "out/docs/case.log") if "log: out/docs/case.log" in done.stderr else ()
    after = {k: v for k, v in listing(folder).items() if k not in kept}
    assert after == before
    assert not (folder / "new.key").exists()


# --------------------------------------------------------------------------- a sheets folder's files, read back


@pytest.fixture(scope="module")
def sheets_folder(tmp_path_factory) -> Path:
    """A public set of two variants, as `tracer exercises` writes it."""
    folder = tmp_path_factory.mktemp("sheets-corpus")
    (folder / "case.toml").write_text(GOOD + '[exercise]\nask = ["dW1"]\n')
    os.chdir(folder)
    try:
        assert main(["exercises", "case.toml", "--seed", "1", "--variants", "2", "-o", "sheets"]) == 0
    finally:
        os.chdir(Path(__file__).parent)
    return folder / "sheets"


def _edit(key_path: list, value_text: str):
    """A tamper that writes `value_text` (raw JSON) at `key_path` of answers.json's first variant."""
    def tamper(sheets: Path) -> None:
        listing = json.loads((sheets / "secret" / "answers.json").read_text())
        marker = "__TRACER_TAMPER__"
        target = listing["variants"][0]
        for key in key_path[:-1]:
            target = target[key]
        target[key_path[-1]] = marker
        (sheets / "secret" / "answers.json").write_text(json.dumps(listing).replace(f'"{marker}"', value_text))
    return tamper


def _replace(name: str, data: bytes):
    return lambda sheets: (sheets / name).write_bytes(data)


READ_BACK = {
    "answers-W1-of-400-digits": (_edit(["start", "W1"], "[[" + "9" * 400 + ", 1]]"), "secret/answers.json",
                                 "an integer of 400 digits"),
    "answers-learning-rate-of-400-digits": (_edit(["learning_rate"], "-" + "9" * 400), "secret/answers.json", "400 digits"),
    "answers-X-of-400-digits": (_edit(["X"], "[[" + "9" * 400 + "]]"), "secret/answers.json", "400 digits"),
    "answers-nested-100000-deep": (_replace("secret/answers.json", b"[" * 100_000), "secret/answers.json", "nested too deeply"),
    "answers-NaN": (_edit(["learning_rate"], "NaN"), "secret/answers.json", "NaN, which is not a number"),
    "answers-1e999": (_edit(["learning_rate"], "1e999"), "secret/answers.json", "finite numbers"),
    "answers-not-utf8": (_replace("secret/answers.json", b"\xff\xfe{}"), "secret/answers.json", "cannot be read"),
    "answers-300-MB": (lambda sheets: os.truncate(sheets / "secret" / "answers.json", 300 * 2**20), "secret/answers.json", "MiB"),
    "manifest-nested-100000-deep": (_replace("exercises.json", b"[" * 100_000), "exercises.json", "nested too deeply"),
    "manifest-variants-of-400-digits": (lambda sheets: (sheets / "exercises.json").write_text(
        (sheets / "exercises.json").read_text().replace('"variants": 2', '"variants": ' + "9" * 400)),
        "exercises.json", "400 digits"),
}


@pytest.mark.parametrize("command", ["grade", "check --reveal"])
@pytest.mark.parametrize("case", READ_BACK)
def test_a_changed_sheets_file_is_one_line_naming_it(case, command, sheets_folder, tmp_path, monkeypatch, capsys):
    tamper, name, says = READ_BACK[case]
    sheets = tmp_path / "sheets"
    shutil.copytree(sheets_folder, sheets)
    tamper(sheets)
    (tmp_path / "class.csv").write_text('student,variant,dW1\namy,1,"[0.1, 0.2]"\n')
    argv = (["grade", "sheets", "--answers", "class.csv", "-o", "grades.csv"] if command == "grade" else
            ["check", "sheets", "--variant", "1", "--reveal"])
    status, out, err, caught = run_in(tmp_path, argv, monkeypatch, capsys)
    assert status == 2, err + out
    assert err.startswith(f"tracer: sheets/{name}") or err.startswith(f"tracer: {tmp_path / 'sheets' / name}") or \
        f"sheets/{name}" in err, err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err and not caught, err
    assert not (tmp_path / "grades.csv").exists()


@pytest.mark.parametrize("log_line", ["fwrite() failed", "! I can't write on file `document.pdf'."])
def test_a_pdflatex_that_cannot_write_says_so(log_line, tmp_path, monkeypatch, capsys):
    """A full disk while pdflatex writes: its log says fwrite() failed (TeX Live) or I can't write on file."""
    folder = scratch(tmp_path, {"case.toml": GOOD})
    fake = folder / "bin" / "pdflatex"
    fake.parent.mkdir(exist_ok=True)
    (folder / "bin" / "log").write_text(f"This is pdfTeX\n{log_line}\n")
    fake.write_text("#!/bin/sh\nfor a; do case $a in -output-directory=*) out=${a#*=};; esac; name=$a; done\n"
                    f"cp '{folder / 'bin' / 'log'}' \"$out/$(basename \"$name\" .tex).log\"\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    status, _, err, _ = run_in(folder, "build case.toml -o out --format md,tex,pdf".split(), monkeypatch, capsys)
    assert status == 2 and f"pdflatex could not write its output ({log_line.lstrip('! ')}" in err, err
    assert "the disk is full" in err and err.count("\n") == 1

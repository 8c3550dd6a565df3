"""Building and compiling: Latin-script titles, awkward file names, a failed compile's log, clean logs."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import needs
from test_student_text import offences, pdf_text, prose

from tracer.documents import build
from tracer.documents.render import TemplateError
from tracer.engine.chapter import find_chapter

pdflatex = needs("pdflatex")
pdftotext = needs("pdftotext")


def chapter_titled(folder: Path, title: str, name: str = "titled.toml") -> Path:
    """Chapter 1 under another file name with another title (a TOML basic string)."""
    text = find_chapter("01-or-one-example").read_text(encoding="utf-8")
    quoted = '"' + title.replace("\\", "\\\\").replace('"', '\\"') + '"'
    text = re.sub(r'^title = ".*"$', lambda _: f"title = {quoted}", text, count=1, flags=re.M)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pdflatex
@pdftotext
def test_a_latin_script_title_compiles_and_reads_back_from_the_pdf(tmp_path):
    title = "Þór, Łódź « ça » — ∂L/∂w"
    (pdf,) = [p for p in build.build([chapter_titled(tmp_path, title)], tmp_path / "out", ["pdf"], figures=False)
              if p.suffix == ".pdf"]
    text = subprocess.run(["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert title in " ".join(text.split())


@pdflatex
@pytest.mark.parametrize("name", ["-dash.toml", "a%b#c&d~e_f$g h.toml"])
def test_a_file_name_with_a_leading_dash_or_tex_specials_compiles(tmp_path, name):
    written = build.build([chapter_titled(tmp_path, "Awkward names", name)], tmp_path / "out", ["pdf"],
                          figures=False)
    (pdf,) = [p for p in written if p.suffix == ".pdf"]
    assert pdf.name == Path(name).stem + ".pdf" and pdf.read_bytes().startswith(b"%PDF")


@pdflatex
def test_a_failed_compile_keeps_its_log_beside_the_tex_and_names_it(tmp_path):
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\undefinedcommand\\end{document}\n")
    with pytest.raises(TemplateError) as caught:
        build.compile_pdf(tex)
    log = tmp_path / "broken.log"
    assert log.exists() and "Undefined control sequence" in log.read_text()
    assert str(log) in str(caught.value) and "Undefined control sequence" in str(caught.value)
    assert not (tmp_path / "broken.pdf").exists()


@pdflatex
def test_a_script_pdflatex_cannot_set_builds_with_another_engine_or_names_the_characters(tmp_path):
    title = "Hebrew שלום"
    try:
        written = build.build([chapter_titled(tmp_path, title)], tmp_path / "out", ["pdf"], figures=False)
    except TemplateError as exc:
        message = str(exc)
        assert "\n" not in message and "ש (U+05E9)" in message and ("xelatex" in message or "font" in message)
        assert (tmp_path / "out" / "titled.log").exists()
    else:
        assert any(p.suffix == ".pdf" for p in written) and shutil.which("xelatex") or shutil.which("lualatex")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, tuple[Path, Path | None, str]]:
    """Every bundled chapter's LaTeX document with its figures, compiled once: (tex, pdf, pdflatex's log)."""
    from tracer.engine.chapter import bundled_chapters

    folder = tmp_path_factory.mktemp("compiled")
    texs = [p for p in build.build([c.stem for c in bundled_chapters()], folder / "out", ["tex"]) if p.suffix == ".tex"]
    with ThreadPoolExecutor(2) as pool:  # each compile is a pdflatex process
        pdfs = list(pool.map(lambda tex: build.compile_pdf(tex, log=folder / f"{tex.stem}.log"), texs))
    return {tex.stem: (tex, pdf, (folder / f"{tex.stem}.log").read_text(encoding="utf-8")) for tex, pdf in zip(texs, pdfs)}


@pdflatex
def test_every_bundled_chapter_compiles_with_nothing_off_the_page_and_every_reference_resolved(compiled):
    assert len(compiled) >= 6
    assert all(pdf is not None and pdf.read_bytes().startswith(b"%PDF") for _, pdf, _ in compiled.values())
    report = {}
    for name, (tex, _, log) in compiled.items():
        report[name] = (len(re.findall(r"^Overfull \\[hv]box", log, flags=re.M)),
                        len(re.findall(r"undefined", log, flags=re.I)),
                        len(re.findall(r"\\label\{fig:", tex.read_text(encoding="utf-8"))))
    assert {name: counts[:2] for name, counts in report.items()} == {name: (0, 0) for name in report}
    assert sum(figures for *_, figures in report.values()) >= 6  # the figures are there, as numbered figures
    layout = {name: layout_problems(log) for name, (_, _, log) in compiled.items()}
    assert layout == {name: [] for name in layout}


@pdflatex
@pdftotext
def test_the_pdfs_name_no_tool_file_or_configuration(compiled):
    """What a student reads in the PDF (its text as pdftotext reads it): see tests/test_student_text.py."""
    found = {name: offences(prose(pdf_text(pdf))) for name, (_, pdf, _) in compiled.items()}
    assert found == {name: [] for name in compiled}


def positions(log: str) -> list[tuple[str, str, int, int]]:
    """(kind, name, page, height from the page's foot) of every \\tracerpos mark, as the log has them."""
    return [(kind, name, int(page), int(y)) for kind, name, page, y in
            re.findall(r"^tracerpos:(\w+):(\S+):(\d+):(-?\d+)$", log, flags=re.M)]


def layout_problems(log: str) -> list[str]:
    """What the compiled layout does wrong, read from the positions the document writes to its log:
    a figure between two lines of one pass, a figure before the sentence that refers to it, a step's
    graph after the start of its forward pass, a heading on another page than what follows it."""
    marks = positions(log)
    where = lambda m: (m[2], -m[3])  # noqa: E731  reading order: page, then down the page
    problems = []
    passes: dict[str, list[tuple[int, int]]] = {}
    for kind, name, page, y in marks:
        if kind == "line":
            step, phase, _ = name.split("/")
            passes.setdefault(f"{step}/{phase}", []).append((page, -y))
    figures = [m for m in marks if m[0] == "figure"]
    for key, lines in passes.items():
        first, last = min(lines), max(lines)
        problems += [f"{f[1]} inside the pass {key}" for f in figures if first < where(f) < last]
    refs = {m[1]: where(m) for m in marks if m[0] == "ref"}
    problems += [f"{f[1]} before its first reference" for f in figures if not refs.get(f[1], (10**9,)) <= where(f)]
    for f in figures:
        if f[1].startswith("fig:graph-step-"):
            step = f[1].removeprefix("fig:graph-step-")
            if f"{step}/forward" in passes and not where(f) < min(passes[f"{step}/forward"]):
                problems.append(f"{f[1]} not before the forward pass of step {step}")
    for i, m in enumerate(marks[:-1]):
        if m[0] == "heading" and marks[i + 1][2] != m[2]:
            problems.append(f"heading {m[1]} alone at the foot of page {m[2]}")
    assert len(marks) > 20 and passes and figures, "the document writes its positions to the log"
    return problems


@pdflatex
@pdftotext
def test_latin_text_beyond_t1_builds_with_xelatex_when_it_is_there(tmp_path):
    title = "Tiếng Việt: đường cong"  # ế ệ ư ơ: Latin letters T1 has no glyph for
    try:
        (pdf,) = [p for p in build.build([chapter_titled(tmp_path, title)], tmp_path / "out", ["pdf"], figures=False)
                  if p.suffix == ".pdf"]
    except TemplateError as exc:
        assert not shutil.which("xelatex"), exc  # (Debian's lualatex binary may lack its fonts: not used)
        assert "ệ (U+1EC7)" in str(exc) and "xelatex" in str(exc) and "\n" not in str(exc)
    else:
        text = subprocess.run(["pdftotext", "-l", "1", str(pdf), "-"], capture_output=True, text=True).stdout
        assert title in " ".join(text.split())


@pytest.mark.parametrize("formats", ["md,tex,pdf", "pdf", "md,json,html"])
def test_build_prints_the_name_of_every_file_it_writes(tmp_path, capsys, formats):
    """The figures too, and the .tex a PDF is compiled from: the list is the folder's contents."""
    from tracer.cli import main

    if "pdf" in formats and not shutil.which("pdflatex"):
        pytest.skip("pdflatex is not installed")
    out = tmp_path / "out"
    assert main(["build", "02-or-batch", "-o", str(out), "--format", formats]) == 0
    printed = capsys.readouterr().out.split()
    on_disk = sorted(str(p) for p in out.rglob("*") if p.is_file())
    assert sorted(printed) == on_disk and len(printed) == len(set(printed))
    assert any("/figures/" in p for p in printed)

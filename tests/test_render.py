"""The worked-example documents: golden files, pdflatex, KaTeX, escaping, strictness, determinism,
and the article's printed figures (the independent oracle for chapters 01 and 02).

Golden files: tests/golden/<chapter>.md and .tex, rendered without figures (the figures have their
own tests). Regenerate them deliberately, never in CI:  TRACER_UPDATE_GOLDEN=1 pytest tests/test_render.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import differing_figures, katex_failures, needs

import tracer
from tracer.cli import main
from tracer.documents import build, model, render
from tracer.engine.chapter import bundled_chapters, load_chapter
from tracer.rounding import round_half_up

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
GOLDEN_CHAPTERS = ("01-or-one-example", "02-or-batch")
needs_pdflatex = needs("pdflatex")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Every bundled chapter built once to Markdown and LaTeX, figures included."""
    out = tmp_path_factory.mktemp("build")
    build.build([p.stem for p in bundled_chapters()], out, ["md", "tex"])
    return out


def text_of(folder: Path, name: str, fmt: str) -> str:
    return (folder / f"{name}.{fmt}").read_text(encoding="utf-8")


def write_chapter(folder: Path, extra: str = "", title: str = "A test chapter") -> Path:
    """Chapter 02's network and data under another title, with `extra` TOML appended."""
    source = load_chapter("02-or-batch").path.read_text(encoding="utf-8")
    source = re.sub(r"^title = .*$", lambda _: f"title = {json.dumps(title)}", source, count=1, flags=re.M)
    source = re.sub(r"\n\[document\].*", "", source, flags=re.S)  # the test gives its own
    path = folder / "test-chapter.toml"
    path.write_text(source.replace("steps = 5000", "steps = 3") + extra, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("name", GOLDEN_CHAPTERS)
@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_document_matches_its_golden_file(tmp_path, name, fmt):
    build.build([name], tmp_path, [fmt], figures=False)
    got = text_of(tmp_path, name, fmt)
    golden = GOLDEN / f"{name}.{fmt}"
    if os.environ.get("TRACER_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(got, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}: run TRACER_UPDATE_GOLDEN=1 pytest tests/test_render.py"
    assert got == golden.read_text(encoding="utf-8"), (
        f"{name}.{fmt} differs from {golden}; if the change is intended, regenerate with "
        "TRACER_UPDATE_GOLDEN=1 pytest tests/test_render.py and review the diff")


# --------------------------------------------------------------------------- the article's figures


def test_chapter_01_shows_the_articles_hand_calculation(built):
    md = text_of(built, "01-or-one-example", "md")
    step0, step1 = md.split("## Step 1", 1)
    # ŷ = 0.5, loss 0.125, ∂L/∂b = 0.125, b = −0.125 (the article's figures, written out in Part I).
    assert r"&= \sigma\left(0.000\right) \\ &= 0.500" in step0
    assert r"\frac{1}{2 \cdot 1}(0 - 0.500)^2 \\ &= 0.125" in step0
    assert re.search(r"\\partial b_\{1\}\} &= .*&= 0\.125 \\end\{aligned\}", step0)
    assert r"&= 0.000 - 1 \cdot 0.125 \\ &= -0.125" in step0
    # The local gradients of z with respect to the weights are the inputs x₁ = x₂ = 0: ∂L/∂w = 0.
    # Along each path, in the article's scalar form: ∂L/∂w₁ = ∂L/∂ŷ · ∂ŷ/∂z · ∂z/∂w₁ = 0.5 · 0.25 · 0.
    for j in (1, 2):
        assert (rf"\frac{{\partial \mathrm{{Cost}}}}{{\partial w_{{{j}}}}} &= \frac{{\partial \mathrm{{Cost}}}}"
                rf"{{\partial A_{{1}}}} \cdot \frac{{\partial A_{{1}}}}{{\partial Z_{{1}}}} \cdot "
                rf"\frac{{\partial Z_{{1}}}}{{\partial w_{{{j}}}}} \\ &= 0.500 \cdot 0.250 \cdot 0 \\ &= 0.000") in step0
    # Then ŷ ≈ 0.469 with b = −0.125; the loss is 0.110 computed (the article prints 0.109, see the erratum test).
    assert r"&= \sigma\left(-0.125\right) \\ &= 0.469" in step1
    assert r"(0 - 0.469)^2 \\ &= 0.110" in step1


def test_chapter_02_shows_the_articles_vectorized_figures(built):
    md = text_of(built, "02-or-batch", "md")
    step0, rest = md.split("## Step 1", 1)
    step1, rest = rest.split("## Training", 1)
    assert r"&= 0.089 \end{aligned}" in step0  # the cost with the starting weights
    assert r"&= 0.084 \end{aligned}" in step1  # and after one update
    table = dict(re.findall(r"^\| (\d+) \| \$([^$]+)\$ \|$", rest, flags=re.M))
    assert table["4999"] == "0.00053"  # two significant digits: "Cost steadily decreases to about 0.0005"
    assert round_half_up(float(table["4999"]), 4) == round_half_up(0.0005, 4)
    exercise, answers = rest.split("## Exercise", 1)[1].split("## Answers", 1)
    assert "Perform the backpropagation step yourself" in exercise
    assert "-0.044" not in exercise  # the answer is not given away in the exercise
    assert r"W_{1}} = \begin{bmatrix} -0.044 & -0.035 \end{bmatrix}" in answers
    assert r"b_{1}} = -0.031" in answers


def test_the_answers_are_the_last_section(built):
    md = text_of(built, "02-or-batch", "md")
    headings = re.findall(r"^## (.*)$", md, flags=re.M)
    assert headings[-2:] == ["Exercise", "Answers"]
    tex = text_of(built, "02-or-batch", "tex")
    assert re.findall(r"\\section\*\{([^}]*)\}", tex)[-1] == "Answers"


def test_every_number_in_a_calculation_is_the_hand_carried_trace_as_printed(trace_of):
    """The worked step's results are the hand-carried trace's values (carry = "rounded"), as printed."""
    chapter = load_chapter("02-or-batch")
    hand = tracer.run(chapter, carry="rounded", steps=2, record=[0, 1])
    context = render.document_context(chapter, trace_of("02-or-batch"), other=hand)
    step0 = context["worked"][0]
    results = {c.quantity: c.result for node in step0.forward + [step0.cost] + step0.backward
               for c in node.calculations}
    for quantity in ("Z1", "A1", "dA1", "dZ1", "dW1", "db1"):
        values = np.asarray(hand.at(0)[quantity]).ravel()
        expected = [str(round_half_up(x, 3)) for x in values]
        assert re.findall(r"-?\d+\.\d+", results[quantity]) == expected, quantity


# --------------------------------------------------------------------------- errata and the hand-carried figures


@dataclass
class FakeCheck:
    quantity: str
    step: int
    index: tuple | None
    printed: str
    computed: float
    correct: str
    verdict: str
    explanation: str


def test_an_article_figure_that_differs_gets_an_erratum_with_the_computed_figure(tmp_path, monkeypatch, trace_of):
    exact = float(trace_of("01-or-one-example").costs[1])
    checks = [FakeCheck("cost", 1, None, "0.109", exact, "0.110", "article differs",
                        "0.109 is 0.1098… truncated, not rounded."),
              FakeCheck("A1", 1, None, "0.469", 0.46879, "0.469", "matches", "")]
    monkeypatch.setattr(model, "article_figures", lambda chapter, trace: checks)
    build.build(["01-or-one-example"], tmp_path, ["md", "tex"], figures=False)
    md = text_of(tmp_path, "01-or-one-example", "md")
    step1 = md.split("## Step 1", 1)[1]
    assert "**Erratum.** The article prints $0.109$ for $\\mathrm{Cost}$ at this step" in step1
    assert "computed exactly, it is $0.110$" in step1 and "truncated, not rounded" in step1
    assert md.count("Erratum") == 1  # the matching figure gets no note
    assert r"\textbf{Erratum.}" in text_of(tmp_path, "01-or-one-example", "tex")


def test_chapter_01_erratum_comes_from_tracer_verify(built):
    md = text_of(built, "01-or-one-example", "md")
    erratum = md.split("**Erratum.**", 1)[1].split("\n", 1)[0]
    assert "$0.109$" in erratum and "$0.110$" in erratum


def test_the_worked_step_prints_what_a_student_carrying_the_printed_figures_gets(trace_of):
    """dW1 of chapter 02 at step 0: full precision gives [-0.048, -0.039]; a student carrying
    3-decimal figures gets [-0.048, -0.038], and that is what the document prints (it carries its
    figures as printed). Worked here by hand, independently of the engine."""
    r = lambda x: np.array([float(round_half_up(v, 3)) for v in np.ravel(x)]).reshape(np.shape(x))  # noqa: E731
    X = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=float)
    Y = np.array([[0, 1, 1, 1]], dtype=float)
    Z = r(np.array([[0.1, 0.6]]) @ X)
    A = r(1 / (1 + np.exp(-Z)))
    dA = r((A - Y) / 4)
    dZ = r(dA * r(A * (1 - A)))
    dW = r(dZ @ X.T)
    assert dW.tolist() == [[-0.048, -0.038]]

    context = render.document_context(load_chapter("02-or-batch"), trace_of("02-or-batch"))
    node = next(n for n in context["worked"][0].backward if n.name == "Z1")
    (calc,) = [c for c in node.calculations if c.quantity == "dW1"]
    assert calc.result == r"\begin{bmatrix} -0.048 & -0.038 \end{bmatrix}"


def test_each_step_compares_with_the_exact_values_at_most_once_in_plain_words(tmp_path):
    path = write_chapter(tmp_path, '\n[display]\ncarry = "rounded"\n')
    context = render.document_context(load_chapter(path))
    md = render.render(render.environment(), "chapter.md.j2", context)
    for step in md.split("## Step ")[1:]:
        assert step.count("Carrying every digit") <= 1
    assert "Carrying every digit" in md
    assert "carry =" not in md and "carry=" not in md  # no configuration key in a student-facing sentence


# --------------------------------------------------------------------------- LaTeX and KaTeX


@needs_pdflatex
def test_the_pdf_is_the_same_byte_for_byte_when_compiled_again(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        build.build(["01-or-one-example"], out, ["pdf"], figures=False)
    assert (first / "01-or-one-example.pdf").read_bytes() == (second / "01-or-one-example.pdf").read_bytes()


def maths_fragments(markdown: str) -> list[dict]:
    """Every $$…$$ block and $…$ span of a Markdown text (escaped \\$ is not maths)."""
    fragments = [{"tex": m, "display": True} for m in re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, re.S | re.M)]
    rest = re.sub(r"^\$\$\n.*?\n\$\$$", "", markdown, flags=re.S | re.M).replace("\\\\", "").replace("\\$", "")
    fragments += [{"tex": m, "display": False} for m in re.findall(r"\$([^$\n]+)\$", rest)]
    return fragments


def test_every_maths_fragment_of_the_markdown_parses_with_katex(built):
    fragments = [f for md in sorted(built.glob("*.md")) for f in maths_fragments(md.read_text(encoding="utf-8"))]
    assert len(fragments) > 100
    assert katex_failures(fragments) == []


def test_katex_check_does_catch_bad_maths():
    failures = katex_failures([{"tex": r"\frac{1}{", "display": False}, {"tex": "x^2", "display": False}])
    assert [f["index"] for f in failures] == [0]


# --------------------------------------------------------------------------- user text


SPECIALS = r"Costs & gains: 100% of x_1 #1 {a} ~b^c \d $5 <i>|"


def test_user_text_with_latex_specials_is_escaped_and_still_compiles(tmp_path):
    extra = f'\n[document]\nintro = {json.dumps(SPECIALS + " (ŷ, α, x₁·x₂)")}\n'
    path = write_chapter(tmp_path, extra, title=SPECIALS)
    out = tmp_path / "out"
    formats = ["md", "tex", "pdf"] if shutil.which("pdflatex") else ["md", "tex"]
    written = build.build([path], out, formats, figures=False)
    tex = text_of(out, "test-chapter", "tex")
    escaped = (r"Costs \& gains: 100\% of x\_1 \#1 \{a\} \textasciitilde{}b\textasciicircum{}c "
               r"\textbackslash{}d \$5 \textless{}i\textgreater{}\textbar{}")
    assert f"{{\\LARGE {escaped}\\par}}" in tex  # the title block (a line that wraps, not \\title)
    assert escaped + r" ($\hat{y}$, $\alpha$, $x_{1}$\textperiodcentered{}$x_{2}$)" in tex  # x₁ as maths, as in the formulas
    md = text_of(out, "test-chapter", "md")
    # & < > as entities: not every Markdown reader honours a backslash before < (Python-Markdown does not)
    assert md.startswith(r"# Costs &amp; gains: 100% of x\_1 \#1 {a} \~b\^c \\d \$5 &lt;i&gt;\|" + "\n")
    assert not any("$5" in f["tex"] for f in maths_fragments(md))  # the $ is not taken for maths
    if "pdf" in formats:
        assert (out / "test-chapter.pdf") in written


def test_user_text_cannot_be_printed_unescaped(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "chapter.md.j2").write_text("# {{ chapter.title }}\n")
    with pytest.raises(render.TemplateError, match="without escaping"):
        build.build(["01-or-one-example"], tmp_path / "out", ["md"], user_templates=templates, figures=False)


# --------------------------------------------------------------------------- templates


def test_a_misspelt_template_variable_fails_loudly_with_exit_status_2(tmp_path, capsys):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "chapter.md.j2").write_text("# {{ chapter.title|md }}\n\n{{ chapter.titel }}\n")
    status = main(["build", "01-or-one-example", "-o", str(tmp_path / "out"), "--format", "md",
                   "--templates", str(templates)])
    err = capsys.readouterr().err
    assert status == 2
    assert "titel" in err and "chapter.md.j2" in err and "line 3" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "01-or-one-example.md").exists()  # nothing half-written


def test_an_instructors_template_overrides_the_bundled_one_by_name(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "long_run.md.j2").write_text(
        "{% if long_run %}\n## Our course's table\n{% for row in long_run.table %}{{ row.step }}: ${{ row.cost }}$\n"
        "{% endfor %}{% endif %}\n")
    build.build(["02-or-batch"], tmp_path / "out", ["md"], user_templates=templates, figures=False)
    md = text_of(tmp_path / "out", "02-or-batch", "md")
    assert "## Our course's table\n0: $0.0889$\n" in md
    assert "## Step 0" in md  # everything else still comes from the bundled templates


def test_templates_that_are_not_a_folder_are_refused(tmp_path, capsys):
    status = main(["build", "01-or-one-example", "-o", str(tmp_path), "--templates", str(tmp_path / "nope")])
    assert status == 2 and "--templates expects a folder" in capsys.readouterr().err


def test_an_unknown_format_is_refused(tmp_path, capsys):
    status = main(["build", "01-or-one-example", "-o", str(tmp_path), "--format", "md,docx"])
    assert status == 2 and "docx" in capsys.readouterr().err


def test_a_bad_document_section_names_the_key(tmp_path):
    path = write_chapter(tmp_path, "\n[document]\nworked_steps = [0, 7]\n")
    with pytest.raises(tracer.TracerError, match=r"\[document\] worked_steps: expected steps from 0 to 2"):
        build.build([path], tmp_path / "out", ["md"], figures=False)


def test_an_exercise_quantity_the_trace_does_not_record_is_refused(tmp_path):
    path = write_chapter(tmp_path, '\n[document]\nexercise_prompt = "Go."\n[exercise]\nstep = 1\nask = ["dW9"]\n')
    with pytest.raises(tracer.TracerError, match=r"\[exercise\] ask: expected names the trace records.*'dW9'"):
        build.build([path], tmp_path / "out", ["md"], figures=False)


def test_an_exercise_prompt_without_an_exercise_section_says_what_is_missing(tmp_path):
    path = write_chapter(tmp_path, '\n[document]\nexercise_prompt = "Go."\n')
    with pytest.raises(tracer.TracerError, match=r"expected an \[exercise\] section"):
        build.build([path], tmp_path / "out", ["md"], figures=False)


# --------------------------------------------------------------------------- building


def test_two_builds_are_byte_identical(built, tmp_path):
    names = ["01-or-one-example", "02-or-batch"]
    build.build(names, tmp_path, ["md", "tex"])
    for name in names:
        for fmt in ("md", "tex"):
            assert (tmp_path / f"{name}.{fmt}").read_bytes() == (built / f"{name}.{fmt}").read_bytes()


def test_build_reports_progress_per_chapter_and_returns_what_it_wrote(tmp_path):
    seen: list[str] = []
    written = build.build(["01-or-one-example", "02-or-batch"], tmp_path, ["md"], progress=seen.append,
                           figures=False)
    assert seen == ["[1/2] 01-or-one-example", "[2/2] 02-or-batch"]
    assert written == [tmp_path / "01-or-one-example.md", tmp_path / "02-or-batch.md"]


def test_without_pdflatex_an_optional_pdf_is_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    notes: list[str] = []
    written = build.build(["01-or-one-example"], tmp_path, ["md", "tex", "pdf"], note=notes.append, figures=False,
                          pdf_optional=True)
    assert [p.suffix for p in written] == [".md", ".tex"]
    assert len(notes) == 1 and "pdflatex is not on the PATH" in notes[0]
    assert all(package in notes[0] for package in
               ("texlive-latex-base", "texlive-latex-recommended", "texlive-pictures"))


def test_without_pdflatex_a_pdf_asked_for_fails_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    assert main(["build", "01-or-one-example", "-o", str(tmp_path / "out"), "--format", "md,pdf"]) == 2
    err = capsys.readouterr().err
    assert "pdflatex is not on the PATH" in err and "nothing was written" in err and "--format md" in err
    assert list(tmp_path.iterdir()) == []


def test_the_cli_prints_the_files_it_wrote(tmp_path, capsys):
    status = main(["build", "01-or-one-example", "-o", str(tmp_path), "--format", "md"])
    assert status == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "01-or-one-example.md"),
                                               str(tmp_path / "figures" / "01-or-one-example-graph-step-0.svg")]


def test_a_long_sum_is_broken_over_rows_and_a_huge_one_abbreviated():
    # ½·[(1 − 0.123456)² + …] over m examples: rows inside hand-sized brackets, a huge sum cut with ⋯.
    term = lambda y, a: {"op": "square", "args": [{"op": "sub", "args": [y, a]}]}  # noqa: E731
    cost = lambda m: {"op": "mul", "args": [{"op": "div", "args": ["1", str(2 * m)]},  # noqa: E731
                                            {"op": "add", "args": [term("1", "0.123456") for _ in range(m)]}]}
    assert render.typeset_lines(cost(2)) == render.typeset(cost(2))  # short: one line
    assert r" \\ " in render.typeset_lines(cost(8))  # 16 numbers side by side: broken
    huge = render.typeset_lines(cost(1797))
    assert r"\cdots" in huge and len(huge) < 500  # the digits-shaped cost line stays small


def test_an_authors_note_sets_its_dollar_spans_as_maths_and_passes_no_command():
    """Written by hand: ∂Cost/∂W₁ = (ŷⱼ − yⱼ)/m is \\partial \\mathrm{Cost}/\\partial W_{1} = (\\hat{y}_{j} - y_{j})/m."""
    note = render.UserText(r"So $∂Cost/∂W₁ = (ŷⱼ − yⱼ)/m$, not $\input{x}$; costs $5")
    tex = render.with_maths(note, "tex")
    assert r"$\partial \mathrm{Cost}/\partial W_{1} = (\hat{y}_{j} - y_{j})/m$" in tex
    assert r"\input" not in tex and r"\backslash \mathrm{input}\{x\}" in tex
    assert tex.endswith(r"costs \$5")  # a lone $ is a dollar sign
    md = render.with_maths(note, "md")
    assert md.startswith(r"So $\partial \mathrm{Cost}/\partial W_{1}")


@pytest.mark.parametrize("name", [p.stem for p in bundled_chapters()])
def test_the_markdown_has_the_structure_its_templates_write_in_commonmark(name, tmp_path):
    """Parsed by markdown-it (CommonMark, as MyST and many sites parse it): each paragraph the templates
    start a line with is a paragraph of its own, not the continuation of the list item above it (a missing
    blank line), and every heading is one the document writes with #, none made by a stray --- under text."""
    markdown_it = pytest.importorskip("markdown_it")
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    build.build([name], tmp_path, ["md"], figures=False)
    text = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").use(dollarmath_plugin, double_inline=True).parse(text)
    for lead in ("Starting parameters:", "Parameters after the last update:", "Figures the article prints",
                 "Formulas the article states", "Checked against", "Each node multiplies"):
        found = [t for t in tokens if t.type == "inline" and t.content.startswith(lead)]
        if lead in text:
            assert found and all(t.level == 1 for t in found), (lead, [t.level for t in found])  # in a top-level <p>
    headings = [t for t in tokens if t.type == "heading_open"]
    assert len(headings) == len(re.findall(r"^#{1,6} ", text, flags=re.M))
    assert len([t for t in tokens if t.type == "hr"]) == 1  # the colophon's rule, and only it


# --------------------------------------------------------------------------- carried and every digit


def _line_blocks(text: str, start: str) -> list[str]:
    """Each worked line's part of a document: from its `\\begin{aligned}` to the next one."""
    body = text[text.index(start):]
    pieces = re.split(r"(?=\\begin\{aligned\} )", body)[1:]
    return [p for p in pieces]


@pytest.mark.parametrize("name", [p.stem for p in bundled_chapters()])
@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_every_carried_figure_that_differs_is_shown_with_its_every_digit_value(built, name, fmt):
    """Every figure a worked line carries that differs, in its printed digits, from carrying every digit
    is followed, in its line, by the every-digit figure (bold in a matrix); no other line says so; and
    the first time, one note says why (cancellation) and which figure a calculator gives."""
    text = text_of(built, name, fmt)
    blocks = _line_blocks(text, "Step 0" if fmt == "md" else r"\section*{\tracerpos{heading}{step-")
    blocks = [b for b in blocks if not b.startswith(r"\begin{aligned} \frac{d") ]
    figures = differing_figures(name)
    assert len(blocks) >= len(figures)
    said = 0
    for (i, quantity, differ), block in zip(figures, blocks):
        block = block.split("\\end{gather*}")[0] if fmt == "tex" and i < len(figures) - 1 else block
        mark = "With every digit carried:" if fmt == "md" else "with every digit carried:"
        assert (mark in block) == bool(differ), (name, i, quantity, differ)
        if not differ:
            continue
        said += 1
        every = block[block.index(mark):]
        for figure in differ.values():
            tex = render.number_tex(figure)
            assert (rf"\mathbf{{{tex}}}" if len(differ) > 1 or "bmatrix" in every.split("\n")[0] else tex) in every, \
                (name, quantity, figure)
    assert text.count("Why two figures?") == (1 if said else 0)
    if said:
        note = text[text.index("Why two figures?"):][:1500]
        assert "calculator" in note and ("cancel" in note or "passes that error on" in note)

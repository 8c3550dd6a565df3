"""The chapter slides: every bundled chapter compiles with pdflatex (Beamer), with one overlay per worked
line (so at least one per node per pass), no overfull box, and no text set below the 10 pt class size."""

from __future__ import annotations

import re
import subprocess

import pytest

import concurrent.futures

from conftest import bundled_lecture, bundled_trace, needs
from tracer.documents.slides import slides_tex
from tracer.engine.chapter import bundled_chapters, load_chapter

CHAPTERS = [p.stem for p in bundled_chapters()]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Each chapter's slides compiled once: (LaTeX source, pdflatex's log, its lecture)."""
    out = tmp_path_factory.mktemp("slides")

    def compile_one(name: str) -> None:
        subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                        f"{name}-slides.tex"], cwd=out, capture_output=True, timeout=120)

    for name in CHAPTERS:
        lec = bundled_lecture(name)
        (out / f"{name}-slides.tex").write_text(slides_tex(load_chapter(name), lec.full, lec), encoding="utf-8")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two pdflatex at a time
        list(pool.map(compile_one, CHAPTERS))
    return {name: ((out / f"{name}-slides.tex").read_text(encoding="utf-8"),
                   (out / f"{name}-slides.log").read_text(encoding="latin-1"), bundled_lecture(name))
            for name in CHAPTERS}


@needs("pdflatex")
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_slides_compile_without_an_overfull_box(compiled, chapter):
    tex, log, _ = compiled[chapter]
    assert "Output written on" in log, log[-2000:]
    assert "\n! " not in log
    assert re.findall(r"^Overfull \\[hv]box.*$", log, flags=re.M) == []


@needs("pdflatex")
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_graph_is_built_node_by_node_one_overlay_per_worked_line(compiled, chapter):
    tex, log, lec = compiled[chapter]
    pages = int(re.search(r"Output written on .*?\((\d+) pages?", log, flags=re.S)[1])
    notes = sum(1 for st in lec.model.steps if st.comments or st.comparison)
    expected = 2 + len(lec.model.lines) + notes + (1 if lec.model.long_run else 0)
    assert pages == expected
    for st in lec.model.steps:
        for phase in ("forward", "backward", "update"):
            nodes = {ln.node for ln in st.lines if ln.phase == phase}
            overlays = [ln for ln in st.lines if ln.phase == phase]
            assert len(overlays) >= len(nodes)
    # Each overlay shows one worked line and rings the node it reaches.
    assert len(re.findall(r"\\only<\d+>\{\n\\\[", tex)) == len(lec.model.lines)
    assert len(re.findall(r"draw=tracercurrent", tex)) >= len({(ln.step, ln.phase, ln.node) for ln in lec.model.lines})


@pytest.mark.parametrize("chapter", CHAPTERS[:1])
def test_no_text_is_set_below_the_class_size(compiled, chapter):
    tex = compiled[chapter][0]
    assert r"\documentclass[10pt,aspectratio=169]{beamer}" in tex
    for smaller in (r"\small", r"\footnotesize", r"\scriptsize", r"\tiny", r"\resizebox", r"\scalebox"):
        assert smaller not in tex


def test_slides_are_byte_identical_from_run_to_run():
    chapter, lec = load_chapter("04-xor-hidden-layer"), bundled_lecture("04-xor-hidden-layer")
    assert slides_tex(chapter, bundled_trace(chapter.name), lec) == slides_tex(chapter, bundled_trace(chapter.name))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_worked_line_shows_its_numbers_at_the_class_size(chapter):
    from tracer.documents.lecture import NOT_SHOWN

    tex = slides_tex(load_chapter(chapter), bundled_trace(chapter), bundled_lecture(chapter))
    assert NOT_SHOWN not in tex  # Adam's update of a matrix: its first entry worked, then the whole result
    for line in re.findall(r"\\\[\n(.*?)\n\\\]", tex, flags=re.S):
        # the numbers of a fraction inside a fraction would be set in script size
        assert not re.search(r"\\frac\{[^{}]*\\frac", line.split(r" \\ ", 1)[-1]), line

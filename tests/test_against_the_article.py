""""Against the article" says exactly what the article printed and where.

The oracle is the article itself (/work/shared/seeds, or $TRACER_SEEDS): every figure a chapter cites as
the article's is looked up in the article's text, beside the sentence the chapter quotes; the digits a
long figure shares with the computed value are counted here from the two strings.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import bundled_lecture
from tracer.documents.render import document_context, environment, render
from tracer.engine.chapter import bundled_chapters, load_chapter

SEEDS = Path(os.environ.get("TRACER_SEEDS", "/work/shared/seeds"))
CHAPTERS = [p.stem for p in bundled_chapters()]
#: How far (characters) from the figure the quoted sentence's words may lie in the article's text: the
#: texts were scraped from pages whose emphasis scattered a sentence's words over a few lines.
WINDOW = 400

pytestmark = pytest.mark.skipif(not SEEDS.is_dir(), reason=f"the source articles are not at {SEEDS}")


def article_text(title: str) -> str:
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if text.splitlines()[0].lstrip("# ").strip() == title:
            return text
    raise AssertionError(f"no source article titled {title!r} in {SEEDS}")


def _words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)]


def found_near(article: str, value: str, quote: str) -> bool:
    """Whether the article prints `value` with most of the quoted sentence's words around it."""
    value = value.replace("−", "-")
    forms = [re.escape(value)] + ([r"\bzero\b"] if Decimal(value) == 0 else [])
    words = set(_words(quote))
    text = article.replace("−", "-")
    for form in forms:
        for match in re.finditer(r"(?<![\d.])" + form + r"(?![\d])", text, flags=re.I):
            near = set(_words(text[max(0, match.start() - WINDOW):match.end() + WINDOW]))
            if not words or len(words & near) >= 0.8 * len(words):
                return True
    return False


#: Chapters checked against a source that is not among the seed articles, and the test that holds that
#: source's printed figures (written out there by hand: the source's text is not ours to store).
OTHER_SOURCES = {"07-softmax-three-classes": "test_model.py::test_the_softmax_lines_work_the_cs231n_notes_examples_in_stages",
                 "09-convolution-by-hand": "test_conv_chapters.py::test_chapter_9_works_the_books_cross_correlation_window_by_window"}


def _seed_titles() -> set[str]:
    return {p.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip() for p in sorted(SEEDS.glob("*.txt"))}


def test_every_chapter_citing_figures_is_checked_against_its_source():
    """A chapter whose article is not a seed article names the test that checks its figures instead."""
    seeds = _seed_titles()
    elsewhere = {name for name in CHAPTERS if bundled_lecture(name).model.article.figures
                 and bundled_lecture(name).model.article.title not in seeds}
    assert elsewhere == set(OTHER_SOURCES), elsewhere ^ set(OTHER_SOURCES)
    for where in OTHER_SOURCES.values():
        module, test = where.split("::")
        assert f"def {test}(" in (Path(__file__).parent / module).read_text(encoding="utf-8"), where


@pytest.mark.parametrize("name", [n for n in CHAPTERS if n not in OTHER_SOURCES])
def test_every_figure_cited_as_the_articles_is_in_the_articles_text(name):
    model = bundled_lecture(name).model
    if not model.article.figures:
        return
    article = article_text(model.article.title)
    missing = [(f.quantity, f.step, f.printed) for f in model.article.figures
               if not found_near(article, f.printed, f.source)]
    assert not missing, missing


def _md(name: str) -> str:
    lec = bundled_lecture(name)
    return render(environment(), "chapter.md.j2", document_context(load_chapter(name), fmt="md", model=lec.model))


def shared_digits(printed: str, computed: float) -> int:
    a = str(Decimal(printed).normalize().as_tuple().digits)
    b = repr(float(computed)).replace(".", "").replace("-", "").lstrip("0").split("e")[0]
    a = "".join(ch for ch in a if ch.isdigit())
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_a_long_figures_agreement_is_counted_from_the_two_strings():
    lec = bundled_lecture("04-xor-hidden-layer")
    text = _md("04-xor-hidden-layer")
    long = [f for f in lec.model.article.figures if f.agree]
    assert len(long) == 4
    for f in long:
        exact = float(lec.full.costs[f.step])
        k = shared_digits(f.printed, exact)
        digits = len(Decimal(f.printed).as_tuple().digits)
        said = (f"all {digits} of its significant digits agree" if k == digits
                else f"the two share their first {k} significant digits")
        assert f"{f.printed}$ (“Cost at epoch\\#{f.step}: {f.printed}”), computed ${repr(exact)}$: {said}" in text
    # The case, counted by hand: 0.0009210166430616655 printed, 0.000921016643061665 computed (on the
    # machine of that report; the last bits differ between processors): 15 digits in common.
    assert shared_digits("0.0009210166430616655", 0.000921016643061665) == 15


def test_an_entry_of_a_vector_is_named_as_one_entry_not_by_row_and_column():
    text = _md("04-xor-hidden-layer").split("## Against the article", 1)[1]  # a matrix's entry is by row elsewhere
    assert "The second entry of $A_{2}$ at step 4999" in text and "row 1, column" not in text


def test_each_formula_bullet_names_the_articles_formula():
    text = _md("05-xor-no-bias")
    bullets = [line for line in text.splitlines() if line.startswith("- ") and "checked as" in line]
    assert len(bullets) == 11
    assert all("The article's “" in b or "the article's “" in b for b in bullets)
    assert "“∂Loss(y, ŷ)/∂W² = Σᵢ 2(y − ŷ) \\* σ′(W²z) \\* z”" in text


def test_the_chapters_own_choices_are_not_called_the_articles():
    three = _md("03-xor-feature-cross")
    assert "the article's own numbers" not in three and "the chapter's choice" in three
    six = _md("06-xor-relu-adam")
    assert all(s in six for s in ("0.05$", "0.9$", "0.999$", "choices, not the article's"))

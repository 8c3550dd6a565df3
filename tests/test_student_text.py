"""What a student reads names no tool, file, seed label or configuration, in every format.

Every bundled chapter is read in every format a student reads: the Markdown document (rendered by
markdown-it as a site renders it), the web page (its visible text) and the notebook (its Markdown cells)
here; the PDF and the slides (their text as pdftotext reads it) where they are compiled already, in
tests/test_build.py and tests/test_slides.py, with this file's `offences`. The colophon at the end, which
says how the figures were computed and checked, is exempt; so are the article's own words, quoted between
“ and ”, and maths and code, which are not sentences.
"""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tracer.documents.build import build
from tracer.engine.chapter import bundled_chapters

CHAPTERS = [p.stem for p in bundled_chapters()]
#: Where the colophon starts, in every format: the text from there on is exempt.
COLOPHON = re.compile(r"How this (document|page) was made")
#: What student text must not say, and why.
FORBIDDEN = {
    "a tool": r"(?i)\b(tracer|sympy|graphviz|matplotlib|numpy's|jinja)\b",
    "a seed label or a random seed": r"(?i)\bseed\b",
    "a chapter-file section": r"\[(display|document|exercise|article|init|train|network|data|record)[\].]",
    "a chapter-file key": r"\b(worked_steps|forward_steps|table_steps|table_decimals|exercise_prompt|decimals_for"
                          r"|feature_crosses|learning_rates?|from_logits|value_decimals|batch_size)\b|\bcarry\s*=",
    "a file name": r"\b[\w-]+\.(toml|json|npz|py|ipynb|tex|md|svg|pdf|html|csv|zip|xml)\b",
    "an identifier": r"\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b",
}


def prose(text: str) -> str:
    """The text before the colophon, without the article's quoted words."""
    text = COLOPHON.split(text, maxsplit=1)[0]
    return re.sub(r"“[^”]*”", "“…”", text, flags=re.S)


def offences(text: str, allowed: str = "") -> list[tuple[str, str]]:
    """What `text` says that it must not (`allowed`: a word the format needs, e.g. the notebook's libraries)."""
    if allowed:
        text = re.sub(allowed, "", text)
    found = []
    for why, pattern in FORBIDDEN.items():
        for match in re.finditer(pattern, text):
            found.append((why, text[max(0, match.start() - 50):match.end() + 30].replace("\n", " ")))
    return found


def markdown_text(markdown: str) -> str:
    """The words a reader sees in rendered Markdown: no maths, no code, no link targets."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark").enable("table").use(dollarmath_plugin, double_inline=True)
    words = []
    for token in md.parse(markdown):
        for child in token.children or ():
            if child.type in ("text", "softbreak"):
                words.append(child.content or " ")
            elif child.type == "image":
                words.append(child.content)
        if token.type == "inline":
            words.append("\n")
    return "".join(words)


class _Visible(HTMLParser):
    """A page's visible text, maths (set by KaTeX from its LaTeX source) and scripts left out."""

    def __init__(self) -> None:
        super().__init__()
        self.skip, self.words = [], []

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if self.skip or tag in ("script", "style", "title") or "math" in classes.split():
            self.skip.append(tag)

    def handle_endtag(self, tag):
        if self.skip and self.skip[-1] == tag:
            self.skip.pop()

    def handle_data(self, data):
        if not self.skip:
            self.words.append(data)


def html_text(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    return " ".join(parser.words)


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    build(CHAPTERS, out, ["md", "html", "ipynb"], figures=False)  # the words are the point: no pictures to draw
    return out


def test_the_markdown_documents_name_no_tool_file_or_configuration(built):
    found = {name: offences(prose(markdown_text((built / f"{name}.md").read_text(encoding="utf-8"))))
             for name in CHAPTERS}
    assert found == {name: [] for name in CHAPTERS}


def test_the_web_pages_name_no_tool_file_or_configuration(built):
    found = {name: offences(prose(html_text((built / f"{name}.html").read_text(encoding="utf-8"))))
             for name in CHAPTERS}
    assert found == {name: [] for name in CHAPTERS}


def test_the_notebooks_say_nothing_of_the_kind_in_their_text(built):
    found = {}
    for name in CHAPTERS:
        cells = json.loads((built / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
        text = "\n".join(markdown_text("".join(c["source"])) for c in cells if c["cell_type"] == "markdown")
        found[name] = offences(prose(text), allowed=r"\(and matplotlib for")  # the code it runs needs it
    assert found == {name: [] for name in CHAPTERS}


def test_the_colophon_says_how_the_figures_were_computed_and_checked(built):
    text = (built / "04-xor-hidden-layer.md").read_text(encoding="utf-8")
    colophon = text[COLOPHON.search(text).start():]
    assert "tracer" in colophon and "04-xor-hidden-layer.toml" in colophon and "SymPy" in colophon
    assert COLOPHON.search(html_text((built / "04-xor-hidden-layer.html").read_text(encoding="utf-8")))

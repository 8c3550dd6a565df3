"""Everything a chapter says is text, in every format (issue 22).

A chapter whose every text field holds script, HTML-event and `javascript:` payloads is built in
every format; the HTML outputs are opened as readers open them (the web page itself, the notebook
converted by nbconvert, the Markdown built by plain MkDocs, by MkDocs with arithmatex, and rendered
by markdown-it with HTML on), in Debian's headless Chromium, and no payload may run or leave an
element behind. A link that is not http(s) is refused when the chapter is read, and the page's
Content-Security-Policy lets no script run but its own (a script pasted into a copy does not run).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs

from test_markdown_in_browsers import CHROMEDRIVER, CHROMIUM, browser  # noqa: F401 (the Chromium fixture)
from tracer.cli import main
from tracer.documents.build import build

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def in_chromium(test):
    """The test opens pages in Debian's headless Chromium through selenium (skipped without them, except in CI)."""
    for mark in (needs("chromium", installed=Path(CHROMIUM).exists()),
                 needs("chromedriver", installed=Path(CHROMEDRIVER).exists()),
                 needs("selenium", installed=_installed("selenium"))):
        test = mark(test)
    return test


def payload(n: int) -> str:
    """Script, event-handler, javascript: and template payloads, each valid HTML as CommonMark reads it (quoted
    attribute values); each sets window.__pwned to its own number."""
    return (f'<script>window.__pwned={n}</script> <img src="x" onerror="window.__pwned={n + 1}"> '
            f'[click](javascript:window.__pwned={n + 2}) javascript:window.__pwned={n + 3} '
            f'"><svg onload="window.__pwned={n + 4}"> <a href="javascript:window.__pwned={n + 5}">here</a> '
            f'$<img src="x" onerror="window.__pwned={n + 6}">$ <iframe src="javascript:window.__pwned={n + 7}"></iframe> '
            f"`</code><script>window.__pwned={n + 8}</script>` {{{{ 7*7 }}}} \\input{{/etc/hostname}} & < > ' \"")


def hostile_chapter(folder: Path, link: str = "https://example.org/a?b='x'&c=(1)") -> Path:
    """Chapter 1 with every text a chapter can hold replaced by payloads."""
    s = json.dumps
    text = f"""title = {s(payload(100))}
source = {s(payload(200))}
[data]
X = [[0, 0]]
Y = [[0]]
[network]
layers = [{{units = 1, activation = "sigmoid"}}]
[init.values]
W1 = [[0.1, 0.6]]
b1 = [[0]]
[train]
learning_rate = 1
steps = 2
[document]
intro = {s(payload(300))}
closing = {s(payload(400))}
exercise_prompt = {s(payload(500))}
worked_steps = [0]
forward_steps = [1]
[[document.notes]]
step = 0
node = "A1"
text = {s(payload(600))}
[exercise]
step = 0
ask = ["A1", "db1"]
prompt = {s(payload(700))}
vary = ["weights", "biases", "inputs"]
[article]
author = {s(payload(800))}
title = {s(payload(900))}
link = {s(link)}
note = {s(payload(1000))}
[[article.figures]]
step = 0
quantity = "A1"
value = "0.5"
source = {s(payload(1100))}
note = {s(payload(1200))}
[[article.figures]]
step = 0
quantity = "cost"
value = "0.126"
note = {s(payload(1300))}
[[article.formulas]]
claim = "diff(sigma, z) == sigma*(1 - sigma)"
where = {{ sigma = "1/(1 + exp(-z))" }}
source = {s(payload(1400))}
note = {s(payload(1500))}
[[article.formulas]]
claim = "diff(w1*x1, w1) == -x1"
note = {s(payload(1600))}
"""
    path = folder / "hostile.toml"
    path.write_text(text, encoding="utf-8")
    return path


#: What the browser reports: whether a payload ran, and whether one left an element that could run.
VERDICT_JS = r"""
const attrs = e => Array.from(e.attributes);
return {
  pwned: window.__pwned === undefined ? null : window.__pwned,
  title: document.title.includes("PWNED"),
  handlers: Array.from(document.querySelectorAll("*")).filter(e => attrs(e).some(a => /^on/i.test(a.name))).length,
  javascript: Array.from(document.querySelectorAll("[href],[src]")).filter(
      e => /^\s*javascript:/i.test(e.getAttribute("href") || e.getAttribute("src") || "")).length,
  scripts: Array.from(document.scripts).filter(s => s.textContent.includes("__pwned")).length,
  frames: document.querySelectorAll("iframe, embed, object").length,
};
"""
CLEAN = {"pwned": None, "title": False, "handlers": 0, "javascript": 0, "scripts": 0, "frames": 0}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The hostile chapter in every format (PDF and slides' PDF where pdflatex is installed)."""
    folder = tmp_path_factory.mktemp("hostile")
    path = hostile_chapter(folder)
    formats = ["md", "tex", "json", "slides", "ipynb", "html"] + (["pdf"] if shutil.which("pdflatex") else [])
    build([path], folder / "out", formats)
    return folder / "out"


def verdict(driver, page: Path) -> dict:
    driver.get(page.as_uri())
    return driver.execute_script(VERDICT_JS)


def test_every_format_is_written_and_the_latex_is_plain_text(built):
    names = sorted(p.name for p in built.iterdir() if p.is_file())
    for suffix in (".md", ".tex", ".json", "-slides.tex", ".ipynb", ".html"):
        assert f"hostile{suffix}" in names
    if shutil.which("pdflatex"):
        assert "hostile.pdf" in names and "hostile-slides.pdf" in names
    for tex in ("hostile.tex", "hostile-slides.tex"):
        text = (built / tex).read_text(encoding="utf-8")
        assert r"\input{/etc" not in text and "<script>" not in text.replace(r"\textless{}script\textgreater{}", "")
    # The notebook's Markdown cells carry the text escaped; its code never holds chapter text.
    notebook = json.loads((built / "hostile.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert "__pwned" not in source
        else:
            assert "<script" not in source and "<img" not in source and "<a " not in source, source[:300]


@pytest.mark.parametrize("link", ["javascript:window.__pwned=1", "x><img src=x onerror=window.__pwned=2>",
                                  "https://example.org/<script>", "http://example.org/a b", "data:text/html,x",
                                  "https://example.org/\"onmouseover=\"x"])
def test_a_link_that_is_not_a_plain_web_address_is_refused_when_the_chapter_is_read(link, tmp_path, capsys):
    path = hostile_chapter(tmp_path, link=link)
    assert main(["build", str(path), "-o", str(tmp_path / "out"), "--format", "md"]) == 2
    err = capsys.readouterr().err
    assert "[article] link" in err and "http://" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@in_chromium
def test_no_payload_runs_in_the_web_page_and_a_pasted_script_does_not_either(built, browser, tmp_path):
    page = built / "hostile.html"
    html = page.read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)[1].replace("&#39;", "'")
    script_src = re.search(r"script-src ([^;]*)", policy)[1]
    assert "unsafe-inline" not in script_src and script_src.split() and all(
        s.startswith("'sha256-") for s in script_src.split()), policy
    assert verdict(browser, page) == CLEAN
    assert browser.execute_script("return document.getElementById('step-output').textContent")  # its own script ran
    # A script pasted into a copy of the page (an attacker's, or an escaping bug's) does not run.
    copy = tmp_path / "copy.html"
    copy.write_text(html.replace("</body>", "<script>window.__pwned = 99</script><img src=x onerror="
                                            "'window.__pwned = 98'></body>"), encoding="utf-8")
    browser.get(copy.as_uri())
    assert browser.execute_script("return window.__pwned === undefined")


@in_chromium
@needs("nbconvert", installed=_installed("nbconvert"))
def test_no_payload_runs_in_the_notebook_converted_by_nbconvert(built, browser, tmp_path):
    out = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
                          str(built / "hostile.ipynb")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert verdict(browser, tmp_path / "hostile.html") == CLEAN


def _site(folder: Path, markdown_dir: Path, extensions: str) -> Path:
    theme = folder / "theme"
    theme.mkdir(parents=True)
    (theme / "main.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>{{ page.title }}</title>"
                                     "</head><body>{{ page.content }}</body></html>", encoding="utf-8")
    shutil.copytree(markdown_dir, folder / "docs")
    (folder / "mkdocs.yml").write_text("site_name: hostile\nuse_directory_urls: false\ntheme:\n  name: null\n"
                                       f"  custom_dir: theme\n{extensions}", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(folder / "mkdocs.yml"), "-d",
                    str(folder / "site")], check=True, capture_output=True)
    return folder / "site" / "hostile.html"


@in_chromium
@needs("mkdocs", installed=_installed("mkdocs") and _installed("pymdownx"))
@pytest.mark.parametrize("pipeline", ["mkdocs", "mkdocs-arithmatex"])
def test_no_payload_runs_in_the_markdown_built_by_mkdocs(pipeline, built, browser, tmp_path):
    docs = tmp_path / "md"
    docs.mkdir()
    shutil.copy(built / "hostile.md", docs / "hostile.md")
    shutil.copytree(built / "figures", docs / "figures")
    extensions = "markdown_extensions:\n  - pymdownx.arithmatex:\n      generic: true\n" if "arith" in pipeline else ""
    assert verdict(browser, _site(tmp_path / "site", docs, extensions)) == CLEAN


@in_chromium
@needs("markdown-it-py", installed=_installed("markdown_it"))
def test_no_payload_runs_in_the_markdown_rendered_by_markdown_it_with_html_on(built, browser, tmp_path):
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    for name, parser in (("commonmark", MarkdownIt("commonmark", {"html": True})),
                         ("gfm-like", MarkdownIt("gfm-like", {"html": True, "linkify": False})),
                         ("dollarmath", MarkdownIt("commonmark", {"html": True}).use(dollarmath_plugin))):
        page = tmp_path / f"{name}.html"
        page.write_text("<!doctype html><meta charset='utf-8'><title>x</title>"
                        + parser.render((built / "hostile.md").read_text(encoding="utf-8")), encoding="utf-8")
        assert verdict(browser, page) == CLEAN, name


@in_chromium
def test_no_payload_from_a_class_file_runs_in_the_grades_report(browser, tmp_path):
    """Payloads as student ids, codes and answers: the report escapes them, and its policy runs no script."""
    from tracer.exercises.grade import grade_class
    from tracer.exercises.sheets import write_exercises
    import tracer

    write_exercises(tracer.load_chapter("02-or-batch"), tmp_path / "sheets", count=2, seed=3, formats=())
    rows = [["student", "variant", "dW1", "db1"]]
    rows += [[payload(100 * i), str(1 + i % 2), payload(100 * i + 50), "0.1"] for i in range(1, 4)]
    rows += [[f"s{i}", payload(1000 + 100 * i), "[0, 0]", "0"] for i in range(3)]
    import csv

    with (tmp_path / "class.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    grade_class(tmp_path / "sheets", tmp_path / "class.csv", tmp_path / "out" / "grades.csv")
    page = tmp_path / "out" / "grades-report.html"
    html = page.read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)[1]
    assert "unsafe-inline" not in re.search(r"script-src ([^;]*)", policy)[1]
    assert verdict(browser, page) == CLEAN
    copy = tmp_path / "copy.html"
    copy.write_text(html.replace("</body>", "<script>window.__pwned = 99</script></body>"), encoding="utf-8")
    browser.get(copy.as_uri())
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")

"""The Markdown documents as readers get them: through MkDocs (pymdownx.arithmatex) and through
markdown-it-py (dollarmath, the MyST / Jupyter Book parser), typeset by KaTeX in headless Chromium.

No network: KaTeX comes from tests/katex/node_modules, Chromium and its driver from Debian
(/usr/bin/chromium, /usr/bin/chromedriver, given to selenium so it never looks for a driver online).
Each page must show no KaTeX error, every `aligned` block with as many rows as the Markdown wrote
(a lost `\\\\` collapses a derivation into one line), and every image loaded. A screenshot of one page
per pipeline is kept under test-artifacts/screenshots/ (or $TRACER_SCREENSHOTS), which git ignores.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs

from tracer.documents.build import build
from tracer.engine.chapter import bundled_chapters

HERE = Path(__file__).resolve().parent
KATEX = HERE / "katex" / "node_modules" / "katex" / "dist"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("TRACER_SCREENSHOTS", HERE.parent / "test-artifacts" / "screenshots"))
#: The page whose screenshot is kept, per pipeline.
SHOWN = "04-xor-hidden-layer"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


pytestmark = [
    needs("chromium", installed=Path(CHROMIUM).exists()),
    needs("chromedriver", installed=Path(CHROMEDRIVER).exists()),
    needs("KaTeX (npm)", installed=(KATEX / "katex.min.js").exists()),
    needs("selenium", installed=_installed("selenium")),
    needs("mkdocs", installed=_installed("mkdocs") and _installed("pymdownx")),
    needs("markdown-it-py", installed=_installed("markdown_it") and _installed("mdit_py_plugins")),
]

#: Typesets every maths element the way a site's KaTeX set-up does, and records what KaTeX reports.
TYPESET_JS = r"""
(function () {
  const report = {errors: [], display: 0, inline: 0, alignedRows: []};
  for (const el of document.querySelectorAll(".arithmatex, .math")) {
    let tex = el.textContent.trim();
    const display = el.tagName === "DIV" || el.classList.contains("block");
    tex = tex.replace(/^\\[\[(]/, "").replace(/\\[\])]$/, "");
    try {
      katex.render(tex, el, {displayMode: display, throwOnError: true});
    } catch (e) {
      report.errors.push(String(e.message || e) + " in: " + tex.slice(0, 80));
      continue;
    }
    display ? report.display++ : report.inline++;
    if (display && tex.includes("\\begin{aligned}")) {
      const table = el.querySelector(".katex-mathml mtable");
      report.alignedRows.push(table ? table.querySelectorAll(":scope > mtr").length : 0);
    }
  }
  window.tracerReport = report;
})();
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{base}katex/katex.min.css"></head>
<body style="max-width: 60em; margin: 1em auto; font-family: serif">
{body}
<script src="{base}katex/katex.min.js"></script>
<script src="{base}typeset.js"></script>
</body></html>
"""


def expected_aligned_rows(markdown: str) -> list[int]:
    """Rows of each `aligned` block of a Markdown text, counted from its source: the `\\\\` outside matrices."""
    rows = []
    for block in re.findall(r"^\$\$\n(.*?)\n\$\$$", markdown, flags=re.S | re.M):
        if r"\begin{aligned}" not in block:
            continue
        flat = re.sub(r"\\begin\{([pb]?matrix|cases)\}.*?\\end\{\1\}", "", block, flags=re.S)
        rows.append(flat.count("\\\\") + 1)
    return rows


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """Every bundled chapter as Markdown with its figures, and the KaTeX the pages load."""
    out = tmp_path_factory.mktemp("md")
    build([p.stem for p in bundled_chapters()], out, ["md"])
    return out


def _support_files(site: Path) -> None:
    shutil.copytree(KATEX, site / "katex", ignore=shutil.ignore_patterns("*.mjs", "contrib", "*.ttf", "*.woff"),
                    dirs_exist_ok=True)
    (site / "typeset.js").write_text(TYPESET_JS, encoding="utf-8")


@pytest.fixture(scope="module")
def mkdocs_site(documents, tmp_path_factory) -> Path:
    """The documents built by MkDocs with pymdownx.arithmatex (generic), as the README's mkdocs.yml says."""
    root = tmp_path_factory.mktemp("mkdocs")
    shutil.copytree(documents, root / "docs")
    theme = root / "theme"
    theme.mkdir()
    # A bare theme: the page's content and the KaTeX set-up, nothing fetched from the network.
    (theme / "main.html").write_text(PAGE.format(title="{{ page.title }}", body="{{ page.content }}",
                                                 base="{{ base_url }}/"), encoding="utf-8")
    _support_files(root / "docs")
    (root / "mkdocs.yml").write_text(
        "site_name: tracer\nuse_directory_urls: false\ntheme:\n  name: null\n  custom_dir: theme\n"
        "markdown_extensions:\n  - pymdownx.arithmatex:\n      generic: true\n  - tables\n  - footnotes\n",
        encoding="utf-8")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(root / "mkdocs.yml"),
                    "-d", str(root / "site")], check=True, capture_output=True)
    return root / "site"


def markdown_it_page(markdown: str, title: str) -> str:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    md = MarkdownIt("commonmark").enable("table").use(dollarmath_plugin, double_inline=True).use(footnote_plugin)
    return PAGE.format(title=title, body=md.render(markdown), base="")


@pytest.fixture(scope="module")
def markdown_it_site(documents, tmp_path_factory) -> Path:
    """The documents rendered by markdown-it-py with dollarmath (MyST's parser) into HTML pages."""
    site = tmp_path_factory.mktemp("markdown-it")
    shutil.copytree(documents / "figures", site / "figures")
    _support_files(site)
    for md in sorted(documents.glob("*.md")):
        (site / f"{md.stem}.html").write_text(markdown_it_page(md.read_text(encoding="utf-8"), md.stem),
                                              encoding="utf-8")
    return site


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,1400", "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for KaTeX's errors
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def read_page(driver, page: Path) -> dict:
    """Open `page` in Chromium: KaTeX's report and, per image, whether it loaded."""
    driver.get(page.as_uri())
    report = driver.execute_script("return window.tracerReport")
    assert report is not None, f"{page.name}: the KaTeX script did not run"
    report["images"] = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    return report


def check_page(report: dict, markdown: str, name: str) -> None:
    assert report["errors"] == [], f"{name}: KaTeX errors"
    assert report["display"] == len(re.findall(r"^\$\$$", markdown, flags=re.M)) // 2, f"{name}: display maths lost"
    assert report["inline"] > 0
    expected = expected_aligned_rows(markdown)
    assert expected and any(rows >= 2 for rows in expected)  # derivations to lose a row of (a drawn mask has one)
    assert report["alignedRows"] == expected, f"{name}: an aligned block lost rows (a \\\\ went missing)"
    images = report["images"]
    assert len(images) == len(re.findall(r"!\[", markdown)), f"{name}: images lost"
    assert all(loaded for _, loaded in images), f"{name}: images not loaded: {[s for s, ok in images if not ok]}"


@pytest.mark.parametrize("pipeline", ["mkdocs", "markdown-it"])
def test_every_chapter_renders_in_chromium(pipeline, documents, browser, request):
    site = request.getfixturevalue("mkdocs_site" if pipeline == "mkdocs" else "markdown_it_site")
    chapters = sorted(documents.glob("*.md"))
    assert len(chapters) >= 6
    for md in chapters:
        report = read_page(browser, site / f"{md.stem}.html")
        check_page(report, md.read_text(encoding="utf-8"), f"{pipeline}/{md.stem}")
        if md.stem == SHOWN:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(1000, min(int(height) + 100, 12000))  # the whole page
            browser.save_screenshot(str(SCREENSHOTS / f"{pipeline}-{md.stem}.png"))
            browser.set_window_size(1000, 1400)


def test_the_check_catches_a_lost_row_break(documents, browser, tmp_path):
    # What plain Python-Markdown does to a derivation: every "\\" becomes "\", one line is left.
    markdown = (documents / f"{SHOWN}.md").read_text(encoding="utf-8")
    broken = markdown.replace("\\\\ &=", "\\ &=", 1)  # the first row break of the first derivation
    assert broken != markdown
    _support_files(tmp_path)
    (tmp_path / "figures").symlink_to(documents / "figures")
    page = tmp_path / "broken.html"
    page.write_text(markdown_it_page(broken, "broken"), encoding="utf-8")
    with pytest.raises(AssertionError, match="lost rows"):
        check_page(read_page(browser, page), markdown, "broken")


README = HERE.parent / "README.md"
#: The CDN the README's mkdocs.yml loads KaTeX from; with no network, the test serves the npm copy for it.
CDN = re.compile(r"https://unpkg\.com/katex@[\d.]+/dist/")


def readme_site_files() -> tuple[str, str, str]:
    """The README's own steps for an MkDocs site: the build command, mkdocs.yml and docs/javascripts/katex.js,
    exactly as the README prints them."""
    text = README.read_text(encoding="utf-8")
    command = re.search(r"^1\. .*\n\s+`(tracer build [^`]*)`", text, flags=re.M)[1]
    config = re.search(r"```yaml\n(site_name: .*?)```", text, flags=re.S)[1]
    script = re.search(r"`docs/javascripts/katex\.js`.*?```js\n(.*?)```", text, flags=re.S)[1]
    return command, config, script


def test_the_readmes_mkdocs_steps_build_a_site_whose_maths_katex_typesets(tmp_path, browser):
    """Step by step as the README says: its command, its mkdocs.yml, its katex.js, `mkdocs build`; then
    every page in Chromium: each maths span typeset, no KaTeX error, the script that calls KaTeX after it."""
    from tracer.cli import main

    command, config, script = readme_site_files()
    assert config.index("katex.min.js") < config.index("auto-render") < config.index("javascripts/katex.js")
    args = command.split()[1:]
    assert args[:2] == ["build", "--format"] and args[-2:] == ["-o", "docs"]
    assert main(args[:-1] + [str(tmp_path / "docs")]) == 0
    (tmp_path / "mkdocs.yml").write_text(config, encoding="utf-8")
    (tmp_path / "docs" / "javascripts").mkdir()
    (tmp_path / "docs" / "javascripts" / "katex.js").write_text(script, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q"], cwd=tmp_path, check=True, capture_output=True)
    shutil.copytree(KATEX, tmp_path / "cdn", ignore=shutil.ignore_patterns("*.mjs"))
    pages = sorted(p for p in (tmp_path / "site").rglob("index.html") if p.parent.name[:2].isdigit())
    assert len(pages) == len(list(bundled_chapters()))
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert CDN.search(html), "the page loads KaTeX as the README's mkdocs.yml says"
        page.write_text(CDN.sub((tmp_path / "cdn").as_uri() + "/", html), encoding="utf-8")
        browser.get_log("browser")
        browser.get(page.as_uri())
        counts = browser.execute_script("""
            const spans = [...document.querySelectorAll('.arithmatex')];
            return [spans.length, spans.filter(s => s.querySelector('.katex')).length,
                    document.querySelectorAll('.katex-error').length];""")
        assert counts[0] > 20 and counts[1] == counts[0] and counts[2] == 0, (page.parent.name, counts)
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"
                  and re.search(r"katex|renderMathInElement|KaTeX", e["message"], flags=re.I)]
        assert not errors, errors

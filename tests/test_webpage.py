"""The chapter web pages, opened in headless Chromium with the network off: the step explorer shows the
trace's numbers, the console stays clean and no request leaves the page.

The oracle is the trace (tracer.run), rounded half-up to the decimals the page shows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import agrees, browser_ready, bundled_lecture, bundled_trace, needs, requests_made, worked_results
from tracer.documents.webpage import webpage
from tracer.engine.chapter import bundled_chapters, load_chapter

CHAPTERS = [p.stem for p in bundled_chapters()]


def shown_numbers(driver, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, selector)
    return [c.text.replace("\u2212", "-") for c in cells]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    written = {}
    for name in CHAPTERS:
        path = out / f"{name}.html"
        lec = bundled_lecture(name)
        path.write_text(webpage(load_chapter(name), lec.full, lec), encoding="utf-8")
        written[name] = path
    return written


@needs("chromium", browser_ready)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_step_explorer_shows_the_traces_numbers(pages, browser, chapter):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get_log("browser"), browser.get_log("performance")  # start clean
    browser.get(pages[chapter].as_uri())
    trace = bundled_trace(chapter)
    data = json.loads(browser.find_element(By.ID, "explorer-data").get_attribute("textContent"))
    slider = browser.find_element(By.ID, "step-slider")
    # Move the slider as a keyboard user does: three steps to the right.
    slider.send_keys(Keys.RIGHT, Keys.RIGHT, Keys.RIGHT)
    index = int(slider.get_attribute("value"))
    assert index == min(3, len(data["steps"]) - 1)
    step = data["steps"][index]
    assert f"step {step}," in browser.find_element(By.ID, "step-output").text
    if step in data["carried"]:  # a step the document works: the worked lines' figures (hand-carried)
        trace = bundled_lecture(chapter).hand
    last = trace.network.output.name
    for node, quantity, receives in (("Z1", "Z1", "dZ1"), (last, last, f"d{last}"), ("W1", "W1", "dW1")):
        browser.find_element(By.ID, f"node-{node}").click()
        heading = browser.find_element(By.CSS_SELECTOR, "#details h3").text
        assert heading.startswith(node) and heading.endswith(f"step {step}")
        values = shown_numbers(browser, "#details dd.value td")
        exact = np.ravel(trace.value(quantity, step))
        assert len(values) == exact.size
        assert all(agrees(t, x) for t, x in zip(values, exact)), (node, step, values, exact)
        if quantity in trace.network.on_path:
            got = shown_numbers(browser, "#details dd.receives td")
            exact = np.ravel(trace.value(receives, step))
            assert got and all(agrees(t, x) for t, x in zip(got, exact)), (node, step, got, exact)
    # Keyboard: focusing a node (Tab order) shows it too.
    browser.find_element(By.ID, "node-A0").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element.get_attribute("data-node")
    assert focused and browser.find_element(By.CSS_SELECTOR, "#details h3").text.startswith(
        {"A0": "X", "cost": "Cost"}.get(focused, focused))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors
    leaving = [u for u in requests_made(browser) if not u.startswith(("file:", "data:", "about:"))]
    assert not leaving


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_page_is_self_contained_and_small(pages, chapter):
    text = pages[chapter].read_text(encoding="utf-8")
    assert len(text.encode()) < 2_000_000
    own = text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace('src="data:', "").split("<script>", 1)[0]
    link = load_chapter(chapter).raw.get("article", {}).get("link")
    if link:  # the source's address, printed for a reader (a link to follow, not a resource the page loads)
        own = own.replace(link, "")
    for marker in ("http://", "https://", "src=", "<link"):  # the figures are data: URIs, inside the page
        assert marker not in own
    assert 'id="step-slider"' in text and "aria-label" in text


def test_a_page_is_byte_identical_from_run_to_run():
    chapter = load_chapter("02-or-batch")
    assert webpage(chapter, bundled_trace(chapter.name)) == webpage(chapter, bundled_trace(chapter.name))


def _maths(html: str) -> list[str]:
    """The LaTeX of every maths element of the page, in order (KaTeX sets it from data-tex)."""
    import html as html_module
    import re

    return [html_module.unescape(t) for t in re.findall(r'data-tex="([^"]*)"', html)]


def test_a_page_has_every_section_the_documents_have(pages):
    import re

    text = pages["04-xor-hidden-layer"].read_text(encoding="utf-8")
    for heading in ("The network and the data", "The derivatives the backward pass needs", "Training for 5000 steps",
                    "Against the article", "Parameters after the last update", "rounded half-up to 3 decimal places"):
        assert heading in text, heading
    # The figures of the long run, as images inside the page (no file beside it).
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', text)) == 3
    trace = bundled_trace("04-xor-hidden-layer")
    maths = _maths(text)
    # The starting parameters are the trace's at step 0, and the final ones its last update's, as printed.
    start = next(t for t in maths if "W_{1} = " in t).split("W_{1} = ", 1)[1]
    final = _maths(text.split('id="final-parameters"', 1)[1])[0]
    for shown, exact in ((start, trace.value("W1", 0)), (final, trace.value("W1_after", int(trace.steps[-1])))):
        numbers = re.findall(r"-?\d+\.\d+", shown.split(r"\end{bmatrix}")[0].replace("−", "-"))  # W₁'s matrix
        assert len(numbers) == exact.size and all(agrees(t, x) for t, x in zip(numbers, np.ravel(exact))), shown


def test_a_page_shows_the_articles_erratum_and_its_figures(pages):
    import tomllib

    text = pages["01-or-one-example"].read_text(encoding="utf-8")
    against = text.split('id="against"', 1)[1]
    chapter = load_chapter("01-or-one-example")
    printed = tomllib.loads(chapter.path.read_text(encoding="utf-8"))["article"]["figures"]
    costs = bundled_trace("01-or-one-example").costs
    wrong = [f for f in printed if f["quantity"] == "cost" and not agrees(f["value"], costs[f["step"]])]
    assert wrong  # the article's 0.109: the trace gives 0.110
    for f in wrong:
        exact = costs[f["step"]]
        computed = f"{exact:.{len(f['value'].split('.')[1])}f}"
        assert f["value"] in against and computed in against
        assert "Figures the article prints differently" in against and "Erratum" in text
    assert all(f["value"] in text for f in printed if isinstance(f["value"], str))


def test_a_comment_sits_under_the_node_it_explains(pages):
    text = pages["04-xor-hidden-layer"].read_text(encoding="utf-8")
    step = text.split("<h3>Step 0</h3>", 1)[1].split("<h3>Step", 1)[0]
    update = step.index("<h4>Update</h4>")
    for words in ("Use dimension analysis", "Why a sum?"):
        at = step.index(words)
        assert at < update  # in the backward pass, beside its node's lines, not after the update
        node = step.rfind("<strong>", 0, at)
        assert "Z_{2}" in step[node:at] or "Z_{1}" in step[node:at], words


@needs("chromium", browser_ready)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_at_a_worked_step_the_explorer_shows_the_worked_lines_figures(pages, browser, chapter):
    """The explorer and the worked example above it print the same figure for every quantity both show."""
    from selenium.webdriver.common.by import By

    lec = bundled_lecture(chapter)
    browser.get(pages[chapter].as_uri())
    data = json.loads(browser.find_element(By.ID, "explorer-data").get_attribute("textContent"))
    step = lec.worked_steps[0]
    assert step in data["carried"]
    results = {q: np.ravel(np.asarray(r, dtype=object)).tolist() for q, r in worked_results(lec.at(step)).items()}
    browser.execute_script("document.getElementById('step-slider').value = arguments[0];"
                           "document.getElementById('step-slider').dispatchEvent(new Event('input'));",
                           data["steps"].index(step))
    compared = 0
    for node in data["at"][data["steps"].index(step)]:
        if not browser.find_elements(By.ID, f"node-{node}"):  # Y's numbers are data: not a node of the graph
            continue
        browser.find_element(By.ID, f"node-{node}").click()
        for css, quantity in (("dd.value", node), ("dd.receives", "d" + node), ("dd.after", node + "_after")):
            if quantity in results and browser.find_elements(By.CSS_SELECTOR, f"#details {css}"):
                shown = shown_numbers(browser, f"#details {css} td")
                assert shown == results[quantity], (chapter, node, css, shown, results[quantity])
                compared += 1
    assert compared >= 5


@needs("chromium", browser_ready)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_maths_span_is_typeset_and_no_dollar_is_left_in_the_text(pages, browser, chapter):
    """The notes' $…$ (the author's maths, in "Against the article" and under the worked lines) included."""
    browser.get_log("browser")
    browser.get(pages[chapter].as_uri())
    text = browser.execute_script("return document.querySelector('main').innerText")  # what a reader sees
    assert "$" not in text, text[max(0, text.find("$") - 80):text.find("$") + 80]
    untypeset = browser.execute_script(
        "return [...document.querySelectorAll('.math')].filter(e => !e.querySelector('.katex')).length")
    assert untypeset == 0
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@needs("chromium", browser_ready)
@pytest.mark.parametrize("width", [1280, 390])
def test_no_page_runs_past_the_screen_and_every_node_is_a_tap_target_drawn_whole(pages, browser, width):
    """At a desktop's and a phone's width: the page is no wider than the screen (what is wider, a worked
    line's matrices or the graph, scrolls in its own box), each node of the graph is at least 44 × 44 px
    (WCAG's target size), and the chosen node's thick outline lies inside the picture."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(width, 900)
    try:
        for chapter in CHAPTERS:
            browser.get(pages[chapter].as_uri())
            scroll, client = browser.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert scroll <= client, (chapter, width, scroll, client)
            nodes = browser.find_elements(By.CSS_SELECTOR, ".node")
            sizes = [(n.get_attribute("data-node"), n.rect["width"], n.rect["height"]) for n in nodes]
            assert all(w >= 44 and h >= 44 for _, w, h in sizes), (chapter, width, sizes)
            nodes[-1].click()
            outside = browser.execute_script("""
                const svg = document.querySelector('svg.graph').getBoundingClientRect();
                return [...document.querySelectorAll('.node ellipse, .node rect')].filter(s => {
                  const b = s.getBoundingClientRect(), w = parseFloat(getComputedStyle(s).strokeWidth) / 2;
                  return b.left - w < svg.left - 0.5 || b.right + w > svg.right + 0.5 ||
                         b.top - w < svg.top - 0.5 || b.bottom + w > svg.bottom + 0.5;
                }).length""")
            assert outside == 0, (chapter, width)
    finally:
        browser.set_window_size(1200, 1600)


@needs("chromium", browser_ready)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_graph_figures_matrix_entries_stand_apart_in_chromium(browser, chapter, tmp_path):
    """The Markdown's graph SVG as Chromium draws it, in the serif it falls back to: in every row of a
    matrix, each number ends at least 2 px before the next begins (never −0.703−0.752)."""
    from tracer.documents.build import build as build_documents

    build_documents([chapter], tmp_path, ["md"])
    (svg,) = (tmp_path / "figures").glob("*-graph-step-*.svg")
    browser.get(svg.as_uri())
    rows = browser.execute_script("""
        const rows = {};
        for (const t of document.querySelectorAll('text')) {
          if (!/^[\\u2212-]?\\d/.test(t.textContent)) continue;
          const b = t.getBoundingClientRect();
          const key = t.parentNode.id + '@' + Math.round(b.top + b.height / 2);
          (rows[key] = rows[key] || []).push([b.left, b.right, t.textContent]);
        }
        return Object.values(rows).filter(r => r.length > 1);""")
    assert rows or load_chapter(chapter).m == 1  # one example: the scalar view, no matrix
    tight = [(a[2], b[2], round(b[0] - a[1], 1)) for row in rows
             for a, b in zip(sorted(row), sorted(row)[1:]) if b[0] - a[1] < 2]
    assert not tight, tight


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_carried_figure_that_differs_shows_its_every_digit_value_on_the_page(pages, chapter):
    """As in the Markdown and LaTeX documents (tests/test_render.py): under each worked line whose carried
    figures differ from carrying every digit, the every-digit figure, the differing entries of a matrix in
    bold; under no other line."""
    import html
    import re

    from conftest import differing_figures
    from tracer.documents.render import number_tex

    text = html.unescape(pages[chapter].read_text(encoding="utf-8"))
    worked = text[text.index('id="worked-title"'):]
    blocks = [b for b in re.split(r'(?=<div class="math display" data-tex="\\begin\{aligned\} )', worked)[1:]]
    figures = differing_figures(chapter)
    assert len(blocks) >= len(figures)
    for (i, quantity, differ), block in zip(figures, blocks):
        block = block.split("</div>\n<p><strong>")[0]
        assert ('class="every-digit"' in block) == bool(differ), (chapter, i, quantity)
        for figure in differ.values():
            assert number_tex(figure) in block.split('class="every-digit"')[1], (chapter, quantity, figure)

"""The practice page, filled in by Selenium in headless Chromium with the network off: every verdict it shows
is `tracer check`'s for the same answers, for every bundled chapter with an exercise.

The answers: right ones, more decimals, fewer, each catalogued mistake (the asked quantities alone, and
every node), and errors carried forward from them; an earlier slip no mistake explains is the one case
where the page says it cannot tell and the checker reruns the step.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import browser_ready, needs, requests_made
from tracer.engine.chapter import bundled_chapters, has_section, load_chapter
from tracer.engine.train import Traces
from tracer.errors import TracerError
from tracer.exercises.answers import StepChecker, check
from tracer.exercises.sheets import open_sheets, write_exercises
from tracer.rounding import format_number

CHAPTERS = [p.stem for p in bundled_chapters() if has_section(load_chapter(p), "exercise")]
SEED = 2027


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    out = {}
    for name in CHAPTERS:
        folder = tmp_path_factory.mktemp(name)
        write_exercises(load_chapter(name), folder, count=1, seed=SEED, formats=("md", "practice"))
        out[name] = folder
    return out


def page_data(driver) -> dict:
    """The checker's data the page judges by, as the page holds it (computed once, when the page was written)."""
    from selenium.webdriver.common.by import By

    return json.loads(driver.find_element(By.ID, "practice-data").get_attribute("textContent"))


def typed(numbers: list[str], shape: list[int]) -> str:
    """An answer as `tracer check` reads it, in the layout the page's grid has."""
    if len(numbers) == 1:
        return numbers[0]
    if len(shape) < 2 or 1 in shape:
        return "[" + ", ".join(numbers) + "]"
    rows = [numbers[i:i + shape[1]] for i in range(0, len(numbers), shape[1])]
    return "[" + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]"


def fill(driver, answers: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Put every number in its box (the others empty), let the page judge, and read its verdicts."""
    driver.execute_script("""
        var answers = arguments[0];
        document.querySelectorAll('input[data-q]').forEach(function (input) {
          var mine = answers[input.getAttribute('data-q')];
          input.value = mine ? mine[Number(input.getAttribute('data-i'))] : '';
        });
        var any = document.querySelector('input[data-q]');
        any.dispatchEvent(new Event('input'));""", answers)
    return driver.execute_script("""
        var out = {};
        document.querySelectorAll('.quantity').forEach(function (box) {
          out[box.getAttribute('data-q')] = {status: box.getAttribute('data-status'), right: box.getAttribute('data-right'),
            mistakes: box.getAttribute('data-mistakes'), carried: box.getAttribute('data-carried'),
            text: box.querySelector('.verdict').textContent};
        });
        return out;""")


def verdicts(report) -> dict[str, dict[str, str]]:
    return {j.quantity: {"status": j.status, "right": str(j.numbers_right),
                         "mistakes": "\n".join(f"{k}: {s}" for k, s in j.mistakes), "carried": " ".join(j.carried_from)}
            for j in report.judgements if j.status != "unanswered"}


def cases(data: dict, v) -> list[tuple[str, dict[str, list[str]]]]:
    """(name, numbers per quantity) of every set of answers the test types."""
    d = data["decimals"]
    asked = data["asked"]
    exact = {q["q"]: [format_number(float(x), d) for x in np.ravel(v.value(q["q"]))] for q in data["quantities"]}
    out = [("right", {q: exact[q] for q in asked}), ("right, every node", dict(exact)),
           ("more decimals", {q: [format_number(float(x), d + 2) for x in np.ravel(v.value(q))] for q in asked}),
           ("fewer decimals", {q: [format_number(float(x), d - 1) for x in np.ravel(v.value(q))] for q in asked})]
    for m in data["mistakes"]:
        if any(q in m["typed"] and m["typed"][q] != exact[q] for q in asked):
            out.append((f"{m['key']}: {m['says']}", {q: m["typed"][q] for q in asked if q in m["typed"]}))
        every = {q: m["typed"].get(q, exact[q]) for q in data["order"]}
        if every != exact:
            out.append((f"{m['key']}, every node: {m['says']}", every))
    return out


@needs("chromium", browser_ready)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_verdict_on_the_page_is_tracer_checks(sets, browser, chapter):
    folder = sets[chapter]
    page = folder / "handouts" / "practice-01.html"
    sheets = open_sheets(folder)
    v = sheets.variant("1")
    checker = StepChecker(v.chapter, v.spec.step, Traces(v.chapter, v.trace, v.hand, carry="full"))  # `check`'s,
    # made once for every set of answers, as `tracer grade` makes it once for a class
    browser.get_log("browser"), browser.get_log("performance")
    browser.get(page.as_uri())
    data = page_data(browser)
    shapes = {q["q"]: q["shape"] for q in data["quantities"]}
    order = data["asked"] + [q for q in data["order"] if q not in data["asked"]]
    seen = {"carried_forward": 0, "wrong": 0, "right": 0, "too_few_digits": 0}
    for name, answers in cases(data, v):
        shown = fill(browser, answers)
        report = checker.judge([f"{q} = {typed(answers[q], shapes[q])}" for q in order if q in answers],
                               asked=v.spec.ask, decimals=v.spec.decimals, points=v.spec.points)
        expected = verdicts(report)
        for q in data["order"]:
            page_says = {k: shown[q][k] for k in ("status", "right", "mistakes", "carried")}
            if q not in expected:
                assert page_says["status"] == "", (name, q)
                continue
            assert page_says == expected[q], (chapter, name, q, shown[q]["text"])
            seen[expected[q]["status"]] += 1
    assert all(seen.values()), seen  # every verdict was met: right, wrong, carried forward, not precise enough
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors
    assert not [u for u in requests_made(browser) if not u.startswith(("file:", "data:", "about:"))]


@needs("chromium", browser_ready)
def test_numbers_are_judged_as_they_are_typed_and_a_slip_the_page_cannot_rerun_is_said_so(sets, browser):
    from selenium.webdriver.common.by import By

    chapter = CHAPTERS[0]
    folder = sets[chapter]
    v = open_sheets(folder).variant("1")
    browser.get((folder / "handouts" / "practice-01.html").as_uri())
    data = page_data(browser)
    d = data["decimals"]
    first = data["asked"][0]
    box = browser.find_element(By.CSS_SELECTOR, f'input[data-q="{first}"][data-i="0"]')
    right = format_number(float(np.ravel(v.value(first))[0]), d)
    box.send_keys(right[:-1])  # one digit short: not yet right at the asked decimals
    mark = browser.find_element(By.CSS_SELECTOR, f'.mark[data-q="{first}"]')
    assert mark.text in ("wrong", "not precise enough")
    box.send_keys(right[-1])
    assert mark.text == "right"
    # An earlier slip no catalogued mistake makes: the checker reruns the step from it, the page says it cannot.
    z = data["order"][0]
    checker = StepChecker(v.chapter, v.spec.step, Traces(v.chapter, v.trace, v.hand, carry="full"))
    slip = np.asarray(v.value(z)) + 0.1
    _, hand = checker.carried({z: np.vectorize(lambda x: float(format_number(x, d)))(slip)})
    slipped = {q: [format_number(float(x), d) for x in np.ravel(hand[q])] for q in data["order"]
               if q not in checker.parameters}
    slipped[z] = [format_number(float(x), d) for x in np.ravel(slip)]
    shown = fill(browser, slipped)
    report = check(v.chapter, [f"{q} = {typed(t, np.shape(v.value(q)))}" for q, t in slipped.items()], v.spec.step,
                   asked=v.spec.ask, decimals=d, points=v.spec.points, traces=Traces(v.chapter, v.trace, v.hand))
    carried = [j.quantity for j in report.judgements if j.status == "carried_forward"]
    assert carried  # the checker credits what follows from the slip ...
    for q in carried:  # ... the page says wrong, and that it cannot tell
        assert shown[q]["status"] == "wrong" and "this page cannot tell" in shown[q]["text"], (q, shown[q])


def test_a_secret_set_gets_no_practice_page(tmp_path, capsys):
    from tracer.cli import main

    with pytest.raises(TracerError, match="only a public practice set"):
        write_exercises(load_chapter("02-or-batch"), tmp_path, count=1, key=bytes(32), formats=("practice",))
    assert not any(tmp_path.iterdir())
    # Refused before anything is written, a new key included.
    assert main(["exercises", "02-or-batch", "--new-key", str(tmp_path / "k.key"), "--format", "md,practice",
                 "-o", str(tmp_path / "sheets")]) == 2
    assert "would hand out its key" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_the_page_allows_its_scripts_by_hash_only_and_fetches_nothing(sets):
    import base64
    import hashlib
    import html

    text = (sets[CHAPTERS[0]] / "handouts" / "practice-01.html").read_text(encoding="utf-8")
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1))
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert len(scripts) == 2
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "Public practice sheet" in text and "only public practice sheets have a page" in text
    own = re.sub(r"http://www\.w3\.org/[\w/.]+", "", text.split('<script type="application/json"', 1)[0])  # namespaces
    for marker in ("http://", "https://", "<link"):
        assert marker not in own


def test_a_practice_set_is_byte_identical_from_run_to_run(tmp_path):
    chapter = load_chapter(CHAPTERS[0])
    write_exercises(chapter, tmp_path / "a", count=1, seed=3, formats=("practice",))
    write_exercises(chapter, tmp_path / "b", count=1, seed=3, formats=("practice",))
    assert (tmp_path / "a" / "handouts" / "practice-01.html").read_bytes() == \
        (tmp_path / "b" / "handouts" / "practice-01.html").read_bytes()

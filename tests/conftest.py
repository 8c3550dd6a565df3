"""Shared fixtures: bundled chapters and their traces, trained once per test session."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tracer
from tracer.documents import model
from tracer.documents.model import recorded_needs
from tracer.engine import keys
from tracer.rounding import shown


@functools.lru_cache(maxsize=None)
def bundled_trace(name: str, carry: str = "full") -> tracer.Trace:
    return tracer.run(tracer.load_chapter(name), carry=carry)


@functools.lru_cache(maxsize=None)
def bundled_lecture(name: str):
    """A bundled chapter's document model with its full and hand-carried traces (slides, notebook, page)."""
    from tracer.documents.lecture import lecture

    return lecture(tracer.load_chapter(name), bundled_trace(name))


def worked_results(lines) -> dict[str, list]:
    """Each quantity's printed result in a step's worked lines, whole: a quantity worked one example's
    column at a time (a softmax) has its columns put side by side; a part of any other shape (one
    example's Jacobian) is left out, as no single figure shows it whole."""
    whole, columns = {}, {}
    for ln in lines:
        if not ln.part:
            whole[ln.quantity] = ln.result
        elif len(ln.part) == 2 and ln.part[0] is None:
            columns.setdefault(ln.quantity, {})[ln.part[1]] = [row[0] for row in ln.result]
    for quantity, by_column in columns.items():
        whole[quantity] = [list(row) for row in zip(*(by_column[j] for j in sorted(by_column)))]
    return whole


@functools.lru_cache(maxsize=None)
def differing_figures(name: str) -> list[tuple[int, str, dict]]:
    """(line's position, quantity, {entry: every-digit figure}) for every worked line whose carried
    figures differ from carrying every digit, found from two runs of the chapter (every digit; carried as
    printed) printed by the one rule, independently of the document model's own comparison."""
    chapter = tracer.load_chapter(name)
    steps = recorded_needs(chapter)
    full = tracer.run(chapter, record=sorted(set(chapter.recorded_steps()) | set(steps)))
    hand = tracer.run(chapter, carry="rounded", record=steps, steps=steps[-1] + 1)
    lines = model.document_model(chapter, full, hand).lines
    out = []
    for i, line in enumerate(lines):
        decimals = chapter.display.decimals_of(keys.before_update(line.quantity))
        whole = re.fullmatch(r"-?\d+", str(np.asarray(line.result, dtype=object).ravel()[0]))
        def part(v):
            v = np.asarray(v)
            return v if line.part is None else model._take(v, line.part)
        carried, every = part(hand.at(line.step)[line.quantity]), part(full.at(line.step)[line.quantity])
        assert np.asarray(line.result, dtype=object).size == carried.size
        differ = {}
        for index in np.ndindex(carried.shape):
            c, e = ((str(int(carried[index])), str(int(every[index]))) if whole else
                    (shown(carried[index], decimals), shown(every[index], decimals)))
            if c != e:
                differ[index] = e
        out.append((i, line.quantity, differ))
    return out


@pytest.fixture(scope="session")
def or_batch() -> tracer.Chapter:
    """Part I's vectorised OR batch (chapter 02), the chapter most exercise tests work on."""
    return tracer.load_chapter("02-or-batch")


@pytest.fixture
def trace_of():
    """trace_of("02-or-batch") is that bundled chapter's trace (cached across tests)."""
    return bundled_trace


def agrees(text: str, exact: float) -> bool:
    """A printed number is `exact` rounded half-up to the precision it shows (e-notation: its significant digits)."""
    from decimal import ROUND_HALF_UP, Decimal

    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{exact:.{len(mantissa.split('.')[1])}e}".split("e") == [mantissa, f"{int(exponent):+03d}"]
    places = len(text.split(".")[1]) if "." in text else 0
    return Decimal(text) == Decimal(repr(float(exact))).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def needs(program: str, installed: bool | None = None) -> pytest.MarkDecorator:
    """Skip where `program` is missing, except in CI (CI=true), where .ci/run installs it: there the
    test runs and fails, so a missing install step cannot hide behind a skip."""
    missing = shutil.which(program) is None if installed is None else not installed
    return pytest.mark.skipif(missing and not os.environ.get("CI"),
                              reason=f"{program} is not installed (.ci/run installs it)")


@pytest.fixture(autouse=True, scope="session")
def _verify_cache_in_a_temporary_folder(tmp_path_factory):
    """SymPy's cached derivations and formula verdicts go to a folder of this session, not ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
browser_ready = os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Selenium, with the network off (a test checks no request leaves)."""
    if os.environ.get("CI"):
        from selenium import webdriver
    else:
        webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1600", "--proxy-server=127.0.0.1:9", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # The Service's path is given, so Selenium never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    yield driver
    driver.quit()


def requests_made(driver) -> list[str]:
    """The URLs the page asked for since the performance log was last read."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


KATEX = Path(__file__).parent / "katex"


def katex_failures(fragments: list[dict]) -> list[dict]:
    """The fragments KaTeX refuses to typeset (skipped without KaTeX, except in CI)."""
    if (shutil.which("node") is None or not (KATEX / "node_modules" / "katex").is_dir()) and not os.environ.get("CI"):
        pytest.skip("KaTeX is not installed (.ci/run: npm install --prefix tests/katex --no-save katex)")
    done = subprocess.run(["node", str(KATEX / "check.js")], input=json.dumps(fragments),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [{**f, "tex": fragments[f["index"]]["tex"][:200]} for f in json.loads(done.stdout)]


#: The test files that take longest (each builds or opens every chapter in a browser, pdflatex or a kernel),
#: run first: the workers share out one file at a time in collection order, and a long file started last
#: would leave the other worker idle while it runs.
LONGEST_FIRST = ("test_slides.py", "test_webpage.py", "test_practice.py", "test_notebook.py",
                 "test_markdown_in_browsers.py", "test_build.py", "test_interrupts.py", "test_render.py")


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


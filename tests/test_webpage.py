"""The chapter web pages, opened in headless Chromium with the network off: the step explorer shows the
trace's numbers, the console stays clean and no request leaves the page.

The oracle is the trace (tracer.run), rounded half-up to the decimals the page shows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import agrees, bundled_lecture, bundled_trace, needs
from tracer.documents.webpage import webpage
from tracer.engine.chapter import bundled_chapters, load_chapter

CHAPTERS = [p.stem for p in bundled_chapters()]
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
browser_ready = Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()


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


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("CI"):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
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
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


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
    last = len(trace.meta["layers"])
    for node, quantity, receives in (("Z1", "Z1", "dZ1"), (f"A{last}", f"A{last}", f"dA{last}"), ("W1", "W1", "dW1")):
        browser.find_element(By.ID, f"node-{node}").click()
        heading = browser.find_element(By.CSS_SELECTOR, "#details h3").text
        assert heading.startswith(node) and heading.endswith(f"step {step}")
        values = shown_numbers(browser, "#details dd.value td")
        exact = np.ravel(trace.value(quantity, step))
        assert len(values) == exact.size
        assert all(agrees(t, x) for t, x in zip(values, exact)), (node, step, values, exact)
        if not (trace.meta["from_logits"] and quantity == receives[1:]):
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
    for marker in ("http://", "https://", "src=", "<link"):
        assert marker not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").split("<script>", 1)[0]
    assert 'id="step-slider"' in text and "aria-label" in text


def test_a_page_is_byte_identical_from_run_to_run():
    chapter = load_chapter("02-or-batch")
    assert webpage(chapter, bundled_trace(chapter.name)) == webpage(chapter, bundled_trace(chapter.name))

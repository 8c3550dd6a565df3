"""The chapter notebooks: run in a fresh python3 kernel, every number they print equals the trace's.

The oracle is the trace itself, rounded half-up to the decimals the notebook printed: the
hand-carried trace for the worked cells (which carry figures as written, as the document does), the
full-precision one for the long run. The notebook recomputes everything in plain NumPy without tracer.
"""

from __future__ import annotations

import concurrent.futures
import os
import re

import numpy as np
import pytest

from conftest import agrees, bundled_lecture, bundled_trace, needs
from tracer.engine.chapter import bundled_chapters, load_chapter

if os.environ.get("CI"):  # .ci/run installs them: there a missing one fails
    import nbclient
    import nbformat
else:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

from tracer.documents.notebook import UPDATED, notebook_text  # noqa: E402

NUMBER = re.compile(r"-?\d+\.\d+(?:e[+-]\d+)?|-?\d+(?:e[+-]\d+)?")
SHOWN = re.compile(r"^(\w+(?: \(updated\))?) =(.*)$")
TABLE = re.compile(r"^step (\d+): cost = (\S+)$")
CHAPTERS = [p.stem for p in bundled_chapters()]


def execute(text: str) -> object:
    nb = nbformat.reads(text, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=False).execute()
    return nb


def printed(nb) -> list[tuple[int, str, list[str], str]]:
    """(step, trace name, the numbers printed for it, which trace) for every `show` and cost-table line."""
    found: list[tuple[int, str, list[str], str]] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        step = cell.metadata.get("tracer", {}).get("step")
        which = cell.metadata.get("tracer", {}).get("trace", "hand")
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
        for line in text.splitlines():
            table = TABLE.match(line)
            if table:
                found.append((int(table[1]), "costs", [table[2]], which))
                continue
            shown = SHOWN.match(line)
            if shown:
                assert step is not None, f"a cell without a step prints {line!r}"
                name = shown[1].replace(UPDATED, "_after")
                found.append((step, name, NUMBER.findall(shown[2]), which))
            elif found and line.startswith("  ["):
                found[-1][2].extend(NUMBER.findall(line))
    return found


def traces(chapter: str):
    """(full-precision, hand-carried) traces of a bundled chapter, as its documents use them."""
    lec = bundled_lecture(chapter)
    return lec.full, lec.hand


def mismatches(nb, chapter: str) -> tuple[int, list[str]]:
    full, hand = traces(chapter)
    count, wrong = 0, []
    for step, name, numbers, which in printed(nb):
        trace = hand if which == "hand" else full
        exact = trace.costs[step:step + 1] if name == "costs" else np.ravel(trace.value(name, step))
        assert len(numbers) == exact.size, f"{chapter} step {step} {name}: printed {numbers}"
        for text, x in zip(numbers, exact):
            count += 1
            if not agrees(text, float(x)):
                wrong.append(f"{chapter} step {step} {name}: printed {text}, trace {x!r}")
    return count, wrong


@pytest.fixture(scope="module")
def executed():
    """Every bundled chapter's notebook, executed once in its own fresh kernel."""
    texts = {name: notebook_text(load_chapter(name), bundled_trace(name), bundled_lecture(name)) for name in CHAPTERS}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two kernels at a time, each fresh
        return dict(zip(texts, pool.map(execute, texts.values())))


@needs("python3")
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_number_a_notebook_prints_is_the_traces_at_its_printed_precision(executed, chapter):
    count, wrong = mismatches(executed[chapter], chapter)
    assert not wrong
    steps = {s for s, name, _, _ in printed(executed[chapter]) if name != "costs"}
    assert count >= 15 and 0 in steps


@needs("python3")
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_notebook_prints_every_result_of_the_document_as_the_document_prints_it(executed, chapter):
    model = bundled_lecture(chapter).model
    shown = {(s, name): numbers for s, name, numbers, which in printed(executed[chapter]) if which == "hand"}
    for line in model.lines:
        assert shown.get((line.step, line.quantity)) == list(np.ravel(np.asarray(line.result, dtype=object))), \
            (chapter, line.step, line.quantity)
    if model.long_run:
        assert [shown_row for shown_row in printed(executed[chapter]) if shown_row[1] == "costs"] == [
            (row["step"], "costs", [row["cost"]], "full") for row in model.long_run["table"]]


def test_the_notebook_needs_only_numpy_and_names_things_as_the_article():
    text = notebook_text(load_chapter("04-xor-hidden-layer"), bundled_trace("04-xor-hidden-layer"),
                         bundled_lecture("04-xor-hidden-layer"))
    nb = nbformat.reads(text, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "tracer" not in code
    imports = set(re.findall(r"^\s*(?:import|from) (\w+)", code, flags=re.M))
    assert imports <= {"numpy", "decimal", "matplotlib"}
    for name in ("Z1 = keep(W1 @ A0 + b1, 3)", "dZ2 = keep(dA2 * dA2_dZ2, 3)", "dW1 = keep(dZ1 @ A0.T, 3)",
                 "dA1 = keep(W2.T @ dZ2, 3)"):
        assert name in code
    assert nb.metadata.kernelspec.name == "python3"
    nbformat.validate(nb)


def test_a_notebook_is_byte_identical_from_run_to_run():
    chapter = load_chapter("06-xor-relu-adam")
    assert notebook_text(chapter, bundled_trace(chapter.name)) == notebook_text(chapter, bundled_trace(chapter.name))


@needs("python3")
def test_an_altered_cell_is_caught():
    text = notebook_text(load_chapter("02-or-batch"), bundled_trace("02-or-batch"), bundled_lecture("02-or-batch"))
    nb = nbformat.reads(text, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("dA1_dZ1 = "))
    assert "A1 * (1 - A1)" in cell.source
    cell.source = cell.source.replace("A1 * (1 - A1)", "A1 * (1 + A1)", 1)
    count, wrong = mismatches(execute(nbformat.writes(nb)), "02-or-batch")
    assert wrong and any("dZ1" in w for w in wrong)


@needs("python3")
def test_a_notebook_tells_the_documents_whole_story_and_prints_the_final_parameters(executed):
    chapter = "04-xor-hidden-layer"
    nb = executed[chapter]
    story = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for section in ("The network and the data", "Starting parameters", "The derivatives the backward pass needs",
                    "Against the article", "Parameters after the last update", "rounded half-up to 3 decimal places"):
        assert section in story, section
    assert story.count("](data:image/svg+xml;base64,") == 2  # the decision boundaries, inside the notebook
    full = bundled_lecture(chapter).full
    last = int(full.meta["steps_run"]) - 1
    final = {name for step, name, _, which in printed(nb) if which == "full" and step == last}
    # Checked against the trace's parameters after the last update by the test above, like every printed number.
    assert {"W1_after", "b1_after", "W2_after", "b2_after"} <= final

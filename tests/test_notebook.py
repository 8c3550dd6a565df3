"""The chapter notebooks: run in a fresh python3 kernel, every number they print equals the trace's.

The oracle is the trace itself, rounded half-up to the decimals the notebook printed: the
hand-carried trace for the worked cells (which carry figures as written, as the document does), the
full-precision one for the long run. The notebook recomputes everything in plain NumPy without tracer.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re

import numpy as np
import pytest

from conftest import agrees, bundled_lecture, bundled_trace, needs
from tracer.abbreviation import as_matrix
from tracer.engine.chapter import bundled_chapters, has_section, load_chapter

if os.environ.get("CI"):  # .ci/run installs them: there a missing one fails
    import nbclient
    import nbformat
else:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

from tracer.documents.notebook import UPDATED, notebook_text  # noqa: E402

NUMBER = re.compile(r"-?\d+\.\d+(?:e[+-]\d+)?|-?\d+(?:e[+-]\d+)?")
SHOWN = re.compile(r"^(\w+(?: \(updated\))?)(?: \(example (\d+)\))? =(.*)$")
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
                found.append((int(table[1]), ("costs", None), [table[2]], which))
                continue
            shown = SHOWN.match(line)
            if shown:
                assert step is not None, f"a cell without a step prints {line!r}"
                name = shown[1].replace(UPDATED, "_after")
                example = int(shown[2]) - 1 if shown[2] else None  # one example's matrix of a stack
                found.append((step, (name, example), NUMBER.findall(shown[3]), which))
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
    for step, (name, example), numbers, which in printed(nb):
        trace = hand if which == "hand" else full
        value = trace.costs[step:step + 1] if name == "costs" else trace.value(name, step)
        exact = np.ravel(value if example is None else np.asarray(value)[..., example])
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
    steps = {s for s, (name, _), _, _ in printed(executed[chapter]) if name != "costs"}
    assert count >= 15 and 0 in steps


@needs("python3")
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_notebook_prints_every_result_of_the_document_as_the_document_prints_it(executed, chapter):
    lec = bundled_lecture(chapter)
    model = lec.model
    shown = {(s, name): numbers for s, name, numbers, which in printed(executed[chapter]) if which == "hand"}
    for line in model.lines:
        expected = list(np.ravel(np.asarray(line.result, dtype=object)))
        part = line.part
        if part is not None and len(part) == 3:  # one example's Jacobian, printed as that example's matrix
            got = shown.get((line.step, (line.quantity, part[2])))
        elif part is not None and len(part) == 4:  # an entry or map of an image (by example) or of a kernel (whole)
            shape = np.shape(lec.hand.value(line.quantity, line.step))
            whole = shown.get((line.step, (line.quantity, None)))
            at = lambda index: tuple(slice(None) if i is None else i for i in index)  # noqa: E731
            if whole is not None:
                got = list(np.ravel(np.asarray(whole, dtype=object).reshape(shape)[at(part)]))
            else:
                example = np.asarray(shown.get((line.step, (line.quantity, part[3]))), dtype=object)
                got = list(np.ravel(example.reshape(shape[:-1])[at(part[:3])]))
        elif part is not None:  # one example's column of a quantity the notebook prints whole
            whole = np.asarray(shown.get((line.step, (line.quantity, None))), dtype=object)
            got = list(whole.reshape(np.shape(lec.hand.value(line.quantity, line.step)))[:, part[1]])
        else:
            got = shown.get((line.step, (line.quantity, None)))
        assert got == expected, (chapter, line.step, line.quantity, part)
    if model.long_run:
        assert [(s, name, numbers, which) for s, (name, _), numbers, which in printed(executed[chapter])
                if name == "costs"] == [(row["step"], "costs", [row["cost"]], "full") for row in model.long_run["table"]]


def test_the_notebook_needs_only_numpy_and_names_things_as_the_article():
    text = notebook_text(load_chapter("04-xor-hidden-layer"), bundled_trace("04-xor-hidden-layer"),
                         bundled_lecture("04-xor-hidden-layer"))
    nb = nbformat.reads(text, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "tracer" not in code
    imports = set(re.findall(r"^\s*(?:import|from) (\w+)", code, flags=re.M))
    assert imports <= {"numpy", "matplotlib", "decimal", "json"}  # and two modules of the standard library
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
    final = {name for step, (name, _), _, which in printed(nb) if which == "full" and step == last}
    # Checked against the trace's parameters after the last update by the test above, like every printed number.
    assert {"W1_after", "b1_after", "W2_after", "b2_after"} <= final


EXERCISES = [name for name in CHAPTERS if has_section(load_chapter(name), "exercise")]
VERDICT = {"right": "right", "too_few_digits": "not precise enough", "wrong": "wrong"}


def student_answers(chapter: str) -> dict[str, dict[str, str]]:
    """Right answers, wrong ones (every number off by more than the tolerance) and ones with a decimal too few."""
    from tracer.engine.chapter import exercise_spec

    ch = load_chapter(chapter)
    spec = exercise_spec(ch)
    trace = bundled_trace(chapter)
    out = {"right": {}, "wrong": {}, "short": {}}
    for k, q in enumerate(spec.ask):
        value = as_matrix(np.atleast_2d(trace.value(q, spec.step)))  # an image quantity: its stacked matrix
        # wrong by amounts that no sum of the other wrong answers gives (none is carried forward from them)
        for kind, shift, places in (("right", 0.0, spec.decimals), ("wrong", 0.011 * (k + 1) ** 2, spec.decimals),
                                    ("short", 0.0, spec.decimals - 1)):
            rows = [[f"{float(x) + shift:.{places}f}" for x in row] for row in value]
            flat = [x for row in rows for x in row]
            out[kind][q] = flat[0] if len(flat) == 1 else "[" + ", ".join(flat) + "]" if len(rows) == 1 else \
                "[" + ", ".join("[" + ", ".join(row) + "]" for row in rows) + "]"
    return out


@needs("python3")
@pytest.mark.parametrize("chapter", EXERCISES)
def test_the_student_notebooks_check_cell_says_what_tracer_check_says(chapter):
    from tracer.exercises.sheets import check_answers

    lec = bundled_lecture(chapter)
    nb = nbformat.reads(notebook_text(load_chapter(chapter), bundled_trace(chapter), lec), as_version=4)
    answer_cell, check_cell = [c for c in nb.cells if c.get("metadata", {}).get("tracer", {}).get("exercise")]
    assert "tracer" not in check_cell.source and "None," in answer_cell.source
    sets = student_answers(chapter)
    cells = []
    for kind, answers in sets.items():  # right, then wrong, then too few decimals: each set checked in turn
        cells.append(nbformat.v4.new_code_cell(f"my_answers = {json.dumps(answers)}"))
        cells.append(nbformat.v4.new_code_cell(check_cell.source.split("\ncheck(my_answers)")[0] + "\ncheck(my_answers)"))
    at = nb.cells.index(check_cell) + 1
    nb.cells[at:at] = cells
    done = execute(nbformat.writes(nb))
    outputs = [c for c in done.cells if c.cell_type == "code" and "def check(answers)" in c.source]
    assert len(outputs) == 4
    blank = "".join(o.get("text", "") for o in outputs[0].outputs)
    assert all(line.endswith(": not answered") for line in blank.splitlines())
    for (kind, answers), cell in zip(sets.items(), outputs[1:]):
        said = dict(line.split(": ", 1) for line in "".join(o.get("text", "") for o in cell.outputs).splitlines())
        report = check_answers(chapter, [f"{q} = {a}" for q, a in answers.items()])
        for j in report.judgements:
            assert said[j.quantity].startswith(VERDICT[j.status]), (kind, j.quantity, said[j.quantity], j.status)
        statuses = {j.status for j in report.judgements}
        # A decimal too few is still right where the value is exact at fewer (chapter 1's ŷ = 0.5).
        assert statuses == {"right"} if kind == "right" else statuses == {"wrong"} if kind == "wrong" \
            else "too_few_digits" in statuses <= {"too_few_digits", "right"}


@pytest.mark.parametrize("chapter", ["02-or-batch", "04-xor-hidden-layer", "07-softmax-three-classes"])
def test_the_story_shows_every_digit_beside_each_carried_figure_that_differs(chapter):
    """As the documents do: each worked line whose carried figures differ from carrying every digit has the
    every-digit figure under it in its cell, and the note on why is said once."""
    from conftest import differing_figures
    from tracer.documents.render import number_tex

    nb = nbformat.reads(notebook_text(load_chapter(chapter), bundled_trace(chapter), bundled_lecture(chapter)),
                        as_version=4)
    story = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    figures = [differ for _, _, differ in differing_figures(chapter) if differ]
    shown = story.split("*With every digit carried:*")[1:]
    assert len(shown) == len(figures)
    for differ, text in zip(figures, shown):
        assert all(number_tex(figure) in text.split("\n")[0] for figure in differ.values())
    assert story.count("Why two figures?") == 1

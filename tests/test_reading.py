"""What the trained network's numbers mean (tracer/documents/reading.py): each sentence checked against
what the trace shows, computed here another way (every recorded step, the gradients, the boundary's
points on a grid)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import bundled_trace
from tracer.documents.figures import boundary_grid
from tracer.documents.reading import _unit, after_training, boundary_shape, dead_units, predictions
from tracer.documents.model import document_model
from tracer.documents.render import document_traces
from tracer.engine.chapter import bundled_chapters, load_chapter


def test_the_dead_relu_unit_of_chapter_6_is_named_and_its_weight_never_moved():
    chapter, trace = load_chapter("06-xor-relu-adam"), bundled_trace("06-xor-relu-adam")
    said = dead_units(chapter, trace)
    assert len(said) == 1 and said[0].startswith("The second unit of $A_{1}$ is dead")
    since = int(re.search(r"from step (\d+) on", said[0]).group(1))
    steps = [int(s) for s in trace.steps]
    for s in steps[steps.index(since):]:  # from then on: no example reaches it, no gradient reaches its weights
        v = trace.at(s)
        assert np.all(v["Z1"][1] <= 0) and np.all(v["dW1"][1] == 0) and v["db1"][1, 0] == 0
    assert not np.all(trace.at(since - 1)["Z1"][1] <= 0)
    start = trace.at(0)["W1"][1, 1]
    assert "$-0.636$" in said[0] and round(start, 3) == -0.636
    assert all(trace.at(s)["W1"][1, 1] == start for s in steps) and trace.final["W1"][1, 1] == start


@pytest.mark.parametrize("name", ["02-or-batch", "04-xor-hidden-layer", "06-xor-relu-adam"])
def test_no_unit_is_called_dead_that_an_example_still_reaches(name):
    chapter, trace = load_chapter(name), bundled_trace(name)
    live = [j for j in range(trace.at(0)["Z1"].shape[0]) if np.any(trace.at(int(trace.steps[-1]))["Z1"][j] > 0)]
    said = " ".join(dead_units(chapter, trace))
    assert not any(_unit(j).capitalize() in said for j in live)


def test_the_predictions_are_the_last_steps_against_the_targets():
    chapter, trace = load_chapter("04-xor-hidden-layer"), bundled_trace("04-xor-hidden-layer")
    said = predictions(chapter, trace)
    last = int(trace.steps[-1])
    yhat = trace.at(last)["A2"].ravel()
    assert f"At step {last}" in said and "each on the right side of $0.5$" in said
    assert re.findall(r"\$(\d\.\d+)\$", said.split(":")[0]) == [f"{x:.3f}" for x in yhat]
    assert np.all((yhat >= 0.5) == (trace.Y.ravel() == 1))


def _line_residual(name: str) -> float:
    """How far the trained network's 0.5 contour is from a straight line, on a fine grid (grid units)."""
    chapter, trace = load_chapter(name), bundled_trace(name)
    x1, x2, yhat = boundary_grid(chapter, trace, n=121)
    above = yhat[0] >= 0.5
    points = [(x1[j], x2[i]) for i in range(len(x2)) for j in range(len(x1) - 1) if above[i, j] != above[i, j + 1]]
    p = np.array(points)
    coef = np.polyfit(p[:, 0], p[:, 1], 1) if np.ptp(p[:, 0]) > np.ptp(p[:, 1]) else None
    if coef is None:  # a steep line: fit x₁ against x₂
        coef = np.polyfit(p[:, 1], p[:, 0], 1)
        return float(np.max(np.abs(np.polyval(coef, p[:, 1]) - p[:, 0])) / (x1[1] - x1[0]))
    return float(np.max(np.abs(np.polyval(coef, p[:, 0]) - p[:, 1])) / (x2[1] - x2[0]))


@pytest.mark.parametrize("name, straight", [("02-or-batch", True), ("04-xor-hidden-layer", False),
                                            ("03-xor-feature-cross", False)])
def test_what_is_said_of_the_boundarys_shape_is_what_its_points_show(name, straight):
    said = boundary_shape(load_chapter(name))
    assert ("is a straight line" in said) == straight
    assert (_line_residual(name) < 1.5) == straight  # within a grid cell of a line, or far from any line


def test_every_bundled_chapter_with_a_long_run_reads_its_numbers_in_the_document():
    for path in bundled_chapters():
        chapter = load_chapter(path.stem)
        full, hand = document_traces(chapter)
        model = document_model(chapter, full, hand)
        if model.long_run:
            assert model.long_run["reading"] == after_training(chapter, full) and model.long_run["reading"]

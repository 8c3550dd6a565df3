"""How long a run takes: refused up front when it would not end in time, shown while it runs on a terminal."""

from __future__ import annotations

import pytest

import tracer
from tracer.engine.graph import LayerSpec, from_layers
from tracer import progress
from tracer.engine.chapter import bundled_chapters


def test_the_bundled_chapters_are_estimated_to_take_seconds_and_a_day_long_run_a_day():
    for path in bundled_chapters():
        chapter = tracer.load_chapter(path)
        seconds = chapter.steps * progress.step_seconds(chapter.network, chapter.n_inputs, chapter.batch_size)
        assert seconds < 10, path.stem
    # the case: two layers of 10,000 units, ten million steps
    wide = from_layers((LayerSpec(10_000, "sigmoid"), LayerSpec(10_000, "sigmoid"), LayerSpec(1, "sigmoid")),
                       "squared_error")
    assert progress.duration(10_000_000 * progress.step_seconds(wide, 2, 2)) == "9 days"
    assert [progress.duration(s) for s in (40, 700, 12_600)] == ["40 s", "12 min", "3.5 h"]


def test_the_limit_can_be_raised(monkeypatch):
    monkeypatch.setenv("TRACER_MAX_MINUTES", "2000")
    assert progress.max_minutes() == 2000
    monkeypatch.setenv("TRACER_MAX_MINUTES", "lots")
    assert progress.max_minutes() == progress.MAX_MINUTES


@pytest.mark.parametrize("on", [True, False])
def test_a_long_run_on_a_terminal_shows_its_step_and_the_time_left_then_clears_the_line(on, monkeypatch, capsys):
    monkeypatch.setattr(progress, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    progress.enable(on)
    try:
        tracer.run(tracer.load_chapter("02-or-batch"))
    finally:
        progress.enable(False)
    err = capsys.readouterr().err
    if not on:
        assert err == ""
        return
    lines = [line for line in err.split("\r") if line.strip()]
    assert lines[0].startswith("tracer: training 02-or-batch: step 256 of 5,000 (5%), about ")
    assert lines[-1].startswith("tracer: training 02-or-batch: step 4,864 of 5,000 (97%)")
    assert err.endswith("\r") and err.rsplit("\r", 2)[-2].strip() == ""  # the line is cleared at the end

"""Writing files all at once."""

from __future__ import annotations

import os
import stat

import pytest

from tracer.output import write_atomic


def test_writes_the_whole_file_with_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        import importlib

        import tracer.output

        importlib.reload(tracer.output)
        path = tracer.output.write_atomic(tmp_path / "sub" / "a.txt", "héllo")
    finally:
        os.umask(umask)
    assert path.read_text(encoding="utf-8") == "héllo"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary file left


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "b.txt", 12345)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_staged_files_appear_only_when_the_block_succeeds(tmp_path):
    from tracer.output import STAGING_PREFIX, location, staged

    with staged():
        write_atomic(tmp_path / "docs" / "a.md", "a")
        with staged():  # a writer's own block joins the command's
            write_atomic(tmp_path / "docs" / "figures" / "b.svg", "b")
        assert not (tmp_path / "docs").exists()
        assert location(tmp_path / "docs" / "a.md").read_text() == "a"
    assert (tmp_path / "docs" / "a.md").read_text() == "a"
    assert (tmp_path / "docs" / "figures" / "b.svg").read_text() == "b"
    assert not list(tmp_path.glob(STAGING_PREFIX + "*"))


def test_a_rebuild_stages_a_document_and_its_existing_figures_folder_side_by_side(tmp_path):
    """The second `tracer build` into a folder: figures/ exists, yet the staged .tex finds its figures."""
    from tracer.output import STAGING_PREFIX, location, staged

    (tmp_path / "docs" / "figures").mkdir(parents=True)
    (tmp_path / "docs" / "figures" / "b.pdf").write_text("old")
    with staged() as staging:
        staging.reserve(tmp_path / "docs" / "a.tex")  # as build does before its workers fork
        write_atomic(tmp_path / "docs" / "figures" / "b.pdf", "new")
        write_atomic(tmp_path / "docs" / "a.tex", "tex")
        tex = location(tmp_path / "docs" / "a.tex")
        assert (tex.parent / "figures" / "b.pdf").read_text() == "new"  # what pdflatex, run there, reads
    assert (tmp_path / "docs" / "figures" / "b.pdf").read_text() == "new"
    assert (tmp_path / "docs" / "a.tex").read_text() == "tex"
    assert not list((tmp_path / "docs").rglob(STAGING_PREFIX + "*"))


def test_a_failing_block_leaves_every_folder_as_it_was(tmp_path):
    from tracer.output import staged

    (tmp_path / "a.md").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with staged():
            write_atomic(tmp_path / "a.md", "new")
            write_atomic(tmp_path / "sub" / "b.md", "new")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["a.md"] and (tmp_path / "a.md").read_text() == "old"


def test_a_file_where_a_folder_must_go_is_a_clear_error(tmp_path):
    from tracer.errors import TracerError

    (tmp_path / "report").write_text("a file")
    with pytest.raises(TracerError, match="is a file, not a folder"):
        write_atomic(tmp_path / "report" / "a.md", "x")


# --------------------------------------------------------------------------- whole or nothing (issue 22)


def test_an_output_folder_is_staged_beside_it_private_and_put_in_place_with_one_rename(tmp_path):
    from tracer.output import STAGING_PREFIX, staged

    out = tmp_path / "sheets"
    out.mkdir()
    (out / "handout.md").write_text("the instructor's")
    kept = (out / "handout.md").stat().st_ino
    with staged() as staging:
        staging.folder(out)
        write_atomic(out / "exercise-01.md", "new")
        write_atomic(out / "figures" / "g.svg", "svg")
        stages = list(tmp_path.glob(STAGING_PREFIX + "*"))
        assert len(stages) == 1 and stat.S_IMODE(stages[0].stat().st_mode) == 0o700  # outside the folder
        assert sorted(p.name for p in out.iterdir()) == ["handout.md"]  # nothing in place yet
        folder_before = out.stat().st_ino
    assert sorted(p.name for p in out.iterdir()) == ["exercise-01.md", "figures", "handout.md"]
    assert out.stat().st_ino != folder_before  # the new folder took the old one's place in one rename
    assert (out / "handout.md").stat().st_ino == kept  # the files the command did not write are the same files
    assert not list(tmp_path.glob(STAGING_PREFIX + "*"))


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_failure_while_publishing_puts_back_what_was_published(tmp_path, monkeypatch, exchange):
    import tracer.output as output
    from tracer.errors import TracerError

    if not exchange:
        monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.md").write_text("old")
    (tmp_path / "b.csv").write_text("old b")
    real = output._publish
    calls = []

    def fail_second(stage):
        calls.append(stage)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(stage)

    monkeypatch.setattr(output, "_publish", fail_second)
    with pytest.raises(TracerError, match=r"\(no space left on device\); nothing was changed"):
        with output.staged() as staging:
            staging.folder(tmp_path / "a")
            write_atomic(tmp_path / "a" / "new.md", "new")
            write_atomic(tmp_path / "b.csv", "new b")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["old.md"]
    assert (tmp_path / "b.csv").read_text() == "old b" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b.csv"]


def _killed_mid_publish(tmp_path, monkeypatch, publish_first: int):
    """What SIGKILL leaves when it lands after `publish_first` files of an in-place publish: the journal of a
    process that no longer exists."""
    import json

    import tracer.output as output

    (tmp_path / "one.csv").write_text("old one")
    staging = output.Staging()
    for name in ("one.csv", "two.csv"):
        staging.reserve(tmp_path / name).write_text(f"new {name}")
    stage = staging.stages[0]
    staging._prepare(stage)
    stage.plan = output._plan(stage)
    output._write_journal(stage.container, {"state": "publishing", "root": str(stage.root), "whole": False,
                                            "existed": True, "moves": stage.plan, "run": [str(stage.container)]})
    stage.plan = stage.plan[:publish_first]
    output._publish(stage)
    journal = json.loads((stage.container / output.JOURNAL).read_text())
    journal["pid"] = 2**22 + 12345  # no such process
    (stage.container / output.JOURNAL).write_text(json.dumps(journal))
    return stage.container


@pytest.mark.parametrize("published, says, after", [
    (1, "its half-done publish was rolled back", {"one.csv": "old one"}),
    (2, "its outputs had all been put in place", {"one.csv": "new one.csv", "two.csv": "new two.csv"})])
def test_the_next_run_rolls_back_or_completes_what_a_killed_publish_left(tmp_path, monkeypatch, published, says,
                                                                         after):
    import tracer.output as output

    container = _killed_mid_publish(tmp_path, monkeypatch, published)
    notes = []
    monkeypatch.setattr(output, "NOTE", notes.append)
    with output.staged():
        write_atomic(tmp_path / "three.csv", "3")
    assert notes == [f"removed {container}, left by an interrupted run; {says}"] and not container.exists()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {**after, "three.csv": "3"}


def test_a_secret_is_written_600_and_a_new_file_never_replaces_one(tmp_path):
    from tracer.errors import TracerError
    from tracer.output import staged, write_secret

    with staged():
        write_secret(tmp_path / "sheets" / "answers.json", "{}")
        write_secret(tmp_path / "course.key", "k", new=True)
    assert stat.S_IMODE((tmp_path / "sheets" / "answers.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "course.key").stat().st_mode) == 0o600
    with pytest.raises(TracerError, match="never overwritten"):
        with staged():
            write_atomic(tmp_path / "sheets" / "other.md", "x")
            write_secret(tmp_path / "course.key", "other", new=True)
    assert (tmp_path / "course.key").read_text() == "k" and not (tmp_path / "sheets" / "other.md").exists()
    with pytest.raises(TracerError, match="never overwritten"):
        with staged():
            write_secret(tmp_path / "late.key", "mine", new=True)
            (tmp_path / "late.key").write_text("someone else's")  # appears while the command runs
    assert (tmp_path / "late.key").read_text() == "someone else's"


def test_an_output_folder_that_holds_the_current_folder_is_filled_in_place(tmp_path, monkeypatch):
    from tracer.output import STAGING_PREFIX, staged

    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.md").write_text("old")
    inode = tmp_path.stat().st_ino
    with staged() as staging:
        staging.folder(tmp_path)  # `-o .`: the folder a shell is in is not swapped under it
        write_atomic(tmp_path / "new.md", "new")
        assert [p.parent for p in tmp_path.glob(STAGING_PREFIX + "*")] == [tmp_path]
    assert tmp_path.stat().st_ino == inode and sorted(p.name for p in tmp_path.iterdir()) == ["new.md", "old.md"]


def test_an_output_folder_given_as_a_link_is_filled_where_the_link_points(tmp_path):
    from tracer.output import staged

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with staged() as staging:
        staging.folder(tmp_path / "link")
        write_atomic(tmp_path / "link" / "a.md", "a")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "a.md").read_text() == "a"

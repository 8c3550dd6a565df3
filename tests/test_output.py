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

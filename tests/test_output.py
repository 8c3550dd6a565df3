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

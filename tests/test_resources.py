"""The bundled chapters and templates ship inside the wheel, so a plain wheel install works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tracer.engine.chapter import bundled_chapters

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_every_bundled_chapter_and_template(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tracer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for chapter in bundled_chapters():
        assert f"tracer/chapters/{chapter.name}" in names
    for template in (ROOT / "templates").rglob("*"):
        if template.is_file() and not template.name.startswith("."):
            assert f"tracer/templates/{template.relative_to(ROOT / 'templates').as_posix()}" in names
    assert any(n.endswith("entry_points.txt") for n in names)

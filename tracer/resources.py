"""Where the bundled chapters and templates are: inside the installed wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled_path(kind: str) -> Path:
    """The folder of bundled `kind` ("chapters" or "templates").

    The wheel installs them as tracer/chapters and tracer/templates; in a source checkout they are
    the top-level chapters/ and templates/ folders beside tracer/.
    """
    inside = _PACKAGE / kind
    return inside if inside.is_dir() else _PACKAGE.parent / kind

"""Where the bundled chapters and templates are: inside the installed wheel, or in the source tree."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_path(kind: str) -> Path:
    """The folder of bundled `kind` ("chapters" or "templates")."""
    try:
        found = resources.files(f"tracer.{kind}")
        if found.is_dir():
            return Path(str(found))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / kind

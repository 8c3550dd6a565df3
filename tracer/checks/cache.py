"""The verify cache: results that depend on definitions and code, never on a chapter's numbers.

SymPy's derivations of each node type and its verdicts on the article's formula claims take
seconds, and they are the same every run. Each is kept as one small JSON file under
`$XDG_CACHE_HOME/tracer/` (`~/.cache/tracer/` by default), named by a hash of everything the result
depends on: the code that computes it, the definitions it reads, and SymPy's version.

Two processes may fill the same entry at once: each writes its own temporary file and renames it
into place, so a reader sees a whole file or none. A file that cannot be read, or does not hold
what its kind expects, is ignored and computed again. Nothing read from the cache is executed:
entries are plain JSON, checked field by field by the caller's `decode`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: Bumped when the layout of entries changes.
FORMAT = 1


def folder() -> Path:
    """Where entries live: $XDG_CACHE_HOME/tracer, or ~/.cache/tracer."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracer"


def source_of(*files: str | Path) -> str:
    """A hash of source files, for keys: an entry is stale as soon as the code that made it changes."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def sympy_version() -> str:
    """SymPy's version, without importing SymPy."""
    from importlib import metadata

    try:
        return metadata.version("sympy")
    except metadata.PackageNotFoundError:  # SymPy is a core dependency: only a broken install
        return "unknown"


def cached(kind: str, key: Any, compute: Callable[[], T], encode: Callable[[T], Any],
           decode: Callable[[Any], T]) -> T:
    """The entry of `kind` for `key` (anything JSON can write), computed and stored when missing.

    `decode` turns the stored JSON back into a result and raises ValueError, TypeError or KeyError
    when it does not hold what it should; the entry is then computed again.
    """
    identity = json.dumps([FORMAT, kind, key, sympy_version()], sort_keys=True, ensure_ascii=True)
    path = folder() / f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and stored.get("identity") == identity:
            return decode(stored["value"])
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        pass
    result = compute()
    _store(path, {"identity": identity, "value": encode(result)})
    return result


def _store(path: Path, entry: dict[str, Any]) -> None:
    """Write `entry` whole or not at all; a cache that cannot be written is no cache, not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(entry, file, ensure_ascii=True)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass

"""Writing outputs all at once: a reader never sees a half-written file or a half-built folder.

Every writer goes through `write_atomic` (or `atomic_file`). Outside `staged()` a file is written
to a temporary name in its folder and renamed. Inside `staged()` (every command wraps its work in
one) files go to a hidden staging folder next to where they belong and are moved into place only
when the whole block succeeds; an error or Ctrl-C removes the staging folder and leaves every
output folder exactly as it was. A path that cannot be written raises a TracerError naming it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from tracer.errors import TracerError


def _file_mode() -> int:
    """What open() would give a new file under the user's umask (mkstemp alone gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()
STAGING_PREFIX = ".tracer-staging-"


class Staging:
    """The staging folders of one command, one per existing folder the outputs go under.

    A file for `target` is staged at `<stage>/<target relative to its nearest existing folder>`,
    so files keep their relative layout (a .tex finds its figures) and the rename that puts them
    in place stays on one file system. The folders live on disk, so forked workers that inherit
    this object stage into them too (call `reserve` for their output folder before forking).
    """

    def __init__(self) -> None:
        self.stages: dict[Path, Path] = {}  # existing folder → its staging folder

    def reserve(self, target: str | os.PathLike) -> Path:
        """Where `target` (a file path) is staged; makes the staging folder on first use."""
        target = Path(os.path.abspath(target))
        base = _existing_folder(target)
        # A folder already staging takes everything under it, even into subfolders that exist
        # (a rebuild's figures/): the staged .tex still finds its figures beside it.
        outer = [b for b in self.stages if base.is_relative_to(b)]
        if outer:
            base = max(outer, key=lambda b: len(b.parts))
        stage = self.stages.get(base)
        if stage is None:
            try:
                stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base))
            except OSError as exc:
                raise TracerError(f"{_shown(target)}: cannot be written ({_reason(exc)})") from None
            self.stages[base] = stage
        return stage / target.relative_to(base)

    def staged_path(self, target: str | os.PathLike) -> Path | None:
        """Where `target` was staged, or None if it was not."""
        target = Path(os.path.abspath(target))
        for base, stage in self.stages.items():
            if target.is_relative_to(base) and (stage / target.relative_to(base)).exists():
                return stage / target.relative_to(base)
        return None

    def commit(self) -> None:
        """Move every staged file into place (checking first that each place can take it)."""
        moves = []
        for base, stage in self.stages.items():
            for staged in sorted(p for p in stage.rglob("*") if not p.is_dir()):
                target = base / staged.relative_to(stage)
                if target.is_dir():
                    raise TracerError(f"{_shown(target)}: cannot be written (a folder of that name exists)")
                _existing_folder(target)  # a file where a folder must go
                moves.append((staged, target))
        for staged, target in moves:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
            except OSError as exc:
                raise TracerError(f"{_shown(target)}: cannot be written ({_reason(exc)})") from None

    def discard(self) -> None:
        for stage in self.stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        self.stages.clear()


_active: Staging | None = None


@contextlib.contextmanager
def staged() -> Iterator[Staging]:
    """Stage every output written inside the block; move them into place only if it succeeds.

    Nested blocks join the outermost one, so a command that calls several writers commits once.
    """
    global _active
    if _active is not None:
        yield _active
        return
    _active = staging = Staging()
    try:
        yield staging
        staging.commit()
    finally:
        _active = None
        staging.discard()


def location(path: str | os.PathLike) -> Path:
    """Where the file written for `path` is now: its staged copy during a command, else `path`."""
    staged_copy = _active.staged_path(path) if _active is not None else None
    return staged_copy if staged_copy is not None else Path(path)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary handle whose contents become `path` all at once when the block ends without error."""
    path = Path(path)
    where = _active.reserve(path) if _active is not None else path
    try:
        if _active is None:
            _existing_folder(Path(os.path.abspath(path)))
        where.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=f".{where.name}.", suffix=".tmp")
    except OSError as exc:
        raise TracerError(f"{_shown(path)}: cannot be written ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            os.fchmod(handle.fileno(), _MODE)
        os.replace(tmp, where)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TracerError(f"{_shown(path)}: cannot be written ({_reason(exc)})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to `path` all at once (staged when a command is running); return `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic expects bytes or str, got {type(data).__name__}")
    with atomic_file(path) as handle:
        handle.write(payload)
    return Path(path)


def _existing_folder(target: Path) -> Path:
    """The nearest folder above `target` that exists; a TracerError if a file stands in the way."""
    folder = target.parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        raise TracerError(f"{_shown(target)}: cannot be written ({_shown(folder)} is a file, not a folder)")
    return folder


def _shown(path: Path) -> str:
    """A path as the user would write it: relative to the current folder when under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()

"""Writing outputs all at once: a reader never sees a half-written file or a half-built folder.

Every writer goes through `write_atomic` (or `atomic_file`, or `write_secret` for what students must
not see). Outside `staged()` a file is written to a temporary name in its folder and renamed.
Inside `staged()` (every command wraps its work in one) nothing reaches an output folder until the
whole command has succeeded:

- A command's output folder (`Staging.folder`: `tracer build -o DIR`, `tracer exercises -o DIR`) is
  staged whole in a hidden folder beside it, `.tracer-staging-…` (mode 700, outside the folder a
  user shares): the new files, and at the end a hard link to every file of the folder that the
  command did not rewrite. It is then put in place with one rename (Linux: an atomic exchange of
  the two folders; elsewhere two renames and the journal below). So the folder is at every moment
  either exactly as it was or exactly the complete new output, even if the process is killed.
- Files written into a folder the command does not own (`tracer grade`'s grades.csv beside other
  work; an output folder that holds the current folder or whose parent cannot be written) are
  staged in a hidden mode-700 folder inside it and moved in one by one, with the signals held.
- Each staging folder carries a journal (who made it; what it is putting in place). A run killed
  with SIGKILL leaves its staging folder behind: the next run that writes beside it finds it, rolls
  back a half-done publish from the journal, removes it and says so in one line.

An error, Ctrl-C, SIGTERM or SIGHUP removes the staging folders and leaves every output folder
exactly as it was. A path that cannot be written raises a TracerError naming it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from tracer import interrupts
from tracer.errors import TracerError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _umask()
#: What open() and mkdir() give a new file and folder under the user's umask (mkstemp alone gives 0600).
_MODE, _FOLDER_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK
#: A file only the instructor may read: answer keys, answers, quiz banks, the instructor key.
SECRET_MODE = 0o600
STAGING_PREFIX = ".tracer-staging-"
JOURNAL = "journal.json"
#: A staging folder without a journal this old belongs to no live run (one is written as it is made).
STALE_AFTER = 60.0
#: Where notes about what an interrupted run left go (stderr, one line each).
NOTE: Callable[[str], None] = lambda message: print(f"tracer: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- renames


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _identity(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


# --------------------------------------------------------------------------- staging


@dataclass
class _Stage:
    """Everything a command writes under `root`, staged in `container` ("new" mirrors `root`).

    whole: `root` is replaced by the staged folder in one rename (the staged folder first receives
    hard links to the root's files that were not rewritten); otherwise each staged file is moved to
    its place in `root`, which exists and is left otherwise untouched."""

    root: Path
    container: Path
    whole: bool
    new_files: set[str] = field(default_factory=set)  # files that must not exist yet (a new key)
    existed: bool = False
    plan: list[dict] = field(default_factory=list)  # what publishing does, as the journal records it

    @property
    def new(self) -> Path:
        return self.container / "new"

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.new)) for p in self.new.rglob("*") if not p.is_dir()) \
            if self.new.exists() else []


class Staging:
    """The staging folders of one command (see the module's docstring).

    A file for `target` is staged at `<stage>/new/<target relative to the stage's root>`, so files keep
    their relative layout (a .tex finds its figures). The folders live on disk, so forked workers
    that inherit this object stage into them too: declare their output folder (`folder`) before forking.
    """

    def __init__(self) -> None:
        self.stages: list[_Stage] = []
        self.committed = False
        self.messages: list[tuple[str, bool]] = []
        self._owner = os.getpid()
        self._recovered: set[Path] = set()

    # ------------------------------------------------------------------ where things go

    def folder(self, path: str | os.PathLike) -> None:
        """Declare `path` an output folder of the command: staged whole, put in place with one rename."""
        target = _canonical(path)
        if os.path.lexists(target) and not target.is_dir():
            raise TracerError(f"{_shown(Path(path))}: cannot be written (it is a file, not a folder)")
        if self._stage_of(target) is not None and self._stage_of(target).root == target:
            return
        if target.exists():
            cwd = Path.cwd().resolve()
            whole = not (cwd == target or cwd.is_relative_to(target) or os.path.ismount(target)
                         or not os.access(target.parent, os.W_OK | os.X_OK))
            self._new_stage(target, whole, Path(path))
        else:
            top = _top_missing(target, Path(path))
            if self._stage_of(top) is None or not self._stage_of(top).whole:
                self._new_stage(top, True, Path(path))

    def reserve(self, target: str | os.PathLike, new: bool = False) -> Path:
        """Where `target` (a file path) is staged; makes its staging folder on first use. `new`: the file
        must not exist when the command's outputs are put in place (an instructor key)."""
        shown = Path(target)
        canonical = _canonical(target)
        stage = self._stage_of(canonical)
        if stage is None:
            parent = canonical.parent
            if os.path.lexists(parent) and not parent.is_dir():
                raise TracerError(f"{_shown(shown)}: cannot be written ({_shown(_file_above(shown))} is a file, "
                                  "not a folder)")
            stage = self._new_stage(parent, False, shown) if parent.exists() else \
                self._new_stage(_top_missing(canonical, shown), True, shown)
        if canonical.is_dir():
            raise TracerError(f"{_shown(shown)}: cannot be written (a folder of that name exists)")
        rel = canonical.relative_to(stage.root)
        if new:
            stage.new_files.add(str(rel))
        return stage.new / rel

    def staged_path(self, target: str | os.PathLike) -> Path | None:
        """Where `target` was staged, or None if it was not."""
        canonical = _canonical(target)
        stage = self._stage_of(canonical)
        if stage is None:
            return None
        staged = stage.new / canonical.relative_to(stage.root)
        return staged if staged.exists() else None

    def _stage_of(self, target: Path) -> _Stage | None:
        """The deepest stage whose root holds `target`."""
        holding = [s for s in self.stages if target == s.root or target.is_relative_to(s.root)]
        return max(holding, key=lambda s: len(s.root.parts)) if holding else None

    def _new_stage(self, root: Path, whole: bool, shown: Path) -> _Stage:
        if os.getpid() != self._owner:
            raise TracerError(f"{_shown(shown)}: a worker wrote outside the output folder declared for it")
        where = root.parent if whole else root
        for folder in (where, root) if whole and root.exists() else (where,):
            self._recover(folder)
        try:
            # Named for this run (its pid and start), so a run killed before its journal exists is known too.
            container = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_run_id()}-", dir=where))  # mode 700
            _write_journal(container, {"state": "staging"})
            (container / "new").mkdir(mode=0o700)
        except OSError as exc:
            if "container" in locals():
                shutil.rmtree(container, ignore_errors=True)
            raise TracerError(f"{_shown(shown)}: cannot be written ({_reason(exc)})") from None
        stage = _Stage(root, container, whole)
        self.stages.append(stage)
        return stage

    # ------------------------------------------------------------------ putting everything in place

    def commit(self) -> None:
        """Put every staged output in place: checked and prepared first, then published (the caller holds
        the signals); a failure on the way puts back what was already published."""
        stages = [s for s in self.stages if s.files()]
        for stage in stages:
            self._prepare(stage)
        run = [str(stage.container) for stage in stages]
        try:
            for stage in stages:
                stage.plan = _plan(stage)
                _write_journal(stage.container, {"state": "publishing", "root": str(stage.root), "whole": stage.whole,
                                                 "existed": stage.existed, "moves": stage.plan, "run": run}, sync=True)
        except OSError as exc:
            raise TracerError(f"{_shown(stage.root)}: cannot be written ({_reason(exc)}); nothing was changed") \
                from None
        done: list[_Stage] = []
        try:
            for stage in stages:
                done.append(stage)
                _publish(stage)
        except OSError as exc:
            for undo in reversed(done):
                _roll_back(undo.container, _read_journal(undo.container) or {})
            raise TracerError(f"{_shown(stage.root)}: cannot be written ({_reason(exc)}); nothing was changed") \
                from None
        self.committed = True
        for stage in stages:
            with contextlib.suppress(OSError):
                _write_journal(stage.container, {"state": "published"})

    def _prepare(self, stage: _Stage) -> None:
        root, new = stage.root, stage.new
        for rel in stage.files():
            target = root / rel
            if target.is_dir():
                raise TracerError(f"{_shown(target)}: cannot be written (a folder of that name exists)")
            above = _file_above(target, stop=root)
            if above is not None:
                raise TracerError(f"{_shown(target)}: cannot be written ({_shown(above)} is a file, not a folder)")
            if rel in stage.new_files and os.path.lexists(target):
                raise TracerError(f"{_shown(target)}: the file exists; it is never overwritten (nothing was changed)")
        stage.existed = root.exists()
        if not stage.whole:
            return
        if stage.existed:
            try:
                _link_tree(root, new)
                os.chmod(new, stat.S_IMODE(os.stat(root).st_mode))
            except OSError as exc:
                raise TracerError(f"{_shown(root)}: cannot be written ({_reason(exc)})") from None
        else:
            os.chmod(new, _FOLDER_MODE)

    def discard(self) -> None:
        for stage in self.stages:
            shutil.rmtree(stage.container, ignore_errors=True)
        self.stages.clear()

    # ------------------------------------------------------------------ what an interrupted run left

    def _recover(self, folder: Path) -> None:
        """Roll back and remove what a killed run left in `folder` (its staging folders), saying so."""
        if folder in self._recovered or not folder.is_dir():
            return
        self._recovered.add(folder)
        try:
            entries = [e for e in os.scandir(folder) if e.name.startswith(STAGING_PREFIX) and e.is_dir()]
        except OSError:
            return
        for entry in entries:
            container = Path(entry.path)
            journal = _read_journal(container)
            owner = journal or _named_owner(entry.name)
            if owner is None:  # not named by a run (an older tracer's): stale once it is a minute old
                try:
                    if time.time() - entry.stat().st_mtime < STALE_AFTER:
                        continue
                except OSError:
                    continue
            elif _alive(owner):
                continue  # another run is writing here
            said = _recover_run(container, journal or {})
            if os.path.lexists(container):
                NOTE(f"{_shown(container)}: left by an interrupted run, and it cannot be removed: remove it by hand")
            else:
                NOTE(f"removed {_shown(container)}, left by an interrupted run; {said}")


def _recover_run(container: Path, journal: dict) -> str:
    """Finish what the run that left `container` was doing: if its publish was half done, put back every
    folder it had changed (all of that run's staging folders, wherever they are); remove them."""
    containers = [container]
    if journal.get("state") == "publishing":
        others = [Path(c) for c in journal.get("run", []) if isinstance(c, str)]
        containers += [c for c in others if c != container and c.name.startswith(STAGING_PREFIX) and c.is_dir()]
        journals = {c: _read_journal(c) or {} for c in containers}
        if all(_published(journals[c], c) for c in containers):
            said = "its outputs had all been put in place"
        else:
            undone = [_roll_back(c, journals[c]) for c in containers]
            said = "its half-done publish was rolled back" if any(undone) else "none of it had been published"
    else:
        said = "all of its outputs had been put in place" if journal.get("state") == "published" else \
            "none of it had been published"
    for c in containers:
        shutil.rmtree(c, ignore_errors=True)
    return said


def _canonical(path: str | os.PathLike) -> Path:
    """`path` absolute under its nearest existing folder with symbolic links resolved (one name per
    place; a file or a link to a file keeps its own name, so a link is replaced, not written through)."""
    path = Path(os.path.abspath(path))
    missing: list[str] = []
    while not os.path.isdir(path) and path != path.parent:
        missing.append(path.name)
        path = path.parent
    return Path(os.path.realpath(path)).joinpath(*reversed(missing))


def _top_missing(target: Path, shown: Path) -> Path:
    """The highest folder of `target` that does not exist yet (what a new output folder is)."""
    top = target
    while not top.parent.exists():
        top = top.parent
    above = _file_above(top)
    if above is not None:
        raise TracerError(f"{_shown(shown)}: cannot be written ({_shown(above)} is a file, not a folder)")
    return top


def _file_above(target: Path, stop: Path | None = None) -> Path | None:
    """The nearest existing path above `target` that is a file where a folder must be (None if none)."""
    folder = Path(os.path.abspath(target)).parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if stop is not None and not folder.is_relative_to(stop):
        return None
    return None if folder.is_dir() else folder


def _link_tree(source: Path, dest: Path) -> None:
    """Give `dest` every file of `source` it does not have: hard links (copies where linking fails)."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d.startswith(STAGING_PREFIX))]
        for name in dirnames:
            mirror = dest / rel / name
            if os.path.lexists(mirror) and not mirror.is_dir():
                raise TracerError(f"{_shown(source / rel / name)}: cannot be written (it is a folder, and a file "
                                  "of that name was written)")
            if not mirror.exists():
                mirror.mkdir()
                os.chmod(mirror, stat.S_IMODE(os.stat(source / rel / name).st_mode))
            if os.path.islink(source / rel / name):
                dirnames.remove(name)
        for name in filenames:
            original, mirror = source / rel / name, dest / rel / name
            if os.path.lexists(mirror):
                continue
            if os.path.islink(original):
                os.symlink(os.readlink(original), mirror)
                continue
            try:
                os.link(original, mirror, follow_symlinks=False)
            except OSError:
                shutil.copy2(original, mirror)


def _plan(stage: _Stage) -> list[dict]:
    """What publishing `stage` will do, with the identity of each staged thing (to tell later whether it
    is in place): the whole folder, or each file and the folders made for it."""
    if stage.whole:
        return [{"rel": ".", "new": _identity(stage.new)}]
    moves, made = [], set()
    for rel in stage.files():
        target = stage.root / rel
        folders = [str(p) for p in reversed(Path(rel).parents[:-1])
                   if not (stage.root / p).exists() and str(p) not in made]
        made.update(folders)
        moves.append({"rel": rel, "new": _identity(stage.new / rel), "existed": os.path.lexists(target),
                      "exclusive": rel in stage.new_files, "folders": folders})
    return moves


def _publish(stage: _Stage) -> None:
    """Put one stage in place: one rename of the whole folder, or each file moved in."""
    if stage.whole:
        if stage.existed:
            if not _exchange(stage.new, stage.root):  # the system cannot swap: two renames, journalled
                os.rename(stage.root, stage.container / "old")
                os.rename(stage.new, stage.root)
        else:
            os.rename(stage.new, stage.root)  # fails if something took the name meanwhile
        return
    for move in stage.plan:
        staged, target = stage.new / move["rel"], stage.root / move["rel"]
        for folder in move["folders"]:
            (stage.root / folder).mkdir()
        if move["exclusive"]:
            os.link(staged, target)  # never replaces: fails if the file appeared meanwhile
            os.unlink(staged)
        elif not move["existed"]:
            os.rename(staged, target)
        elif not _exchange(staged, target):  # keep the old file's inode, to put it back if need be
            old = stage.container / "old" / move["rel"]
            old.parent.mkdir(parents=True, exist_ok=True)
            os.link(target, old, follow_symlinks=False)
            os.replace(staged, target)


def _published(journal: dict, container: Path) -> bool:
    """Whether everything the publish in `journal` meant to do is in place."""
    if journal.get("state") == "published":
        return True
    if journal.get("state") != "publishing":
        return False
    root = Path(journal.get("root", ""))
    return all(_identity(root / m["rel"]) == m["new"] for m in journal.get("moves", []) if isinstance(m, dict))


def _roll_back(container: Path, journal: dict) -> bool:
    """Undo what the publish recorded in `journal` did (a run that stopped half-way); True if anything was."""
    if journal.get("state") != "publishing":
        return False
    root = Path(journal.get("root", ""))
    new, old = container / "new", container / "old"
    undone = False
    try:
        if journal.get("whole"):
            in_place = _identity(root) == journal["moves"][0]["new"]
            if in_place and journal.get("existed") and not old.exists():  # exchanged: exchange back
                if not _exchange(new, root):
                    return False
                return True
            if in_place:  # moved in (a new folder, or the second of two renames)
                os.rename(root, new if not os.path.lexists(new) else container / "undone")
                undone = True
            if old.exists() and not os.path.lexists(root):  # the first of two renames
                os.rename(old, root)
                undone = True
            return undone
        for move in reversed(journal.get("moves", [])):
            target, staged, kept = root / move["rel"], new / move["rel"], old / move["rel"]
            if _identity(target) != move["new"]:
                continue  # not moved in (or changed since: left alone)
            if os.path.lexists(kept):
                os.replace(kept, target)
            elif move.get("existed") and os.path.lexists(staged):
                _exchange(staged, target) or os.replace(staged, target)
            else:
                os.unlink(target)
            undone = True
            for folder in reversed(move.get("folders", [])):
                with contextlib.suppress(OSError):
                    (root / folder).rmdir()
    except (OSError, KeyError, TypeError, IndexError, AttributeError):
        pass
    return undone


def _write_journal(container: Path, state: dict, sync: bool = False) -> None:
    record = {"format": "tracer-staging/1", "pid": os.getpid(), "started": _start_time(os.getpid()), **state}
    tmp = container / f".{JOURNAL}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_MODE)
    try:
        data = json.dumps(record).encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, container / JOURNAL)


def _read_journal(container: Path) -> dict | None:
    try:
        journal = json.loads((container / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return journal if isinstance(journal, dict) and journal.get("format") == "tracer-staging/1" else None


def _run_id() -> str:
    """This run as its staging folders are named: its pid and, where known, when it started."""
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _named_owner(name: str) -> dict | None:
    """The run a staging folder's name says made it ({"pid", "started"}), if it says."""
    parts = name[len(STAGING_PREFIX):].split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
        return {"pid": int(parts[0]), "started": int(parts[1]) or None}
    return None


def _start_time(pid: int) -> int | None:
    """When process `pid` started (Linux, in clock ticks since boot), to tell it from a later one of that pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat_line = handle.read()
        return int(stat_line[stat_line.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(journal: dict) -> bool:
    """Whether the run that wrote `journal` is still running."""
    pid = journal.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = journal.get("started")
    return started is None or _start_time(pid) in (None, started)


_active: Staging | None = None


@contextlib.contextmanager
def staged() -> Iterator[Staging]:
    """Stage every output written inside the block; put them in place only if it succeeds.

    Nested blocks join the outermost one, so a command that calls several writers commits once. The
    publish and the clean-up hold Ctrl-C, SIGTERM and SIGHUP until they are done (tracer.interrupts).
    """
    global _active
    if _active is not None:
        yield _active
        return
    _active = staging = Staging()
    try:
        yield staging
        with interrupts.deferred():
            staging.commit()
    finally:
        _active = None
        with interrupts.deferred():
            staging.discard()
            interrupts.settle()
        for message, error in staging.messages if staging.committed else []:
            print(message, file=sys.stderr if error else sys.stdout)


def announce(message: str, error: bool = False) -> None:
    """Print `message` once the command's outputs are in place ("wrote …"), at once outside a command."""
    if _active is None:
        print(message, file=sys.stderr if error else sys.stdout)
    else:
        _active.messages.append((message, error))


def location(path: str | os.PathLike) -> Path:
    """Where the file written for `path` is now: its staged copy during a command, else `path`."""
    staged_copy = _active.staged_path(path) if _active is not None else None
    return staged_copy if staged_copy is not None else Path(path)


def declare_folder(path: str | os.PathLike) -> None:
    """During a command, make `path` one of its output folders (staged whole); outside one, nothing."""
    if _active is not None:
        _active.folder(path)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int | None = None, new: bool = False) -> Iterator[BinaryIO]:
    """A binary handle whose contents become `path` all at once when the block ends without error.

    `mode` defaults to what the umask gives; `new`: the file must not exist yet (it is never replaced)."""
    path = Path(path)
    where = _active.reserve(path, new=new) if _active is not None else path
    try:
        if _active is None:
            above = _file_above(path)
            if above is not None:
                raise TracerError(f"{_shown(path)}: cannot be written ({_shown(above)} is a file, not a folder)")
            if new and os.path.lexists(path):
                raise TracerError(f"{_shown(path)}: the file exists; it is never overwritten")
        where.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=f".{where.name}.", suffix=".tmp")  # mode 600
    except OSError as exc:
        raise TracerError(f"{_shown(path)}: cannot be written ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), _MODE if mode is None else mode)
        if new and _active is None:
            os.link(tmp, where)  # never replaces a file
            os.unlink(tmp)
        else:
            os.replace(tmp, where)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TracerError(f"{_shown(path)}: cannot be written ({_reason(exc)})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int | None = None, new: bool = False) -> Path:
    """Write `data` to `path` all at once (staged when a command is running); return `path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_atomic expects bytes or str, got {type(data).__name__}")
    with atomic_file(path, mode=mode, new=new) as handle:
        handle.write(payload)
    return Path(path)


def write_secret(path: str | os.PathLike, data: bytes | str, new: bool = False) -> Path:
    """Write a file only its owner may read (mode 600): an answer key, the answers, a quiz bank, the
    instructor key (`new`: never replacing an existing file). Staged as every output is."""
    return write_atomic(path, data, mode=SECRET_MODE, new=new)


def _shown(path: Path) -> str:
    """A path as the user would write it: relative to the current folder when under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        try:
            return str(Path(os.path.realpath(path)).relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()

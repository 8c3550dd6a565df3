"""How a command stops when it is asked to: Ctrl-C (SIGINT), SIGTERM and SIGHUP alike.

While a command runs (`handled()`), the first of these signals raises `Interrupted` in the main
thread, and every process the command started (build workers, Graphviz, pdflatex) is ended at once.
The command's staged outputs are then discarded as after any failure, one line is printed and the
exit status is 128 + the signal's number (130, 143, 129). Where being stopped would leave things half
done (putting the outputs in place, cleaning up), `deferred()` holds the signal until the block
ends. Once the outcome is decided (`settle()`: every output in place, or every staged file gone), a
later signal changes nothing. Worker processes ignore the three signals (`worker_start`) and die
with the command, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, TypeVar

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Interrupted(BaseException):
    """The command was asked to stop (not an Exception: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return NAMES.get(self.signum, f"signal {self.signum}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _State:
    mode = "off"  # off (no handlers), raise, defer, settled
    pending: int | None = None
    raised = False


_state = _State()


def _handler(signum: int, frame: Any) -> None:
    if _state.raised or _state.mode in ("off", "settled"):
        return
    if _state.mode == "defer":
        _state.pending = _state.pending or signum
        return
    _stop(signum)


def _stop(signum: int) -> None:
    _state.raised = True
    end_processes(children())
    raise Interrupted(signum)


@contextlib.contextmanager
def handled(restore: bool = True) -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise Interrupted (once). `restore=False`: the signals
    are ignored after it, for the rest of the process (the `tracer` command's own exit, whose outcome
    is decided; Python's finalisation would otherwise let a late signal kill the process)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can take signals
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(previous_hook)
    _state.mode, _state.pending, _state.raised = "raise", None, False
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if restore:
            _state.mode = "off"
            for s, handler in previous.items():
                signal.signal(s, handler)
        else:  # ignored from now on: Python's exit would put back the default actions (killed by the signal)
            _state.mode = "settled"
            for s in SIGNALS:
                signal.signal(s, signal.SIG_IGN)


def _unraisable(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    """An Interrupted raised where Python cannot raise (a weak reference's callback inside an import, a
    __del__) is lost there: send the signal again, so that it is raised where the command can stop."""
    def hook(info: Any) -> None:
        if isinstance(info.exc_value, Interrupted):
            # Sent a moment later from another thread: sent from here, it would be raised in this hook and lost
            # again (if it lands in such a place again, this repeats).
            _state.raised = False
            threading.Thread(target=_send_later, args=(info.exc_value.signum,), daemon=True).start()
            return
        previous(info)
    return hook


def _send_later(signum: int) -> None:
    time.sleep(0.05)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a signal that arrives inside the block until it ends (then raise Interrupted, unless settled)."""
    if _state.mode != "raise":
        yield
        return
    _state.mode = "defer"
    try:
        yield
    finally:
        if _state.mode == "defer":
            _state.mode = "raise"
        pending, _state.pending = _state.pending, None
        if pending and _state.mode == "raise" and not _state.raised:
            _stop(pending)


def settle() -> None:
    """The command's outcome is decided: a signal from now on changes nothing."""
    if _state.mode != "off":
        _state.mode = "settled"


def worker_start(parent: int) -> None:
    """In a forked worker: the three signals are the command's to handle (it ends the workers), and a
    worker dies with the command even when the command is killed (Linux: PR_SET_PDEATHSIG)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNALS))
    _state.mode = "off"
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the command died before the line above
        os._exit(1)


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """The three signals blocked in this thread (a process forked inside starts with them blocked)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


# --------------------------------------------------------------------------- the processes a command started


def _parents() -> dict[int, list[int]]:
    """Every process's children, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def children(pid: int | None = None) -> list[int]:
    """The processes `pid` (default: this one) started, and theirs, deepest first."""
    pid = os.getpid() if pid is None else pid
    if not os.path.isdir("/proc/self"):
        return [p.pid for p in multiprocessing.active_children() if p.pid] if pid == os.getpid() else []
    tree, found, todo = _parents(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found[::-1]


def end_processes(pids: Iterable[int]) -> None:
    """SIGKILL each of `pids` and every process it started (they hold nothing that needs saving: a
    worker's files are staged, and the command discards them)."""
    pids = list(pids)
    for pid in pids:
        pids += [p for p in children(pid) if p not in pids]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


T = TypeVar("T")
R = TypeVar("R")


def in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int = 2) -> list[R]:
    """`[fn(x) for x in items]`, `workers` at a time in threads (fn runs a program: Graphviz, pdflatex).
    On any failure or interruption the work not started is cancelled rather than run to the end."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, x) for x in items]
        return [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)

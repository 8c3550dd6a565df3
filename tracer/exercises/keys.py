"""The instructor key: a random secret from which every variant's numbers and code derive.

A keyed set prints on each sheet a short variant code (e.g. `K7QF`) and nothing else that
identifies it. The variant's numbers come from HMAC-SHA256(key, code), so a student who knows the
code, the chapter and the program still cannot make the variant again (or have `tracer check
--reveal` print its answers) without the key. The key file is written once, with mode 600, and
read by `tracer exercises --key`, `tracer check --key` and `tracer grade`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Iterator

from tracer.errors import TracerError, quoted

#: Letters and digits that cannot be misread for one another (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 4
KEY_BYTES = 32
_HEADER = "tracer-instructor-key/1"


def new_key(path: str | Path) -> bytes:
    """A new random key, written to `path` with mode 600 (never over an existing file); returns the secret.

    During a command the file is staged with the command's other outputs, so it appears only if the
    whole command succeeds (a set that cannot be written leaves no key behind).
    """
    from tracer.output import write_secret

    path = Path(path)
    if os.path.lexists(path):
        raise TracerError(f"--new-key {path}: the file exists; an instructor key is never overwritten "
                          f"(use --key {path} to use it, or name a new file)")
    secret = secrets.token_bytes(KEY_BYTES)
    write_secret(path, f"{_HEADER}\n{secret.hex()}\n", new=True)
    return secret


def read_key(path: str | Path) -> bytes:
    """The secret of a key file written by `new_key`; a clear message for anything else, and a refusal
    of a key that others than its owner can read or change (as ssh refuses such a key)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise TracerError(f"--key {path}: not a regular file; expected an instructor key written by "
                              "`tracer exercises --new-key`")
        if os.name == "posix" and mode & 0o077:
            raise TracerError(f"--key {path}: readable or writable by others than its owner (mode "
                              f"{stat.S_IMODE(mode):o}); an instructor key must be private: chmod 600 {path}")
        with open(path, "rb") as handle:
            data = handle.read(1024)
        lines = data.decode("ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise TracerError(f"--key {path}: cannot be read ({exc}); create one with --new-key {path}") from None
    if len(lines) != 2 or lines[0] != _HEADER or len(lines[1]) != 2 * KEY_BYTES:
        raise TracerError(f"--key {path}: expected an instructor key written by `tracer exercises --new-key` "
                          f"({_HEADER!r} and {2 * KEY_BYTES} hex digits)")
    try:
        return bytes.fromhex(lines[1])
    except ValueError:
        raise TracerError(f"--key {path}: expected {2 * KEY_BYTES} hex digits on its second line") from None


def _mac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def codes(key: bytes, chapter: str) -> Iterator[str]:
    """The chapter's variant codes under `key`, in the order a set uses them (never repeating)."""
    seen: set[str] = set()
    counter = 0
    while True:
        digest = int.from_bytes(_mac(key, f"code/{chapter}/{counter}"), "big")
        counter += 1
        code = ""
        for _ in range(CODE_LENGTH):
            digest, digit = divmod(digest, len(ALPHABET))
            code += ALPHABET[digit]
        if code not in seen:
            seen.add(code)
            yield code


def stream(key: bytes, chapter: str, code: str, attempt: int) -> str:
    """The seed of one draw's random stream: secret without the key."""
    return _mac(key, f"variant/{chapter}/{code}/{attempt}").hex()


def normal_code(text: str) -> str:
    """A code as typed ('k7qf ') in its printed form, or a message saying what a code looks like."""
    code = str(text).strip().upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise TracerError(f"variant code {quoted(str(text))}: expected the {CODE_LENGTH}-character code printed on the "
                          f"sheet, from the letters and digits {ALPHABET}")
    return code



def fingerprint(key: bytes) -> str:
    """A short public name of the key, kept in a set's manifest to tell the wrong key from the right one."""
    return _mac(key, "fingerprint").hex()[:16]

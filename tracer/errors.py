"""The two ways a run can fail, each with its own exit status."""

from __future__ import annotations


class TracerError(Exception):
    """Bad input from the user: a chapter file, an answer, an option (exit status 2)."""

    exit_status = 2


class NumericalError(TracerError):
    """The numbers themselves failed: NaN or overflow during training (exit status 1)."""

    exit_status = 1


#: How much of an offending value a message echoes.
SHOWN = 80


def quoted(value: object, limit: int = SHOWN) -> str:
    """`value` as a message quotes it: its repr (a string's, quoted), cut to about `limit` characters and
    saying how long it was, so a 1 MB name cannot become a 1 MB message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value):,} characters" if isinstance(value, (str, bytes, list, tuple, dict)) else \
        f"{len(text):,} characters written out"
    return f"{text[:limit - 1]}… ({size})"

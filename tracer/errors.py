"""The two ways a run can fail, each with its own exit status."""

from __future__ import annotations


class TracerError(Exception):
    """Bad input from the user: a chapter file, an answer, an option (exit status 2)."""

    exit_status = 2


class NumericalError(TracerError):
    """The numbers themselves failed: NaN or overflow during training (exit status 1)."""

    exit_status = 1

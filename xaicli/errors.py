"""Errors the command line turns into one stderr line and an exit code.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or input, 3 a monitoring threshold
crossed.
"""

from __future__ import annotations


class XaiError(Exception):
    """Base of the errors we expect; anything else is a bug (exit 1, traceback with --debug)."""

    exit_code = 1


class UsageError(XaiError):
    """Bad options, files or data: the user can fix it (exit 2)."""

    exit_code = 2


class ModelLoadError(UsageError):
    """The model file or reference does not load, or has no usable prediction method."""


class DataError(UsageError):
    """The data or background table is missing, unreadable, empty or does not fit the model."""


class RunFailure(XaiError):
    """The run failed while computing (e.g. the model raised on a chunk): exit 1."""


class Interrupted(XaiError):
    """SIGINT (exit 130) or SIGTERM (exit 143): committed work is kept for --resume."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ThresholdCrossed(XaiError):
    """A monitoring command's threshold was crossed (e.g. ``--fail-above``): exit 3, after
    its results were written, so a scheduler can alert."""

    exit_code = 3

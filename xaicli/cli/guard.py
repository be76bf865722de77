"""The boundary where errors become one stderr line and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from xaicli.cli.console import error
from xaicli.errors import XaiError

T = TypeVar("T")

EXIT_INTERRUPTED = 130


def guarded(debug: bool, action: Callable[[], T]) -> T:
    """Run ``action``; without --debug, turn any failure into one line and an exit code."""
    try:
        return action()
    except KeyboardInterrupt:
        error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except XaiError as exc:
        if debug:
            raise
        error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            raise
        text = str(exc).strip().splitlines()
        error(
            f"{type(exc).__name__}: {text[0] if text else ''} (rerun with --debug for the traceback)"
        )
        raise typer.Exit(1) from None
